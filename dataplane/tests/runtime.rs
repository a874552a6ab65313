//! The workers' runtime accounting (`routerctl stats runtime`) over the
//! fake kernel (`dataplane::xsk::fake`): every packet counted once, the
//! phases adding up to the loop time, and clearing. No root.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dataplane::worker::{
    Handoff, HostPath, Phase, RuntimeCounters, TablesSlot, Worker, WorkerConfig, WorkerReply,
    WorkerRequest, WorkerShared,
};
use dataplane::xsk::fake::{FakeKernel, FakeMode};
use dataplane::xsk::WorkerPorts;
use support::*;

const BURST: usize = 64;

fn worker_with(kernel: &FakeKernel, index: usize, shared: Arc<WorkerShared>) -> Worker {
    let ports = WorkerPorts::open_fake(kernel, 4096, 2048).expect("fake ports");
    let cfg = WorkerConfig {
        index,
        core: None,
        burst: BURST,
        busy_poll: false,
    };
    Worker::new(cfg, ports, shared).expect("worker")
}

fn shared() -> Arc<WorkerShared> {
    Arc::new(WorkerShared::new(
        Arc::new(AtomicBool::new(false)),
        Arc::new(TablesSlot::new(tables())),
    ))
}

/// A host path that takes every packet and keeps a count.
struct Sink(Arc<Mutex<u64>>);

impl HostPath for Sink {
    fn deliver(&mut self, _ip_packet: &[u8]) -> bool {
        *self.0.lock().unwrap() += 1;
        true
    }
}

fn transit(seq: u16) -> Vec<u8> {
    Packet::udp(OUTSIDE, INSIDE, seq, 53).on(WAN).frame()
}

/// Transit to a blackhole route: dropped (`route_blackhole`).
fn blackholed(seq: u16) -> Vec<u8> {
    Packet::udp(OUTSIDE, BLACKHOLED, seq, 53).on(WAN).frame()
}

/// A ping to the router: to the host path.
fn ping(id: u16) -> Vec<u8> {
    Packet::ping(WAN_GW, WAN_ADDR, id).on(WAN).frame()
}

fn assert_adds_up(rt: &RuntimeCounters) {
    assert_eq!(
        rt.cycles.sum(),
        rt.total_cycles,
        "the phases and idle add up to the loop time: {rt:?}"
    );
    assert!(rt.loops >= rt.busy_loops, "{rt:?}");
}

#[test]
fn every_packet_is_counted_once_and_the_phases_add_up_to_the_loop_time() {
    let kernel = FakeKernel::new(2, FakeMode::Copy);
    let mut w = worker_with(&kernel, 0, shared());
    let delivered = Arc::new(Mutex::new(0));
    w.set_host_path(Box::new(Sink(Arc::clone(&delivered))));
    let (rounds, empty) = (40u16, 25u64);
    for r in 0..rounds {
        for i in 0..16 {
            assert!(kernel.deliver(WAN.0 as usize, &transit(r * 16 + i)));
        }
        for i in 0..4 {
            assert!(kernel.deliver(WAN.0 as usize, &blackholed(r * 4 + i)));
        }
        assert!(kernel.deliver(WAN.0 as usize, &ping(r)));
        assert_eq!(w.poll_once(), 21);
        kernel.take_sent(LAN.0 as usize);
        if r % 8 == 0 {
            w.housekeeping();
        }
    }
    for _ in 0..empty {
        assert_eq!(w.poll_once(), 0);
    }
    let rt = w.runtime();
    let c = w.pipeline().counters();
    let drops: u64 = c.drops.iter().sum();
    assert_eq!(c.forwarded, u64::from(rounds) * 16);
    assert_eq!(drops, u64::from(rounds) * 4);
    assert_eq!(*delivered.lock().unwrap(), u64::from(rounds));
    assert_eq!(
        rt.packets,
        c.forwarded + drops + c.to_host + c.consumed,
        "runtime packets are what the pipeline decided"
    );
    assert_eq!(rt.busy_loops, u64::from(rounds));
    assert_eq!(rt.loops, u64::from(rounds) + empty);
    assert_adds_up(&rt);
    for p in [
        Phase::Rx,
        Phase::Pipeline,
        Phase::Tx,
        Phase::Host,
        Phase::Housekeeping,
        Phase::Idle,
    ] {
        assert!(rt.cycles.get(p) > 0, "no cycles in {p:?}: {rt:?}");
    }
    assert_eq!(rt.cycles.handoff, 0, "one worker hands nothing over");
}

