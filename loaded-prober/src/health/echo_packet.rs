//! ICMP and ICMPv6 echo messages as bytes, without sockets, so they can be tested exactly.
//! The packet views and the checksum are the datapath's (`loaded_proto::wire`).
//!
//! A raw ICMP socket sees every echo reply that reaches the host, including those meant for
//! `ping` or another prober. Each request therefore carries a tag (identifier, sequence
//! number and a 64-bit random cookie in the payload), and only a reply that echoes all
//! three back is ours.

use loaded_proto::wire::{icmpv4, icmpv6, ipv4, protocol};

/// Header (8 bytes) and the cookie; nothing else, so replies stay small.
pub const ECHO_LEN: usize = 16;
const COOKIE: std::ops::Range<usize> = icmpv4::HEADER_LEN..ECHO_LEN;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EchoTag {
    pub ident: u16,
    pub seq: u16,
    pub cookie: u64,
}

/// An ICMP echo request with its checksum: IPv4 raw sockets send what they are given.
pub fn echo_request_v4(tag: &EchoTag) -> [u8; ECHO_LEN] {
    let mut bytes = [0u8; ECHO_LEN];
    let mut packet = icmpv4::Packet::new_unchecked(&mut bytes[..]);
    packet.set_message_type(icmpv4::message::ECHO_REQUEST);
    packet.set_echo_identifier(tag.ident);
    packet.set_echo_sequence(tag.seq);
    packet.data_mut().copy_from_slice(&tag.cookie.to_be_bytes());
    packet.fill_checksum();
    bytes
}

/// An ICMPv6 echo request with a zero checksum: the kernel always computes it for ICMPv6
/// raw sockets, since it covers a pseudo-header with the source address it picks.
pub fn echo_request_v6(tag: &EchoTag) -> [u8; ECHO_LEN] {
    let mut bytes = [0u8; ECHO_LEN];
    let mut packet = icmpv6::Packet::new_unchecked(&mut bytes[..]);
    packet.set_message_type(icmpv6::message::ECHO_REQUEST);
    packet.set_echo_identifier(tag.ident);
    packet.set_echo_sequence(tag.seq);
    bytes[COOKIE].copy_from_slice(&tag.cookie.to_be_bytes());
    bytes
}

/// The tag of an echo reply as an IPv4 raw socket delivers it: IP header first.
pub fn parse_reply_v4(datagram: &[u8]) -> Option<EchoTag> {
    let ip = ipv4::Packet::new_checked(datagram).ok()?;
    if ip.protocol() != protocol::ICMP {
        return None;
    }
    let message = icmpv4::Packet::new_checked(ip.payload()).ok()?;
    // Unlike ICMPv6, nothing has checked this checksum for us.
    if !message.verify_checksum()
        || message.message_type() != icmpv4::message::ECHO_REPLY
        || message.code() != 0
    {
        return None;
    }
    tag_of(
        message.echo_identifier(),
        message.echo_sequence(),
        message.data(),
    )
}

/// The tag of an echo reply as an ICMPv6 raw socket delivers it: no IP header, checksum
/// already verified by the kernel.
pub fn parse_reply_v6(bytes: &[u8]) -> Option<EchoTag> {
    let message = icmpv6::Packet::new_checked(bytes).ok()?;
    if message.message_type() != icmpv6::message::ECHO_REPLY || message.code() != 0 {
        return None;
    }
    tag_of(
        message.echo_identifier(),
        message.echo_sequence(),
        message.data(),
    )
}

