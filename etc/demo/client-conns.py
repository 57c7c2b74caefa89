#!/usr/bin/env python3
"""Opens many keep-alive HTTP connections at once and tells which backend got each.

    client-conns.py [-n COUNT] [--port PORT] [--hold SECONDS] [--timeout SECONDS] ADDR

Opens COUNT TCP connections to ADDR:PORT (IPv4 or IPv6), sends `GET /` on each (HTTP/1.1,
keep-alive) and reads the answer's "backend=<name>" line, keeps every connection open for
--hold seconds, then closes them all and prints a JSON object {name: count} on stdout.

Exit status: 0 when every connection got a name, 1 when some failed (the JSON still counts
the ones that worked; the failures are on stderr), 2 on bad arguments. The whole run is
bounded by --timeout (default: hold + 30 s): past it, the script stops with status 1.
Standard library only; the backends are etc/demo/backend-service.py.
"""

import argparse
import json
import resource
import signal
import socket
import sys
import time

MAX_COUNT = 5000
MAX_HOLD = 300.0


def fail_after(seconds):
    """A last resort against any hang: SIGALRM ends the process with status 1."""

    def on_alarm(signum, frame):
        sys.stderr.write("client-conns: overall timeout of %.1f s reached\n" % seconds)
        sys.stderr.flush()
        sys.exit(1)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        new = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


def read_response(sock):
    """Reads one HTTP/1.1 response (with Content-Length) and returns its body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("connection closed before the headers ended")
        data += chunk
        if len(data) > 65536:
            raise ConnectionError("headers longer than 64 KiB")
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("iso-8859-1").split("\r\n")
    status = lines[0].split()
    if len(status) < 2 or status[1] != "200":
        raise ConnectionError("answer %r" % lines[0])
    length = None
    for line in lines[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == "content-length":
            length = int(value.strip())
    if length is None:
        raise ConnectionError("answer without Content-Length")
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            raise ConnectionError("connection closed in the body")
        body += chunk
    return body


def backend_of(sock, host_header):
    request = "GET / HTTP/1.1\r\nHost: %s\r\nConnection: keep-alive\r\n\r\n" % host_header
    sock.sendall(request.encode())
    body = read_response(sock).decode("utf-8", "replace")
    for line in body.splitlines():
        if line.startswith("backend="):
            return line[len("backend="):].strip()
    raise ConnectionError("no backend= line in %r" % body[:100])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("addr", help="IPv4 or IPv6 address (e.g. 198.18.100.1, fd00:100::1)")
    parser.add_argument("-n", "--count", type=int, default=10, help="connections (default 10)")
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--hold", type=float, default=1.0, help="seconds to keep them open")
    parser.add_argument(
        "--connect-timeout", type=float, help="per connection (default 5, at most --timeout)"
    )
    parser.add_argument("--timeout", type=float, help="the whole run (default hold + 30)")
    args = parser.parse_args()
    if not 1 <= args.count <= MAX_COUNT:
        parser.error("--count: 1 to %d" % MAX_COUNT)
    if not 0 <= args.hold <= MAX_HOLD:
        parser.error("--hold: 0 to %d seconds" % MAX_HOLD)
    timeout = args.timeout if args.timeout is not None else args.hold + 30.0
    if not 0 < timeout <= MAX_HOLD + 300:
        parser.error("--timeout: more than 0, at most %d seconds" % (MAX_HOLD + 300))
    connect_timeout = args.connect_timeout
    if connect_timeout is None:
        connect_timeout = min(5.0, timeout)
    if not 0 < connect_timeout <= timeout:
        parser.error("--connect-timeout: more than 0, at most --timeout")

    try:
        infos = socket.getaddrinfo(
            args.addr, args.port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
        )
    except socket.gaierror:
        parser.error("'%s' is not an IPv4 or IPv6 address" % args.addr)
    family, _, _, _, sockaddr = infos[0]
    host_header = "[%s]" % args.addr if family == socket.AF_INET6 else args.addr

    fail_after(timeout)
    raise_fd_limit(args.count + 64)
    deadline = time.monotonic() + timeout

    counts = {}
    failures = 0
    open_socks = []
    for i in range(args.count):
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            left = deadline - time.monotonic()
            sock.settimeout(max(0.1, min(connect_timeout, left)))
            sock.connect(sockaddr)
            name = backend_of(sock, host_header)
        except (OSError, ValueError) as e:
            failures += 1
            sys.stderr.write("client-conns: connection %d: %s\n" % (i + 1, e))
            sock.close()
            continue
        counts[name] = counts.get(name, 0) + 1
        open_socks.append(sock)

    time.sleep(max(0.0, min(args.hold, deadline - time.monotonic() - 0.5)))
    for sock in open_socks:
        sock.close()
    signal.setitimer(signal.ITIMER_REAL, 0)

    print(json.dumps(counts, sort_keys=True), flush=True)
    if failures:
        sys.stderr.write("client-conns: %d of %d connections failed\n" % (failures, args.count))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