#[test]
fn a_hand_off_costs_both_workers_and_is_booked_to_the_hand_off_phase() {
    let kernels = [
        FakeKernel::new(2, FakeMode::Copy),
        FakeKernel::new(2, FakeMode::Copy),
    ];
    let handoff = Arc::new(Handoff::new(2));
    let mut w = [0, 1].map(|i| {
        let mut w = worker_with(&kernels[i], i, shared());
        w.set_handoff(handoff.clone());
        w.set_host_path(Box::new(Sink(Arc::default())));
        w
    });
    // SYNs to the router's SSH port whose flows worker 0 owns, arriving at
    // worker 1.
    let owned_by_0: Vec<u16> = (40000..u16::MAX)
        .filter(|&sport| {
            let key = dataplane::conntrack::FlowKey {
                src: WAN_GW,
                dst: WAN_ADDR,
                sport,
                dport: 22,
                proto: 6,
                icmp: 0,
            };
            dataplane::owner::owner(&key, 2) == 0
        })
        .take(20)
        .collect();
    for &sport in &owned_by_0 {
        let f = Packet::tcp(WAN_GW, WAN_ADDR, sport, 22, dataplane::wire::tcp::SYN)
            .on(WAN)
            .frame();
        assert!(kernels[1].deliver(WAN.0 as usize, &f));
    }
    w[1].poll_once();
    w[0].poll_once();
    let n = owned_by_0.len() as u64;
    let rt = [w[0].runtime(), w[1].runtime()];
    assert_eq!(w[1].loop_counters().handed_off, n);
    // Worker 1 ran them through its pipeline and handed them over, worker
    // 0 received them and delivered them to its host path.
    assert_eq!((rt[0].packets, rt[1].packets), (n, n));
    assert!(
        rt[1].cycles.handoff > 0 && rt[0].cycles.handoff > 0,
        "{rt:?}"
    );
    assert!(rt[0].cycles.host > 0 && rt[1].cycles.host == 0, "{rt:?}");
    for r in &rt {
        assert_adds_up(r);
    }
}

/// Stops the worker when dropped, also when an assertion fails first.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Polls `f` every 2 ms until it holds, for at most 5 s.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_running_worker_publishes_its_runtime_and_clears_it_on_request() {
    let kernel = FakeKernel::new(2, FakeMode::Copy);
    let sh = shared();
    let mut w = worker_with(&kernel, 0, Arc::clone(&sh));
    let n = 500u16;
    std::thread::scope(|s| {
        let h = s.spawn(|| w.run());
        let stop = StopOnDrop(&sh.stop);
        for i in 0..n {
            // The fill ring may be empty for a moment: retry, bounded.
            eventually("a free fill-ring slot", || {
                kernel.deliver(WAN.0 as usize, &transit(i))
            });
        }
        eventually("the forwarded packets in a snapshot", || {
            sh.snapshot().counters.forwarded == u64::from(n)
        });
        let snap = sh.snapshot();
        let rt = snap.runtime;
        assert_eq!(rt.packets, u64::from(n), "{rt:?}");
        assert!(rt.busy_loops > 0 && rt.busy_loops <= rt.packets, "{rt:?}");
        assert_adds_up(&rt);
        assert!(rt.cycles.idle > 0 && rt.cycles.housekeeping > 0, "{rt:?}");

        // Clearing the runtime leaves the other counters alone.
        let r = sh.ask(WorkerRequest::ClearRuntime, Duration::from_secs(5));
        assert_eq!(r, Some(WorkerReply::RuntimeCleared));
        let after = sh.snapshot();
        assert_eq!(after.runtime.packets, 0, "{:?}", after.runtime);
        assert_eq!(after.runtime.busy_loops, 0);
        assert!(after.runtime.loops < rt.loops, "{:?}", after.runtime);
        assert!(after.runtime.total_cycles < rt.total_cycles);
        assert_adds_up(&after.runtime);
        assert_eq!(after.counters.forwarded, u64::from(n));

        // More traffic counts again from zero.
        for i in 0..10 {
            eventually("a free fill-ring slot", || {
                kernel.deliver(WAN.0 as usize, &transit(n + i))
            });
        }
        eventually("the new packets in the runtime", || {
            sh.snapshot().runtime.packets == 10
        });

        // A reset of all counters clears the runtime too.
        let r = sh.ask(WorkerRequest::ResetCounters, Duration::from_secs(5));
        assert_eq!(r, Some(WorkerReply::Reset));
        let reset = sh.snapshot();
        assert_eq!((reset.runtime.packets, reset.counters.forwarded), (0, 0));
        assert_adds_up(&reset.runtime);
        drop(stop);
        h.join().expect("worker thread").expect("worker ran");
    });
    let rt = w.runtime();
    assert_adds_up(&rt);
}
