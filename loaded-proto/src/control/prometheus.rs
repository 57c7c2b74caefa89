//! The counters in the Prometheus text exposition format (version 0.0.4), for `metrics`
//! and node_exporter's textfile collector.
//!
//! Every name starts with `loaded_`; counters end in `_total`; labels are `vip` and
//! `server` (per server), `reason` (drops) and `worker`. Times are gauges in unix seconds.

use super::status::{ServerStatus, Status, WorkerStatus};
use std::fmt::Write;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

struct Family {
    name: &'static str,
    kind: Kind,
    help: &'static str,
}

type ServerValue = fn(&ServerStatus) -> u64;
type WorkerValue = fn(&WorkerStatus) -> u64;

/// The per-server families and how each reads its value.
const SERVER_FAMILIES: [(Family, ServerValue); 10] = [
    (
        family(
            "loaded_server_up",
            Kind::Gauge,
            "1 if the prober finds the server up, else 0.",
        ),
        |s| u64::from(s.state.up),
    ),
    (
        family(
            "loaded_server_draining",
            Kind::Gauge,
            "1 if the server is drained (no new clients), else 0.",
        ),
        |s| u64::from(s.state.draining),
    ),
    (
        family(
            "loaded_server_state_since_seconds",
            Kind::Gauge,
            "Unix time the server last went up or down.",
        ),
        |s| s.since,
    ),
    (
        family("loaded_server_weight", Kind::Gauge, "The server's weight."),
        |s| u64::from(s.weight),
    ),
    (
        family(
            "loaded_server_active_mappings",
            Kind::Gauge,
            "Client mappings to the server in the flow table.",
        ),
        |s| s.active_mappings,
    ),
    (
        family(
            "loaded_server_new_flows_total",
            Kind::Counter,
            "New clients or flows mapped to the server.",
        ),
        |s| s.new_flows,
    ),
    (
        family(
            "loaded_to_server_packets_total",
            Kind::Counter,
            "Packets forwarded to the server.",
        ),
        |s| s.packets_to_server,
    ),
    (
        family(
            "loaded_to_server_bytes_total",
            Kind::Counter,
            "Bytes forwarded to the server.",
        ),
        |s| s.bytes_to_server,
    ),
    (
        family(
            "loaded_from_server_packets_total",
            Kind::Counter,
            "Packets from the server sent on from the VIP.",
        ),
        |s| s.packets_from_server,
    ),
    (
        family(
            "loaded_from_server_bytes_total",
            Kind::Counter,
            "Bytes from the server sent on from the VIP.",
        ),
        |s| s.bytes_from_server,
    ),
];

const DROPS: Family = family(
    "loaded_dropped_packets_total",
    Kind::Counter,
    "Packets dropped, by reason.",
);
const WORKER_PACKETS: Family = family(
    "loaded_worker_packets_total",
    Kind::Counter,
    "Packets the worker gave a verdict.",
);
const WORKER_OVERRUNS: Family = family(
    "loaded_worker_receive_overruns_total",
    Kind::Counter,
    "Times the kernel could not deliver to the worker's full socket buffer.",
);
const WORKER_VERDICT_ERRORS: Family = family(
    "loaded_worker_verdict_errors_total",
    Kind::Counter,
    "Verdicts the kernel refused.",
);
const PROBER_LAST_ROUND: Family = family(
    "loaded_prober_last_round_timestamp_seconds",
    Kind::Gauge,
    "Unix time the prober last finished a round of health checks.",
);

const fn family(name: &'static str, kind: Kind, help: &'static str) -> Family {
    Family { name, kind, help }
}

impl Status {
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        for (family, value) in &SERVER_FAMILIES {
            write_header(&mut out, family);
            for vip in &self.vips {
                let vip_text = vip.vip.to_string();
                for server in &vip.servers {
                    let server_text = server.server.to_string();
                    let labels = [("vip", vip_text.as_str()), ("server", server_text.as_str())];
                    write_sample(&mut out, family, &labels, value(server));
                }
            }
        }
        write_header(&mut out, &DROPS);
        for drop in &self.drops {
            write_sample(&mut out, &DROPS, &[("reason", &drop.reason)], drop.packets);
        }
        let worker_families: [(&Family, WorkerValue); 3] = [
            (&WORKER_PACKETS, |w| w.packets),
            (&WORKER_OVERRUNS, |w| w.receive_overruns),
            (&WORKER_VERDICT_ERRORS, |w| w.verdict_errors),
        ];
        for (family, value) in worker_families {
            write_header(&mut out, family);
            for worker in &self.workers {
                let number = worker.worker.to_string();
                write_sample(&mut out, family, &[("worker", &number)], value(worker));
            }
        }
        if let Some(time) = self.prober.last_round {
            write_header(&mut out, &PROBER_LAST_ROUND);
            write_sample(&mut out, &PROBER_LAST_ROUND, &[], time);
        }
        out
    }
}

