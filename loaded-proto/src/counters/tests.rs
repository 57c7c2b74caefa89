use super::*;
use std::os::fd::AsFd;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[test]
fn each_counter_lands_in_its_place_and_the_blocks_add_up() {
    let fd = create_region(3).unwrap();
    let first = WorkerCounters::map(fd.as_fd(), 3, 0).unwrap();
    let last = WorkerCounters::map(fd.as_fd(), 3, 2).unwrap();
    first.count_packet();
    first.count_rewritten();
    first.count_drop(2);
    first.add_receive_overruns(5);
    first.add_verdict_errors(6);
    first.count_new_flow(7);
    first.count_to_server(7, 1500);
    first.count_from_server(7, 60);
    for _ in 0..10 {
        last.count_packet();
        last.count_to_server(MAX_BACKENDS - 1, 100);
    }
    last.count_drop(2);

    let master = SharedCounters::map(fd.as_fd(), 3).unwrap();
    let block = master.read(0).unwrap();
    assert_eq!(
        (
            block.packets,
            block.rewritten,
            block.receive_overruns,
            block.verdict_errors
        ),
        (1, 1, 5, 6)
    );
    assert_eq!(block.drops, [0, 0, 1, 0, 0, 0, 0, 0]);
    let server = ServerTotals {
        new_flows: 1,
        packets_to: 1,
        bytes_to: 1500,
        packets_from: 1,
        bytes_from: 60,
    };
    assert_eq!(block.servers[7], server);
    assert_eq!(master.read(1).unwrap(), BlockTotals::default());
    assert_eq!(master.read(3), None);

    let sum = master.sum();
    assert_eq!(sum.packets, 11);
    assert_eq!(sum.drops[2], 2);
    assert_eq!(sum.servers[7], server);
    assert_eq!(sum.servers[MAX_BACKENDS - 1].packets_to, 10);
    assert_eq!(sum.servers[MAX_BACKENDS - 1].bytes_to, 1000);
    let others: u64 = sum.servers[8..MAX_BACKENDS - 1]
        .iter()
        .map(|s| s.packets_to)
        .sum();
    assert_eq!(others, 0);
}

#[test]
fn indexes_out_of_range_count_nothing_and_do_not_crash() {
    let counters = SharedCounters::anonymous(1).unwrap();
    let worker = SharedCounters::anonymous(1)
        .unwrap()
        .into_worker(0)
        .unwrap();
    worker.count_drop(DROP_REASON_SLOTS);
    worker.count_new_flow(MAX_BACKENDS);
    worker.count_to_server(MAX_BACKENDS, 1);
    worker.count_from_server(usize::MAX, 1);
    assert_eq!(counters.sum(), BlockTotals::default());
    assert!(SharedCounters::anonymous(2)
        .unwrap()
        .into_worker(2)
        .is_none());
}

#[test]
fn a_restarted_worker_continues_its_block() {
    let fd = create_region(2).unwrap();
    {
        let before = WorkerCounters::map(fd.as_fd(), 2, 1).unwrap();
        for _ in 0..100 {
            before.count_packet();
            before.count_to_server(3, 10);
        }
    }
    let after = WorkerCounters::map(fd.as_fd(), 2, 1).unwrap();
    for _ in 0..50 {
        after.count_packet();
        after.count_to_server(3, 10);
    }
    let master = SharedCounters::map(fd.as_fd(), 2).unwrap();
    let block = master.read(1).unwrap();
    assert_eq!(block.packets, 150);
    assert_eq!(block.servers[3].bytes_to, 1500);
    assert_eq!(master.read(0).unwrap().packets, 0);
}

