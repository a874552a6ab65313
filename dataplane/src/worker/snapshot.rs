//! What a worker publishes: its loop counters and the snapshot of all its
//! counters, and the one mechanism that adds and subtracts counter sets
//! field by field ([`Tally`]): per-port and connection-table counters since
//! the last reset, and the sum over workers.

use crate::conntrack::{CtCounters, FlowView};
use crate::counters::{Count, Counters};
use crate::xsk::{FrameCensus, PortStats, XdpStatistics};

use super::runtime::{PhaseCycles, RuntimeCounters};
use super::{Worker, MAX_LISTED_FLOWS};

/// The worker's own counters (the pipeline's are in [`Counters`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopCounters {
    /// Loop iterations.
    pub loops: u64,
    /// Iterations that received at least one frame (`busy_loops / loops`
    /// is the busy share).
    pub busy_loops: u64,
    /// Times the idle worker slept or waited in `poll`.
    pub idle_waits: u64,
    /// Housekeeping rounds.
    pub housekeeping: u64,
    /// Frames the TX rings did not take (freed).
    pub tx_ring_full: u64,
    /// `Tx` verdicts for a port this worker does not have (freed).
    pub tx_no_port: u64,
    /// Packets for the host with no host path (freed).
    pub host_unavailable: u64,
    /// Tables generations adopted after the first.
    pub tables_swaps: u64,
    /// Tracked packets handed to the worker that owns their flow.
    pub handed_off: u64,
    /// Packets other workers handed to this one.
    pub handed_in: u64,
    /// Packets not handed over because the owner's queue was full (the
    /// drop `handoff_queue_full`).
    pub handoff_full: u64,
}

/// What a worker publishes at housekeeping and once more when it stops.
#[derive(Clone, Debug, Default)]
pub struct WorkerSnapshot {
    /// Worker index.
    pub index: usize,
    /// Core it is pinned to.
    pub core: Option<usize>,
    /// Loop counters.
    pub loops: LoopCounters,
    /// Runtime accounting: loops, packets, cycles by phase (since start,
    /// the last reset or the last clear of the runtime alone).
    pub runtime: RuntimeCounters,
    /// Pipeline counters.
    pub counters: Counters,
    /// Counters per port, in port order (with the kernel's XDP statistics).
    pub ports: Vec<PortStats>,
    /// Entries in the worker's connection table.
    pub conntrack_entries: usize,
    /// The connection table's counters (since start or the last reset).
    pub conntrack: CtCounters,
    /// The connection table's live entries (at most [`MAX_LISTED_FLOWS`]),
    /// listed only in the final snapshot (`stopped`).
    pub flows: Vec<FlowView>,
    /// Where the worker's UMEM frames are.
    pub census: FrameCensus,
    /// Tables generation in force.
    pub tables_generation: u64,
    /// Whether this is the final snapshot (the worker stopped).
    pub stopped: bool,
}

/// A set of `u64` counters combined field by field with another of its
/// kind: `plus` for sums over workers, `since` for "since the last reset"
/// (the kernel's and the sockets' counters cannot be zeroed, so the value
/// at the reset is subtracted).
pub trait Tally: Copy {
    /// Each field of `self` with the same field of `other`, through `f`.
    fn zip(self, other: Self, f: &impl Fn(u64, u64) -> u64) -> Self;

    /// The field-by-field sum.
    fn plus(self, other: Self) -> Self {
        self.zip(other, &u64::wrapping_add)
    }

    /// The field-by-field difference from `base` (zero where a counter
    /// went backwards, e.g. a socket that was recreated).
    fn since(self, base: Self) -> Self {
        self.zip(base, &u64::saturating_sub)
    }
}

impl Tally for u64 {
    fn zip(self, other: u64, f: &impl Fn(u64, u64) -> u64) -> u64 {
        f(self, other)
    }
}

/// Implements [`Tally`] for a struct of counters. The struct literal
/// names every field (no `..`), so a field added to the struct and not
/// listed here is a compile error, never a counter silently left out.
macro_rules! tally {
    ($t:ident { $($f:ident),+ $(,)? }) => {
        impl Tally for $t {
            fn zip(self, other: $t, f: &impl Fn(u64, u64) -> u64) -> $t {
                $t { $($f: Tally::zip(self.$f, other.$f, f)),+ }
            }
        }
    };
}

tally!(LoopCounters {
    loops,
    busy_loops,
    idle_waits,
    housekeeping,
    tx_ring_full,
    tx_no_port,
    host_unavailable,
    tables_swaps,
    handed_off,
    handed_in,
    handoff_full,
});
tally!(PhaseCycles {
    rx,
    pipeline,
    tx,
    host,
    handoff,
    housekeeping,
    idle,
});
tally!(RuntimeCounters {
    loops,
    busy_loops,
    packets,
    cycles,
    total_cycles,
});
tally!(CtCounters {
    inserted,
    expired,
    early_dropped,
    table_full,
});
tally!(XdpStatistics {
    rx_dropped,
    rx_invalid_descs,
    tx_invalid_descs,
    rx_ring_full,
    rx_fill_ring_empty_descs,
    tx_ring_empty_descs,
});
tally!(PortStats {
    rx_packets,
    rx_bytes,
    tx_packets,
    tx_bytes,
    rx_fill_starved,
    tx_ring_full,
    tx_bad_frames,
    tx_kicks,
    tx_kick_errors,
    rx_wakeups,
    tx_link_down,
    link_down_events,
    xdp,
});

