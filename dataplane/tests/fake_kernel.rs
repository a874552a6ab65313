//! The worker loop and the AF_XDP ring layer against a fake kernel
//! (`dataplane::xsk::fake`): behaviour veth never shows, as zero-copy NICs
//! and failing links show it. No root, no namespaces.

mod support;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use dataplane::worker::{Handoff, HostPath, TablesSlot, Worker, WorkerConfig, WorkerShared};
use dataplane::xsk::fake::{FakeKernel, FakeMode};
use dataplane::xsk::{FrameRef, WorkerPorts};
use support::*;

const UMEM_FRAMES: u32 = 4096;
const FRAME_SIZE: u32 = 2048;
const BURST: usize = 64;

fn worker(kernel: &FakeKernel) -> Worker {
    let ports = WorkerPorts::open_fake(kernel, UMEM_FRAMES, FRAME_SIZE).expect("fake ports");
    let shared = WorkerShared::new(
        Arc::new(AtomicBool::new(false)),
        Arc::new(TablesSlot::new(tables())),
    );
    let cfg = WorkerConfig {
        index: 0,
        core: None,
        burst: BURST,
        busy_poll: false,
    };
    Worker::new(cfg, ports, Arc::new(shared)).expect("worker")
}

/// Transit from the WAN to the LAN, told apart by its source port.
fn transit(seq: u16) -> Vec<u8> {
    Packet::udp(OUTSIDE, INSIDE, seq, 53).on(WAN).frame()
}

/// The UDP source port of a frame the router sent.
fn sport(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[34], frame[35]])
}

fn assert_balanced(w: &Worker) {
    let c = w.ports().frames_accounted();
    assert!(c.balanced(), "frame census does not balance: {c:?}");
}

/// Runs the loop (and a zero-copy driver) until nothing is left in flight.
fn settle(w: &mut Worker, kernel: &FakeKernel) {
    for _ in 0..100 {
        w.poll_once();
        for p in 0..kernel.len() {
            kernel.nic(p);
        }
        if w.ports().frames_accounted().tx == 0 {
            return;
        }
    }
    panic!("frames stay in flight: {:?}", w.ports().frames_accounted());
}

#[test]
fn a_long_run_with_need_wakeup_clear_loses_no_frame_and_never_starves_the_fill_ring() {
    let kernel = FakeKernel::new(2, FakeMode::ZeroCopy);
    // Completions come one driver step late, so descriptors are always in
    // flight and the TX ring's NEED_WAKEUP stays clear, as on mlx5.
    kernel.delay_completions(LAN.0 as usize, 1);
    let mut w = worker(&kernel);
    let (rounds, per_round) = (3000u32, 32u16);
    let mut sent = 0usize;
    let mut flag_clear = 0u32;
    for round in 0..rounds {
        for i in 0..per_round {
            let seq = (round as u16).wrapping_mul(per_round).wrapping_add(i);
            assert!(
                kernel.deliver(WAN.0 as usize, &transit(seq)),
                "round {round}: the fill ring ran dry: {:?}",
                kernel.stats(WAN.0 as usize)
            );
        }
        w.poll_once();
        sent += kernel.nic(LAN.0 as usize);
        flag_clear += u32::from(!kernel.tx_needs_wakeup(LAN.0 as usize));
    }
    settle(&mut w, &kernel);
    sent += kernel.stats(LAN.0 as usize).sent as usize - sent;
    let delivered = (rounds * u32::from(per_round)) as usize;
    assert!(
        flag_clear >= rounds - 1,
        "the driver kept NEED_WAKEUP clear"
    );
    assert_eq!(kernel.stats(WAN.0 as usize).fill_ring_empty, 0);
    assert_eq!(sent, delivered, "every received frame was sent");
    let lan = w.ports().port_stats(LAN.0 as usize);
    assert_eq!((lan.tx_ring_full, w.loop_counters().tx_ring_full), (0, 0));
    assert_eq!(w.pipeline().counters().forwarded, delivered as u64);
    let out = kernel.take_sent(LAN.0 as usize);
    assert_eq!(&out[0][..6], &LAN_GW_MAC.0, "rewritten for the next hop");
    assert_balanced(&w);
}

