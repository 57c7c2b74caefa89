//! The nftables table of kernel mode (`forward=kernel`): `table inet loaded`, ours alone.
//!
//! * `prerouting` (nat, dstnat): a packet to a VIP that a worker marked gets its mark saved
//!   on the connection (`ct mark set meta mark`: the master's iptables rule queues only
//!   connections without it) and is DNATed to the server the mark names, through one map
//!   per family. A nat chain sees only a connection's first packet; conntrack translates
//!   the rest, the replies and the ICMP errors about the connection.
//! * `input` (filter): nothing addressed to a VIP reaches the balancer's own stack, except
//!   IPv6 neighbour discovery. Packets conntrack finds invalid carry no connection and so
//!   no mark: they are neither queued nor DNATed, and would otherwise get a TCP reset from
//!   the balancer itself (as without `--queue-bypass` in userspace mode: dropped, never
//!   answered by the balancer).
//!
//! The whole table is written in one `nft -f` transaction that first deletes any table of
//! that name (a leftover of a killed run), so it is replaced atomically; it is deleted at
//! stop. Nothing outside it is touched.

use crate::bounded_command::{self, CommandError};
use loaded_proto::forwarding::{MARK_TAG, MARK_TAG_MASK};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

pub const TABLE: &str = "loaded";
const NFT: &str = "nft";
/// nft talks to the kernel over netlink; even a large table takes milliseconds.
const NFT_LIMIT: Duration = Duration::from_secs(10);

/// What the table is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelTable {
    pub vip4: Option<Ipv4Addr>,
    pub vip6: Option<Ipv6Addr>,
    /// Mark and address of every server known at start (map elements).
    pub servers: Vec<(u32, IpAddr)>,
}

/// The step of the table's life that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NftStep {
    Install,
    AddServer,
    Remove,
}

impl fmt::Display for NftStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NftStep::Install => "install the nftables table",
            NftStep::AddServer => "add a server to the nftables map",
            NftStep::Remove => "remove the nftables table",
        })
    }
}

#[derive(Debug)]
pub enum NftError {
    /// nft could not be run to its end.
    Run { step: NftStep, source: CommandError },
    /// nft refused: its exit status and what it printed.
    Refused {
        step: NftStep,
        status: String,
        stderr: String,
    },
}

impl fmt::Display for NftError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NftError::Run { step, source } => write!(f, "cannot {step}: {source}"),
            NftError::Refused {
                step,
                status,
                stderr,
            } => write!(f, "cannot {step}: nft {status}: {}", stderr.trim()),
        }
    }
}

impl std::error::Error for NftError {}

/// The map of an address's family.
fn map_of(addr: IpAddr) -> &'static str {
    match addr {
        IpAddr::V4(_) => "backends4",
        IpAddr::V6(_) => "backends6",
    }
}