impl Worker {
    /// The worker's state now (allocates: not for the packet path).
    pub fn snapshot(&self, stopped: bool) -> WorkerSnapshot {
        let ports = self.ports.stats().ports;
        WorkerSnapshot {
            index: self.cfg.index,
            core: self.cfg.core,
            loops: self.lc,
            runtime: self.rt.counters(),
            counters: self.pipeline.counters().clone(),
            ports: (ports.iter().enumerate())
                .map(|(i, p)| self.port_base.get(i).map_or(*p, |b| p.since(*b)))
                .collect(),
            conntrack_entries: self.pipeline.conntrack().len(),
            conntrack: self.pipeline.conntrack().counters().since(self.ct_base),
            flows: if stopped {
                let now = self.pipeline.now();
                let ct = self.pipeline.conntrack();
                ct.flows(now).take(MAX_LISTED_FLOWS).collect()
            } else {
                Vec::new()
            },
            census: self.ports.frames_accounted(),
            tables_generation: self.tables_generation,
            stopped,
        }
    }

    /// Zeroes the worker's counters (a reset request): the pipeline's, the
    /// loop's and the runtime's are set to zero, the ports' and the
    /// connection table's are remembered as the base later snapshots
    /// subtract.
    pub(super) fn reset_counters(&mut self) {
        zero_counters(self.pipeline.counters_mut());
        self.lc = LoopCounters::default();
        self.rt.clear();
        self.port_base = self.ports.stats().ports;
        self.ct_base = self.pipeline.conntrack().counters();
    }
}

/// Zeroes counters, keeping the rule counters sized to the tables in force.
fn zero_counters(c: &mut Counters) {
    let mut z = Counters::default();
    for (a, b) in z.raw_rules.iter_mut().zip(&c.raw_rules) {
        *a = vec![Count::default(); b.len()];
    }
    for (a, b) in z.filter_rules.iter_mut().zip(&c.filter_rules) {
        *a = vec![Count::default(); b.len()];
    }
    *c = z;
}

/// Sums the snapshots of all workers: pipeline counters merged, port
/// counters added per port, loop counters added, census per worker kept.
pub fn aggregate(snaps: &[WorkerSnapshot]) -> (Counters, Vec<PortStats>, LoopCounters) {
    let mut c = Counters::default();
    let mut ports: Vec<PortStats> = Vec::new();
    let mut lc = LoopCounters::default();
    for s in snaps {
        c.merge(&s.counters);
        if ports.len() < s.ports.len() {
            ports.resize(s.ports.len(), PortStats::default());
        }
        for (a, b) in ports.iter_mut().zip(&s.ports) {
            *a = a.plus(*b);
        }
        lc = lc.plus(s.loops);
    }
    (c, ports, lc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_counters_keep_the_rule_counters_sized() {
        let mut c = Counters {
            forwarded: 9,
            ..Default::default()
        };
        c.raw_rules[0] = vec![
            Count {
                packets: 1,
                bytes: 60
            };
            2
        ];
        c.filter_rules[1] = vec![Count::default(); 3];
        zero_counters(&mut c);
        assert_eq!(c.forwarded, 0);
        assert_eq!(c.raw_rules[0], vec![Count::default(); 2]);
        assert_eq!(c.filter_rules[1].len(), 3);
    }

    #[test]
    fn aggregate_adds_ports_and_counters() {
        let mut a = WorkerSnapshot::default();
        a.counters.forwarded = 3;
        a.ports = vec![
            PortStats {
                rx_packets: 2,
                ..Default::default()
            };
            2
        ];
        a.loops.loops = 10;
        let mut b = a.clone();
        b.counters.forwarded = 4;
        b.loops.busy_loops = 1;
        let (c, ports, lc) = aggregate(&[a, b]);
        assert_eq!(c.forwarded, 7);
        assert_eq!(ports.len(), 2);
        assert_eq!(ports[1].rx_packets, 4);
        assert_eq!(lc.loops, 20);
        assert_eq!(lc.busy_loops, 1);
    }

    #[test]
    fn counters_since_a_reset_subtract_every_field() {
        let base = PortStats {
            rx_packets: 5,
            tx_kicks: 2,
            xdp: XdpStatistics {
                rx_fill_ring_empty_descs: 3,
                ..Default::default()
            },
            ..Default::default()
        };
        let now = PortStats {
            rx_packets: 9,
            tx_kicks: 2,
            rx_wakeups: 4,
            xdp: XdpStatistics {
                rx_fill_ring_empty_descs: 10,
                ..Default::default()
            },
            ..Default::default()
        };
        let d = now.since(base);
        assert_eq!((d.rx_packets, d.tx_kicks, d.rx_wakeups), (4, 0, 4));
        assert_eq!(d.xdp.rx_fill_ring_empty_descs, 7);
        // A counter below its base (a recreated socket) reads zero.
        assert_eq!(base.since(now).rx_packets, 0);
        assert_eq!(d.plus(base), now);
        let ct = CtCounters {
            inserted: 7,
            early_dropped: 2,
            ..Default::default()
        };
        assert_eq!(ct.since(ct), CtCounters::default());
        assert_eq!(ct.plus(ct).early_dropped, 4);
    }
}
