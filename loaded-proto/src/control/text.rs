//! The `status` listing for people, in the spirit of `ipvsadm -Ln --stats`: one block per
//! VIP with a row per server, then the drops, the workers and the prober.

use super::status::{ServerStatus, Status};
use super::utc::format_utc;
use std::fmt::Write;

impl Status {
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for vip in &self.vips {
            let _ = writeln!(
                out,
                "VIP {}  strategy {}  stickiness {}",
                vip.vip, vip.strategy, vip.stickiness
            );
            let mut table = Table::new(&SERVER_COLUMNS);
            for server in &vip.servers {
                table.row(server_row(server));
            }
            table.write(&mut out);
            out.push('\n');
        }
        out.push_str("Drops\n");
        let mut drops = Table::new(&[("Reason", Align::Left), ("Packets", Align::Right)]);
        for drop in &self.drops {
            drops.row(vec![drop.reason.clone(), drop.packets.to_string()]);
        }
        drops.write(&mut out);
        out.push_str("\nWorkers\n");
        let mut workers = Table::new(&[
            ("Worker", Align::Right),
            ("Packets", Align::Right),
            ("Overruns", Align::Right),
            ("VerdictErrors", Align::Right),
        ]);
        for worker in &self.workers {
            workers.row(vec![
                worker.worker.to_string(),
                worker.packets.to_string(),
                worker.receive_overruns.to_string(),
                worker.verdict_errors.to_string(),
            ]);
        }
        workers.write(&mut out);
        let prober = match (self.prober.running, self.prober.last_round) {
            (false, _) => "not running (failover is off)".to_owned(),
            (true, None) => "no round finished yet".to_owned(),
            (true, Some(time)) => format!("last round {}", format_utc(time)),
        };
        let _ = writeln!(out, "\nProber  {prober}");
        out
    }
}

const SERVER_COLUMNS: [(&str, Align); 11] = [
    ("Server", Align::Left),
    ("State", Align::Left),
    ("Since", Align::Left),
    ("Weight", Align::Right),
    ("Active", Align::Right),
    ("NewFlows", Align::Right),
    ("PktsTo", Align::Right),
    ("BytesTo", Align::Right),
    ("PktsFrom", Align::Right),
    ("BytesFrom", Align::Right),
    ("Reason", Align::Left),
];

fn server_row(server: &ServerStatus) -> Vec<String> {
    vec![
        server.server.to_string(),
        server.state.words().to_owned(),
        format_utc(server.since),
        server.weight.to_string(),
        server.active_mappings.to_string(),
        server.new_flows.to_string(),
        server.packets_to_server.to_string(),
        server.bytes_to_server.to_string(),
        server.packets_from_server.to_string(),
        server.bytes_from_server.to_string(),
        // Control characters from the prober's text would garble the listing.
        server
            .reason
            .as_deref()
            .unwrap_or("-")
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect(),
    ]
}

#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
}

/// Columns as wide as their widest cell, two spaces apart, indented by two; no blanks at
/// the end of a line.
struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(columns: &[(&'static str, Align)]) -> Table {
        let columns = columns.to_vec();
        let header = columns.iter().map(|(name, _)| name.to_string()).collect();
        Table {
            columns,
            rows: vec![header],
        }
    }

    fn row(&mut self, mut cells: Vec<String>) {
        cells.truncate(self.columns.len());
        self.rows.push(cells);
    }

    fn write(&self, out: &mut String) {
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|i| {
                self.rows
                    .iter()
                    .map(|row| row.get(i).map_or(0, |cell| cell.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &self.rows {
            let mut line = String::from(" ");
            for (i, cell) in row.iter().enumerate() {
                line.push(' ');
                let pad = widths[i] - cell.chars().count();
                match self.columns[i].1 {
                    Align::Left => {
                        line.push_str(cell);
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                    Align::Right => {
                        line.extend(std::iter::repeat_n(' ', pad));
                        line.push_str(cell);
                    }
                }
                line.push(' ');
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::status::example;

    #[test]
    fn golden_text() {
        let expected = "\
VIP 198.18.0.1  strategy weighted  stickiness client
  Server      State          Since                    Weight  Active  NewFlows  PktsTo  BytesTo  PktsFrom  BytesFrom  Reason
  198.19.0.2  up             2025-12-06 05:46:40 UTC       1     101       102     103   103000       104     156000  echo reply
  198.19.0.3  down,draining  2025-12-06 05:48:20 UTC       2     201       202     203   203000       204     306000  timeout

VIP fd00:18::1  strategy rr  stickiness flow
  Server      State        Since                    Weight  Active  NewFlows  PktsTo  BytesTo  PktsFrom  BytesFrom  Reason
  fd00:19::2  up,draining  2025-12-06 05:50:00 UTC       3     301       302     303   303000       304     456000  -

Drops
  Reason      Packets
  malformed         7
  no_backend        0

Workers
  Worker  Packets  Overruns  VerdictErrors
       0     1000         1              2
       1     2000         3              4

Prober  last round 2025-12-06 05:51:40 UTC
";
        let text = example::status().to_text();
        assert_eq!(text, expected, "got:\n{text}");
    }

    #[test]
    fn the_prober_line_says_why_there_is_no_round() {
        let mut status = example::status();
        status.prober.last_round = None;
        assert!(status
            .to_text()
            .ends_with("\nProber  no round finished yet\n"));
        status.prober.running = false;
        assert!(status
            .to_text()
            .ends_with("\nProber  not running (failover is off)\n"));
    }

    #[test]
    fn control_characters_in_a_reason_stay_on_their_line() {
        let mut status = example::status();
        status.vips[0].servers[0].reason = Some("bad\nline\x1b[2J".into());
        let text = status.to_text();
        assert!(text.contains("  bad line [2J\n"), "{text}");
        assert!(!text.contains('\x1b'));
    }
}
