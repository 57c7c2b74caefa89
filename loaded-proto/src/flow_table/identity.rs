//! The region's identity: the layout it was made with, and the hash seed all its users
//! share.
//!
//! Both are written by whichever process maps the fresh (all-zero) region first, with a
//! compare-and-swap from zero, so the master need not initialise anything and workers
//! mapping at the same moment need no coordination: the losers adopt the winner's values.

use super::keyed_hash::HashKey;
use super::layout::{Identity, LAYOUT_ID};
use std::io;
use std::sync::atomic::Ordering;

/// Checks the layout id and returns the hash seed, writing both first if they are unset.
pub fn adopt(identity: &Identity) -> io::Result<HashKey> {
    match identity
        .layout
        .compare_exchange(0, LAYOUT_ID, Ordering::AcqRel, Ordering::Acquire)
    {
        Ok(_) | Err(LAYOUT_ID) => {}
        Err(other) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "flow table region has layout {other:#x}, this build reads \
                     {LAYOUT_ID:#x}: it was made by another version"
                ),
            ))
        }
    }
    let mut key = [0; 2];
    for (shared, ours) in identity.seed.iter().zip(&mut key) {
        *ours = shared.load(Ordering::Acquire);
        if *ours == 0 {
            let fresh = random_nonzero_word()?;
            *ours = match shared.compare_exchange(0, fresh, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => fresh,
                Err(theirs) => theirs,
            };
        }
    }
    Ok(HashKey(key[0], key[1]))
}

/// From the kernel's CSPRNG: a client that could guess the seed could fill one bucket.
fn random_nonzero_word() -> io::Result<u64> {
    loop {
        let bytes = crate::random::random_bytes::<8>()?;
        let word = u64::from_ne_bytes(bytes);
        if word != 0 {
            return Ok(word);
        }
    }
}
