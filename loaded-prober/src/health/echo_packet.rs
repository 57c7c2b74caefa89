//! ICMP and ICMPv6 echo messages as bytes, without sockets, so they can be tested exactly.
//!
//! A raw ICMP socket sees every echo reply that reaches the host, including those meant for
//! `ping` or another prober. Each request therefore carries a tag (identifier, sequence
//! number and a 64-bit random cookie in the payload), and only a reply that echoes all
//! three back is ours.

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
pub const ECHO_REPLY_V6: u8 = 129;
const ECHO_REQUEST_V6: u8 = 128;
const IPPROTO_ICMP: u8 = 1;

/// Header (8 bytes) and the cookie; nothing else, so replies stay small.
pub const ECHO_LEN: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EchoTag {
    pub ident: u16,
    pub seq: u16,
    pub cookie: u64,
}

/// An ICMP echo request with its checksum: IPv4 raw sockets send what they are given.
pub fn echo_request_v4(tag: &EchoTag) -> [u8; ECHO_LEN] {
    let mut packet = echo_message(ECHO_REQUEST_V4, tag);
    let sum = checksum(&packet);
    packet[2..4].copy_from_slice(&sum.to_be_bytes());
    packet
}

/// An ICMPv6 echo request with a zero checksum: the kernel always computes it for ICMPv6
/// raw sockets, since it covers a pseudo-header with the source address it picks.
pub fn echo_request_v6(tag: &EchoTag) -> [u8; ECHO_LEN] {
    echo_message(ECHO_REQUEST_V6, tag)
}

fn echo_message(kind: u8, tag: &EchoTag) -> [u8; ECHO_LEN] {
    let mut packet = [0u8; ECHO_LEN];
    packet[0] = kind;
    packet[4..6].copy_from_slice(&tag.ident.to_be_bytes());
    packet[6..8].copy_from_slice(&tag.seq.to_be_bytes());
    packet[8..16].copy_from_slice(&tag.cookie.to_be_bytes());
    packet
}

/// The tag of an echo reply as an IPv4 raw socket delivers it: IP header first.
pub fn parse_reply_v4(datagram: &[u8]) -> Option<EchoTag> {
    let first = *datagram.first()?;
    let header_len = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || header_len < 20 || datagram.len() < header_len {
        return None;
    }
    if datagram[9] != IPPROTO_ICMP {
        return None;
    }
    let total_len = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    let end = total_len.clamp(header_len, datagram.len());
    let message = &datagram[header_len..end];
    // Unlike ICMPv6, nothing has checked this checksum for us.
    if checksum(message) != 0 {
        return None;
    }
    parse_echo(message, ECHO_REPLY_V4)
}

/// The tag of an echo reply as an ICMPv6 raw socket delivers it: no IP header, checksum
/// already verified by the kernel.
pub fn parse_reply_v6(message: &[u8]) -> Option<EchoTag> {
    parse_echo(message, ECHO_REPLY_V6)
}

fn parse_echo(message: &[u8], reply_kind: u8) -> Option<EchoTag> {
    if message.len() < ECHO_LEN || message[0] != reply_kind || message[1] != 0 {
        return None;
    }
    Some(EchoTag {
        ident: u16::from_be_bytes([message[4], message[5]]),
        seq: u16::from_be_bytes([message[6], message[7]]),
        cookie: u64::from_be_bytes(message[8..16].try_into().ok()?),
    })
}

/// RFC 1071 Internet checksum; over a message that includes its checksum it yields 0.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
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
        assert_eq!(checksum(&REQUEST_V4), 0);
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

    #[test]
    fn checksum_handles_odd_lengths_and_carries() {
        assert_eq!(checksum(&[]), 0xffff);
        assert_eq!(checksum(&[0x01]), !0x0100);
        assert_eq!(checksum(&[0xff, 0xff, 0x00, 0x01]), !0x0001);
    }
}
