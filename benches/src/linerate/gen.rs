//! The generator: AF_XDP TX on one interface queue, paced in bursts, frames
//! built from per-flow templates, each stamped with its flow, sequence
//! number and `CLOCK_MONOTONIC` time just before it goes to the TX ring.
//!
//! Flows take turns: frame `k` of a run belongs to flow `k % flows` and is
//! that flow's frame `k / flows`, so what each flow was sent follows from
//! the total. Every run is bounded by its duration (at most
//! [`MAX_DURATION`]) and optionally a frame count.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::monotonic_ns;
use dataplane::xsk::{FrameRef, PortConfig, WorkerPorts, XdpMode};
use serde::Serialize;

use super::frame::{FlowSet, Mac, SizeMix, Stamp, Templates};
use super::pacing::{Pacer, MAX_BURST};
use super::LinerateError;

/// Longest run the generator accepts.
pub const MAX_DURATION: Duration = Duration::from_secs(300);
/// UMEM frames of the generator (half of them serve the unused RX side).
const UMEM_FRAMES: u32 = 8192;
const FRAME_SIZE: u32 = 2048;

/// Where and what the generator sends.
#[derive(Clone, Debug)]
pub struct GenConfig {
    /// Interface to send on (in the thread's network namespace).
    pub ifname: String,
    /// XDP mode of the (unused) RX side.
    pub mode: XdpMode,
    /// Source MAC of the frames.
    pub src_mac: Mac,
    /// Destination MAC (the router's, or the sink's).
    pub dst_mac: Mac,
    /// The flows.
    pub flows: FlowSet,
}

/// One run: rate, sizes and bounds.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// Frames a second; 0 sends as fast as it can.
    pub rate_pps: f64,
    /// Frame sizes.
    pub sizes: SizeMix,
    /// How long to send (capped at [`MAX_DURATION`]).
    pub duration: Duration,
    /// Stop after this many frames.
    pub count: Option<u64>,
    /// Send only whole bursts of [`MAX_BURST`] frames and sleep between
    /// them (instead of sending each frame as it falls due and spinning):
    /// the generator's CPU then stays idle between bursts, so CPU time
    /// read from `/proc/stat` is the work of sending, not the pacing. Same
    /// rate, burstier arrivals.
    pub whole_bursts: bool,
}

/// What a run sent.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GenReport {
    /// Frames handed to the kernel.
    pub sent: u64,
    /// Bytes handed to the kernel (without FCS).
    pub bytes: u64,
    /// Seconds from the first to the last burst.
    pub seconds: f64,
    /// Rate asked for (0: unpaced).
    pub target_pps: f64,
    /// Rate achieved: `sent / seconds`.
    pub offered_pps: f64,
    /// Frames the pacer let go because the generator fell behind.
    pub behind: u64,
    /// Times the TX ring was full.
    pub tx_ring_full: u64,
    /// Frames the kernel refused as invalid descriptors.
    pub tx_invalid: u64,
    /// Number of flows (see [`GenReport::sent_in_flow`]).
    pub flows: u32,
}

impl GenReport {
    /// Frames sent in flow `f`.
    pub fn sent_in_flow(&self, f: u32) -> u64 {
        let n = u64::from(self.flows.max(1));
        self.sent / n + u64::from(u64::from(f) < self.sent % n)
    }

    /// Whether the generator reached at least `share` of the target rate.
    pub fn reached(&self, share: f64) -> bool {
        self.target_pps <= 0.0 || self.offered_pps >= share * self.target_pps
    }
}

/// An open generator: its AF_XDP port and templates. Lives on the thread
/// that opened it.
pub struct Generator {
    ports: WorkerPorts,
    templates: Templates,
    flows: u32,
}

impl Generator {
    /// Opens the port and attaches the XDP program on `cfg.ifname`.
    pub fn open(cfg: &GenConfig) -> Result<Generator, LinerateError> {
        cfg.flows.validate().map_err(LinerateError::Config)?;
        let ports = WorkerPorts::open(
            &[PortConfig {
                ifname: cfg.ifname.clone(),
                queue: 0,
                mode: cfg.mode,
            }],
            UMEM_FRAMES,
            FRAME_SIZE,
        )?;
        Ok(Generator {
            ports,
            templates: Templates::new(&cfg.flows, cfg.src_mac, cfg.dst_mac),
            flows: cfg.flows.count,
        })
    }

