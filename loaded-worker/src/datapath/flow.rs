//! Types shared by the NAT rewrite and the backend selection.

pub use loaded_proto::flow_table::FlowKey;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The virtual addresses this balancer answers for, at most one per family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vips {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

impl Vips {
    pub fn contains(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => self.v4 == Some(a),
            IpAddr::V6(a) => self.v6 == Some(a),
        }
    }
}

/// Whether a client's packet may create its flow's mapping. Only a flow's first packet
/// may: anything else of a client the table does not know would otherwise take a slot (and
/// a server's connection count) for a flow no server has, e.g. in a flood of ACKs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opening {
    /// A TCP SYN without ACK, UDP (whole or the first fragment), an echo request, or the
    /// first fragment of one of these.
    Opens,
    /// A TCP segment without SYN, or a SYN with ACK: its connection began before.
    TcpNotSyn,
    /// A later fragment, without the transport header: its datagram began before.
    LaterFragment,
}

/// Why a client's packet got no server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoPick {
    /// No server of its family is up.
    NoServer,
    /// Its flow-table bucket stayed locked by a live worker for longer than we wait: the
    /// mapping cannot be read, and a guess for an existing flow would reset it.
    Busy,
    /// The packet may not create a mapping (see `Opening`) and its flow has none.
    NoMapping,
}

/// Where the NAT rewrite asks which real server a flow belongs to.
pub trait BackendSelector {
    /// The server for a packet from a client to the VIP: the flow's existing mapping
    /// (refreshed), or, if `opening` allows, a new one chosen by the scheduler. A packet
    /// that may not open a flow gets, without a mapping, the consistent choice of `maglev`
    /// (not recorded) or `NoPick::NoMapping`.
    fn backend_for(&mut self, key: &FlowKey, opening: Opening) -> Result<IpAddr, NoPick>;

    /// The server that owns an existing mapping, without creating or refreshing one
    /// (used for ICMP errors that quote a flow).
    fn existing_backend(&self, key: &FlowKey) -> Option<IpAddr>;

    /// Whether packets from `addr` are replies of a real server that we must rewrite.
    fn is_backend(&self, addr: IpAddr) -> bool;

    /// `is_backend` for the source of the packet being rewritten: a selector that counts
    /// traffic per server notes the packet as that server's.
    fn is_sending_backend(&self, addr: IpAddr) -> bool {
        self.is_backend(addr)
    }
}
