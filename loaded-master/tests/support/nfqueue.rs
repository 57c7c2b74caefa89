//! The kernel's listing of bound NFQUEUEs.

/// One row of `/proc/net/netfilter/nfnetlink_queue`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NfQueue {
    pub queue: u16,
    /// Netlink port id of the process bound to the queue.
    pub peer_portid: u32,
    /// Packets waiting for a verdict.
    pub waiting: u32,
    pub copy_mode: u32,
    pub copy_range: u32,
    /// Dropped because the queue was full.
    pub queue_dropped: u64,
    /// Dropped because the netlink socket's buffer was full.
    pub user_dropped: u64,
    /// Packet id of the last packet queued.
    pub id_sequence: u64,
}

/// Parses the rows of /proc/net/netfilter/nfnetlink_queue.
pub fn parse_nfqueue(text: &str) -> Vec<NfQueue> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            Some(NfQueue {
                queue: f[0].parse().ok()?,
                peer_portid: f[1].parse().ok()?,
                waiting: f[2].parse().ok()?,
                copy_mode: f[3].parse().ok()?,
                copy_range: f[4].parse().ok()?,
                queue_dropped: f[5].parse().ok()?,
                user_dropped: f[6].parse().ok()?,
                id_sequence: f[7].parse().ok()?,
            })
        })
        .collect()
}