/// `0x4c440001 : 198.19.0.11, ...` for the servers of one family.
fn elements(servers: &[(u32, IpAddr)], v4: bool) -> String {
    servers
        .iter()
        .filter(|(_, addr)| addr.is_ipv4() == v4)
        .map(|(mark, addr)| format!("{mark:#010x} : {addr}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl KernelTable {
    /// The `nft -f` text that replaces any table of ours with this one.
    pub fn ruleset(&self) -> String {
        let mut text = format!("table inet {TABLE}\ndelete table inet {TABLE}\n");
        text.push_str(&format!("table inet {TABLE} {{\n"));
        for (name, key_type, v4) in [
            ("backends4", "ipv4_addr", true),
            ("backends6", "ipv6_addr", false),
        ] {
            text.push_str(&format!("\tmap {name} {{\n\t\ttype mark : {key_type}\n"));
            let elements = elements(&self.servers, v4);
            if !elements.is_empty() {
                text.push_str(&format!("\t\telements = {{ {elements} }}\n"));
            }
            text.push_str("\t}\n");
        }
        let tagged = format!("meta mark & {MARK_TAG_MASK:#010x} == {MARK_TAG:#010x}");
        text.push_str(
            "\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n",
        );
        if let Some(vip) = self.vip4 {
            text.push_str(&format!(
                "\t\tip daddr {vip} {tagged} ct mark set meta mark dnat ip to meta mark map @backends4\n"
            ));
        }
        if let Some(vip) = self.vip6 {
            text.push_str(&format!(
                "\t\tip6 daddr {vip} {tagged} ct mark set meta mark dnat ip6 to meta mark map @backends6\n"
            ));
        }
        text.push_str("\t}\n");
        text.push_str(
            "\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n",
        );
        if let Some(vip) = self.vip4 {
            text.push_str(&format!("\t\tip daddr {vip} drop\n"));
        }
        if let Some(vip) = self.vip6 {
            text.push_str(&format!(
                "\t\tip6 daddr {vip} icmpv6 type {{ nd-router-solicit, nd-router-advert, \
                 nd-neighbor-solicit, nd-neighbor-advert, nd-redirect }} accept\n\
                 \t\tip6 daddr {vip} drop\n"
            ));
        }
        text.push_str("\t}\n}\n");
        text
    }

    /// Installs the table, replacing a leftover one in the same transaction.
    pub fn install(&self) -> Result<(), NftError> {
        apply(NftStep::Install, &self.ruleset())
    }
}

/// The text that adds one server to its family's map.
pub fn add_server_text(mark: u32, addr: IpAddr) -> String {
    let map = map_of(addr);
    format!("add element inet {TABLE} {map} {{ {mark:#010x} : {addr} }}\n")
}

/// Adds a hot-plugged server to its family's map (adding an existing element is a no-op).
pub fn add_server(mark: u32, addr: IpAddr) -> Result<(), NftError> {
    apply(NftStep::AddServer, &add_server_text(mark, addr))
}

/// The text that deletes our table, and succeeds when there is none.
pub fn remove_text() -> String {
    format!("table inet {TABLE}\ndelete table inet {TABLE}\n")
}

/// Deletes our table; no table is not an error (that is the state we want).
pub fn remove() -> Result<(), NftError> {
    apply(NftStep::Remove, &remove_text())
}

fn apply(step: NftStep, text: &str) -> Result<(), NftError> {
    let args = ["-f".to_owned(), "-".to_owned()];
    let done = bounded_command::run(NFT, &args, Some(text), NFT_LIMIT)
        .map_err(|source| NftError::Run { step, source })?;
    if done.status.success() {
        Ok(())
    } else {
        Err(NftError::Refused {
            step,
            status: done.status.to_string(),
            stderr: done.stderr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN: &str = "table inet loaded
delete table inet loaded
table inet loaded {
\tmap backends4 {
\t\ttype mark : ipv4_addr
\t\telements = { 0x4c440001 : 198.19.0.11, 0x4c440002 : 198.19.0.12 }
\t}
\tmap backends6 {
\t\ttype mark : ipv6_addr
\t\telements = { 0x4c440003 : fd00:19::11 }
\t}
\tchain prerouting {
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tip daddr 198.18.100.1 meta mark & 0xffff0000 == 0x4c440000 ct mark set meta mark dnat ip to meta mark map @backends4
\t\tip6 daddr fd00:100::1 meta mark & 0xffff0000 == 0x4c440000 ct mark set meta mark dnat ip6 to meta mark map @backends6
\t}
\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t\tip daddr 198.18.100.1 drop
\t\tip6 daddr fd00:100::1 icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect } accept
\t\tip6 daddr fd00:100::1 drop
\t}
}
";

    #[test]
    fn the_table_of_both_families() {
        let table = KernelTable {
            vip4: Some("198.18.100.1".parse().unwrap()),
            vip6: Some("fd00:100::1".parse().unwrap()),
            servers: vec![
                (0x4c44_0001, "198.19.0.11".parse().unwrap()),
                (0x4c44_0002, "198.19.0.12".parse().unwrap()),
                (0x4c44_0003, "fd00:19::11".parse().unwrap()),
            ],
        };
        assert_eq!(table.ruleset(), GOLDEN);
    }

    #[test]
    fn one_family_without_servers_yet() {
        // IPv4 only, every server to be hot-plugged: empty maps are valid, and no rule
        // names the family that has no VIP.
        let table = KernelTable {
            vip4: Some("198.18.100.1".parse().unwrap()),
            vip6: None,
            servers: vec![],
        };
        let text = table.ruleset();
        assert!(!text.contains("elements"), "{text}");
        assert!(!text.contains("ip6 daddr"), "{text}");
        assert!(text.contains("\tmap backends6 {\n\t\ttype mark : ipv6_addr\n\t}\n"));
        assert_eq!(text.matches("dnat").count(), 1);
    }

    #[test]
    fn hot_plug_and_removal_texts() {
        assert_eq!(
            add_server_text(0x4c44_0004, "198.19.0.14".parse().unwrap()),
            "add element inet loaded backends4 { 0x4c440004 : 198.19.0.14 }\n"
        );
        assert_eq!(
            add_server_text(0x4c44_0105, "fd00:19::14".parse().unwrap()),
            "add element inet loaded backends6 { 0x4c440105 : fd00:19::14 }\n"
        );
        // Declaring the table first makes the delete succeed when there is none.
        assert_eq!(
            remove_text(),
            "table inet loaded\ndelete table inet loaded\n"
        );
    }
}
