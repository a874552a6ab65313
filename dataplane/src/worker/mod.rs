//! Poll-mode workers: one per configured core, each owning queue *i* of every
//! port (one [`WorkerPorts`] over a shared UMEM) and its own [`Pipeline`].
//!
//! The loop has the l3fwd shape: RX a burst from every port, run it through
//! the pipeline, queue each frame for its output port, flush the TX queues
//! (one kick per port per loop), and every [`HOUSEKEEPING_LOOPS`] loops (or
//! when idle) do housekeeping: expire flows, reap completions, pick up new
//! tables, publish a counters snapshot.
//!
//! Forwarding copies no packet bytes: the frame received on one port is the
//! frame sent on the other (the ports of a worker share one UMEM). Frames a
//! full TX ring does not take are freed and counted `tx_ring_full`. The one
//! copy is a hand-off ([`handoff`]): a tracked packet of a flow another
//! worker owns leaves as a copy of its bytes, and its frame stays here, so
//! every frame is always in one place of its own worker.
//!
//! Never on the packet path: allocation, locks, or a syscall per packet. The
//! control side talks to a worker only through [`WorkerShared`]: a stop flag,
//! a tables slot (an `Arc` swapped under a lock, noticed through an atomic
//! generation at housekeeping), the snapshot the worker publishes, requests
//! (list or flush the connection table, reset the counters: counters the
//! worker compares at housekeeping, [`WorkerShared::ask`]) and the trace hub
//! (one atomic load per burst while no trace or capture is armed,
//! [`process_burst_traced`]; the slow path is in `tap.rs`).
//!
//! Files: this one holds the loop; [`shared`] the control handshake
//! ([`TablesSlot`], [`WorkerShared`], requests and their answers);
//! [`snapshot`] the counters a worker publishes and [`Tally`], which adds
//! and subtracts counter sets field by field; [`runtime`] the cycles of
//! each phase of the loop (RX, pipeline, TX, host path, hand-offs,
//! housekeeping, idle), read from the TSC at each change of phase.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smallvec::SmallVec;

use crate::conntrack::CtCounters;
use crate::drop::DropReason;
use crate::neighbour::PENDING_SLOTS;
use crate::packet::{Pkt, PortId, Verdict, ETH_HDR_LEN};
use crate::pipeline::Pipeline;
use crate::trace_capture::{TraceHub, TraceTap};
use crate::xsk::{FrameRef, PortStats, WorkerPorts};

pub mod handoff;
pub mod runtime;
pub mod shared;
pub mod snapshot;
mod tap;

pub use handoff::Handoff;
pub use runtime::{Phase, PhaseCycles, RuntimeClock, RuntimeCounters};
pub use shared::{TablesSlot, WorkerReply, WorkerRequest, WorkerShared};
pub use snapshot::{aggregate, LoopCounters, Tally, WorkerSnapshot};

/// Loops between two housekeeping rounds while busy.
pub const HOUSEKEEPING_LOOPS: u64 = 1024;
/// Empty loops spent spinning before the worker starts to sleep.
pub const IDLE_SPIN_LOOPS: u32 = 512;
/// Longest an idle worker sleeps before it polls again (`poll(2)` returns as
/// soon as a frame arrives, so this bounds only the housekeeping delay).
pub const IDLE_MAX_SLEEP: Duration = Duration::from_millis(1);
/// Shortest interval between two published snapshots.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_millis(100);
/// Connection-table entries examined per housekeeping round.
pub const GC_BUDGET: usize = 256;
/// Frames handed to the pipeline at once (a burst is cut into chunks of
/// this size so that the per-chunk arrays live on the stack).
const CHUNK: usize = 64;
/// Largest burst a worker takes per port.
pub const MAX_BURST: usize = 256;

/// The host path (the TUN, [`crate::host`]): where packets for the router
/// itself go, and where the packets the router's kernel sends come from.
/// Without one, packets for the router are freed and counted as the drop
/// `host_unavailable`. Implementations must not block, allocate or make a
/// syscall: the worker calls them on its loop.
pub trait HostPath: Send {
    /// Hands one IP packet (no Ethernet header) to the host; `false` when it
    /// could not be taken (counted as `host_unavailable`).
    fn deliver(&mut self, ip_packet: &[u8]) -> bool;

