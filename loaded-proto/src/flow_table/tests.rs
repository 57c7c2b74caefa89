//! Tests of the shared table as a whole: regions, mappings, expiry, eviction, counters,
//! and several mappings (and processes) on one region.

use super::*;
use layout::LAYOUT_ID;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use proptest::prelude::*;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;

const TIMEOUT: u32 = 300;
const T0: u32 = 10_000;

fn table_with(table: io::Result<SharedFlowTable>) -> SharedFlowTable {
    let mut table = table.unwrap();
    table.set_flow_timeout(Duration::from_secs(TIMEOUT.into()));
    table
}

fn anonymous(capacity: usize) -> SharedFlowTable {
    table_with(SharedFlowTable::anonymous(capacity))
}

fn client(n: u32) -> TableKey {
    TableKey::client(IpAddr::V4(Ipv4Addr::from(0xcb00_7100 + n)))
}

fn backend(n: usize) -> BackendSlot {
    BackendSlot {
        addr: IpAddr::V4(Ipv4Addr::new(198, 19, 0, n as u8 + 1)),
        slot: n,
    }
}

fn insert(table: &SharedFlowTable, key: &TableKey, to: BackendSlot, now: u32) -> Displaced {
    let mut bucket = table.lock_bucket(table.hash(key), now).unwrap();
    bucket.insert(key, to)
}

fn lookup(table: &SharedFlowTable, key: &TableKey, now: u32) -> Option<BackendSlot> {
    table.get(key, now).unwrap()
}

fn touch(table: &SharedFlowTable, key: &TableKey, now: u32) {
    let mut bucket = table.lock_bucket(table.hash(key), now).unwrap();
    let way = bucket.find(key).expect("touching an unmapped key");
    bucket.touch(way);
}

#[test]
fn a_zeroed_region_is_an_empty_table() {
    let fd = create_region(1024).unwrap();
    let table = table_with(SharedFlowTable::map(fd.as_fd(), 1024));
    assert_eq!(table.capacity(), 1024);
    assert_eq!(table.occupied(), 0);
    assert_eq!(lookup(&table, &client(1), T0), None);
    assert_eq!(table.live_mappings(0), 0);
    assert_eq!(table.take_round_robin_turn(Family::V4), 0);
    assert_eq!(table.expire_idle(T0, 0, 1), 0);
}

#[test]
fn an_inserted_mapping_is_found_until_it_idles() {
    let table = anonymous(1024);
    assert_eq!(
        insert(&table, &client(1), backend(2), T0),
        Displaced::Nothing
    );
    assert_eq!(lookup(&table, &client(1), T0), Some(backend(2)));
    assert_eq!(lookup(&table, &client(2), T0), None);
    assert_eq!(
        lookup(&table, &client(1), T0 + TIMEOUT - 1),
        Some(backend(2))
    );
    assert_eq!(lookup(&table, &client(1), T0 + TIMEOUT), None);
    assert_eq!(table.stats().inserted, 1);
}

#[test]
fn touching_postpones_expiry_and_get_does_not() {
    let table = anonymous(1024);
    insert(&table, &client(1), backend(0), T0);
    lookup(&table, &client(1), T0 + 200);
    assert_eq!(lookup(&table, &client(1), T0 + TIMEOUT), None);
    touch(&table, &client(1), T0 + 200);
    assert_eq!(lookup(&table, &client(1), T0 + TIMEOUT), Some(backend(0)));
}

#[test]
fn the_sweep_removes_idle_mappings_and_their_counts() {
    let table = anonymous(1024);
    for n in 0..50 {
        insert(&table, &client(n), backend(n as usize % 3), T0);
    }
    insert(&table, &client(99), backend(1), T0 + 100);
    assert_eq!(
        table.live_mappings(0) + table.live_mappings(1) + table.live_mappings(2),
        51
    );
    assert_eq!(table.expire_idle(T0 + TIMEOUT - 1, 0, 1), 0);
    // Idle but not yet swept: still counted, no longer found.
    assert_eq!(lookup(&table, &client(0), T0 + TIMEOUT), None);
    assert_eq!(table.live_mappings(0), 17);
    let swept: usize = (0..4)
        .map(|shard| table.expire_idle(T0 + TIMEOUT, shard, 4))
        .sum();
    assert_eq!(swept, 50);
    assert_eq!(table.expire_idle(T0 + TIMEOUT, 0, 1), 0);
    assert_eq!(table.live_mappings(0), 0);
    assert_eq!(table.live_mappings(1), 1);
    assert_eq!(table.occupied(), 1);
    assert_eq!(table.stats().expired, 50);
    table.assert_live_counters_match_entries();
}