#[test]
fn a_kick_that_always_fails_ends_in_counted_drops_not_a_stuck_router() {
    let kernel = FakeKernel::new(2, FakeMode::Copy);
    kernel.fail_kicks(LAN.0 as usize, Some(libc::EINVAL));
    let mut w = worker(&kernel);
    let rounds = 200u16;
    for round in 0..rounds {
        for i in 0..32 {
            assert!(
                kernel.deliver(WAN.0 as usize, &transit(round * 32 + i)),
                "round {round}: the router stopped receiving"
            );
        }
        w.poll_once();
        if round % 16 == 0 {
            w.housekeeping();
        }
    }
    let lan = w.ports().port_stats(LAN.0 as usize);
    let delivered = u64::from(rounds) * 32;
    assert_eq!(kernel.stats(LAN.0 as usize).sent, 0);
    assert!(lan.tx_kick_errors > 0);
    // The TX ring holds what it can; everything else is a counted drop.
    assert!(lan.tx_ring_full > 0);
    assert_eq!(lan.tx_packets + lan.tx_ring_full, delivered);
    assert_eq!(w.loop_counters().tx_ring_full, lan.tx_ring_full);
    assert_eq!(kernel.stats(WAN.0 as usize).fill_ring_empty, 0);
    assert_balanced(&w);
}

#[test]
fn link_down_then_up_sends_no_stale_packet() {
    let kernel = FakeKernel::new(2, FakeMode::Copy);
    let lan = LAN.0 as usize;
    let mut w = worker(&kernel);
    let send = |w: &mut Worker, seqs: std::ops::Range<u16>| {
        for s in seqs {
            assert!(kernel.deliver(WAN.0 as usize, &transit(s)));
        }
        w.poll_once();
    };
    send(&mut w, 0..10);
    assert_eq!(kernel.take_sent(lan).len(), 10);

    kernel.set_link(lan, false);
    send(&mut w, 10..20); // the kick finds the link down
    send(&mut w, 20..30); // the port is known to be down
    let st = w.ports().port_stats(lan);
    assert!(!w.ports().link_up(lan));
    assert_eq!((st.tx_link_down, st.link_down_events), (20, 1));
    assert_eq!(st.tx_packets, 10, "only what left counts as sent");
    assert_eq!(
        w.ports().frames_accounted().tx,
        0,
        "nothing parked in the TX ring"
    );
    assert_balanced(&w);

    kernel.set_link(lan, true);
    w.housekeeping();
    assert!(w.ports().link_up(lan), "a probe brings the port back");
    send(&mut w, 30..40);
    let after: Vec<u16> = kernel.take_sent(lan).iter().map(|f| sport(f)).collect();
    assert_eq!(after, (30..40).collect::<Vec<_>>(), "no stale packet left");
    assert_balanced(&w);
}

#[test]
fn a_device_that_goes_away_leaks_no_frame() {
    let kernel = FakeKernel::new(2, FakeMode::Copy);
    let lan = LAN.0 as usize;
    let mut w = worker(&kernel);
    kernel.remove_device(lan);
    for s in 0..40 {
        assert!(kernel.deliver(WAN.0 as usize, &transit(s)));
    }
    w.poll_once();
    let st = w.ports().port_stats(lan);
    assert_eq!(st.tx_link_down, 40);
    // Nothing waits for a completion that will never come: drain is done
    // at once, every frame is back.
    assert_eq!(w.ports().frames_accounted().tx, 0);
    w.drain(Duration::from_millis(500));
    assert_balanced(&w);
}

#[test]
fn one_bad_frame_does_not_cut_the_burst() {
    let kernel = FakeKernel::new(1, FakeMode::Copy);
    let mut ports = WorkerPorts::open_fake(&kernel, 256, FRAME_SIZE).expect("fake ports");
    let mut burst = Vec::new();
    for i in 0..3u16 {
        let addr = ports.alloc().expect("a free frame");
        let f = transit(i);
        ports.frame_mut(addr)[..f.len()].copy_from_slice(&f);
        burst.push(FrameRef {
            addr,
            len: f.len() as u32,
        });
    }
    // The middle frame claims more bytes than its frame has.
    burst[1].len = FRAME_SIZE + 10;
    let r = ports.tx_burst(0, &burst);
    assert_eq!((r.sent, r.bad, r.ring_full), (2, 1, 0));
    let sent: Vec<u16> = kernel.take_sent(0).iter().map(|f| sport(f)).collect();
    assert_eq!(sent, vec![0, 2]);
    assert_eq!(ports.port_stats(0).tx_bad_frames, 1);
    ports.housekeeping();
    assert!(ports.frames_accounted().balanced());
    assert_eq!(ports.frames_accounted().held, 0, "the bad frame was freed");
}

