//! The internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Sums are kept folded to 16 bits, in ones' complement. A checksum field holds the
//! complement of the sum of the data it covers, taken with the field itself zeroed.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Ones' complement addition of two folded sums.
pub fn combine(a: u16, b: u16) -> u16 {
    let total = u32::from(a) + u32::from(b);
    // At most 0x1fffe, so one end-around carry suffices.
    ((total & 0xffff) + (total >> 16)) as u16
}

/// The folded sum of `data` as big-endian 16-bit words, an odd last byte padded with zero.
///
/// Sums of consecutive pieces may be combined when every piece but the last has even length.
pub fn sum(data: &[u8]) -> u16 {
    // Ones' complement sums may be taken over 32-bit words and folded afterwards (2^16 is 1
    // modulo 0xffff), which halves the additions over a 64 KiB GSO packet. A u64 cannot
    // overflow for any buffer a packet can be, so fold once at the end.
    let mut quads = data.chunks_exact(4);
    let mut total: u64 = quads
        .by_ref()
        .map(|quad| u64::from(u32::from_be_bytes([quad[0], quad[1], quad[2], quad[3]])))
        .sum();
    let mut words = quads.remainder().chunks_exact(2);
    total += words
        .by_ref()
        .map(|word| u64::from(u16::from_be_bytes([word[0], word[1]])))
        .sum::<u64>();
    if let [last] = words.remainder() {
        total += u64::from(*last) << 8;
    }
    while total > 0xffff {
        total = (total & 0xffff) + (total >> 16);
    }
    total as u16
}

/// The folded sum of `data` as if the checksum `field` in it were zero: what a checksum is
/// computed over, without having to clear the field in the buffer first. The field must
/// start at an even offset.
pub fn sum_without(data: &[u8], field: std::ops::Range<usize>) -> u16 {
    combine(sum(&data[..field.start]), sum(&data[field.end..]))
}

/// The checksum of `data`, which must have its checksum field zeroed.
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

/// The sum of the IPv4 pseudo-header that TCP and UDP checksums cover (RFC 793, RFC 768).
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u16 {
    let addresses = combine(sum(&src.octets()), sum(&dst.octets()));
    combine(addresses, combine(u16::from(protocol), length))
}

/// The sum of the IPv6 pseudo-header that upper-layer checksums cover (RFC 8200 8.1).
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, length: u32) -> u16 {
    let addresses = combine(sum(&src.octets()), sum(&dst.octets()));
    let length = combine((length >> 16) as u16, length as u16);
    combine(addresses, combine(u16::from(next_header), length))
}

/// How the covered data changed, to bring any checksum over it up to date without
/// re-reading the data (RFC 1624: HC' = ~(~HC + ~m + m')).
///
/// Replacements must be of fields at even offsets from the start of the covered data.
/// Deltas add up, so one delta can carry several replaced fields into an enclosing checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delta {
    /// The folded sum of ~m + m' over every replaced word.
    sum: u16,
}

impl Delta {
    /// No change.
    pub const NONE: Delta = Delta { sum: 0 };

    /// The replacement of the 16-bit word `old` with `new`.
    pub fn of_word(old: u16, new: u16) -> Delta {
        Delta {
            sum: combine(!old, new),
        }
    }

    /// The replacement of the bytes `old` with `new` (an address: 4 or 16 bytes).
    pub fn of_bytes(old: &[u8], new: &[u8]) -> Delta {
        // The sum of the complements of the old words is the complement of their sum.
        Delta {
            sum: combine(!sum(old), sum(new)),
        }
    }

    /// Both changes.
    pub fn and(self, other: Delta) -> Delta {
        Delta {
            sum: combine(self.sum, other.sum),
        }
    }

    /// The checksum over the changed data, given the checksum over the old data.
    pub fn apply(self, checksum: u16) -> u16 {
        let new_sum = combine(!checksum, self.sum);
        // Ones' complement has two zeros; a from-scratch sum of data that is not all zero
        // is never +0, so prefer -0 to give the same bits as a recomputation would.
        let new_sum = if new_sum == 0 { 0xffff } else { new_sum };
        !new_sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // The example of RFC 1071 section 3.
    const RFC1071_DATA: [u8; 8] = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];

    #[test]
    fn sum_matches_rfc1071_example() {
        assert_eq!(sum(&RFC1071_DATA), 0xddf2);
        assert_eq!(checksum(&RFC1071_DATA), 0x220d);
    }

