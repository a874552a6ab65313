//! Runs a pipeline bench case a fixed number of times, for instruction
//! counts under `valgrind --tool=callgrind` (see `benches/callgrind.sh`).
//!
//! Usage: pipeline_iter untracked|established|untracked6|established6|handoff|worker|CASE_plain|CASE_tap BURSTS
//!
//! `worker`: the worker loop's burst path ([`Worker::poll_once`]) over the
//! fake kernel in zero-copy mode: RX ring, pipeline, TX ring and kick,
//! completions, and the worker's runtime accounting. The fake's side of
//! the rings (delivering into the RX ring, sending the TX ring) runs
//! outside the measured region; its kick (a lock and a counter, where a
//! real kernel would take a `sendto`) inside.
//!
//! `untracked_plain`, `untracked_tap` (and the same for `established`):
//! the same bursts through the same set-up, once straight into
//! `Pipeline::process_burst` and once through the worker's per-burst call
//! with no trace or capture armed (`worker::process_burst_traced`); the
//! difference is what the idle switch costs.
//!
//! `handoff`: 64-byte ACKs of 64 established flows that worker 0 of two
//! owns, arriving at worker 1: worker 1's pipeline says HandOff, the bytes
//! go through the hand-off queue (copied in and out, as the worker loop
//! does), and worker 0's pipeline delivers them. Instructions per packet
//! over that whole way (the AF_XDP rings aside).

use std::hint::black_box;

use benches::workload::{
    established_host_burst, established_host_burst6, established_host_burst_where, transit_tables,
    transit_tables6, transit_tables6_via, untracked_transit_burst, untracked_transit_burst6, Burst,
    BURST,
};
use dataplane::conntrack::FlowKey;
use dataplane::owner::owner;
use dataplane::packet::{Pkt, PortId, Verdict};
use dataplane::pipeline::Pipeline;
use dataplane::trace_capture::{TraceHub, TraceTap};
use dataplane::worker::{
    process_burst_traced, Handoff, TablesSlot, Worker, WorkerConfig, WorkerShared,
};
use dataplane::xsk::fake::{FakeKernel, FakeMode};
use dataplane::xsk::WorkerPorts;

/// The measured region: callgrind collects only inside this function.
#[inline(never)]
pub fn afxdp_measured_bursts(p: &mut Pipeline, b: &mut Burst, n: usize, restore: bool) -> usize {
    let mut out = [Verdict::Consumed; BURST];
    let mut ok = 0;
    for _ in 0..n {
        if restore {
            b.restore();
        }
        b.run(black_box(p), &mut out);
        ok += out
            .iter()
            .filter(|v| !matches!(v, Verdict::Drop(_)))
            .count();
    }
    ok
}

/// The hand-off case's measured region: `b` through worker 1 (`p1`), each
/// packet handed over by copy to worker 0 (`p0`), which runs them.
#[inline(never)]
pub fn afxdp_measured_handoff(
    p1: &mut Pipeline,
    p0: &mut Pipeline,
    h: &Handoff,
    b: &mut Burst,
    frames: &mut [Vec<u8>],
    n: usize,
) -> usize {
    let mut out = [Verdict::Consumed; BURST];
    let mut delivered = 0;
    for _ in 0..n {
        b.run(black_box(p1), &mut out);
        for (i, v) in out.iter().enumerate() {
            if let Verdict::HandOff(to) = v {
                let _ = h.send(usize::from(*to), b.port, &b.frames[i][..b.lens[i]]);
            }
        }
        let mut lens = [0usize; BURST];
        let mut k = 0;
        while let Some(p) = h.receive(0) {
            frames[k][..p.len].copy_from_slice(&p.buf[..p.len]);
            lens[k] = p.len;
            h.recycle(p.buf);
            k += 1;
        }
        let mut it = frames.iter_mut().zip(lens);
        let mut pkts: [Pkt<'_>; BURST] = std::array::from_fn(|_| {
            let (f, len) = it.next().expect("BURST frames");
            Pkt {
                buf: f.as_mut_slice(),
                len,
                port: PortId(0),
            }
        });
        black_box(&mut *p0).process_burst(&mut pkts[..k], &mut out[..k]);
        delivered += out[..k].iter().filter(|v| **v == Verdict::Host).count();
    }
    delivered
}

/// The switch case's measured region: the burst's frames as the worker
/// hands them over, through the worker's per-burst call (`tap`: with the
/// idle hub) or straight into the pipeline (`None`).
#[inline(never)]
pub fn afxdp_measured_switch(
    p: &mut Pipeline,
    tap: Option<(&mut TraceTap, &TraceHub)>,
    b: &mut Burst,
    n: usize,
    restore: bool,
) -> usize {
    let mut out = [Verdict::Consumed; BURST];
    let mut ok = 0;
    let mut tap = tap;
    for _ in 0..n {
        if restore {
            b.restore();
        }
        let port = b.port;
        let mut it = b.frames.iter_mut().zip(b.lens.iter());
        let mut pkts: [Pkt<'_>; BURST] = std::array::from_fn(|_| {
            let (f, l) = it.next().expect("BURST frames");
            Pkt {
                buf: f.as_mut_slice(),
                len: *l,
                port,
            }
        });
        match tap.as_mut() {
            Some((t, hub)) => process_burst_traced(
                black_box(&mut *p),
                t,
                black_box(hub),
                0,
                &mut pkts,
                &mut out,
            ),
            None => black_box(&mut *p).process_burst(&mut pkts, &mut out),
        }
        ok += out
            .iter()
            .filter(|v| !matches!(v, Verdict::Drop(_)))
            .count();
    }
    ok
}