    /// Whether a packet from the host waits (checked every loop: keep it to
    /// an atomic load).
    fn has_packet(&self) -> bool {
        false
    }

    /// Copies the next IP packet from the host into `buf`; its length, or
    /// `None` when none waits.
    fn receive(&mut self, _buf: &mut [u8]) -> Option<usize> {
        None
    }
}

/// Most connection-table entries listed in the final snapshot.
pub const MAX_LISTED_FLOWS: usize = 65_536;

/// A worker's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Worker index (serves queue `index` of every port).
    pub index: usize,
    /// Core to pin the worker thread to; `None` leaves it unpinned.
    pub core: Option<usize>,
    /// Frames per RX burst, 1..=[`MAX_BURST`].
    pub burst: usize,
    /// Never sleep when idle (burns the core, lowest latency).
    pub busy_poll: bool,
}

/// Why a worker could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerError {
    /// The configured core does not exist (or is not in this process's
    /// CPU set); `available` is the number of usable cores.
    NoSuchCore { core: usize, available: usize },
    /// The kernel refused to pin the thread.
    PinFailed { core: usize },
    /// The ports do not match the tables' interfaces.
    PortCount { ports: usize, interfaces: usize },
}

impl std::fmt::Display for WorkerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            WorkerError::NoSuchCore { core, available } => write!(
                f,
                "core {core} does not exist here ({available} usable cores: 0..={}): fix \
                 dataplane.workers",
                available.saturating_sub(1)
            ),
            WorkerError::PinFailed { core } => write!(
                f,
                "cannot pin a worker to core {core}: is it outside this process's CPU set \
                 (taskset, cgroup cpuset)?"
            ),
            WorkerError::PortCount { ports, interfaces } => write!(
                f,
                "a worker has {ports} ports but the tables have {interfaces} interfaces"
            ),
        }
    }
}

impl std::error::Error for WorkerError {}

/// Checks that `core` exists and is usable by this process.
pub fn check_core(core: usize) -> Result<core_affinity::CoreId, WorkerError> {
    let ids = core_affinity::get_core_ids().unwrap_or_default();
    ids.iter()
        .copied()
        .find(|c| c.id == core)
        .ok_or(WorkerError::NoSuchCore {
            core,
            available: ids.len(),
        })
}

/// Pins the calling thread to `core`.
pub fn pin_current_thread(core: usize) -> Result<(), WorkerError> {
    let id = check_core(core)?;
    if core_affinity::set_for_current(id) {
        Ok(())
    } else {
        Err(WorkerError::PinFailed { core })
    }
}

/// One poll-mode worker: its ports, pipeline and loop state.
pub struct Worker {
    cfg: WorkerConfig,
    ports: WorkerPorts,
    pipeline: Pipeline,
    shared: Arc<WorkerShared>,
    host: Option<Box<dyn HostPath>>,
    /// The other workers' hand-off queues and ours (several workers only).
    handoff: Option<Arc<Handoff>>,
    trace: WorkerTrace,
    tables_generation: u64,
    rx: Vec<FrameRef>,
    /// The arrival port of each packet in `rx` taken from the hand-off queue.
    rx_ports: Vec<PortId>,
    /// Frames waiting for each output port in this loop.
    txq: Vec<Vec<FrameRef>>,
    lc: LoopCounters,
    /// Loops, packets and cycles by phase ([`runtime`]).
    rt: RuntimeClock,
    /// Port and connection-table counters at the last reset (the kernel's
    /// and the sockets' counters cannot be zeroed: they are subtracted).
    port_base: Vec<PortStats>,
    ct_base: CtCounters,
    epoch: Instant,
    last_publish: Instant,
}

/// A worker's side of live traces.
struct WorkerTrace {
    tap: TraceTap,
    hub: Arc<TraceHub>,
    worker: usize,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("cfg", &self.cfg)
            .field("ports", &self.ports)
            .field("loops", &self.lc)
            .finish()
    }
}

