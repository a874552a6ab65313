//! Worker scaling on in-memory bursts: N pipelines on N threads, each
//! pinned to its own core and forwarding its own untracked transit (what N
//! workers do with N RSS queues: untracked transit never crosses workers).
//!
//! Cases:
//! - `workers_forward_untracked_64/1`: one pipeline on core 0;
//! - `workers_forward_untracked_64/2`: two, on cores 0 and 1, at once.
//!
//! Throughput is packets per second over all workers: the ratio of the two
//! is what a second core adds (target: 1.8x or more).
//! Run: `cargo bench -p benches --bench workers`.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use benches::workload::{transit_tables, untracked_transit_burst, BURST};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::packet::Verdict;
use dataplane::pipeline::Pipeline;

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

criterion_group!(benches, workers);
criterion_main!(benches);
