#!/usr/bin/env python3
"""Helpers of bench.sh: parse the load generators' output, read counters, make the table.

    benchlib.py wrk FILE                 requests (= connections) per second of one wrk run
    benchlib.py iperf-tcp FILE           bits per second received by the server (iperf3 -J)
    benchlib.py iperf-udp FILE           datagrams per second received by the server (iperf3 -J)
    benchlib.py nfq BEFORE AFTER         deltas of /proc/net/netfilter/nfnetlink_queue:
                                         "queue_dropped user_dropped q0:packets,q1:packets..."
    benchlib.py rules                    number of nftables rules in `nft -j list ruleset` (stdin)
    benchlib.py report RESULTS [KEY=VALUE...]   the markdown table (KEY=VALUE: header lines)

Every parser prints "nan" (and a reason on stderr) when a run produced nothing usable, so one
failed run shows up as "fail" in the table instead of stopping the benchmark.
"""
import json
import math
import re
import statistics
import sys

SCENARIOS = [
    ("routing", "plain routing (ceiling)"),
    ("dnat", "kernel nftables DNAT"),
    ("userspace", "loaded forward=userspace"),
    ("kernel", "loaded forward=kernel"),
    ("original", "original loaded (2014)"),
]
METRICS = [("conn", "conn/s"), ("bulk", "bulk TCP Gbit/s"), ("udp", "64-byte UDP pps")]


def fail(why):
    print(f"benchlib: {why}", file=sys.stderr)
    print("nan")


def wrk(path):
    text = open(path, errors="replace").read()
    m = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    if not m:
        return fail(f"no Requests/sec in {path}")
    rate = float(m.group(1))
    # Connection errors or non-2xx answers mean the rate is not what it says: report them.
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    notes = []
    if errors and any(int(x) for x in errors.groups()):
        notes.append(errors.group(0))
    if non2xx:
        notes.append(non2xx.group(0))
    if notes:
        print(f"benchlib: {path}: " + "; ".join(notes), file=sys.stderr)
    print(f"{rate:.1f}")


def iperf_end(path):
    try:
        doc = json.load(open(path))
    except (OSError, ValueError) as e:
        return None, f"{path}: {e}"
    if doc.get("error"):
        return None, f"{path}: iperf3: {doc['error']}"
    return doc.get("end", {}), None


def iperf_tcp(path):
    end, err = iperf_end(path)
    if err:
        return fail(err)
    s = end.get("sum_received")
    if not s:
        return fail(f"{path}: no sum_received")
    print(f"{s['bits_per_second']:.0f}")


def iperf_udp(path):
    end, err = iperf_end(path)
    if err:
        return fail(err)
    # For UDP, iperf3 (3.12) puts the server's view in end.sum: packets sent by the client,
    # lost_packets as counted by the server (sequence gaps), over the server's interval.
    s = end.get("sum_received") or end.get("sum")
    if not s or "packets" not in s:
        return fail(f"{path}: no UDP summary")
    seconds = s.get("seconds") or 0
    if seconds <= 0:
        return fail(f"{path}: zero duration")
    received = s["packets"] - s.get("lost_packets", 0)
    print(f"{received / seconds:.0f}")


def nfq_table(path):
    rows = {}
    for line in open(path):
        f = line.split()
        if len(f) >= 8:
            # queue_number peer_portid queue_total copy_mode copy_range queue_dropped
            # user_dropped id_sequence 1
            rows[int(f[0])] = (int(f[5]), int(f[6]), int(f[7]))
    return rows


def nfq(before, after):
    b, a = nfq_table(before), nfq_table(after)
    qd = ud = 0
    spread = []
    for q in sorted(a):
        b0 = b.get(q, (0, 0, 0))
        qd += a[q][0] - b0[0]
        ud += a[q][1] - b0[1]
        spread.append(f"{q}:{a[q][2] - b0[2]}")
    print(qd, ud, ",".join(spread) or "-")


def rules():
    doc = json.load(sys.stdin)
    print(sum(1 for item in doc.get("nftables", []) if "rule" in item))


def median(values):
    good = [v for v in values if not math.isnan(v)]
    return statistics.median(good) if good else math.nan


