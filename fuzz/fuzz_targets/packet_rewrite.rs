//! The packet path in both directions and both families: the userspace rewrite (with the
//! checksum completion of offloaded packets) and the kernel-mode decision, over a real
//! shared flow table with servers of both families.
//!
//! The first byte steers the packet towards the balancer's addresses, which random bytes
//! would almost never hit: 1 puts the IPv4 VIP as destination, 2 a server as IPv4 source,
//! 3 and 4 the same for IPv6; anything else leaves the packet as it is.

#![no_main]

use libfuzzer_sys::fuzz_target;
use loaded_fuzz::{balancer, steer, VIPS};
use loaded_worker::datapath::kernel_forward;
use loaded_worker::datapath::nat::{complete_transport_checksum, rewrite, Outcome};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, packet)) = data.split_first() else {
        return;
    };
    let mut packet = packet.to_vec();
    steer(mode, &mut packet);
    let mut balancer = balancer();

    let mut rewritten = packet.clone();
    let outcome = rewrite(&mut rewritten, &VIPS, &mut balancer);
    assert_eq!(
        rewritten.len(),
        packet.len(),
        "a rewrite never changes the length"
    );
    if outcome == Outcome::Rewritten {
        let _ = complete_transport_checksum(&mut rewritten);
    } else {
        assert_eq!(rewritten, packet, "only a rewritten packet changes");
    }
    // The same flow again: now with a mapping in the table.
    let _ = rewrite(&mut packet.clone(), &VIPS, &mut balancer);
    let _ = kernel_forward::decide(&packet, &VIPS, &mut balancer);
});