/// The worker case's measured region: one loop of the worker.
#[inline(never)]
pub fn afxdp_measured_poll(w: &mut Worker) -> usize {
    w.poll_once()
}

/// Restoring headers alone, to subtract from the forwarding case.
#[inline(never)]
pub fn afxdp_measured_restore(b: &mut Burst, n: usize) {
    for _ in 0..n {
        b.restore();
        black_box(&b.frames);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let case = args.get(1).map(String::as_str).unwrap_or("untracked");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let tables = if case == "untracked6_2gw" {
        transit_tables6_via(1000, 2)
    } else if case.contains('6') {
        transit_tables6(1000)
    } else {
        transit_tables(1000)
    };
    let mut p = Pipeline::new(tables);
    if case == "handoff" {
        handoff(n);
        return;
    }
    if case == "worker" {
        worker(n);
        return;
    }
    let (base, switch) = match case.split_once('_') {
        Some((base, s @ ("plain" | "tap"))) => (base, Some(s == "tap")),
        _ => (case, None),
    };
    let (mut burst, restore) = match base {
        "untracked" => (untracked_transit_burst(1000), true),
        "established" => (established_host_burst(&mut p), false),
        "untracked6" | "untracked6_2gw" => (untracked_transit_burst6(1000), true),
        "established6" => (established_host_burst6(&mut p), false),
        _ => {
            eprintln!(
                "usage: pipeline_iter untracked|established|untracked6|untracked6_2gw|established6|handoff|worker|CASE_plain|CASE_tap BURSTS"
            );
            std::process::exit(2);
        }
    };
    if let Some(tapped) = switch {
        let hub = TraceHub::new();
        let mut tap = TraceTap::default();
        let mut run = |p: &mut Pipeline, b: &mut Burst, n| {
            let t = tapped.then_some((&mut tap, &hub));
            afxdp_measured_switch(p, t, b, n, restore)
        };
        run(&mut p, &mut burst, 1);
        let ok = run(&mut p, &mut burst, n);
        assert_eq!(ok, n * BURST, "every packet should pass in this case");
        println!("{case}: {} packets", n * BURST);
        return;
    }
    // Warm up outside the measured region.
    afxdp_measured_bursts(&mut p, &mut burst, 1, restore);
    let ok = afxdp_measured_bursts(&mut p, &mut burst, n, restore);
    if restore {
        afxdp_measured_restore(&mut burst, n);
    }
    assert_eq!(ok, n * BURST, "every packet should pass in this case");
    println!("{case}: {} packets", n * BURST);
}

/// The hand-off case (see the module doc).
fn handoff(n: usize) {
    let tables = transit_tables(1000);
    let client = u32::from(std::net::Ipv4Addr::new(198, 18, 0, 2));
    let router = u32::from(std::net::Ipv4Addr::new(198, 18, 0, 1));
    let owned_by_0 = |sport: u16| {
        let key = FlowKey {
            src: client,
            dst: router,
            sport,
            dport: 22,
            proto: 6,
            icmp: 0,
        };
        owner(&key, 2) == 0
    };
    // The flows set up on the owner alone, then the two workers.
    let mut p0 = Pipeline::new(tables.clone());
    let mut burst = established_host_burst_where(&mut p0, owned_by_0);
    p0.set_worker(0, 2);
    let mut p1 = Pipeline::new(tables);
    p1.set_worker(1, 2);
    let h = Handoff::new(2);
    let mut frames = vec![vec![0u8; 2048]; BURST];
    afxdp_measured_handoff(&mut p1, &mut p0, &h, &mut burst, &mut frames, 1);
    let ok = afxdp_measured_handoff(&mut p1, &mut p0, &h, &mut burst, &mut frames, n);
    assert_eq!(ok, n * BURST, "every packet handed over and delivered");
    println!("handoff: {} packets", n * BURST);
}

/// The worker case (see the module doc): `n` bursts of 64 untracked
/// transit frames from wan, each through one loop of a worker.
fn worker(n: usize) {
    let kernel = FakeKernel::new(2, FakeMode::ZeroCopy);
    let ports = WorkerPorts::open_fake(&kernel, 4096, 2048).expect("fake ports");
    let shared = WorkerShared::new(
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
        std::sync::Arc::new(TablesSlot::new(transit_tables(1000))),
    );
    let cfg = WorkerConfig {
        index: 0,
        core: None,
        burst: BURST,
        busy_poll: true,
    };
    let mut w = Worker::new(cfg, ports, std::sync::Arc::new(shared)).expect("worker");
    let burst = untracked_transit_burst(1000);
    let mut sent = 0;
    // One warm-up burst, then the measured ones.
    for _ in 0..=n {
        for (f, &len) in burst.frames.iter().zip(&burst.lens) {
            assert!(kernel.deliver(0, &f[..len]), "the fill ring ran dry");
        }
        assert_eq!(afxdp_measured_poll(&mut w), BURST);
        sent += kernel.nic(1);
        kernel.take_sent(1);
    }
    assert_eq!(sent, (n + 1) * BURST, "every packet forwarded");
    println!("worker: {} packets", n * BURST);
}