impl Worker {
    /// A worker over `ports` (port *p* of `ports` is `PortId(p)`, i.e.
    /// interface *p* of the tables) with the tables currently in the slot.
    pub fn new(
        cfg: WorkerConfig,
        ports: WorkerPorts,
        shared: Arc<WorkerShared>,
    ) -> Result<Worker, WorkerError> {
        let (generation, tables) = shared.tables.load();
        if ports.len() != tables.interfaces.len() {
            return Err(WorkerError::PortCount {
                ports: ports.len(),
                interfaces: tables.interfaces.len(),
            });
        }
        let burst = cfg.burst.clamp(1, MAX_BURST);
        let n = ports.len();
        let now = Instant::now();
        let trace = WorkerTrace {
            tap: TraceTap::default(),
            hub: Arc::clone(&shared.trace),
            worker: cfg.index,
        };
        let mut w = Worker {
            cfg: WorkerConfig { burst, ..cfg },
            ports,
            pipeline: Pipeline::new(tables),
            shared,
            host: None,
            handoff: None,
            trace,
            tables_generation: generation,
            rx: vec![FrameRef::default(); burst],
            rx_ports: vec![PortId(0); burst],
            txq: (0..n)
                .map(|_| Vec::with_capacity(tx_queue_len(burst, n)))
                .collect(),
            lc: LoopCounters::default(),
            rt: RuntimeClock::default(),
            port_base: Vec::new(),
            ct_base: CtCounters::default(),
            epoch: now,
            last_publish: now,
        };
        w.set_clock();
        w.publish(false);
        Ok(w)
    }

    /// Attaches the host path (the TUN, [`crate::host::HostThread::port`]).
    pub fn set_host_path(&mut self, host: Box<dyn HostPath>) {
        self.host = Some(host);
    }

    /// Joins the workers that share `handoff` (built for all of them):
    /// tracked packets of flows another worker owns go to it through its
    /// queue, and this worker takes the packets handed to it.
    pub fn set_handoff(&mut self, handoff: Arc<Handoff>) {
        self.pipeline.set_worker(self.cfg.index, handoff.workers());
        self.handoff = Some(handoff);
    }

    /// The pipeline (counters, conntrack).
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The ports.
    pub fn ports(&self) -> &WorkerPorts {
        &self.ports
    }

    /// Loop counters.
    pub fn loop_counters(&self) -> LoopCounters {
        self.lc
    }

    /// Runtime accounting: loops, packets, cycles by phase.
    pub fn runtime(&self) -> RuntimeCounters {
        self.rt.counters()
    }

    /// The capacity of each output port's TX queue (sized once for the
    /// worst loop, so the packet path never grows them).
    pub fn tx_queue_capacity(&self) -> Vec<usize> {
        self.txq.iter().map(Vec::capacity).collect()
    }

    /// Pins the thread (if a core is configured), then loops until the stop
    /// flag is set; drains TX and publishes a final snapshot.
    pub fn run(&mut self) -> Result<(), WorkerError> {
        if let Some(core) = self.cfg.core {
            pin_current_thread(core)?;
        }
        let mut idle: u32 = 0;
        let mut sleep = Duration::from_micros(1);
        let mut since_hk: u64 = 0;
        // Loop time starts here, not when the worker was built.
        self.rt.mark(Phase::Idle);
        self.rt.clear();
        while !self.shared.stop.load(Ordering::Relaxed) {
            let got = self.poll_once();
            since_hk += 1;
            if got > 0 {
                idle = 0;
                sleep = Duration::from_micros(1);
                if since_hk >= HOUSEKEEPING_LOOPS {
                    since_hk = 0;
                    self.housekeeping();
                }
                continue;
            }
            idle = idle.saturating_add(1);
            if self.cfg.busy_poll || idle < IDLE_SPIN_LOOPS {
                if since_hk >= HOUSEKEEPING_LOOPS {
                    since_hk = 0;
                    self.housekeeping();
                }
                continue;
            }
            // Idle: housekeeping, then back off as Grout does, with growing
            // sleeps; at the longest, wait in poll(2), which returns at the
            // first frame.
            since_hk = 0;
            self.housekeeping();
            self.lc.idle_waits += 1;
            if sleep < IDLE_MAX_SLEEP {
                std::thread::sleep(sleep);
                sleep = (sleep * 2).min(IDLE_MAX_SLEEP);
            } else {
                self.ports.wait_rx(IDLE_MAX_SLEEP);
            }
            self.rt.mark(Phase::Idle);
        }
        self.drain(Duration::from_millis(500));
        self.publish(true);
        Ok(())
    }

