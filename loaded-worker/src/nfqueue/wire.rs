//! The bytes of nfnetlink_queue messages: views over what the kernel sends (queued packets,
//! errors) and the encoding of the verdicts we send back.
//!
//! Layout (include/uapi/linux/netlink.h, netfilter/nfnetlink.h, nfnetlink_queue.h): every
//! message is a 16-byte `nlmsghdr` (length, type, flags, sequence, port id; host byte
//! order), then for netfilter messages a 4-byte `nfgenmsg` (family, version, resource id =
//! the queue number, big-endian), then attributes: 4-byte header (length, type) and a value,
//! each padded to 4 bytes. Attribute values of nfnetlink_queue are big-endian.

use std::ops::Range;

/// Netlink aligns messages and attributes to 4 bytes.
pub const ALIGN: usize = 4;

pub const fn align(len: usize) -> usize {
    (len + ALIGN - 1) & !(ALIGN - 1)
}

/// `struct nlmsghdr`.
pub mod nlmsg {
    use std::ops::Range;
    pub const LENGTH: Range<usize> = 0..4;
    pub const TYPE: Range<usize> = 4..6;
    pub const FLAGS: Range<usize> = 6..8;
    pub const SEQUENCE: Range<usize> = 8..12;
    pub const PORT_ID: Range<usize> = 12..16;
    pub const HEADER_LEN: usize = 16;

    /// Message types below 0x10 are netlink's own.
    pub const ERROR: u16 = 2;
    pub const DONE: u16 = 3;
    pub const OVERRUN: u16 = 4;
    pub const MIN_TYPE: u16 = 0x10;

    pub const F_REQUEST: u16 = 1;
}

/// `struct nfgenmsg`, right after the netlink header of every netfilter message.
pub mod nfgen {
    use std::ops::Range;
    pub const FAMILY: usize = 0;
    pub const VERSION: usize = 1;
    pub const RESOURCE_ID: Range<usize> = 2..4;
    pub const HEADER_LEN: usize = 4;
    pub const V0: u8 = 0;
}

/// nfnetlink_queue's message types (subsystem 3 in the high byte) and attributes.
pub mod queue {
    const SUBSYSTEM: u16 = 3 << 8;
    pub const MSG_PACKET: u16 = SUBSYSTEM;
    pub const MSG_VERDICT: u16 = SUBSYSTEM | 1;

    pub const ATTR_PACKET_HDR: u16 = 1;
    pub const ATTR_VERDICT_HDR: u16 = 2;
    pub const ATTR_MARK: u16 = 3;
    pub const ATTR_PAYLOAD: u16 = 10;
    pub const ATTR_CAP_LEN: u16 = 13;
    pub const ATTR_SKB_INFO: u16 = 14;

    /// NFQA_SKB_INFO bits.
    pub const SKB_CSUMNOTREADY: u32 = 1 << 0;
    pub const SKB_GSO: u32 = 1 << 1;

    /// Attribute types carry two flag bits above the type proper.
    pub const ATTR_TYPE_MASK: u16 = 0x3fff;
}

/// Netfilter verdicts (include/uapi/linux/netfilter.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Drop,
    Accept,
}

