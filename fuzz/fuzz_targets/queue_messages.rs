//! What the kernel sends on a queue socket, read as the worker reads it: netlink messages,
//! queued packets and their attributes, errors.

#![no_main]

use libfuzzer_sys::fuzz_target;
use loaded_worker::nfqueue::wire;

fuzz_target!(|data: &[u8]| {
    for message in wire::messages(data) {
        let Ok((offset, message)) = message else {
            break;
        };
        assert!(offset + message.len() <= data.len());
        let _ = message.error_code();
        if let Some(Ok(packet)) = message.queued_packet() {
            // The payload range lies inside the message.
            assert!(packet.payload.end <= message.len());
            let _ = (
                packet.is_whole(),
                packet.is_gso(),
                packet.checksum_not_ready(),
            );
        }
    }
});
