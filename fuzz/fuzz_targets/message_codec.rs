//! The channel's message codec, as a child or the master decodes what a peer sent: any
//! bytes decode to a message or an error, and a decoded message encodes back to bytes that
//! decode to the same message.

#![no_main]

use libfuzzer_sys::fuzz_target;
use loaded_proto::channel::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = decode(data) {
        let bytes = encode(&message).expect("a decoded message encodes");
        assert_eq!(decode(&bytes).expect("and decodes again"), message);
    }
});
