//! The sink: either an AF_XDP receiver that checks every frame (flow,
//! sequence, latency), or a counter: an XDP program that counts and drops
//! test frames in the driver, the cheapest sink there is (for throughput
//! searches, where the sink must not be what is measured).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::count::{CountDrop, DropCounts};
use super::monotonic_ns;
use dataplane::xsk::{FrameRef, PortConfig, WorkerPorts, XdpMode};
use serde::Serialize;

use super::frame::{parse, MAGIC};
use super::gen::GenReport;
use super::track::{FlowReport, Totals, Tracker};
use super::LinerateError;

const UMEM_FRAMES: u32 = 8192;
const FRAME_SIZE: u32 = 2048;
/// Longest a sink measures, whatever it is told.
pub const MAX_MEASURE: Duration = Duration::from_secs(330);

/// How the sink receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// AF_XDP: every frame checked (loss, order, latency per flow).
    Afxdp,
    /// An XDP program counts and drops test frames (no per-flow figures).
    Count,
}

/// Where the sink listens.
#[derive(Clone, Debug)]
pub struct SinkConfig {
    /// Interface (in the thread's network namespace).
    pub ifname: String,
    /// XDP mode.
    pub mode: XdpMode,
    /// How to receive.
    pub kind: SinkKind,
    /// Flows expected (flow ids `0..flows`).
    pub flows: u32,
}

/// What a sink measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SinkReport {
    /// `afxdp` or `count`.
    pub kind: Option<SinkKind>,
    /// Seconds measured.
    pub seconds: f64,
    /// Test frames received.
    pub received: u64,
    /// Other frames seen.
    pub foreign: u64,
    /// Test frames the kernel dropped before the sink read them (AF_XDP
    /// ring full or no free frame): the sink, not the path, lost them.
    pub sink_dropped: u64,
    /// Per-flow totals (AF_XDP only).
    pub totals: Option<Totals>,
    /// Per-flow figures (AF_XDP only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flows: Vec<FlowReport>,
}

/// Sent versus received.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Loss {
    /// Frames the generator sent.
    pub sent: u64,
    /// Test frames the sink received (distinct, when it can tell).
    pub received: u64,
    /// `sent - received` (0 if more arrived).
    pub lost: u64,
    /// `lost / sent`.
    pub ratio: f64,
}

impl SinkReport {
    /// Loss of a run whose frames the generator reported.
    pub fn loss(&self, gen: &GenReport) -> Loss {
        let received = self.totals.map_or(self.received, |t| t.unique);
        let lost = gen.sent.saturating_sub(received);
        Loss {
            sent: gen.sent,
            received,
            lost,
            ratio: if gen.sent == 0 {
                0.0
            } else {
                lost as f64 / gen.sent as f64
            },
        }
    }

    /// Flows whose distinct frames differ from what the generator sent
    /// them: `(flow, sent, received)`. Empty for a counting sink.
    pub fn flow_mismatches(&self, gen: &GenReport) -> Vec<(u32, u64, u64)> {
        self.flows
            .iter()
            .filter(|f| f.unique != gen.sent_in_flow(f.flow))
            .map(|f| (f.flow, gen.sent_in_flow(f.flow), f.unique))
            .collect()
    }
}

enum Inner {
    Afxdp { ports: Box<WorkerPorts>, flows: u32 },
    Count(CountDrop),
}

/// An open sink. Lives on the thread that opened it (AF_XDP ports are
/// used where they were made).
pub struct Sink {
    inner: Inner,
}

impl Sink {
    /// Attaches to `cfg.ifname`.
    pub fn open(cfg: &SinkConfig) -> Result<Sink, LinerateError> {
        let inner = match cfg.kind {
            SinkKind::Afxdp => Inner::Afxdp {
                ports: Box::new(WorkerPorts::open(
                    &[PortConfig {
                        ifname: cfg.ifname.clone(),
                        queue: 0,
                        mode: cfg.mode,
                    }],
                    UMEM_FRAMES,
                    FRAME_SIZE,
                )?),
                flows: cfg.flows.max(1),
            },
            SinkKind::Count => Inner::Count(CountDrop::attach(&cfg.ifname, cfg.mode, MAGIC)?),
        };
        Ok(Sink { inner })
    }

    /// Receives until `stop` is set or `max` passed (at most
    /// [`MAX_MEASURE`]).
    pub fn measure(
        &mut self,
        stop: &AtomicBool,
        max: Duration,
    ) -> Result<SinkReport, LinerateError> {
        let max = max.min(MAX_MEASURE);
        match &mut self.inner {
            Inner::Count(prog) => {
                let before = prog.counts()?;
                let start = Instant::now();
                while !stop.load(Ordering::Relaxed) && start.elapsed() < max {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let after = prog.counts()?;
                Ok(count_report(before, after, start.elapsed()))
            }
            Inner::Afxdp { ports, flows } => Ok(receive(ports, *flows, stop, max)),
        }
    }

    /// The counters of a counting sink so far (`None` for AF_XDP).
    pub fn counts(&self) -> Result<Option<DropCounts>, LinerateError> {
        match &self.inner {
            Inner::Count(p) => Ok(Some(p.counts()?)),
            Inner::Afxdp { .. } => Ok(None),
        }
    }
}

fn count_report(before: DropCounts, after: DropCounts, took: Duration) -> SinkReport {
    SinkReport {
        kind: Some(SinkKind::Count),
        seconds: took.as_secs_f64(),
        received: after.ours - before.ours,
        foreign: after.other - before.other,
        ..SinkReport::default()
    }
}

fn receive(ports: &mut WorkerPorts, flows: u32, stop: &AtomicBool, max: Duration) -> SinkReport {
    // Frames from before the measurement do not count.
    let mut burst = [FrameRef::default(); 64];
    loop {
        let n = ports.rx_burst(0, &mut burst);
        for f in &burst[..n] {
            ports.free(f.addr);
        }
        if n == 0 {
            break;
        }
    }
    let before = ports.port_stats(0).xdp;
    let mut tracker = Tracker::new(flows);
    let start = Instant::now();
    let mut idle = 0u32;
    loop {
        if start.elapsed() >= max {
            break;
        }
        let n = ports.rx_burst(0, &mut burst);
        if n == 0 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            idle += 1;
            if idle > 64 {
                // Quiet: sleep in poll rather than spin (the generator may
                // share this CPU).
                ports.housekeeping();
                ports.wait_rx(Duration::from_millis(1));
            }
            continue;
        }
        idle = 0;
        let rx_ns = monotonic_ns();
        for f in &burst[..n] {
            match parse(ports.frame(*f)) {
                Some(stamp) => tracker.record(stamp, rx_ns),
                None => tracker.foreign(),
            }
            ports.free(f.addr);
        }
    }
    let after = ports.port_stats(0).xdp;
    let totals = tracker.totals();
    SinkReport {
        kind: Some(SinkKind::Afxdp),
        seconds: start.elapsed().as_secs_f64(),
        received: totals.received,
        foreign: totals.foreign,
        sink_dropped: (after.rx_ring_full - before.rx_ring_full)
            + (after.rx_dropped - before.rx_dropped),
        totals: Some(totals),
        flows: tracker.flows(),
    }
}