    /// One loop iteration: RX a burst from every port, pipeline, TX. Returns
    /// the frames received.
    pub fn poll_once(&mut self) -> usize {
        self.lc.loops += 1;
        self.rt.loops += 1;
        self.set_clock();
        // Completions first, whatever the TX rings' NEED_WAKEUP says.
        self.ports.complete();
        let me = self.cfg.index;
        let Worker {
            ports,
            pipeline,
            host,
            handoff,
            trace,
            rx,
            rx_ports,
            txq,
            lc,
            rt,
            ..
        } = self;
        let mut st = Stages {
            ports,
            pipeline,
            trace,
            host,
            handoff: handoff.as_deref(),
            txq,
            lc,
            rt,
        };
        let mut total = 0;
        for p in 0..st.ports.len() {
            let n = st.ports.rx_burst(p, rx);
            if n == 0 {
                continue;
            }
            // Polling since the loop began or the last chunk.
            st.rt.mark(Phase::Rx);
            total += n;
            for chunk in rx[..n].chunks(CHUNK) {
                st.run_chunk(PortId(p as u8), chunk);
            }
        }
        if total > 0 {
            // The polls after the last busy port.
            st.rt.mark(Phase::Rx);
        }
        // Packets other workers handed over (slow path: a copy each into a
        // fresh frame), run in groups of the same arrival port.
        if st.handoff.is_some_and(|h| h.has_packet(me)) {
            let n = st.receive_handed(me, rx, rx_ports);
            st.rt.mark(Phase::Handoff);
            total += n;
            let mut start = 0;
            while start < n {
                let port = rx_ports[start];
                let mut end = start + 1;
                while end < n && end - start < CHUNK && rx_ports[end] == port {
                    end += 1;
                }
                st.run_chunk(port, &rx[start..end]);
                start = end;
            }
        }
        // Packets the router's kernel sends (slow path: a copy each from the
        // host path's buffer into a fresh frame).
        if st.host.as_ref().is_some_and(|h| h.has_packet()) {
            let n = receive_from_host(st.ports, st.host, rx);
            st.rt.mark(Phase::Host);
            if n > 0 {
                total += n;
                for chunk in rx[..n].chunks(CHUNK) {
                    st.run_chunk(PortId::HOST, chunk);
                }
            }
        }
        let Stages {
            ports,
            pipeline,
            txq,
            handoff,
            rt,
            trace,
            ..
        } = st;
        // Neighbours: what this loop learned from ARP and NDP goes to the
        // other workers, what they learned comes here.
        if let Some(h) = handoff {
            if pipeline.has_learned() {
                pipeline.take_learned(|a, mac, port| h.publish_neighbour(me, a, mac, port));
                pipeline.take_learned6(|a, mac, port| h.publish_neighbour6(me, a, mac, port));
            }
            while let Some((a, mac, port)) = h.learned_neighbour(me) {
                pipeline.learn_neighbour(a, mac, port);
            }
            while let Some((a, mac, port)) = h.learned_neighbour6(me) {
                pipeline.learn_neighbour6(a, mac, port);
            }
        }
        // Packets that waited for ARP or NDP, their retries, and router
        // advertisements (slow path: a copy into a fresh frame each).
        if pipeline.has_pending() {
            let cap = tap::pending_capture(&mut trace.tap, &trace.hub, pipeline);
            pipeline.drain_pending(|bytes, port| {
                let Some(q) = txq.get_mut(port.0 as usize) else {
                    return true;
                };
                let Some(addr) = ports.alloc() else {
                    return false;
                };
                let buf = ports.frame_mut(addr);
                if bytes.len() > buf.len() {
                    ports.free(addr);
                    return true;
                }
                buf[..bytes.len()].copy_from_slice(bytes);
                q.push(FrameRef {
                    addr,
                    len: bytes.len() as u32,
                });
                if let Some(c) = &cap {
                    tap::capture_pending(c, &trace.hub, me, bytes, port);
                }
                true
            });
            rt.mark(Phase::Pipeline);
        }
        if total > 0 {
            self.lc.busy_loops += 1;
            self.rt.busy_loops += 1;
            self.rt.packets += total as u64;
        }
        // A loop that moved nothing is idle time, whatever it polled.
        let sent = self.flush_tx();
        self.rt.mark(if total > 0 || sent {
            Phase::Tx
        } else {
            Phase::Idle
        });
        total
    }