fn write_header(out: &mut String, family: &Family) {
    let kind = match family.kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
    };
    let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
    let _ = writeln!(out, "# TYPE {} {kind}", family.name);
}

fn write_sample(out: &mut String, family: &Family, labels: &[(&str, &str)], value: u64) {
    out.push_str(family.name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (name, text)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{name}=\"{}\"", escape_label(text));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// A label value with `\`, `"` and newline escaped, as the format requires.
fn escape_label(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::super::status::example;
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn golden_metrics() {
        let mut status = example::status();
        status.vips.truncate(1);
        status.vips[0].servers.truncate(1);
        status.workers.truncate(1);
        let expected = r#"# HELP loaded_server_up 1 if the prober finds the server up, else 0.
# TYPE loaded_server_up gauge
loaded_server_up{vip="198.18.0.1",server="198.19.0.2"} 1
# HELP loaded_server_draining 1 if the server is drained (no new clients), else 0.
# TYPE loaded_server_draining gauge
loaded_server_draining{vip="198.18.0.1",server="198.19.0.2"} 0
# HELP loaded_server_state_since_seconds Unix time the server last went up or down.
# TYPE loaded_server_state_since_seconds gauge
loaded_server_state_since_seconds{vip="198.18.0.1",server="198.19.0.2"} 1765000000
# HELP loaded_server_weight The server's weight.
# TYPE loaded_server_weight gauge
loaded_server_weight{vip="198.18.0.1",server="198.19.0.2"} 1
# HELP loaded_server_active_mappings Client mappings to the server in the flow table.
# TYPE loaded_server_active_mappings gauge
loaded_server_active_mappings{vip="198.18.0.1",server="198.19.0.2"} 101
# HELP loaded_server_new_flows_total New clients or flows mapped to the server.
# TYPE loaded_server_new_flows_total counter
loaded_server_new_flows_total{vip="198.18.0.1",server="198.19.0.2"} 102
# HELP loaded_to_server_packets_total Packets forwarded to the server.
# TYPE loaded_to_server_packets_total counter
loaded_to_server_packets_total{vip="198.18.0.1",server="198.19.0.2"} 103
# HELP loaded_to_server_bytes_total Bytes forwarded to the server.
# TYPE loaded_to_server_bytes_total counter
loaded_to_server_bytes_total{vip="198.18.0.1",server="198.19.0.2"} 103000
# HELP loaded_from_server_packets_total Packets from the server sent on from the VIP.
# TYPE loaded_from_server_packets_total counter
loaded_from_server_packets_total{vip="198.18.0.1",server="198.19.0.2"} 104
# HELP loaded_from_server_bytes_total Bytes from the server sent on from the VIP.
# TYPE loaded_from_server_bytes_total counter
loaded_from_server_bytes_total{vip="198.18.0.1",server="198.19.0.2"} 156000
# HELP loaded_dropped_packets_total Packets dropped, by reason.
# TYPE loaded_dropped_packets_total counter
loaded_dropped_packets_total{reason="malformed"} 7
loaded_dropped_packets_total{reason="no_backend"} 0
# HELP loaded_worker_packets_total Packets the worker gave a verdict.
# TYPE loaded_worker_packets_total counter
loaded_worker_packets_total{worker="0"} 1000
# HELP loaded_worker_receive_overruns_total Times the kernel could not deliver to the worker's full socket buffer.
# TYPE loaded_worker_receive_overruns_total counter
loaded_worker_receive_overruns_total{worker="0"} 1
# HELP loaded_worker_verdict_errors_total Verdicts the kernel refused.
# TYPE loaded_worker_verdict_errors_total counter
loaded_worker_verdict_errors_total{worker="0"} 2
# HELP loaded_prober_last_round_timestamp_seconds Unix time the prober last finished a round of health checks.
# TYPE loaded_prober_last_round_timestamp_seconds gauge
loaded_prober_last_round_timestamp_seconds 1765000300
"#;
        let text = status.to_prometheus();
        assert_eq!(text, expected, "got:\n{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("two\nlines"), "two\\nlines");
    }

    /// Checks `text` against the text exposition format: every line a HELP, a TYPE or a
    /// sample; names and label names from the allowed alphabet; quoted, escaped label
    /// values; a number as value; one HELP and one TYPE per family, before its samples,
    /// and a family's samples together. Returns the samples per family.
    fn check_exposition(text: &str) -> Result<HashMap<String, usize>, String> {
        let mut samples: HashMap<String, usize> = HashMap::new();
        let mut typed: HashMap<String, &str> = HashMap::new();
        let mut helped: Vec<String> = Vec::new();
        let mut closed: Vec<String> = Vec::new();
        let mut current = String::new();
        if !text.ends_with('\n') {
            return Err("the text does not end with a newline".into());
        }
        for line in text.lines() {
            let fail = |why: &str| Err(format!("{why}: {line:?}"));
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                if !is_metric_name(name) || help.is_empty() || helped.contains(&name.to_owned()) {
                    return fail("bad or repeated HELP");
                }
                helped.push(name.to_owned());
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let Some((name, kind)) = rest.split_once(' ') else {
                    return fail("TYPE without a type");
                };
                if !is_metric_name(name) || typed.contains_key(name) {
                    return fail("bad or repeated TYPE");
                }
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                    return fail("unknown type");
                }
                if kind == "counter" && !name.ends_with("_total") {
                    return fail("a counter's name must end in _total");
                }
                typed.insert(name.to_owned(), kind);
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                return fail("stray comment or blank line");
            }
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let name = &line[..name_end];
            if !is_metric_name(name) || !name.starts_with("loaded_") {
                return fail("bad metric name");
            }
            if !typed.contains_key(name) || !helped.contains(&name.to_owned()) {
                return fail("sample before its HELP and TYPE");
            }
            if name != current {
                if closed.contains(&name.to_owned()) {
                    return fail("the family's samples are not together");
                }
                closed.push(std::mem::replace(&mut current, name.to_owned()));
            }
            let mut rest = &line[name_end..];
            if let Some(labels) = rest.strip_prefix('{') {
                let Some(after) = check_labels(labels) else {
                    return fail("bad labels");
                };
                rest = after;
            }
            let Some(value) = rest.strip_prefix(' ') else {
                return fail("no space before the value");
            };
            // An optional timestamp may follow; we never write one.
            if value.parse::<f64>().is_err() || value.contains(' ') {
                return fail("bad value");
            }
            *samples.entry(name.to_owned()).or_default() += 1;
        }
        Ok(samples)
    }

    /// The text after a `{`: `name="value",...}`; returns what follows the `}`.
    fn check_labels(mut text: &str) -> Option<&str> {
        loop {
            if let Some(after) = text.strip_prefix('}') {
                return Some(after);
            }
            let (name, rest) = text.split_once("=\"")?;
            let mut chars = name.chars();
            let first = chars.next()?;
            if !(first.is_ascii_alphabetic() || first == '_')
                || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
                || name.starts_with("__")
            {
                return None;
            }
            let mut end = None;
            let mut escaped = false;
            for (i, c) in rest.char_indices() {
                match (escaped, c) {
                    (true, '\\' | '"' | 'n') => escaped = false,
                    (true, _) => return None,
                    (false, '\\') => escaped = true,
                    (false, '"') => {
                        end = Some(i);
                        break;
                    }
                    (false, '\n') => return None,
                    (false, _) => {}
                }
            }
            text = &rest[end? + 1..];
            if let Some(after) = text.strip_prefix(',') {
                text = after;
            } else if !text.starts_with('}') {
                return None;
            }
        }
    }

    fn is_metric_name(name: &str) -> bool {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }

    #[test]
    fn every_metrics_line_follows_the_exposition_grammar() {
        let status = example::status();
        let samples = check_exposition(&status.to_prometheus()).unwrap();
        for (family, _) in &SERVER_FAMILIES {
            assert_eq!(samples.get(family.name), Some(&3), "{}", family.name);
        }
        assert_eq!(samples.get("loaded_dropped_packets_total"), Some(&2));
        assert_eq!(samples.get("loaded_worker_packets_total"), Some(&2));
        assert_eq!(
            samples.get("loaded_prober_last_round_timestamp_seconds"),
            Some(&1)
        );
    }

    #[test]
    fn odd_label_values_still_follow_the_grammar() {
        let mut status = example::status();
        status.drops[0].reason = "quote\" back\\slash\nnewline".into();
        status.prober.last_round = None;
        let samples = check_exposition(&status.to_prometheus()).unwrap();
        assert_eq!(
            samples.get("loaded_prober_last_round_timestamp_seconds"),
            None
        );
    }

    #[test]
    fn the_checker_rejects_what_the_grammar_forbids() {
        let header = "# HELP loaded_x_total x\n# TYPE loaded_x_total counter\n";
        for bad in [
            "loaded_x_total 1\n",
            "# HELP loaded_x x\n# TYPE loaded_x counter\nloaded_x 1\n",
            &format!("{header}loaded_x_total{{a=\"b\"}}\n"),
            &format!("{header}loaded_x_total{{a=b}} 1\n"),
            &format!("{header}loaded_x_total{{1a=\"b\"}} 1\n"),
            &format!("{header}loaded_x_total{{a=\"b\\q\"}} 1\n"),
            &format!("{header}loaded_x_total one\n"),
            &format!("{header}loaded_x_total 1"),
            &format!("{header}\nloaded_x_total 1\n"),
            &format!("{header}{header}loaded_x_total 1\n"),
        ] {
            assert!(check_exposition(bad).is_err(), "accepted {bad:?}");
        }
        assert!(check_exposition(&format!("{header}loaded_x_total{{a=\"b\",c=\"\"}} 1\n")).is_ok());
    }
}