def fmt_value(metric, v):
    if math.isnan(v):
        return "fail"
    if metric == "bulk":
        return f"{v / 1e9:.2f}"
    return f"{v:,.0f}"


def report(path, headers):
    # RESULTS lines: clients family scenario metric round value
    #            or: clients family scenario nfq round queue_dropped user_dropped spread
    #            or: clients family scenario na 0 reason...
    values, drops, spread, na = {}, {}, {}, {}
    for line in open(path):
        f = line.split()
        if not f:
            continue
        key = (int(f[0]), f[1], f[2])
        if f[3] == "na":
            na[key] = " ".join(f[5:])
        elif f[3].startswith("nfq-"):
            metric = f[3][4:]
            d = drops.setdefault(key, {}).setdefault(metric, [0, 0])
            d[0] += int(f[5])
            d[1] += int(f[6])
            for item in f[7].split(","):
                if ":" in item:
                    q, n = item.split(":")
                    s = spread.setdefault(key, {})
                    s[q] = s.get(q, 0) + int(n)
        else:
            values.setdefault(key + (f[3],), []).append(float(f[5]))

    out = []
    for h in headers:
        k, _, v = h.partition("=")
        out.append(f"- {k}: {v}")
    if out:
        out.append("")
    combos = sorted({(k[0], k[1]) for k in list(values) + list(na)}, key=lambda c: (c[1], c[0]))
    for clients, family in combos:
        rounds = max((len(v) for k, v in values.items() if k[:2] == (clients, family)), default=0)
        out.append(f"### IPv{family}, {clients} client address{'es' if clients > 1 else ''}"
                   f" (median of {rounds} round{'s' if rounds != 1 else ''}; in parentheses:"
                   " ratio to plain routing)")
        out.append("")
        out.append("| scenario | " + " | ".join(m[1] for m in METRICS)
                   + " | NFQUEUE queue_dropped / user_dropped (conn, bulk, UDP) | packets per queue |")
        out.append("|---|" + "---:|" * len(METRICS) + "---|---|")
        base = {m: median(values.get((clients, family, "routing", m), [])) for m, _ in METRICS}
        for scen, label in SCENARIOS:
            key = (clients, family, scen)
            if key in na:
                out.append(f"| {label} | n/a ({na[key]}) | " + " | ".join("n/a" for _ in METRICS[1:]) + " | | |")
                continue
            if not any((clients, family, scen, m) in values for m, _ in METRICS):
                continue
            cells = []
            for m, _ in METRICS:
                v = median(values.get(key + (m,), []))
                cell = fmt_value(m, v)
                if scen != "routing" and not math.isnan(v) and not math.isnan(base[m]) and base[m] > 0:
                    cell += f" ({v / base[m]:.2f})"
                cells.append(cell)
            if key in drops:
                d = drops[key]
                q = ", ".join(str(d.get(m, [0, 0])[0]) for m, _ in METRICS)
                u = ", ".join(str(d.get(m, [0, 0])[1]) for m, _ in METRICS)
                dcell = f"{q} / {u}"
                total = sum(spread.get(key, {}).values())
                scell = " ".join(f"q{q}: {100 * n / total:.0f}%" for q, n in sorted(spread[key].items())) \
                    if total else "-"
            else:
                dcell = scell = ""
            out.append(f"| {label} | " + " | ".join(cells) + f" | {dcell} | {scell} |")
        out.append("")
    out.append("conn/s: HTTP requests with `Connection: close` (one TCP connection each) answered per second;"
               " bulk: one iperf3 TCP stream; UDP: 64-byte iperf3 datagrams per second that reached the"
               " server. Drop counters are summed over the rounds, packets per queue over every"
               " measurement of the scenario.")
    print("\n".join(out))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "wrk":
        wrk(args[0])
    elif cmd == "iperf-tcp":
        iperf_tcp(args[0])
    elif cmd == "iperf-udp":
        iperf_udp(args[0])
    elif cmd == "nfq":
        nfq(args[0], args[1])
    elif cmd == "rules":
        rules()
    elif cmd == "report":
        report(args[0], args[1:])
    else:
        sys.exit(f"benchlib.py: unknown command {cmd}")


if __name__ == "__main__":
    main()
