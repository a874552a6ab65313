//! Runtime accounting, in the style of `vppctl show runtime` and
//! `ovs-appctl dpif-netdev/pmd-perf-show`: loops, busy loops, packets and
//! the worker's cycles split by phase.
//!
//! The worker reads the time-stamp counter ([`crate::xsk::tsc`]) where one
//! phase ends and the next begins, once per burst and phase, never per
//! packet; each reading closes the interval since the previous one and
//! books it to the phase that ran. No interval is booked twice or left
//! out, so the phases (idle included) add up to the loop time since the
//! start or the last clear, exactly. Plain `u64`s, one writer: the worker
//! publishes them in its snapshot at housekeeping.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::xsk::tsc;

/// Where a worker's cycles go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Polling the ports' RX rings (empty polls of a busy loop included),
    /// completions and fill-ring refills.
    Rx,
    /// The pipeline over the burst and the verdicts (queueing for TX,
    /// freeing drops); ARP resolutions' queued packets.
    Pipeline,
    /// Filling the TX rings and kicking the kernel (`sendto`).
    Tx,
    /// The host path: packets to and from the router's kernel (TUN).
    Host,
    /// Hand-offs to and from the other workers' queues.
    Handoff,
    /// Housekeeping rounds (timers, rings, tables, snapshots, requests).
    Housekeeping,
    /// The rest: loops that moved nothing, and back-off sleeps.
    Idle,
}

impl Phase {
    /// Every phase, in display order.
    pub const ALL: [Phase; 7] = [
        Phase::Rx,
        Phase::Pipeline,
        Phase::Tx,
        Phase::Host,
        Phase::Handoff,
        Phase::Housekeeping,
        Phase::Idle,
    ];

    /// Stable name (metrics label, JSON key).
    pub fn name(self) -> &'static str {
        match self {
            Phase::Rx => "rx",
            Phase::Pipeline => "pipeline",
            Phase::Tx => "tx",
            Phase::Host => "host",
            Phase::Handoff => "handoff",
            Phase::Housekeeping => "housekeeping",
            Phase::Idle => "idle",
        }
    }
}

const PHASES: usize = Phase::ALL.len();

/// Cycles by phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhaseCycles {
    pub rx: u64,
    pub pipeline: u64,
    pub tx: u64,
    pub host: u64,
    pub handoff: u64,
    pub housekeeping: u64,
    pub idle: u64,
}

impl PhaseCycles {
    /// The cycles of `phase`.
    pub fn get(&self, phase: Phase) -> u64 {
        match phase {
            Phase::Rx => self.rx,
            Phase::Pipeline => self.pipeline,
            Phase::Tx => self.tx,
            Phase::Host => self.host,
            Phase::Handoff => self.handoff,
            Phase::Housekeeping => self.housekeeping,
            Phase::Idle => self.idle,
        }
    }

    /// All phases, idle included.
    pub fn sum(&self) -> u64 {
        Phase::ALL.iter().map(|&p| self.get(p)).sum()
    }
}

/// What a worker's runtime accounting counted (since start or the last
/// clear).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuntimeCounters {
    /// Loop iterations.
    pub loops: u64,
    /// Iterations that received at least one packet.
    pub busy_loops: u64,
    /// Packets run through the worker's pipeline (from its ports, the host
    /// path and other workers' hand-offs; a packet handed to its flow's
    /// owner is counted by both workers: both spent cycles on it).
    pub packets: u64,
    /// Cycles by phase.
    pub cycles: PhaseCycles,
    /// Cycles from the start (or last clear) to the last reading: the sum
    /// of `cycles`.
    pub total_cycles: u64,
}

/// The worker's side: the counters and the last TSC reading.
#[derive(Clone, Copy, Debug)]
pub struct RuntimeClock {
    pub(super) loops: u64,
    pub(super) busy_loops: u64,
    pub(super) packets: u64,
    cycles: [u64; PHASES],
    /// The reading that opened the interval now running.
    last: u64,
    /// The reading at the start or the last clear.
    start: u64,
}

impl Default for RuntimeClock {
    fn default() -> RuntimeClock {
        let now = tsc::now();
        RuntimeClock {
            loops: 0,
            busy_loops: 0,
            packets: 0,
            cycles: [0; PHASES],
            last: now,
            start: now,
        }
    }
}

impl RuntimeClock {
    /// Books the cycles since the last reading to `phase`. A counter that
    /// went backwards (a thread moved to a core whose TSC lags) books zero,
    /// so that the phases still add up to the total.
    #[inline(always)]
    pub fn mark(&mut self, phase: Phase) {
        let now = tsc::now().max(self.last);
        self.cycles[phase as usize] += now - self.last;
        self.last = now;
    }

    /// Zeroes the counters; the loop time starts again at the last reading.
    pub fn clear(&mut self) {
        *self = RuntimeClock {
            cycles: [0; PHASES],
            start: self.last,
            last: self.last,
            loops: 0,
            busy_loops: 0,
            packets: 0,
        };
    }

    /// The counters as published.
    pub fn counters(&self) -> RuntimeCounters {
        let c = &self.cycles;
        let at = |p: Phase| c[p as usize];
        RuntimeCounters {
            loops: self.loops,
            busy_loops: self.busy_loops,
            packets: self.packets,
            cycles: PhaseCycles {
                rx: at(Phase::Rx),
                pipeline: at(Phase::Pipeline),
                tx: at(Phase::Tx),
                host: at(Phase::Host),
                handoff: at(Phase::Handoff),
                housekeeping: at(Phase::Housekeeping),
                idle: at(Phase::Idle),
            },
            total_cycles: self.last - self.start,
        }
    }
}

/// How long the TSC is held against the monotonic clock.
const CALIBRATION: Duration = Duration::from_millis(20);

/// The rate of [`crate::xsk::tsc::now`] in Hz, measured once (the first
/// call takes [`CALIBRATION`]): TSC ticks over 20 ms of the monotonic
/// clock. 1e9 where the counter is the monotonic clock itself.
pub fn tsc_hz() -> u64 {
    static HZ: OnceLock<u64> = OnceLock::new();
    *HZ.get_or_init(|| {
        if tsc::IS_NANOS {
            return 1_000_000_000;
        }
        let (t0, c0) = (Instant::now(), tsc::now());
        std::thread::sleep(CALIBRATION);
        let (c1, t1) = (tsc::now(), Instant::now());
        let ns = (t1 - t0).as_nanos().max(1);
        (u128::from(c1.wrapping_sub(c0)) * 1_000_000_000 / ns) as u64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_add_up_to_the_total_and_clear_starts_again() {
        let mut rt = RuntimeClock::default();
        for (i, p) in Phase::ALL.iter().cycle().take(50).enumerate() {
            if i % 7 == 3 {
                std::hint::black_box((0..1000).sum::<u64>());
            }
            rt.mark(*p);
        }
        let c = rt.counters();
        assert!(c.total_cycles > 0);
        assert_eq!(c.cycles.sum(), c.total_cycles);
        rt.loops = 3;
        rt.clear();
        assert_eq!(rt.counters(), RuntimeCounters::default());
        rt.mark(Phase::Tx);
        let c = rt.counters();
        assert_eq!(
            (c.cycles.tx, c.total_cycles),
            (c.total_cycles, c.cycles.sum())
        );
    }

    #[test]
    fn the_tsc_rate_is_plausible() {
        let hz = tsc_hz();
        // Any CPU of the last 25 years, or the nanosecond fallback.
        assert!((100_000_000..=10_000_000_000).contains(&hz), "{hz}");
        assert_eq!(tsc_hz(), hz, "measured once");
    }
}
