//! What one counter increment costs the datapath: a worker's shared-counter increment
//! (relaxed load + store into its own block) against a plain `u64` add in process memory,
//! and, for scale, the locked `fetch_add` the shared counters avoid.
//!
//! `cargo bench -p loaded-proto --bench counters`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use loaded_proto::counters::SharedCounters;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts for a server, as the worker kept them before there were shared counters.
#[derive(Default)]
struct PlainCounters {
    packets: u64,
    bytes: u64,
}

fn increments(c: &mut Criterion) {
    let mut group = c.benchmark_group("count a packet to a server");
    let mut plain = [(); 256].map(|_| PlainCounters::default());
    group.bench_function("plain u64 add", |b| {
        b.iter(|| {
            let slot = black_box(7usize);
            if let Some(server) = black_box(&mut plain).get_mut(slot) {
                server.packets += 1;
                server.bytes += black_box(1500u64);
            }
        })
    });
    // The shared block is reached through the pointer the worker holds; so is this one.
    let mut boxed = Box::new([(); 256].map(|_| PlainCounters::default()));
    group.bench_function("plain u64 add behind a pointer", |b| {
        b.iter(|| {
            let boxed: &mut Box<[PlainCounters; 256]> = black_box(&mut boxed);
            if let Some(server) = boxed.get_mut(black_box(7usize)) {
                server.packets += 1;
                server.bytes += black_box(1500u64);
            }
        })
    });
    let shared = SharedCounters::anonymous(1)
        .expect("anonymous shared memory")
        .into_worker(0)
        .expect("block 0");
    group.bench_function("shared counter (load + store)", |b| {
        b.iter(|| black_box(&shared).count_to_server(black_box(7), black_box(1500)))
    });
    let locked = [(); 256].map(|_| (AtomicU64::new(0), AtomicU64::new(0)));
    group.bench_function("locked fetch_add (for scale)", |b| {
        b.iter(|| {
            if let Some((packets, bytes)) = black_box(&locked).get(black_box(7usize)) {
                packets.fetch_add(1, Ordering::Relaxed);
                bytes.fetch_add(black_box(1500), Ordering::Relaxed);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, increments);
criterion_main!(benches);