    /// Sends what the loop queued, one `tx_burst` (one kick) per port;
    /// whether there was anything to send.
    fn flush_tx(&mut self) -> bool {
        let mut any = false;
        for (q, frames) in self.txq.iter_mut().enumerate() {
            if frames.is_empty() {
                continue;
            }
            any = true;
            // What the port could not send it freed and counted.
            let r = self.ports.tx_burst(q, frames);
            self.lc.tx_ring_full += r.ring_full as u64;
            frames.clear();
        }
        any
    }

    fn set_clock(&mut self) {
        let secs = self.epoch.elapsed().as_secs().min(u64::from(u32::MAX - 1)) as u32;
        self.pipeline.set_now(secs + 1);
    }

    /// Flows and neighbours expire, rings are tended, new tables adopted,
    /// and a snapshot is published at most every [`SNAPSHOT_INTERVAL`].
    pub fn housekeeping(&mut self) {
        self.lc.housekeeping += 1;
        self.set_clock();
        self.pipeline.housekeeping(GC_BUDGET);
        self.ports.housekeeping();
        if self.shared.tables.generation() != self.tables_generation {
            let (generation, tables) = self.shared.tables.load();
            if tables.interfaces.len() == self.ports.len() {
                self.pipeline.set_tables(tables);
                self.lc.tables_swaps += 1;
            }
            self.tables_generation = generation;
        }
        if self.answer_requests() || self.last_publish.elapsed() >= SNAPSHOT_INTERVAL {
            self.publish(false);
        }
        self.rt.mark(Phase::Housekeeping);
    }

