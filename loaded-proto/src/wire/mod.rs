//! Zero-copy views over the bytes of the packets the datapath rewrites.
//!
//! Each format has a `Packet<T: AsRef<[u8]>>` view: `new_checked` validates the lengths once,
//! after which the getters (on `T: AsRef<[u8]>`) and setters (on `T: AsMut<[u8]>`) stay
//! within the buffer. `new_unchecked` views skip that validation; their accessors panic on a
//! short buffer, so the datapath only ever builds checked views over untrusted bytes.
//! Field offsets are named in each module's `field` module so that code which has to work on
//! a partial header (a packet quoted in an ICMP error) can reach single fields safely.

pub mod checksum;
mod family;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

pub use family::Family;

/// Why bytes could not be viewed as a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The buffer ends before the header, or before where a length field says it ends.
    Truncated,
    /// A field holds a value the format does not allow.
    Malformed,
}

pub type Result<T> = core::result::Result<T, Error>;

/// IP protocol numbers (IPv6 next-header values) that the datapath tells apart.
pub mod protocol {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const NO_NEXT_HEADER: u8 = 59;
    pub const DESTINATION_OPTIONS: u8 = 60;
}

/// A big-endian u16 at `at`; panics if the buffer is too short, as unchecked accessors do.
fn read_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn write_u16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

fn read_array<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut array = [0; N];
    array.copy_from_slice(&bytes[at..at + N]);
    array
}