impl Verdict {
    fn code(self) -> u32 {
        match self {
            Verdict::Drop => 0,
            Verdict::Accept => 1,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// A length that points past the end of the datagram or below its own header.
    Truncated,
    /// A queued packet without the packet header attribute.
    MissingPacketHeader,
}

/// One netlink message at the start of a datagram's remaining bytes.
#[derive(Clone, Copy, Debug)]
pub struct Message<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Message<T> {
    /// Checks that the header is there and that its length covers the header and stays
    /// inside the buffer.
    pub fn new_checked(buffer: T) -> Result<Message<T>, Error> {
        let bytes = buffer.as_ref();
        if bytes.len() < nlmsg::HEADER_LEN {
            return Err(Error::Truncated);
        }
        let message = Message { buffer };
        let len = message.len();
        if len < nlmsg::HEADER_LEN || len > message.buffer.as_ref().len() {
            return Err(Error::Truncated);
        }
        Ok(message)
    }

    fn read_u32_ne(&self, field: Range<usize>) -> u32 {
        let bytes = self.buffer.as_ref();
        u32::from_ne_bytes([
            bytes[field.start],
            bytes[field.start + 1],
            bytes[field.start + 2],
            bytes[field.start + 3],
        ])
    }

    /// The message's length field: header and body, without trailing alignment.
    pub fn len(&self) -> usize {
        self.read_u32_ne(nlmsg::LENGTH) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == nlmsg::HEADER_LEN
    }

    pub fn message_type(&self) -> u16 {
        let bytes = self.buffer.as_ref();
        u16::from_ne_bytes([bytes[nlmsg::TYPE.start], bytes[nlmsg::TYPE.start + 1]])
    }

    /// The body after the netlink header.
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[nlmsg::HEADER_LEN..self.len()]
    }

    /// For an NLMSG_ERROR message: the positive errno, or 0 for an acknowledgement.
    pub fn error_code(&self) -> Result<i32, Error> {
        let body = self.body();
        let code = body.get(..4).ok_or(Error::Truncated)?;
        let code = i32::from_ne_bytes([code[0], code[1], code[2], code[3]]);
        Ok(code.saturating_abs())
    }
}

/// The netlink messages of one received datagram, in order, each with its offset in the
/// datagram. A message whose length does not fit ends the walk with an error (the rest of
/// the datagram cannot be trusted).
pub fn messages(datagram: &[u8]) -> impl Iterator<Item = Result<(usize, Message<&[u8]>), Error>> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let rest = datagram.get(at..).filter(|rest| !rest.is_empty())?;
        match Message::new_checked(rest) {
            Ok(message) => {
                let offset = at;
                at = at.saturating_add(align(message.len()));
                Some(Ok((offset, message)))
            }
            Err(e) => {
                at = datagram.len();
                Some(Err(e))
            }
        }
    })
}

/// The attributes in `bytes` as (type without flag bits, value range relative to `bytes`).
/// Stops at the first attribute whose length does not fit.
pub fn attributes(bytes: &[u8]) -> impl Iterator<Item = (u16, Range<usize>)> + '_ {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let header = bytes.get(at..at + 4)?;
        let len = usize::from(u16::from_ne_bytes([header[0], header[1]]));
        let kind = u16::from_ne_bytes([header[2], header[3]]) & queue::ATTR_TYPE_MASK;
        if len < 4 || at + len > bytes.len() {
            return None;
        }
        let value = at + 4..at + len;
        at += align(len);
        Some((kind, value))
    })
}

/// What the datapath needs of one queued packet. Ranges are relative to the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedPacket {
    pub id: u32,
    /// The packet's bytes (from the IP header on), where the message holds them.
    pub payload: Range<usize>,
    /// NFQA_SKB_INFO: CSUMNOTREADY and GSO.
    pub skb_info: u32,
    /// NFQA_CAP_LEN: the packet's real length when the copy is shorter.
    pub captured_from: Option<u32>,
}

impl QueuedPacket {
    /// The packet's transport checksum field holds only the pseudo-header's part (the
    /// sending stack left the rest to the NIC), and a payload we return is taken as final.
    pub fn checksum_not_ready(&self) -> bool {
        self.skb_info & queue::SKB_CSUMNOTREADY != 0
    }

    /// The packet holds several segments' worth, to be cut on the way out.
    pub fn is_gso(&self) -> bool {
        self.skb_info & queue::SKB_GSO != 0
    }

    /// Whether the kernel's copy holds the whole packet.
    pub fn is_whole(&self) -> bool {
        self.captured_from
            .is_none_or(|len| len as usize == self.payload.len())
    }
}

fn be_u32(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?))
}

impl<T: AsRef<[u8]>> Message<T> {
    /// Reads a NFQNL_MSG_PACKET message. `None` for any other type.
    pub fn queued_packet(&self) -> Option<Result<QueuedPacket, Error>> {
        if self.message_type() != queue::MSG_PACKET {
            return None;
        }
        let body_start = nlmsg::HEADER_LEN + nfgen::HEADER_LEN;
        let Some(attrs) = self.buffer.as_ref().get(body_start..self.len()) else {
            return Some(Err(Error::Truncated));
        };
        let mut id = None;
        let mut packet = QueuedPacket {
            id: 0,
            payload: 0..0,
            skb_info: 0,
            captured_from: None,
        };
        for (kind, value) in attributes(attrs) {
            let bytes = &attrs[value.clone()];
            match kind {
                // struct nfqnl_msg_packet_hdr { __be32 packet_id; __be16 hw_protocol; __u8 hook; }
                queue::ATTR_PACKET_HDR => id = be_u32(bytes),
                queue::ATTR_PAYLOAD => {
                    packet.payload = body_start + value.start..body_start + value.end
                }
                queue::ATTR_SKB_INFO => packet.skb_info = be_u32(bytes).unwrap_or(0),
                queue::ATTR_CAP_LEN => packet.captured_from = be_u32(bytes),
                _ => {}
            }
        }
        Some(match id {
            Some(id) => {
                packet.id = id;
                Ok(packet)
            }
            None => Err(Error::MissingPacketHeader),
        })
    }
}

