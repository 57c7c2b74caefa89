//! In-place changes to a parsed packet that keep every checksum over them right.
//!
//! Checksums are updated incrementally (RFC 1624) rather than recomputed: a fragment, or a
//! packet quoted in an ICMP error, does not hold all the bytes its checksum covers. Each
//! change returns what it did to the bytes, so that a checksum enclosing them (an ICMP error
//! over its quote) can follow.

use std::net::IpAddr;
use std::ops::Range;

use loaded_proto::wire::checksum::Delta;
use loaded_proto::wire::{icmpv6, protocol, tcp, udp};

use super::datagram::{Datagram, Family, Fragment, IpHeader, Side};
use super::DropReason;

/// What replacing an address did to the bytes of an IP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct AddressChange {
    /// The address itself, which pseudo-header checksums cover.
    pub(super) address: Delta,
    /// The IPv4 header checksum field, updated with it.
    pub(super) header_checksum: Delta,
}

impl AddressChange {
    /// Everything that changed in the header's bytes.
    pub(super) fn of_header(self) -> Delta {
        self.address.and(self.header_checksum)
    }
}

/// How a checksum field treats zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Zero {
    /// Zero is a checksum value like any other.
    IsAValue,
    /// Zero means no checksum was sent (UDP): it stays zero, and a computed zero is sent as
    /// 0xffff.
    MeansNone,
}

/// Replaces the address on `side` of `header` with `new` and updates the IPv4 header
/// checksum. The caller sees that `new` is of the header's family.
pub(super) fn replace_address(
    packet: &mut [u8],
    header: &IpHeader,
    side: Side,
    new: IpAddr,
) -> Result<AddressChange, DropReason> {
    let address = write_address(packet, header.address_field(side), new)?;
    let header_checksum = match header.header_checksum_field() {
        Some(field) => update_checksum(packet, field, address, Zero::IsAValue)?,
        None => Delta::NONE,
    };
    Ok(AddressChange {
        address,
        header_checksum,
    })
}

/// Brings the transport checksum of `datagram` up to date after its pseudo-header changed
/// by `pseudo_header`. A checksum that is not in the buffer (in a later fragment, or beyond
/// the end of a quote) is left to whoever holds it; so is one cut in half by the end of a
/// quote, whose new high byte depends on the carry out of the missing low byte.
pub(super) fn update_transport_checksum(
    packet: &mut [u8],
    datagram: &Datagram,
    pseudo_header: Delta,
) -> Result<Delta, DropReason> {
    if datagram.fragment == Fragment::Later {
        return Ok(Delta::NONE);
    }
    let (field, zero) = match (datagram.family(), datagram.protocol) {
        (_, protocol::TCP) => (tcp::field::CHECKSUM, Zero::IsAValue),
        (_, protocol::UDP) => (udp::field::CHECKSUM, Zero::MeansNone),
        (Family::V6, protocol::ICMPV6) => (icmpv6::field::CHECKSUM, Zero::IsAValue),
        // The ICMPv4 checksum covers no pseudo-header.
        _ => return Ok(Delta::NONE),
    };
    let field = datagram.transport.start + field.start..datagram.transport.start + field.end;
    if field.end > datagram.transport.end {
        return Ok(Delta::NONE);
    }
    update_checksum(packet, field, pseudo_header, zero)
}

/// Replaces an address and the transport checksum over it: the whole translation of a
/// packet that is not an ICMP error.
pub(super) fn translate(
    packet: &mut [u8],
    datagram: &Datagram,
    side: Side,
    new: IpAddr,
) -> Result<(), DropReason> {
    let change = replace_address(packet, &datagram.header, side, new)?;
    update_transport_checksum(packet, datagram, change.address)?;
    Ok(())
}

/// Applies `delta` to the big-endian checksum in `field`; returns the change of the field.
pub(super) fn update_icmp_checksum(
    packet: &mut [u8],
    field: Range<usize>,
    delta: Delta,
) -> Result<Delta, DropReason> {
    update_checksum(packet, field, delta, Zero::IsAValue)
}

fn update_checksum(
    packet: &mut [u8],
    field: Range<usize>,
    delta: Delta,
    zero: Zero,
) -> Result<Delta, DropReason> {
    let field = packet.get_mut(field).ok_or(DropReason::Malformed)?;
    let [high, low] = <[u8; 2]>::try_from(&*field).map_err(|_| DropReason::Malformed)?;
    let old = u16::from_be_bytes([high, low]);
    if zero == Zero::MeansNone && old == udp::NO_CHECKSUM {
        return Ok(Delta::NONE);
    }
    let new = match (delta.apply(old), zero) {
        (udp::NO_CHECKSUM, Zero::MeansNone) => 0xffff,
        (new, _) => new,
    };
    field.copy_from_slice(&new.to_be_bytes());
    Ok(Delta::of_word(old, new))
}

fn write_address(packet: &mut [u8], field: Range<usize>, new: IpAddr) -> Result<Delta, DropReason> {
    let v4;
    let v6;
    let new: &[u8] = match new {
        IpAddr::V4(addr) => {
            v4 = addr.octets();
            &v4
        }
        IpAddr::V6(addr) => {
            v6 = addr.octets();
            &v6
        }
    };
    let field = packet.get_mut(field).ok_or(DropReason::Malformed)?;
    if field.len() != new.len() {
        return Err(DropReason::Malformed);
    }
    let delta = Delta::of_bytes(field, new);
    field.copy_from_slice(new);
    Ok(delta)
}
