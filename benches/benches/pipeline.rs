//! Pipeline benches on in-memory bursts (one core, no I/O).
//!
//! Cases:
//! - `pipeline_forward_untracked_64`: 64 UDP frames of 64 bytes from wan to
//!   64 of 1,000 extra /24 routes, through `configs/transit-router.yaml`:
//!   raw NOTRACK, forward chain, static gateway, TTL and MAC rewrite. Each
//!   iteration also restores the 34 header bytes the run rewrote.
//! - `pipeline_forward_untracked_64_trace_off`: the same burst through the
//!   worker's own per-burst call (`worker::process_burst_traced`) with an
//!   unarmed trace hub: what tracing costs while off (one atomic load).
//! - `pipeline_established_tracked_64`: 64 established TCP flows to the
//!   router's SSH port, one 64-byte ACK each: raw accept, conntrack lookup
//!   and update, input chain `established,related`, delivered to the host.
//! - `conntrack_new_connections_1m`: classify and confirm 64 new flows into
//!   a table that already holds 1M flows (refilled outside the timing).
//!
//! Throughput is in elements (packets or flows) per second on one core.
//! Run: `cargo bench -p benches --bench pipeline`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use benches::workload::{established_host_burst, transit_tables, untracked_transit_burst, BURST};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataplane::conntrack::ConntrackConfig;
use dataplane::conntrack::{Conntrack, FlowKey, PktInfo};
use dataplane::packet::{Pkt, Verdict};
use dataplane::pipeline::Pipeline;
use dataplane::trace_capture::{TraceHub, TraceTap};
use dataplane::worker::process_burst_traced;

const ROUTES: usize = 1000;

fn pipeline(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BURST as u64));

    let tables = transit_tables(ROUTES);
    let mut p = Pipeline::new(tables.clone());
    let mut burst = untracked_transit_burst(ROUTES);
    let mut out = [Verdict::Consumed; BURST];
    burst.run(&mut p, &mut out);
    assert!(
        out.iter().all(|v| matches!(v, Verdict::Tx(_))),
        "untracked transit not forwarded: {out:?}"
    );
    g.bench_function("pipeline_forward_untracked_64", |b| {
        b.iter(|| {
            burst.restore();
            burst.run(black_box(&mut p), &mut out);
            black_box(&out);
        })
    });

    // The same, through the worker's call with tracing off.
    let mut p = Pipeline::new(tables.clone());
    let hub = TraceHub::new();
    let mut tap = TraceTap::default();
    let mut burst = untracked_transit_burst(ROUTES);
    let port = burst.port;
    g.bench_function("pipeline_forward_untracked_64_trace_off", |b| {
        b.iter(|| {
            burst.restore();
            let mut pkts: [Pkt<'_>; BURST] = {
                let mut it = burst.frames.iter_mut().zip(burst.lens.iter());
                std::array::from_fn(|_| {
                    let (f, l) = it.next().expect("BURST frames");
                    Pkt {
                        buf: f.as_mut_slice(),
                        len: *l,
                        port,
                    }
                })
            };
            process_burst_traced(
                black_box(&mut p),
                &mut tap,
                black_box(&hub),
                0,
                &mut pkts,
                &mut out,
            );
            black_box(&out);
        })
    });
    assert!(
        out.iter().all(|v| matches!(v, Verdict::Tx(_))),
        "untracked transit not forwarded with tracing off: {out:?}"
    );

    let mut p = Pipeline::new(tables);
    let mut burst = established_host_burst(&mut p);
    burst.run(&mut p, &mut out);
    assert!(
        out.iter().all(|v| *v == Verdict::Host),
        "established flow not delivered: {out:?}"
    );
    g.bench_function("pipeline_established_tracked_64", |b| {
        b.iter(|| {
            burst.run(black_box(&mut p), &mut out);
            black_box(&out);
        })
    });
    g.finish();
}

fn flow(n: u32) -> PktInfo {
    PktInfo {
        key: FlowKey {
            src: 0xC612_0000 | (n >> 16),
            dst: 0xC612_0001,
            sport: n as u16,
            dport: 22,
            proto: 6,
            icmp: 0,
        },
        tcp_flags: 0x02,
        icmp_type: 0,
        len: 60,
    }
}

fn conntrack(c: &mut Criterion) {
    const FILL: u32 = 1 << 20;
    let mut g = c.benchmark_group("conntrack");
    g.throughput(Throughput::Elements(BURST as u64));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(5));
    let mut ct = Conntrack::new(ConntrackConfig {
        max_entries: 2 * FILL,
        ..ConntrackConfig::default()
    });
    let fill = |ct: &mut Conntrack| {
        ct.flush();
        for n in 0..FILL {
            let r = ct.classify(flow(n), 1);
            ct.confirm(r.pending.expect("new flow"), 1).expect("room");
        }
    };
    fill(&mut ct);
    let mut next = FILL;
    g.bench_function("conntrack_new_connections_1m", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                if ct.len() + BURST > (2 * FILL) as usize - 1024 {
                    fill(&mut ct);
                    next = FILL;
                }
                let start = Instant::now();
                for _ in 0..BURST {
                    let r = ct.classify(black_box(flow(next)), 1);
                    if let Some(p) = r.pending {
                        let _ = black_box(ct.confirm(p, 1));
                    }
                    next = next.wrapping_add(1);
                }
                spent += start.elapsed();
            }
            spent
        })
    });
    g.finish();
}

criterion_group!(benches, pipeline, conntrack);
criterion_main!(benches);