/// The longest verdict message without its payload: headers, verdict, mark and the payload
/// attribute's header.
pub const VERDICT_HEADER_MAX: usize = nlmsg::HEADER_LEN + nfgen::HEADER_LEN + 12 + 8 + 4;

/// One verdict to encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerdictSpec {
    pub queue: u16,
    pub id: u32,
    pub verdict: Verdict,
    /// A packet mark to set.
    pub mark: Option<u32>,
    /// The length of the replacement payload that follows the header, if any.
    pub payload_len: Option<usize>,
}

impl VerdictSpec {
    /// The whole message's length, payload and its padding included.
    pub fn message_len(&self) -> usize {
        self.header_len() + self.payload_len.map_or(0, align)
    }

    fn header_len(&self) -> usize {
        nlmsg::HEADER_LEN
            + nfgen::HEADER_LEN
            + 12
            + if self.mark.is_some() { 8 } else { 0 }
            + if self.payload_len.is_some() { 4 } else { 0 }
    }

    /// Writes the message up to (not including) the payload into `out`; returns its length.
    /// The payload and `align(len) - len` zero bytes must follow it on the wire.
    pub fn encode_header(&self, out: &mut [u8; VERDICT_HEADER_MAX]) -> usize {
        let header_len = self.header_len();
        let total = self.message_len() as u32;
        out[nlmsg::LENGTH].copy_from_slice(&total.to_ne_bytes());
        out[nlmsg::TYPE].copy_from_slice(&queue::MSG_VERDICT.to_ne_bytes());
        // No NLM_F_ACK: the kernel answers only the verdicts it refuses.
        out[nlmsg::FLAGS].copy_from_slice(&nlmsg::F_REQUEST.to_ne_bytes());
        out[nlmsg::SEQUENCE].fill(0);
        out[nlmsg::PORT_ID].fill(0);
        let mut at = nlmsg::HEADER_LEN;
        out[at + nfgen::FAMILY] = 0; // AF_UNSPEC
        out[at + nfgen::VERSION] = nfgen::V0;
        out[at + nfgen::RESOURCE_ID.start..at + nfgen::RESOURCE_ID.end]
            .copy_from_slice(&self.queue.to_be_bytes());
        at += nfgen::HEADER_LEN;
        // struct nfqnl_msg_verdict_hdr { __be32 verdict; __be32 id; }
        at = put_attr_header(out, at, queue::ATTR_VERDICT_HDR, 8);
        out[at..at + 4].copy_from_slice(&self.verdict.code().to_be_bytes());
        out[at + 4..at + 8].copy_from_slice(&self.id.to_be_bytes());
        at += 8;
        if let Some(mark) = self.mark {
            at = put_attr_header(out, at, queue::ATTR_MARK, 4);
            out[at..at + 4].copy_from_slice(&mark.to_be_bytes());
            at += 4;
        }
        if let Some(len) = self.payload_len {
            at = put_attr_header(out, at, queue::ATTR_PAYLOAD, len);
        }
        debug_assert_eq!(at, header_len);
        header_len
    }
}

