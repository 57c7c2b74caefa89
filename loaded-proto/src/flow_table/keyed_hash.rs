//! SipHash-1-3 over whole 64-bit words, keyed by the region's seed.
//!
//! std's `RandomState` draws its key per process, so two workers would hash one flow to two
//! different buckets; the std `SipHasher` takes a key but is deprecated and is SipHash-2-4,
//! twice the rounds we need against hash flooding. The input is always a few words, so this
//! skips the byte buffering of a general hasher.

/// The 128-bit SipHash key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashKey(pub u64, pub u64);

/// SipHash-1-3 of `words`, each taken as 8 little-endian bytes of the message.
pub fn siphash13(key: HashKey, words: &[u64]) -> u64 {
    siphash::<1, 3>(key, words)
}

fn siphash<const C_ROUNDS: usize, const D_ROUNDS: usize>(key: HashKey, words: &[u64]) -> u64 {
    let mut state = SipState::new(key);
    for &word in words {
        state.compress::<C_ROUNDS>(word);
    }
    // The final block carries the message length in bytes in its top byte; whole words
    // leave no tail bytes to go with it.
    let length_block = ((words.len() as u64 * 8) & 0xff) << 56;
    state.compress::<C_ROUNDS>(length_block);
    state.finish::<D_ROUNDS>()
}

struct SipState {
    v0: u64,
    v1: u64,
    v2: u64,
    v3: u64,
}

impl SipState {
    fn new(HashKey(k0, k1): HashKey) -> SipState {
        SipState {
            v0: k0 ^ 0x736f_6d65_7073_6575,
            v1: k1 ^ 0x646f_7261_6e64_6f6d,
            v2: k0 ^ 0x6c79_6765_6e65_7261,
            v3: k1 ^ 0x7465_6462_7974_6573,
        }
    }

    fn compress<const ROUNDS: usize>(&mut self, block: u64) {
        self.v3 ^= block;
        for _ in 0..ROUNDS {
            self.round();
        }
        self.v0 ^= block;
    }

    fn finish<const ROUNDS: usize>(mut self) -> u64 {
        self.v2 ^= 0xff;
        for _ in 0..ROUNDS {
            self.round();
        }
        self.v0 ^ self.v1 ^ self.v2 ^ self.v3
    }

    fn round(&mut self) {
        self.v0 = self.v0.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(13) ^ self.v0;
        self.v0 = self.v0.rotate_left(32);
        self.v2 = self.v2.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(16) ^ self.v2;
        self.v0 = self.v0.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(21) ^ self.v0;
        self.v2 = self.v2.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(17) ^ self.v2;
        self.v2 = self.v2.rotate_left(32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hasher;

    /// The round structure is shared with SipHash-2-4, which std still ships (deprecated):
    /// agreeing with it checks the constants, rotations and length block.
    #[test]
    #[allow(deprecated)]
    fn matches_std_siphash_2_4() {
        let key = HashKey(0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);
        let inputs: [&[u64]; 4] = [&[], &[1], &[u64::MAX, 0x1234_5678], &[3, 1, 4, 1, 5, 9]];
        for words in inputs {
            let mut reference = std::hash::SipHasher::new_with_keys(key.0, key.1);
            for word in words {
                reference.write(&word.to_le_bytes());
            }
            assert_eq!(siphash::<2, 4>(key, words), reference.finish(), "{words:?}");
        }
    }

    #[test]
    fn the_key_changes_the_hash() {
        let words = [42, 7];
        assert_ne!(
            siphash13(HashKey(1, 2), &words),
            siphash13(HashKey(1, 3), &words)
        );
        assert_ne!(
            siphash13(HashKey(1, 2), &words),
            siphash13(HashKey(2, 2), &words)
        );
    }
}