    #[test]
    fn odd_length_pads_last_byte_on_the_right() {
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn empty_data_sums_to_zero() {
        assert_eq!(sum(&[]), 0);
        assert_eq!(checksum(&[]), 0xffff);
    }

    #[test]
    fn long_data_folds_all_carries() {
        let data = [0xff; 4096];
        assert_eq!(sum(&data), 0xffff);
    }

    #[test]
    fn golden_ipv4_header_checksum() {
        // A classic example header; its checksum field (bytes 10-11) is 0xb861.
        let mut header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(sum(&header), 0xffff, "a correct header sums to -0");
        header[10] = 0;
        header[11] = 0;
        assert_eq!(checksum(&header), 0xb861);
    }

    #[test]
    fn pseudo_header_v4_matches_spelled_out_bytes() {
        let src = Ipv4Addr::new(192, 0, 2, 1);
        let dst = Ipv4Addr::new(198, 51, 100, 2);
        let spelled = [192, 0, 2, 1, 198, 51, 100, 2, 0, 6, 0x05, 0xdc];
        assert_eq!(pseudo_header_v4(src, dst, 6, 1500), sum(&spelled));
    }

    #[test]
    fn pseudo_header_v6_matches_spelled_out_bytes() {
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8:ffff::2".parse().unwrap();
        let mut spelled = [0u8; 40];
        spelled[..16].copy_from_slice(&src.octets());
        spelled[16..32].copy_from_slice(&dst.octets());
        spelled[32..36].copy_from_slice(&70_000u32.to_be_bytes());
        spelled[39] = 17;
        assert_eq!(pseudo_header_v6(src, dst, 17, 70_000), sum(&spelled));
    }

    #[test]
    fn unchanged_data_leaves_checksum_unchanged() {
        for checksum in [0x0000, 0x1234, 0xfffe] {
            assert_eq!(Delta::NONE.apply(checksum), checksum);
            assert_eq!(Delta::of_word(0xabcd, 0xabcd).apply(checksum), checksum);
        }
    }

    /// Replaces `new.len()` bytes at `at` in `data` (checksum field at `checksum_at`), and
    /// returns (incremental, from scratch).
    fn both_ways(mut data: Vec<u8>, checksum_at: usize, at: usize, new: &[u8]) -> (u16, u16) {
        data[checksum_at..checksum_at + 2].fill(0);
        let before = checksum(&data);
        let delta = Delta::of_bytes(&data[at..at + new.len()], new);
        data[at..at + new.len()].copy_from_slice(new);
        (delta.apply(before), checksum(&data))
    }

    proptest! {
        // Failures are reported with their minimal input; no regression file is written.
        #![proptest_config(ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn incremental_address_update_equals_recomputation(
            (data, at, new) in (prop::sample::select(vec![4usize, 16]), prop::collection::vec(any::<u8>(), 20..200))
                .prop_flat_map(|(address_len, data)| {
                    // The checksum field is the last two bytes; the address lies before it.
                    let last_even_start = (data.len() - 2 - address_len) / 2;
                    (
                        Just(data),
                        (0..=last_even_start).prop_map(|half| half * 2),
                        prop::collection::vec(any::<u8>(), address_len),
                    )
                }),
        ) {
            let checksum_at = data.len() - 2;
            let (incremental, scratch) = both_ways(data, checksum_at, at, &new);
            prop_assert_eq!(incremental, scratch);
        }

        #[test]
        fn incremental_word_update_equals_recomputation(
            data in prop::collection::vec(any::<u8>(), 4..100),
            new in any::<u16>(),
            word_index in any::<prop::sample::Index>(),
        ) {
            let words = (data.len() - 2) / 2;
            let at = word_index.index(words) * 2;
            let (incremental, scratch) = both_ways(data, at + 2, at, &new.to_be_bytes());
            prop_assert_eq!(incremental, scratch);
        }

        #[test]
        fn deltas_compose(
            data in prop::collection::vec(any::<u8>(), 40..100),
            first in prop::array::uniform4(any::<u8>()),
            second in any::<u16>(),
        ) {
            let mut data = data;
            data[0..2].fill(0);
            let before = checksum(&data);
            let delta_first = Delta::of_bytes(&data[4..8], &first);
            data[4..8].copy_from_slice(&first);
            let old_word = u16::from_be_bytes([data[20], data[21]]);
            let delta_second = Delta::of_word(old_word, second);
            data[20..22].copy_from_slice(&second.to_be_bytes());
            prop_assert_eq!(delta_first.and(delta_second).apply(before), checksum(&data));
        }

        #[test]
        fn sum_equals_rfc1071_word_by_word(data in prop::collection::vec(any::<u8>(), 0..300)) {
            // RFC 1071 as written: 16-bit words, end-around carry after every addition.
            let mut reference: u32 = 0;
            for word in data.chunks(2) {
                let word = u32::from(word[0]) << 8 | u32::from(*word.get(1).unwrap_or(&0));
                reference += word;
                reference = (reference & 0xffff) + (reference >> 16);
            }
            prop_assert_eq!(u32::from(sum(&data)), reference);
        }

        #[test]
        fn sum_of_pieces_equals_sum_of_whole(data in prop::collection::vec(any::<u8>(), 0..300), cut in any::<prop::sample::Index>()) {
            let cut = cut.index(data.len() / 2 + 1) * 2;
            prop_assert_eq!(combine(sum(&data[..cut]), sum(&data[cut..])), sum(&data));
        }
    }
}