/// Writes an attribute header for a value of `value_len` bytes; returns where the value goes.
fn put_attr_header(out: &mut [u8], at: usize, kind: u16, value_len: usize) -> usize {
    // A queued packet is at most 65531 bytes (the kernel clamps the copy range), so its
    // attribute length fits in the 16-bit field.
    let len = (4 + value_len).min(usize::from(u16::MAX)) as u16;
    out[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    out[at + 2..at + 4].copy_from_slice(&kind.to_ne_bytes());
    at + 4
}

// The golden messages are in a little-endian host's byte order, as netlink's headers are.
#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    /// A NFQNL_MSG_PACKET for queue 1, packet id 7, as the kernel sends it (little-endian
    /// host): packet header, mark 0, input interface 2, SKB_INFO with CSUMNOTREADY|GSO, a
    /// 4-byte payload and a capture length larger than the copy.
    #[rustfmt::skip]
    const PACKET_MESSAGE: [u8; 72] = [
        72, 0, 0, 0,            // nlmsg_len
        0x00, 0x03,             // type: NFNL_SUBSYS_QUEUE << 8 | NFQNL_MSG_PACKET
        0, 0,                   // flags
        0, 0, 0, 0,             // seq
        0, 0, 0, 0,             // pid
        2, 0, 0, 1,             // nfgenmsg: AF_INET, v0, res_id 1
        11, 0, 1, 0,            // NFQA_PACKET_HDR, len 11
        0, 0, 0, 7, 0x08, 0x00, 3, 0, // id 7, ETH_P_IP, hook 3 (+1 pad)
        8, 0, 3, 0, 0, 0, 0, 0, // NFQA_MARK 0
        8, 0, 5, 0, 0, 0, 0, 2, // NFQA_IFINDEX_INDEV 2
        8, 0, 14, 0, 0, 0, 0, 3, // NFQA_SKB_INFO: CSUMNOTREADY | GSO
        8, 0, 10, 0, 0x45, 0, 0, 20, // NFQA_PAYLOAD, 4 bytes
        8, 0, 13, 0, 0, 0, 5, 220, // NFQA_CAP_LEN 1500
    ];

    #[test]
    fn reads_a_queued_packet() {
        let message = Message::new_checked(&PACKET_MESSAGE[..]).unwrap();
        assert_eq!(message.len(), 72);
        let packet = message.queued_packet().unwrap().unwrap();
        assert_eq!(packet.id, 7);
        assert_eq!(&PACKET_MESSAGE[packet.payload.clone()], &[0x45, 0, 0, 20]);
        assert!(packet.checksum_not_ready());
        assert!(packet.is_gso());
        assert_eq!(packet.captured_from, Some(1500));
        assert!(!packet.is_whole());
    }

    /// A TCP SYN to the VIP as this kernel (6.18) queued it to queue 1 with GSO asked for
    /// (captured with strace): packet header (id 1, IPv4, PREROUTING), mark, input
    /// interface, hardware address, SKB_INFO = CSUMNOTREADY (it came from a local stack
    /// over veth) and the 60-byte packet.
    #[rustfmt::skip]
    const CAPTURED_SYN: [u8; 128] = [
        0x80, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x02, 0x00, 0x00, 0x01, 0x0b, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x00, 0x00,
        0x08, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x02, 0x10, 0x00, 0x09, 0x00, 0x00, 0x06, 0x00, 0x00,
        0xe6, 0x4e, 0x8d, 0x36, 0x61, 0x8c, 0x00, 0x00, 0x08, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x00, 0x01,
        0x40, 0x00, 0x0a, 0x00, 0x45, 0x00, 0x00, 0x3c, 0x81, 0xd8, 0x40, 0x00, 0x3f, 0x06, 0xc9, 0xbb,
        0xc6, 0x12, 0x00, 0x02, 0xc6, 0x12, 0x64, 0x01, 0xe3, 0x6e, 0x00, 0x50, 0x67, 0xba, 0xc7, 0x29,
        0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa, 0xf0, 0xf0, 0x56, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4,
        0x04, 0x02, 0x08, 0x0a, 0x11, 0x5a, 0x28, 0x7f, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x0a,
    ];

    #[test]
    fn reads_a_packet_the_kernel_queued() {
        let packet = Message::new_checked(&CAPTURED_SYN[..])
            .unwrap()
            .queued_packet()
            .unwrap()
            .unwrap();
        assert_eq!(packet.id, 1);
        assert_eq!(packet.payload, 68..128);
        assert_eq!(CAPTURED_SYN[packet.payload.start], 0x45);
        assert!(packet.checksum_not_ready());
        assert!(!packet.is_gso());
        assert_eq!(packet.captured_from, None);
        assert!(packet.is_whole());
    }

    #[test]
    fn a_packet_without_a_packet_header_is_an_error() {
        let mut bytes = PACKET_MESSAGE;
        bytes[22] = 99; // NFQA_PACKET_HDR becomes an unknown attribute type
        let message = Message::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            message.queued_packet(),
            Some(Err(Error::MissingPacketHeader))
        );
    }

    #[test]
    fn an_attribute_running_past_the_message_ends_the_walk() {
        let mut bytes = PACKET_MESSAGE;
        bytes[64] = 200; // NFQA_CAP_LEN claims 200 bytes
        let packet = Message::new_checked(&bytes[..])
            .unwrap()
            .queued_packet()
            .unwrap()
            .unwrap();
        assert_eq!(packet.captured_from, None);
        assert!(packet.is_whole());
    }

    /// NLMSG_ERROR with -ENOENT (2), quoting a verdict message's header.
    #[rustfmt::skip]
    const ENOENT_ERROR: [u8; 36] = [
        36, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0xfe, 0xff, 0xff, 0xff, // error -2
        40, 0, 0, 0, 0x01, 0x03, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, // the quoted header
    ];

    #[test]
    fn reads_an_error_and_walks_several_messages() {
        let mut datagram = ENOENT_ERROR.to_vec();
        datagram.extend_from_slice(&PACKET_MESSAGE);
        let found: Vec<_> = messages(&datagram).collect::<Result<_, _>>().unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].0, ENOENT_ERROR.len());
        let found: Vec<_> = found.into_iter().map(|(_, message)| message).collect();
        assert_eq!(found[0].message_type(), nlmsg::ERROR);
        assert_eq!(found[0].error_code(), Ok(2));
        assert!(found[0].queued_packet().is_none());
        assert_eq!(found[1].queued_packet().unwrap().unwrap().id, 7);
    }

    #[test]
    fn a_message_longer_than_its_datagram_is_truncated() {
        let mut bytes = PACKET_MESSAGE;
        bytes[0] = 200;
        let walked: Vec<_> = messages(&bytes).collect();
        assert!(matches!(walked[..], [Err(Error::Truncated)]));
        assert!(Message::new_checked(&[0u8; 8][..]).is_err());
        let mut short = PACKET_MESSAGE;
        short[0] = 4; // shorter than a header
        assert!(Message::new_checked(&short[..]).is_err());
    }

    #[test]
    fn encodes_a_plain_accept() {
        let spec = VerdictSpec {
            queue: 1,
            id: 7,
            verdict: Verdict::Accept,
            mark: None,
            payload_len: None,
        };
        let mut out = [0u8; VERDICT_HEADER_MAX];
        let len = spec.encode_header(&mut out);
        #[rustfmt::skip]
        let expected: [u8; 32] = [
            32, 0, 0, 0, 0x01, 0x03, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 1,                         // nfgenmsg, queue 1
            12, 0, 2, 0, 0, 0, 0, 1, 0, 0, 0, 7, // NFQA_VERDICT_HDR: NF_ACCEPT, id 7
        ];
        assert_eq!(&out[..len], &expected);
        assert_eq!(spec.message_len(), 32);
    }

    #[test]
    fn encodes_a_marked_accept_with_a_payload() {
        let spec = VerdictSpec {
            queue: 0x0102,
            id: 0x01020304,
            verdict: Verdict::Accept,
            mark: Some(0x4c440003),
            payload_len: Some(5),
        };
        let mut out = [0u8; VERDICT_HEADER_MAX];
        let len = spec.encode_header(&mut out);
        #[rustfmt::skip]
        let expected: [u8; 44] = [
            52, 0, 0, 0, 0x01, 0x03, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, // 44 + 5 + 3 pad
            0, 0, 1, 2,
            12, 0, 2, 0, 0, 0, 0, 1, 1, 2, 3, 4,
            8, 0, 3, 0, 0x4c, 0x44, 0, 3,        // NFQA_MARK
            9, 0, 10, 0,                         // NFQA_PAYLOAD, 5 bytes follow
        ];
        assert_eq!(&out[..len], &expected);
        assert_eq!(spec.message_len(), 52);
    }

    #[test]
    fn a_drop_has_verdict_zero() {
        let spec = VerdictSpec {
            queue: 0,
            id: 9,
            verdict: Verdict::Drop,
            mark: None,
            payload_len: None,
        };
        let mut out = [0u8; VERDICT_HEADER_MAX];
        spec.encode_header(&mut out);
        assert_eq!(&out[24..32], &[0, 0, 0, 0, 0, 0, 0, 9]);
    }
}