#[test]
fn a_full_bucket_evicts_its_least_recently_used_mapping() {
    // One bucket: every key shares it.
    let table = anonymous(ENTRIES_PER_BUCKET);
    for n in 0..ENTRIES_PER_BUCKET as u32 {
        assert_eq!(
            insert(&table, &client(n), backend(0), T0 + n),
            Displaced::Nothing
        );
    }
    touch(&table, &client(0), T0 + 20);
    assert_eq!(
        insert(&table, &client(100), backend(1), T0 + 21),
        Displaced::Evicted(client(1))
    );
    assert_eq!(lookup(&table, &client(1), T0 + 21), None);
    assert_eq!(lookup(&table, &client(0), T0 + 21), Some(backend(0)));
    assert_eq!(lookup(&table, &client(100), T0 + 21), Some(backend(1)));
    assert_eq!(table.occupied(), ENTRIES_PER_BUCKET);
    assert_eq!(table.stats().evicted, 1);
    table.assert_live_counters_match_entries();
}

#[test]
fn idle_mappings_make_room_before_live_ones_are_evicted() {
    let table = anonymous(ENTRIES_PER_BUCKET);
    for n in 0..ENTRIES_PER_BUCKET as u32 - 1 {
        insert(&table, &client(n), backend(0), T0);
    }
    insert(&table, &client(7), backend(1), T0 + TIMEOUT);
    // Seven idle entries and one live one: the idle are reused, the live one stays.
    for n in 10..17 {
        assert_eq!(
            insert(&table, &client(n), backend(2), T0 + TIMEOUT),
            Displaced::Idle
        );
    }
    assert_eq!(lookup(&table, &client(7), T0 + TIMEOUT), Some(backend(1)));
    assert_eq!(table.stats().evicted, 0);
    assert_eq!(table.live_mappings(0), 0);
    table.assert_live_counters_match_entries();
}

#[test]
fn reassigning_moves_the_count_to_the_new_backend() {
    let table = anonymous(1024);
    insert(&table, &client(1), backend(0), T0);
    {
        let mut bucket = table.lock_bucket(table.hash(&client(1)), T0 + 1).unwrap();
        let way = bucket.find(&client(1)).unwrap();
        bucket.reassign(way, backend(3));
    }
    assert_eq!(lookup(&table, &client(1), T0 + 1), Some(backend(3)));
    assert_eq!((table.live_mappings(0), table.live_mappings(3)), (0, 1));
    assert_eq!(table.stats().reassigned, 1);
    table.assert_live_counters_match_entries();
}

#[test]
fn both_families_and_flow_keys_are_kept_apart() {
    let table = anonymous(1024);
    let v4 = TableKey::client("0.0.0.1".parse().unwrap());
    let v6 = TableKey::client("::1".parse().unwrap());
    let v6_backend = BackendSlot {
        addr: "fd00:19::1".parse().unwrap(),
        slot: 5,
    };
    insert(&table, &v4, backend(0), T0);
    assert_eq!(lookup(&table, &v6, T0), None);
    insert(&table, &v6, v6_backend, T0);
    assert_eq!(lookup(&table, &v4, T0), Some(backend(0)));
    assert_eq!(lookup(&table, &v6, T0), Some(v6_backend));
}

#[test]
fn two_mappings_of_one_region_see_each_others_mappings() {
    let fd = create_region(4096).unwrap();
    let first = table_with(SharedFlowTable::map(fd.as_fd(), 4096));
    let second = table_with(SharedFlowTable::map(fd.as_fd(), 4096));
    drop(fd);
    assert_eq!(first.hash(&client(1)), second.hash(&client(1)));
    insert(&first, &client(1), backend(1), T0);
    insert(&second, &client(2), backend(2), T0);
    assert_eq!(lookup(&second, &client(1), T0), Some(backend(1)));
    assert_eq!(lookup(&first, &client(2), T0), Some(backend(2)));
    assert_eq!(second.live_mappings(1), 1);
    assert_eq!(first.register_backend(backend(7).addr), Ok(0));
    assert_eq!(
        second.register_backend("fd00:19::1".parse().unwrap()),
        Ok(1)
    );
    assert_eq!(second.register_backend(backend(7).addr), Ok(0));
    assert_eq!(first.take_round_robin_turn(Family::V4), 0);
    assert_eq!(second.take_round_robin_turn(Family::V4), 1);
    assert_eq!(second.take_round_robin_turn(Family::V6), 0);
    // The mappings outlive a worker: a new mapping of the region still has them.
    drop(first);
    assert_eq!(second.expire_idle(T0 + TIMEOUT, 0, 1), 2);
}