#[test]
#[should_panic(expected = "does not hold")]
fn a_double_free_is_caught() {
    let kernel = FakeKernel::new(1, FakeMode::Copy);
    let mut ports = WorkerPorts::open_fake(&kernel, 256, FRAME_SIZE).expect("fake ports");
    let addr = ports.alloc().expect("a free frame");
    ports.free(addr);
    ports.free(addr);
}

#[test]
#[should_panic(expected = "not held by the caller")]
fn a_frame_the_kernel_owns_cannot_be_touched() {
    let kernel = FakeKernel::new(1, FakeMode::Copy);
    let mut ports = WorkerPorts::open_fake(&kernel, 256, FRAME_SIZE).expect("fake ports");
    // Frame 0 went to the fill ring at start: the kernel owns it.
    ports.frame_mut(0)[0] = 1;
}

/// A host path whose kernel sends `left` packets to the LAN gateway.
struct Chatty {
    left: usize,
}

impl HostPath for Chatty {
    fn deliver(&mut self, _ip_packet: &[u8]) -> bool {
        true
    }
    fn has_packet(&self) -> bool {
        self.left > 0
    }
    fn receive(&mut self, buf: &mut [u8]) -> Option<usize> {
        self.left = self.left.checked_sub(1)?;
        let p = Packet::udp(LAN_ADDR, LAN_GW, 5000 + self.left as u16, 53).ip_bytes();
        buf[..p.len()].copy_from_slice(&p);
        Some(p.len())
    }
}

#[test]
fn tx_queues_hold_the_worst_loop_without_growing() {
    let kernel = FakeKernel::new(2, FakeMode::Copy);
    let mut w = worker(&kernel);
    w.set_host_path(Box::new(Chatty { left: BURST }));
    let before = w.tx_queue_capacity();
    // One loop in which a burst from each port and one from the host path
    // all leave by the LAN.
    for i in 0..BURST as u16 {
        assert!(kernel.deliver(WAN.0 as usize, &transit(i)));
        let hairpin = Packet::udp(LAN_HOST, INSIDE, 2000 + i, 53).on(LAN).frame();
        assert!(kernel.deliver(LAN.0 as usize, &hairpin));
    }
    w.poll_once();
    assert_eq!(
        w.tx_queue_capacity(),
        before,
        "a TX queue grew on the packet path"
    );
    assert_eq!(kernel.take_sent(LAN.0 as usize).len(), 3 * BURST);
    assert_balanced(&w);
}

/// A host path that keeps what it is given.
struct Keeper(Delivered);

impl HostPath for Keeper {
    fn deliver(&mut self, ip_packet: &[u8]) -> bool {
        self.0.lock().unwrap().push(ip_packet.to_vec());
        true
    }
}

/// What a host path was given.
type Delivered = Arc<std::sync::Mutex<Vec<Vec<u8>>>>;

/// Two workers, each on its own fake kernel (its queue of both ports),
/// sharing one set of hand-off queues, each with a host path.
fn two_workers() -> ([FakeKernel; 2], [Worker; 2], [Delivered; 2]) {
    let kernels = [
        FakeKernel::new(2, FakeMode::Copy),
        FakeKernel::new(2, FakeMode::Copy),
    ];
    let handoff = Arc::new(Handoff::new(2));
    let hosts = [Arc::default(), Arc::default()];
    let workers = [0, 1].map(|i| {
        let ports = WorkerPorts::open_fake(&kernels[i], UMEM_FRAMES, FRAME_SIZE).unwrap();
        let shared = WorkerShared::new(
            Arc::new(AtomicBool::new(false)),
            Arc::new(TablesSlot::new(tables())),
        );
        let cfg = WorkerConfig {
            index: i,
            core: None,
            burst: BURST,
            busy_poll: false,
        };
        let mut w = Worker::new(cfg, ports, Arc::new(shared)).unwrap();
        w.set_handoff(handoff.clone());
        w.set_host_path(Box::new(Keeper(Arc::clone(&hosts[i]))));
        w
    });
    (kernels, workers, hosts)
}