    /// Lets the kernel finish sending: housekeeping until no frame is in a
    /// TX or completion ring, or `limit` passed.
    pub fn drain(&mut self, limit: Duration) {
        let start = Instant::now();
        loop {
            self.ports.housekeeping();
            if self.ports.frames_accounted().tx == 0 || start.elapsed() >= limit {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Most frames one loop can queue for one output port: a burst from every
/// port, a burst from the host path, and what the neighbour queue sends at
/// once (every waiting packet and an ARP request per resolution).
fn tx_queue_len(burst: usize, ports: usize) -> usize {
    burst * (ports + 1) + 2 * PENDING_SLOTS
}

/// Copies up to `out.len()` packets from the host path into fresh frames,
/// each behind the placeholder Ethernet header the pipeline expects
/// (zero MACs, ethertype IPv4). Returns how many.
fn receive_from_host(
    ports: &mut WorkerPorts,
    host: &mut Option<Box<dyn HostPath>>,
    out: &mut [FrameRef],
) -> usize {
    let Some(h) = host else {
        return 0;
    };
    let mut n = 0;
    while n < out.len() && h.has_packet() {
        // No free frame: the packets wait in the host path's queue.
        let Some(addr) = ports.alloc() else {
            break;
        };
        let buf = ports.frame_mut(addr);
        match h.receive(&mut buf[ETH_HDR_LEN..]) {
            Some(len) => {
                buf[..12].fill(0);
                buf[12..ETH_HDR_LEN].copy_from_slice(&[0x08, 0x00]);
                out[n] = FrameRef {
                    addr,
                    len: (ETH_HDR_LEN + len) as u32,
                };
                n += 1;
            }
            None => {
                ports.free(addr);
                break;
            }
        }
    }
    n
}

/// The parts of a worker one loop runs packets through: disjoint borrows
/// of its fields.
struct Stages<'a> {
    ports: &'a mut WorkerPorts,
    pipeline: &'a mut Pipeline,
    trace: &'a mut WorkerTrace,
    host: &'a mut Option<Box<dyn HostPath>>,
    handoff: Option<&'a Handoff>,
    txq: &'a mut [Vec<FrameRef>],
    lc: &'a mut LoopCounters,
    rt: &'a mut RuntimeClock,
}

impl Stages<'_> {
    /// Copies up to `out.len()` packets handed to worker `me` into fresh
    /// frames, their arrival ports into `ports_out`. Returns how many.
    fn receive_handed(
        &mut self,
        me: usize,
        out: &mut [FrameRef],
        ports_out: &mut [PortId],
    ) -> usize {
        let Some(h) = self.handoff else {
            return 0;
        };
        let mut n = 0;
        while n < out.len() {
            // No free frame: the packets wait in the queue.
            let Some(addr) = self.ports.alloc() else {
                break;
            };
            let Some(p) = h.receive(me) else {
                self.ports.free(addr);
                break;
            };
            let buf = self.ports.frame_mut(addr);
            let len = p.len.min(buf.len());
            buf[..len].copy_from_slice(&p.buf[..len]);
            out[n] = FrameRef {
                addr,
                len: len as u32,
            };
            ports_out[n] = p.port;
            h.recycle(p.buf);
            n += 1;
        }
        self.lc.handed_in += n as u64;
        n
    }

    /// Runs up to [`CHUNK`] frames of `port` through the pipeline and
    /// queues, hands over or frees each by its verdict. Packets for the
    /// host and for other workers go after the rest, so that the host path
    /// and the hand-offs are timed apart from the pipeline.
    fn run_chunk(&mut self, port: PortId, chunk: &[FrameRef]) {
        let Stages {
            ports,
            pipeline,
            trace,
            host,
            handoff,
            txq,
            lc,
            rt,
        } = self;
        let k = chunk.len();
        let mut verdicts = [Verdict::Consumed; CHUNK];
        let mut lens = [0u32; CHUNK];
        {
            let mut pkts: SmallVec<[Pkt<'_>; CHUNK]> = ports
                .frames_mut(chunk)
                .zip(chunk)
                .map(|(buf, f)| Pkt {
                    buf,
                    len: f.len as usize,
                    port,
                })
                .collect();
            process_burst_traced(
                pipeline,
                &mut trace.tap,
                &trace.hub,
                trace.worker,
                &mut pkts,
                &mut verdicts[..k],
            );
            for (len, pkt) in lens.iter_mut().zip(pkts.iter()) {
                *len = pkt.len as u32;
            }
        }
        // Indices of the Host and HandOff verdicts, done after the others.
        let mut later = [0u8; CHUNK];
        let mut n_later = 0usize;
        let done = chunk.iter().zip(&lens).zip(&verdicts[..k]);
        for (i, ((f, &len), &v)) in done.enumerate() {
            match v {
                Verdict::Tx(out) => match txq.get_mut(out.0 as usize) {
                    Some(q) => q.push(FrameRef { addr: f.addr, len }),
                    None => {
                        lc.tx_no_port += 1;
                        ports.free(f.addr);
                    }
                },
                Verdict::Host | Verdict::HandOff(_) => {
                    later[n_later] = i as u8;
                    n_later += 1;
                }
                Verdict::Consumed | Verdict::Drop(_) => ports.free(f.addr),
            }
        }
        rt.mark(Phase::Pipeline);
        if n_later == 0 {
            return;
        }
        let later = &later[..n_later];
        let frame = |i: u8| FrameRef {
            addr: chunk[i as usize].addr,
            len: lens[i as usize],
        };
        let to_host = (later.iter())
            .filter(|&&i| verdicts[i as usize] == Verdict::Host)
            .count();
        let to_worker = n_later - to_host;
        if to_host > 0 {
            for &i in later
                .iter()
                .filter(|&&i| verdicts[i as usize] == Verdict::Host)
            {
                let frame = frame(i);
                let taken = match host {
                    Some(h) => {
                        let bytes = ports.frame(frame);
                        bytes.len() > ETH_HDR_LEN && h.deliver(&bytes[ETH_HDR_LEN..])
                    }
                    None => false,
                };
                if taken {
                    // Frame length, as the host path's rx counts it.
                    pipeline.counters_mut().tx[PortId::HOST.0 as usize].add(frame.len as usize);
                } else {
                    // Counted as a drop so that rx = forwarded + to_host +
                    // consumed + drops still holds.
                    lc.host_unavailable += 1;
                    let c = pipeline.counters_mut();
                    c.to_host -= 1;
                    c.drops[DropReason::HostUnavailable as usize] += 1;
                }
                ports.free(frame.addr);
            }
            rt.mark(Phase::Host);
        }
        if to_worker > 0 {
            for &i in later {
                let Verdict::HandOff(to) = verdicts[i as usize] else {
                    continue;
                };
                let frame = frame(i);
                let bytes = ports.frame(frame);
                let sent = handoff.is_some_and(|h| h.send(to as usize, port, bytes).is_ok());
                if sent {
                    lc.handed_off += 1;
                } else {
                    // The owner's queue is full: dropped here, counted
                    // here (the pipeline counted nothing).
                    lc.handoff_full += 1;
                    let c = pipeline.counters_mut();
                    c.rx[port.0 as usize & 63].add(frame.len as usize);
                    c.drops[DropReason::HandoffQueueFull as usize] += 1;
                }
                ports.free(frame.addr);
            }
            rt.mark(Phase::Handoff);
        }
    }
}

/// A worker's pipeline call for one burst: while no trace and no capture
/// is armed, one atomic load and [`Pipeline::process_burst`]; while one
/// is, packet by packet, recording what the trace or the capture wants
/// (see [`crate::trace_capture`], [`crate::capture`]).
#[inline]
pub fn process_burst_traced(
    pipeline: &mut Pipeline,
    tap: &mut TraceTap,
    hub: &TraceHub,
    worker: usize,
    pkts: &mut [Pkt<'_>],
    verdicts: &mut [Verdict],
) {
    if hub.any_armed() {
        tap::tapped_burst(pipeline, tap, hub, worker, pkts, verdicts)
    } else {
        pipeline.process_burst(pkts, verdicts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::Tables;
    use crate::trace_capture::TraceRequest;

    #[test]
    fn a_core_that_does_not_exist_is_named() {
        let err = check_core(100_000).unwrap_err();
        let line = err.to_string();
        assert!(line.contains("core 100000 does not exist"), "{line}");
        assert!(line.contains("dataplane.workers"), "{line}");
    }

    fn udp_frame(dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 64];
        f[12] = 0x08;
        f[14] = 0x45;
        f[16..18].copy_from_slice(&50u16.to_be_bytes());
        f[14 + 8] = 64;
        f[14 + 9] = 17;
        f[14 + 12..14 + 16].copy_from_slice(&[198, 18, 0, 2]);
        f[14 + 16..14 + 20].copy_from_slice(&[198, 19, 0, 2]);
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f
    }

    fn run_traced(p: &mut Pipeline, tap: &mut TraceTap, hub: &TraceHub) -> Vec<Verdict> {
        let mut frames: Vec<Vec<u8>> = (0..3).map(|i| udp_frame(53 + i)).collect();
        let mut pkts: Vec<Pkt<'_>> = frames
            .iter_mut()
            .map(|f| Pkt {
                len: f.len(),
                buf: f.as_mut_slice(),
                port: PortId(0),
            })
            .collect();
        let mut v = vec![Verdict::Consumed; 3];
        process_burst_traced(p, tap, hub, 7, &mut pkts, &mut v);
        v
    }

    #[test]
    fn traced_bursts_record_only_what_the_trace_wants_and_decide_the_same() {
        let tables = Arc::new(Tables::build(Default::default()));
        let hub = TraceHub::new();
        let mut tap = TraceTap::default();
        let mut plain = Pipeline::new(tables.clone());
        let want = run_traced(&mut plain, &mut tap, &hub);
        assert!(hub.pop().is_none(), "nothing recorded while off");

        let mut traced = Pipeline::new(tables);
        hub.arm(TraceRequest {
            count: 5,
            matcher: crate::trace_capture::TraceMatch {
                dport: Some(54),
                ..Default::default()
            },
            ..Default::default()
        });
        assert_eq!(run_traced(&mut traced, &mut tap, &hub), want);
        let rec = hub.pop().expect("the dport 54 packet");
        assert_eq!((rec.worker, rec.packet.dport), (7, 54));
        assert!(!rec.events.is_empty());
        assert!(hub.pop().is_none(), "only the matching packet");
        assert_eq!(hub.remaining(), 4);
        assert_eq!(traced.counters().rx[0], plain.counters().rx[0]);
    }
}
