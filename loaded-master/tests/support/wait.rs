//! Waiting for a condition instead of sleeping for a guess.

use std::thread;
use std::time::{Duration, Instant};

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Calls `condition` every 50 ms until it is true (returns true) or `timeout` has passed
/// (returns false; `condition` is called one last time at the end).
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return condition();
        }
        thread::sleep(Duration::from_millis(50));
    }
}