/// A SYN to the router's port 22 from `sport`, and the worker owning it.
fn syn(sport: u16) -> (Vec<u8>, usize) {
    let key = dataplane::conntrack::FlowKey {
        src: WAN_GW,
        dst: WAN_ADDR,
        sport,
        dport: 22,
        proto: 6,
        icmp: 0,
    };
    let f = Packet::tcp(WAN_GW, WAN_ADDR, sport, 22, dataplane::wire::tcp::SYN)
        .on(WAN)
        .frame();
    (f, dataplane::owner::owner(&key, 2))
}

#[test]
fn a_tracked_packet_on_the_wrong_worker_is_handed_to_its_owner() {
    let (kernels, mut w, hosts) = two_workers();
    // Flows owned by each worker, all arriving on the other one.
    let flows: Vec<(Vec<u8>, usize)> = (40000..40040).map(syn).collect();
    assert!(flows.iter().any(|f| f.1 == 0) && flows.iter().any(|f| f.1 == 1));
    for (f, owner) in &flows {
        assert!(kernels[1 - owner].deliver(WAN.0 as usize, f));
    }
    // Transit is never handed over: each worker forwards what it received.
    for i in 0..8 {
        assert!(kernels[i % 2].deliver(WAN.0 as usize, &transit(i as u16)));
    }
    for _ in 0..3 {
        w[0].poll_once();
        w[1].poll_once();
    }
    let lc = [w[0].loop_counters(), w[1].loop_counters()];
    let per = |o: usize| flows.iter().filter(|f| f.1 == o).count() as u64;
    assert_eq!((lc[0].handed_off, lc[1].handed_in), (per(1), per(1)));
    assert_eq!((lc[1].handed_off, lc[0].handed_in), (per(0), per(0)));
    for i in 0..2 {
        // Each owner delivered its flows' SYNs and tracks them.
        assert_eq!(hosts[i].lock().unwrap().len() as u64, per(i));
        assert_eq!(w[i].pipeline().conntrack().len() as u64, per(i));
        assert_eq!(kernels[i].take_sent(LAN.0 as usize).len(), 4, "transit");
        assert_eq!(w[i].pipeline().counters().forwarded, 4);
        assert_balanced(&w[i]);
    }
    // Every packet is counted once, by the worker that decided it.
    let rx: u64 = w
        .iter()
        .map(|w| w.pipeline().counters().rx[WAN.0 as usize].packets)
        .sum();
    assert_eq!(rx, flows.len() as u64 + 8);
}

#[test]
fn a_full_hand_off_queue_drops_and_counts() {
    let (kernels, mut w, _hosts) = two_workers();
    let sports: Vec<u16> = (1000..u16::MAX)
        .filter(|&p| syn(p).1 == 0)
        .take(1100)
        .collect();
    // Worker 0 never runs: its queue fills.
    for batch in sports.chunks(BURST) {
        for &p in batch {
            assert!(kernels[1].deliver(WAN.0 as usize, &syn(p).0));
        }
        w[1].poll_once();
    }
    let lc = w[1].loop_counters();
    assert_eq!(
        lc.handed_off,
        dataplane::worker::handoff::HANDOFF_QUEUE as u64
    );
    assert_eq!(lc.handoff_full, sports.len() as u64 - lc.handed_off);
    let c = w[1].pipeline().counters();
    assert_eq!(
        c.drops[dataplane::drop::DropReason::HandoffQueueFull as usize],
        lc.handoff_full
    );
    assert_balanced(&w[1]);
}