    /// Sends one run; returns early when `stop` is set.
    pub fn run(&mut self, spec: &RunSpec, stop: &AtomicBool) -> Result<GenReport, LinerateError> {
        spec.sizes.validate().map_err(LinerateError::Config)?;
        if spec.duration > MAX_DURATION {
            return Err(LinerateError::Config(format!(
                "duration {:?} is longer than the {:?} the generator allows",
                spec.duration, MAX_DURATION
            )));
        }
        let cycle = spec.sizes.cycle();
        let limit = spec.count.unwrap_or(u64::MAX);
        let duration_ns = spec.duration.as_nanos() as u64;
        let before = self.ports.port_stats(0);
        let mut seqs = vec![0u32; self.flows as usize];
        let mut pacer = Pacer::new(spec.rate_pps);
        let mut burst = [FrameRef::default(); MAX_BURST];
        let mut held = 0usize;
        let (mut sent, mut bytes, mut next_flow, mut k) = (0u64, 0u64, 0u32, 0usize);
        let mut rx = [FrameRef::default(); MAX_BURST];
        let start = monotonic_ns();
        let mut now = start;
        let mut loops = 0u32;
        while now - start < duration_ns && sent < limit && !stop.load(Ordering::Relaxed) {
            loops = loops.wrapping_add(1);
            if loops % 1024 == 0 {
                self.drain_rx(&mut rx);
            }
            let allowed = (pacer.allowed(now - start) as u64).min(limit - sent) as usize;
            if spec.whole_bursts && allowed < MAX_BURST && (limit - sent) >= MAX_BURST as u64 {
                let wait = pacer.due_ns(MAX_BURST).saturating_sub(now - start);
                if wait > 20_000 {
                    // Late by the timer slack at worst: the pacer lets the
                    // next burst catch up.
                    self.ports.housekeeping();
                    std::thread::sleep(Duration::from_nanos(wait));
                } else {
                    std::hint::spin_loop();
                }
                now = monotonic_ns();
                continue;
            }
            if allowed == 0 {
                let wait = pacer.next_due_ns().saturating_sub(now - start);
                if wait > 200_000 {
                    self.ports.housekeeping();
                    std::thread::sleep(Duration::from_nanos(wait - 100_000));
                } else {
                    std::hint::spin_loop();
                }
                now = monotonic_ns();
                continue;
            }
            // Build frames up to the allowance; frames held from a full
            // ring go first.
            while held < allowed {
                let Some(addr) = self.ports.alloc() else {
                    self.ports.housekeeping();
                    break;
                };
                let size = cycle[k];
                k = if k + 1 == cycle.len() { 0 } else { k + 1 };
                let flow = next_flow;
                next_flow = if flow + 1 == self.flows { 0 } else { flow + 1 };
                let seq = seqs[flow as usize];
                seqs[flow as usize] = seq.wrapping_add(1);
                let stamp = Stamp {
                    flow,
                    seq,
                    tx_ns: 0,
                };
                let len = self
                    .templates
                    .write(self.ports.frame_mut(addr), size, stamp);
                burst[held] = FrameRef {
                    addr,
                    len: len as u32,
                };
                held += 1;
            }
            // Only what the TX ring has room for: tx_burst frees the rest,
            // and the generator keeps its frames for the next round.
            let go = held.min(allowed).min(self.ports.tx_room(0));
            let ts = monotonic_ns();
            for buf in self.ports.frames_mut(&burst[..go]) {
                Templates::restamp(buf, ts);
            }
            let took = self.ports.tx_burst(0, &burst[..go]).sent;
            sent += took as u64;
            bytes += burst[..took].iter().map(|f| u64::from(f.len)).sum::<u64>();
            pacer.sent(took);
            burst.copy_within(go..held, 0);
            held -= go;
            now = monotonic_ns();
        }
        let seconds = (now - start) as f64 / 1e9;
        // Frames built but never sent go back; wait for the kernel to
        // complete what it took.
        for f in &burst[..held] {
            self.ports.free(f.addr);
        }
        for _ in 0..400 {
            self.ports.housekeeping();
            self.drain_rx(&mut rx);
            if self.ports.frames_accounted().tx == 0 {
                break;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        let after = self.ports.port_stats(0);
        Ok(GenReport {
            sent,
            bytes,
            seconds,
            target_pps: spec.rate_pps.max(0.0),
            offered_pps: if seconds > 0.0 {
                sent as f64 / seconds
            } else {
                0.0
            },
            behind: pacer.skipped(),
            tx_ring_full: after.tx_ring_full - before.tx_ring_full,
            tx_invalid: after.xdp.tx_invalid_descs - before.xdp.tx_invalid_descs,
            flows: self.flows,
        })
    }

    /// Frames that arrive on the generator's port are not ours to keep.
    fn drain_rx(&mut self, rx: &mut [FrameRef]) {
        loop {
            let n = self.ports.rx_burst(0, rx);
            for f in &rx[..n] {
                self.ports.free(f.addr);
            }
            if n < rx.len() {
                break;
            }
        }
    }
}