#[test]
fn each_region_gets_its_own_random_seed() {
    let (a, b) = (anonymous(1024), anonymous(1024));
    assert_ne!(a.hash_key, b.hash_key);
    assert_ne!(a.hash(&client(1)), b.hash(&client(1)));
    assert_ne!(a.hash_key.0, 0);
    assert_ne!(a.hash_key.1, 0);
}

#[test]
fn a_region_laid_out_by_another_version_is_refused() {
    let fd = create_region(1024).unwrap();
    let first = SharedFlowTable::map(fd.as_fd(), 1024).unwrap();
    first
        .header()
        .identity
        .layout
        .store(LAYOUT_ID + 1, Ordering::Relaxed);
    let error = SharedFlowTable::map(fd.as_fd(), 1024)
        .err()
        .expect("mapped a foreign layout");
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    assert!(error.to_string().contains("another version"), "{error}");
}

#[test]
fn a_region_of_the_wrong_size_is_refused() {
    let fd = create_region(1024).unwrap();
    let error = SharedFlowTable::map(fd.as_fd(), 2048)
        .err()
        .expect("mapped a wrong size");
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    assert!(error.to_string().contains("2048 flows"), "{error}");
}

/// Makes a held lock look `seconds` older, as if its holder had been gone that long.
fn age_lock(lock: &AtomicU64, seconds: u32) {
    let word = lock.load(Ordering::Relaxed);
    assert_ne!(word, 0, "the lock is not held");
    lock.store(word - u64::from(seconds), Ordering::Relaxed);
}

#[test]
fn a_lock_left_by_a_dead_worker_is_stolen_once_stale() {
    let table = anonymous(ENTRIES_PER_BUCKET);
    let lock = &table.buckets()[0].lock;
    lock.store(
        bucket_lock::owner_word(1, monotonic_seconds()),
        Ordering::Relaxed,
    );
    assert!(table.get(&client(1), T0).is_err());
    assert_eq!(table.stats().lock_busy, 1);
    age_lock(lock, STALE_AFTER_SECS);
    insert(&table, &client(1), backend(0), T0);
    assert_eq!(table.stats().lock_steals, 1);
    assert_eq!(lookup(&table, &client(1), T0), Some(backend(0)));
    assert_eq!(lock.load(Ordering::Relaxed), 0);
}

/// Runs `child` in a forked process and returns its exit code. The child may only use
/// atomics and system calls: after a fork in the multi-threaded test harness, another
/// thread may have held the allocator's lock.
fn in_child_process(child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child runs `child`, which by contract neither allocates nor takes locks,
    // and then leaves through _exit without running destructors or atexit handlers, so it
    // never touches state that another thread of the parent held at the fork.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            let code = child();
            // SAFETY: _exit ends the process at once; nothing of ours needs to run.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => match waitpid(child, None).unwrap() {
            WaitStatus::Exited(_, code) => code,
            other => panic!("child process ended with {other:?}"),
        },
    }
}

#[test]
fn a_mapping_made_in_another_process_is_seen() {
    let fd = create_region(1024).unwrap();
    let table = table_with(SharedFlowTable::map(fd.as_fd(), 1024));
    let (key, to) = (client(1), backend(4));
    let code = in_child_process(|| {
        let Ok(mut bucket) = table.lock_bucket(table.hash(&key), T0) else {
            return 1;
        };
        match bucket.insert(&key, to) {
            Displaced::Nothing => 0,
            _ => 2,
        }
    });
    assert_eq!(code, 0);
    assert_eq!(lookup(&table, &key, T0), Some(to));
    assert_eq!(table.live_mappings(4), 1);
}

#[test]
fn a_process_killed_while_holding_a_lock_blocks_its_bucket_only_until_stale() {
    let table = anonymous(ENTRIES_PER_BUCKET);
    let code = in_child_process(|| match table.lock_bucket(table.hash(&client(1)), T0) {
        Ok(bucket) => {
            // Dies holding the lock, as if killed.
            std::mem::forget(bucket);
            0
        }
        Err(Busy) => 1,
    });
    assert_eq!(code, 0);
    assert!(table.get(&client(1), T0).is_err());
    age_lock(&table.buckets()[0].lock, STALE_AFTER_SECS);
    insert(&table, &client(1), backend(0), T0);
    assert_eq!(table.stats().lock_steals, 1);
    assert_eq!(lookup(&table, &client(1), T0), Some(backend(0)));
}

