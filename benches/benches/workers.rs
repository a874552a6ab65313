//! Worker scaling on in-memory bursts: N pipelines on N threads, each
//! pinned to its own core and forwarding its own untracked transit (what N
//! workers do with N RSS queues: untracked transit never crosses workers).
//!
//! Cases:
//! - `workers_forward_untracked_64/1`: one pipeline on core 0;
//! - `workers_forward_untracked_64/2`: two, on cores 0 and 1, at once;
//! - `worker_poll_untracked_64/1`: one loop of a whole worker
//!   ([`Worker::poll_once`]: RX ring, pipeline, TX ring, kick, completions,
//!   runtime accounting) per burst of 64, over the fake kernel in zero-copy
//!   mode; only the loop is timed, not the fake's delivery and sending.
//!
//! Throughput is packets per second over all workers: the ratio of the two
//! `workers_forward_untracked_64` cases is what a second core adds (target:
//! 1.8x or more).
//!
//! Run: `cargo bench -p benches --bench workers`.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use benches::workload::{transit_tables, untracked_transit_burst, BURST};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::packet::Verdict;
use dataplane::pipeline::Pipeline;
use dataplane::worker::{TablesSlot, Worker, WorkerConfig, WorkerShared};
use dataplane::xsk::fake::{FakeKernel, FakeMode};
use dataplane::xsk::WorkerPorts;

const ROUTES: usize = 1000;

/// `iters` bursts on each of `n` pinned threads at once; the time the
/// slowest took.
fn run(n: usize, iters: u64) -> Duration {
    let tables = transit_tables(ROUTES);
    let start = Barrier::new(n);
    let times: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|core| {
                let (tables, start) = (tables.clone(), &start);
                s.spawn(move || {
                    core_affinity::set_for_current(core_affinity::CoreId { id: core });
                    let mut p = Pipeline::new(tables);
                    let mut burst = untracked_transit_burst(ROUTES);
                    let mut out = [Verdict::Consumed; BURST];
                    start.wait();
                    let t0 = Instant::now();
                    for _ in 0..iters {
                        burst.restore();
                        burst.run(black_box(&mut p), &mut out);
                        black_box(&out);
                    }
                    t0.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker"))
            .collect()
    });
    times.into_iter().max().unwrap_or_default()
}

fn workers(c: &mut Criterion) {
    let cores = core_affinity::get_core_ids().map_or(1, |c| c.len());
    let mut g = c.benchmark_group("workers_forward_untracked_64");
    for n in [1, 2].into_iter().filter(|&n| n <= cores) {
        g.throughput(Throughput::Elements((BURST * n) as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter_custom(|iters| run(n, iters))
        });
    }
    g.finish();
}

/// `iters` loops of one worker over the fake kernel, each with a burst of
/// untracked transit; the time spent in the loops alone.
fn poll(kernel: &FakeKernel, w: &mut Worker, frames: &[Vec<u8>], iters: u64) -> Duration {
    let mut spent = Duration::ZERO;
    for _ in 0..iters {
        for f in frames {
            kernel.deliver(0, f);
        }
        let t0 = Instant::now();
        black_box(w.poll_once());
        spent += t0.elapsed();
        kernel.nic(1);
        kernel.take_sent(1);
    }
    spent
}

fn worker_poll(c: &mut Criterion) {
    let kernel = FakeKernel::new(2, FakeMode::ZeroCopy);
    let ports = WorkerPorts::open_fake(&kernel, 4096, 2048).expect("fake ports");
    let shared = WorkerShared::new(
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
        std::sync::Arc::new(TablesSlot::new(transit_tables(ROUTES))),
    );
    let cfg = WorkerConfig {
        index: 0,
        core: None,
        burst: BURST,
        busy_poll: true,
    };
    let mut w = Worker::new(cfg, ports, std::sync::Arc::new(shared)).expect("worker");
    let b = untracked_transit_burst(ROUTES);
    let frames: Vec<Vec<u8>> = (b.frames.iter().zip(&b.lens))
        .map(|(f, &l)| f[..l].to_vec())
        .collect();
    let mut g = c.benchmark_group("worker_poll_untracked_64");
    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function("1", |bch| {
        bch.iter_custom(|iters| poll(&kernel, &mut w, &frames, iters))
    });
    g.finish();
}

criterion_group!(benches, workers, worker_poll);
criterion_main!(benches);
