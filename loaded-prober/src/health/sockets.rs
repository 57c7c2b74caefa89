//! The prober's echo sockets and the tag that marks its echoes as its own.

use super::echo_packet::EchoTag;
use super::icmp::IcmpSocket;
use super::local::local_addresses;
use loaded_proto::config::is_link_scoped;
use loaded_proto::random::random_bytes;
use loaded_proto::roles::ProberPart;
use nix::net::if_::if_nametoindex;
use std::io;
use std::net::IpAddr;

pub struct ProbeSockets {
    pub(super) v4: Option<IcmpSocket>,
    pub(super) v6: Option<IcmpSocket>,
    /// Interface index of `private_NIC` for a link-scoped `broadcast6` (0: none needed).
    pub(super) broadcast6_scope: u32,
    ident: u16,
    cookie: u64,
    seq: u16,
}

impl ProbeSockets {
    /// Opens a socket only for the families the config checks: an IPv6-less host must be
    /// able to run an IPv4-only prober.
    pub fn open(part: &ProberPart) -> io::Result<Self> {
        let (want_v4, want_v6) = super::reload::wanted_families(part);
        let nic_index = match (&part.private_nic, part.health.broadcast6) {
            (Some(nic), Some(_)) => Some(if_nametoindex(nic.as_str()).map_err(|errno| {
                io::Error::new(
                    io::Error::from(errno).kind(),
                    format!("private_NIC {nic}: {}", errno.desc()),
                )
            })?),
            _ => None,
        };
        let broadcast6_scope = match part.health.broadcast6 {
            Some(group) if is_link_scoped(group) => nic_index.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("broadcast6 {group} is link-local but private_NIC is not set"),
                )
            })?,
            _ => 0,
        };
        let v4 = want_v4.then(IcmpSocket::open_v4).transpose()?;
        let source6 = match part.rip6 {
            Some(rip6) if want_v6 => local_addresses()?.into_iter().find_map(|addr| match addr {
                IpAddr::V6(v6) if rip6.contains(addr) => Some(v6),
                _ => None,
            }),
            _ => None,
        };
        let v6 = want_v6
            .then(|| IcmpSocket::open_v6(nic_index, source6))
            .transpose()?;
        // Random rather than the pid (the original's choice): pids repeat across
        // namespaces and restarts, and an attacker could guess one.
        let random: [u8; 12] = random_bytes()?;
        Ok(ProbeSockets {
            v4,
            v6,
            broadcast6_scope,
            ident: u16::from_be_bytes([random[0], random[1]]),
            seq: u16::from_be_bytes([random[2], random[3]]),
            cookie: u64::from_be_bytes(random[4..12].try_into().expect("8 bytes")),
        })
    }

    /// A new sequence number per round, so late replies to an earlier round do not count.
    pub(super) fn next_tag(&mut self) -> EchoTag {
        self.seq = self.seq.wrapping_add(1);
        EchoTag {
            ident: self.ident,
            seq: self.seq,
            cookie: self.cookie,
        }
    }
}