#[test]
fn a_neighbour_learned_by_one_worker_is_known_to_all() {
    let (kernels, mut w, _hosts) = two_workers();
    let (mac, addr) = (
        dataplane::addr::Mac([2, 0, 0, 0, 0x55, 1]),
        ip(198, 18, 0, 50),
    );
    // An ARP request for the router reaches worker 0's queue only.
    let req = arp_frame(dataplane::addr::Mac::BROADCAST, 1, mac, addr, WAN_ADDR);
    assert!(kernels[0].deliver(WAN.0 as usize, &req));
    w[0].poll_once();
    assert!(w[0].pipeline().neighbours().get(addr).is_some());
    assert!(w[1].pipeline().neighbours().get(addr).is_none());
    w[1].poll_once();
    let n = w[1]
        .pipeline()
        .neighbours()
        .get(addr)
        .expect("worker 1 learned it");
    assert_eq!((n.mac, n.port), (mac, WAN));
}

/// A worker that does not look for a while (its core taken by another
/// thread, a sleep of the idle back-off) must leave every frame it can
/// spare in the kernel's receive side: a burst the kernel cannot place
/// ("fill ring empty") while frames sit on the free stack is a drop the
/// router chose. So the kernel may find the fill ring empty only once the
/// free stack is down to the reserve kept for generated packets, and the
/// fill rings are topped up again once the worker runs.
#[test]
fn a_stalled_worker_leaves_no_frame_on_the_free_stack_that_the_fill_ring_could_use() {
    for umem in [4096u32, 16384] {
        let kernel = FakeKernel::new(2, FakeMode::Copy);
        let mut w = {
            let ports = WorkerPorts::open_fake(&kernel, umem, FRAME_SIZE).expect("fake ports");
            let shared = WorkerShared::new(
                Arc::new(AtomicBool::new(false)),
                Arc::new(TablesSlot::new(tables())),
            );
            let cfg = WorkerConfig {
                index: 0,
                core: None,
                burst: BURST,
                busy_poll: false,
            };
            Worker::new(cfg, ports, Arc::new(shared)).expect("worker")
        };
        let reserve = w.ports().alloc_reserve();
        let ring = w.ports().ring_size();
        let at_rest = w.ports().frames_accounted();
        assert!(reserve < umem / 4, "umem {umem}: reserve {reserve}");
        assert!(
            at_rest.free == reserve || w.ports().fill_target() == ring,
            "umem {umem}: frames stay on the free stack while the fill rings have room: \
             {at_rest:?}, ring {ring}, reserve {reserve}"
        );
        // The worker stalls; the kernel delivers until it cannot.
        let mut placed = 0u32;
        while kernel.deliver(WAN.0 as usize, &transit(placed as u16)) {
            placed += 1;
            assert!(placed <= umem, "umem {umem}: more frames than the UMEM");
        }
        // The kernel's first refusal: no fill frame (or, where the fill
        // target is the ring size, no room left in the RX ring either).
        let stats = kernel.stats(WAN.0 as usize);
        assert_eq!(
            stats.fill_ring_empty + stats.rx_ring_full,
            1,
            "umem {umem}: {stats:?}"
        );
        let c = w.ports().frames_accounted();
        assert!(
            c.free <= reserve || placed == ring,
            "umem {umem}: the kernel refused a frame with {} frames free (reserve {reserve}) \
             and only {placed} of the ring's {ring} in the receive side: {c:?}",
            c.free
        );
        assert_eq!(
            placed,
            w.ports().fill_target(),
            "umem {umem}: the stalled port absorbed its whole fill target"
        );
        // The default 16384 frames fill the kernel's 4096-entry rings.
        if umem == 16384 {
            assert_eq!((placed, ring), (4096, 4096));
        }
        // The worker runs again: everything is forwarded, the fill ring is
        // full again and nothing more is dropped.
        for _ in 0..(placed as usize / 32 + 8) {
            w.poll_once();
        }
        settle(&mut w, &kernel);
        w.housekeeping();
        assert_eq!(
            w.pipeline().counters().forwarded,
            u64::from(placed),
            "umem {umem}"
        );
        assert_eq!(w.ports().frames_accounted(), at_rest, "umem {umem}");
        for i in 0..placed {
            assert!(
                kernel.deliver(WAN.0 as usize, &transit(i as u16)),
                "umem {umem}: frame {i} of a second burst found the fill ring empty"
            );
        }
        let again = kernel.stats(WAN.0 as usize);
        assert_eq!(again.fill_ring_empty + again.rx_ring_full, 1, "{again:?}");
        assert_balanced(&w);
    }
}