#[test]
fn two_threads_write_their_blocks_while_a_reader_sums() {
    const PER_WRITER: u64 = 1_000_000;
    let fd = Arc::new(create_region(2).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|worker| {
            let fd = Arc::clone(&fd);
            std::thread::spawn(move || {
                let counters = WorkerCounters::map(fd.as_fd(), 2, worker).unwrap();
                for _ in 0..PER_WRITER {
                    counters.count_packet();
                    counters.count_to_server(5, 3);
                }
            })
        })
        .collect();
    let reader = {
        let fd = Arc::clone(&fd);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let master = SharedCounters::map(fd.as_fd(), 2).unwrap();
            let mut last = 0;
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let sum = master.sum();
                assert!(
                    sum.packets >= last,
                    "the sum went back: {last} then {}",
                    sum.packets
                );
                assert!(sum.packets <= 2 * PER_WRITER);
                last = sum.packets;
                reads += 1;
            }
            reads
        })
    };
    for writer in writers {
        writer.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    let sum = SharedCounters::map(fd.as_fd(), 2).unwrap().sum();
    assert_eq!(sum.packets, 2 * PER_WRITER, "no increment is lost");
    assert_eq!(sum.servers[5].packets_to, 2 * PER_WRITER);
    assert_eq!(sum.servers[5].bytes_to, 6 * PER_WRITER);
}

#[test]
fn a_child_process_writes_its_block_through_the_memfd() {
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};
    let fd = create_region(2).unwrap();
    let parent = WorkerCounters::map(fd.as_fd(), 2, 0).unwrap();
    // The child maps before the fork, so that after it it calls nothing but the counter
    // stores and _exit: safe in the child of a multi-threaded test process.
    let child_counters = WorkerCounters::map(fd.as_fd(), 2, 1).unwrap();
    // SAFETY: the child only stores to shared memory and calls _exit (async-signal-safe).
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            for _ in 0..1000 {
                child_counters.count_packet();
            }
            // SAFETY: _exit ends the child at once, running no destructors or handlers
            // that belong to the parent's state.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(child_counters);
            for _ in 0..10 {
                parent.count_packet();
            }
            assert_eq!(waitpid(child, None).unwrap(), WaitStatus::Exited(child, 0));
        }
    }
    let master = SharedCounters::map(fd.as_fd(), 2).unwrap();
    assert_eq!(master.read(0).unwrap().packets, 10);
    assert_eq!(master.read(1).unwrap().packets, 1000);
}

#[test]
fn a_region_of_another_size_or_layout_is_refused() {
    let fd = create_region(2).unwrap();
    let error = SharedCounters::map(fd.as_fd(), 3)
        .err()
        .expect("mapped 2 blocks as 3");
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    assert!(error.to_string().contains("3 workers"), "{error}");
    assert!(WorkerCounters::map(fd.as_fd(), 2, 2).is_err());

    let master = SharedCounters::map(fd.as_fd(), 2).unwrap();
    master
        .header()
        .layout
        .store(LAYOUT_ID + 1, Ordering::Relaxed);
    let error = SharedCounters::map(fd.as_fd(), 2)
        .err()
        .expect("mapped another layout");
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
}

#[test]
fn an_unsealed_region_is_refused() {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    let fd = memfd_create(c"unsealed", MFdFlags::MFD_CLOEXEC).unwrap();
    nix::unistd::ftruncate(&fd, region_len(1) as libc::off_t).unwrap();
    let error = SharedCounters::map(fd.as_fd(), 1)
        .err()
        .expect("mapped an unsealed region");
    assert!(error.to_string().contains("sealed"), "{error}");
}

#[test]
fn the_status_gets_every_reason_and_each_worker() {
    let fd = create_region(2).unwrap();
    let second = WorkerCounters::map(fd.as_fd(), 2, 1).unwrap();
    second.count_packet();
    second.count_drop(4);
    second.add_receive_overruns(2);
    second.add_verdict_errors(3);
    let master = SharedCounters::map(fd.as_fd(), 2).unwrap();
    let drops = master.sum().drop_counts();
    let names: Vec<&str> = drops.iter().map(|d| d.reason.as_str()).collect();
    assert_eq!(names, DROP_REASON_NAMES);
    assert_eq!(drops[4].packets, 1);
    assert_eq!(drops.iter().map(|d| d.packets).sum::<u64>(), 1);
    let workers = master.worker_statuses();
    assert_eq!(workers.len(), 2);
    assert_eq!(workers[0].packets, 0);
    assert_eq!(
        workers[1],
        WorkerStatus {
            worker: 1,
            packets: 1,
            receive_overruns: 2,
            verdict_errors: 3
        }
    );
}