fn tag_of(ident: u16, seq: u16, data: &[u8]) -> Option<EchoTag> {
    let cookie = data.get(..8)?.try_into().ok()?;
    Some(EchoTag {
        ident,
        seq,
        cookie: u64::from_be_bytes(cookie),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: EchoTag = EchoTag {
        ident: 0x1234,
        seq: 0x0001,
        cookie: 0x0102_0304_0506_0708,
    };

    /// Computed by hand: 0x0800 + 0x1234 + 0x0001 + 0x0102 + 0x0304 + 0x0506 + 0x0708
    /// = 0x2a49, complemented 0xd5b6.
    const REQUEST_V4: [u8; 16] = [
        0x08, 0x00, 0xd5, 0xb6, 0x12, 0x34, 0x00, 0x01, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
        0x08,
    ];

    /// 127.0.0.1 answering REQUEST_V4: a 20-byte IP header, then type 0 with checksum
    /// 0xd5b6 + 0x0800 = 0xddb6.
    const REPLY_V4: [u8; 36] = [
        0x45, 0x00, 0x00, 0x24, 0x00, 0x00, 0x40, 0x00, 0x40, 0x01, 0x00, 0x00, 0x7f, 0x00, 0x00,
        0x01, 0x7f, 0x00, 0x00, 0x01, // IP header
        0x00, 0x00, 0xdd, 0xb6, 0x12, 0x34, 0x00, 0x01, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
        0x08,
    ];

    const REPLY_V6: [u8; 16] = [
        0x81, 0x00, 0xab, 0xcd, 0x12, 0x34, 0x00, 0x01, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
        0x08,
    ];

    #[test]
    fn v4_request_matches_golden_bytes() {
        assert_eq!(echo_request_v4(&TAG), REQUEST_V4);
    }

    #[test]
    fn v6_request_leaves_the_checksum_to_the_kernel() {
        let expected: [u8; 16] = [
            0x80, 0x00, 0x00, 0x00, 0x12, 0x34, 0x00, 0x01, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
            0x07, 0x08,
        ];
        assert_eq!(echo_request_v6(&TAG), expected);
    }

    #[test]
    fn v4_reply_is_parsed_after_the_ip_header() {
        assert_eq!(parse_reply_v4(&REPLY_V4), Some(TAG));
    }

    #[test]
    fn v4_reply_with_ip_options_is_parsed() {
        let mut with_options = REPLY_V4[..20].to_vec();
        with_options[0] = 0x46;
        with_options[3] = 40;
        with_options.extend_from_slice(&[1, 1, 1, 0]); // NOP NOP NOP EOL
        with_options.extend_from_slice(&REPLY_V4[20..]);
        assert_eq!(parse_reply_v4(&with_options), Some(TAG));
    }

    #[test]
    fn v4_rejects_what_is_not_our_reply() {
        let mut request = REPLY_V4;
        request[20..].copy_from_slice(&REQUEST_V4);
        assert_eq!(parse_reply_v4(&request), None, "an echo request");

        let mut corrupt = REPLY_V4;
        corrupt[35] ^= 0xff;
        assert_eq!(parse_reply_v4(&corrupt), None, "bad checksum");

        let mut udp = REPLY_V4;
        udp[9] = 17;
        assert_eq!(parse_reply_v4(&udp), None, "not ICMP");

        let mut v6 = REPLY_V4;
        v6[0] = 0x65;
        assert_eq!(parse_reply_v4(&v6), None, "not IPv4");

        assert_eq!(parse_reply_v4(&REPLY_V4[..30]), None, "truncated");
        assert_eq!(parse_reply_v4(&[]), None);
        assert_eq!(
            parse_reply_v4(&[0x4f]),
            None,
            "header longer than the datagram"
        );
    }

    #[test]
    fn v6_reply_is_parsed_from_the_icmp_header() {
        assert_eq!(parse_reply_v6(&REPLY_V6), Some(TAG));
        let mut request = REPLY_V6;
        request[0] = 128;
        assert_eq!(parse_reply_v6(&request), None);
        let mut code = REPLY_V6;
        code[1] = 1;
        assert_eq!(parse_reply_v6(&code), None);
        assert_eq!(parse_reply_v6(&REPLY_V6[..15]), None);
    }
}