/// Workers racing on few buckets with overlapping keys, each through its own mapping:
/// every key is mapped at most once, and the counters add up afterwards. In the second
/// phase every mapping of the first is idle, so sweeps race with the reuse of idle entries.
///
#[test]
fn concurrent_workers_keep_the_table_consistent() {
    const WORKERS: u32 = 4;
    const ROUNDS: u32 = 10_000;
    let fd = create_region(64).unwrap();
    let phase_end = std::sync::Barrier::new(WORKERS as usize);
    let stats: Vec<TableStats> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|worker| {
                let table = table_with(SharedFlowTable::map(fd.as_fd(), 64));
                let phase_end = &phase_end;
                scope.spawn(move || {
                    for now in [T0, T0 + TIMEOUT] {
                        for round in 0..ROUNDS {
                            let key = client((round * 7 + worker * 13) % 200);
                            let Ok(mut bucket) = table.lock_bucket(table.hash(&key), now) else {
                                continue;
                            };
                            match bucket.find(&key) {
                                Some(way) if round.is_multiple_of(5) => {
                                    bucket.reassign(way, backend(worker as usize))
                                }
                                Some(way) => bucket.touch(way),
                                None => {
                                    bucket.insert(&key, backend(worker as usize));
                                }
                            }
                            drop(bucket);
                            if round.is_multiple_of(500) {
                                table.expire_idle(now, (round / 500) as usize, 4);
                            }
                        }
                        phase_end.wait();
                    }
                    table.stats()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert!(
        stats.iter().all(|s| s.lock_steals == 0 && s.lock_lost == 0),
        "{stats:?}"
    );
    assert!(
        stats.iter().map(|s| s.expired).sum::<u64>() > 0,
        "{stats:?}"
    );
    assert!(
        stats.iter().map(|s| s.evicted).sum::<u64>() > 0,
        "{stats:?}"
    );
    let table = table_with(SharedFlowTable::map(fd.as_fd(), 64));
    table.assert_live_counters_match_entries();
    let mut seen = HashMap::new();
    for bucket in table.buckets() {
        for way in 0..ENTRIES_PER_BUCKET {
            if bucket.tags[way].load(Ordering::Relaxed) != 0 {
                let entry = &bucket.entries[way];
                let words = [
                    entry.client[0].load(Ordering::Relaxed),
                    entry.client[1].load(Ordering::Relaxed),
                    entry.meta.load(Ordering::Relaxed) & key::KEY_META_MASK,
                ];
                *seen.entry(words).or_insert(0) += 1;
            }
        }
    }
    assert!(
        seen.values().all(|&count| count == 1),
        "a key is mapped twice"
    );
}

#[derive(Clone, Debug)]
enum Op {
    /// What the balancer does for a packet: refresh the mapping, or make one.
    Packet {
        client: u32,
        backend: usize,
    },
    Sweep {
        shard: usize,
    },
}

fn op() -> impl Strategy<Value = (Op, u32)> {
    let packet = (0..40u32, 0..4usize).prop_map(|(client, backend)| Op::Packet { client, backend });
    let sweep = (0..3usize).prop_map(|shard| Op::Sweep { shard });
    (prop_oneof![4 => packet, 1 => sweep], 0..120u32)
}

proptest! {
    /// Against a model that forgets idle mappings and the ones the table says it evicted:
    /// everything else the model holds is found, with its backend, and nothing more.
    #[test]
    fn the_table_agrees_with_a_model(ops in proptest::collection::vec(op(), 1..200)) {
        let table = anonymous(2 * ENTRIES_PER_BUCKET);
        let mut model: HashMap<u32, (BackendSlot, u32)> = HashMap::new();
        let mut now = T0;
        for (op, elapsed) in ops {
            now += elapsed;
            model.retain(|_, (_, last_used)| now - *last_used < TIMEOUT);
            match op {
                Op::Packet { client: n, backend: b } => {
                    let key = client(n);
                    let mut bucket = table.lock_bucket(table.hash(&key), now).unwrap();
                    match bucket.find(&key) {
                        Some(way) => {
                            bucket.touch(way);
                            let mapped = model.get_mut(&n).expect("found a key the model lacks");
                            mapped.1 = now;
                        }
                        None => {
                            prop_assert!(!model.contains_key(&n), "lost client {}", n);
                            if let Displaced::Evicted(evicted) = bucket.insert(&key, backend(b)) {
                                let victim = (0..40).find(|&m| client(m) == evicted).unwrap();
                                prop_assert!(model.remove(&victim).is_some());
                            }
                            model.insert(n, (backend(b), now));
                        }
                    }
                }
                Op::Sweep { shard } => {
                    table.expire_idle(now, shard, 3);
                }
            }
            prop_assert!(table.occupied() <= table.capacity());
            for n in 0..40 {
                let expected = model.get(&n).map(|(to, _)| *to);
                prop_assert_eq!(lookup(&table, &client(n), now), expected);
            }
            table.assert_live_counters_match_entries();
        }
    }
}
