//! What the sink learns from sequence numbers and timestamps, per flow:
//! frames received, distinct frames, missing (loss), reordering,
//! duplicates, and latency. Pure bookkeeping, no I/O.

use serde::Serialize;

use super::frame::Stamp;
use super::histogram::{Histogram, LatencySummary};

/// Sequence numbers below the highest seen that are remembered exactly
/// (for telling duplicates from late frames).
const WINDOW: u32 = 256;

#[derive(Clone, Debug, Default)]
struct FlowState {
    received: u64,
    unique: u64,
    /// Highest sequence number + 1 (0: nothing yet).
    next: u64,
    /// Bit k: sequence `next - 1 - k` was seen.
    window: [u64; (WINDOW / 64) as usize],
    reordered: u64,
    duplicates: u64,
}

impl FlowState {
    fn bit(&self, k: u32) -> bool {
        self.window[(k / 64) as usize] >> (k % 64) & 1 == 1
    }

    fn set(&mut self, k: u32) {
        self.window[(k / 64) as usize] |= 1 << (k % 64);
    }

    fn shift(&mut self, by: u64) {
        if by >= u64::from(WINDOW) {
            self.window = [0; (WINDOW / 64) as usize];
            return;
        }
        let (words, bits) = ((by / 64) as usize, (by % 64) as u32);
        let n = self.window.len();
        for i in (0..n).rev() {
            let lo = if i >= words {
                self.window[i - words]
            } else {
                0
            };
            let below = if i > words && bits > 0 {
                self.window[i - words - 1] >> (64 - bits)
            } else {
                0
            };
            self.window[i] = if bits == 0 { lo } else { (lo << bits) | below };
        }
    }

    fn record(&mut self, seq: u32) {
        self.received += 1;
        let seq = u64::from(seq);
        if seq >= self.next {
            self.shift(seq + 1 - self.next);
            self.next = seq + 1;
            self.set(0);
            self.unique += 1;
            return;
        }
        let back = self.next - 1 - seq;
        if back < u64::from(WINDOW) {
            if self.bit(back as u32) {
                self.duplicates += 1;
            } else {
                self.set(back as u32);
                self.unique += 1;
                self.reordered += 1;
            }
        } else {
            // Too old to tell: counted as a late, distinct frame.
            self.unique += 1;
            self.reordered += 1;
        }
    }
}

/// One flow's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FlowReport {
    /// Flow index.
    pub flow: u32,
    /// Frames received (duplicates included).
    pub received: u64,
    /// Distinct sequence numbers received.
    pub unique: u64,
    /// Highest sequence number + 1 (what the sender sent at least).
    pub highest: u64,
    /// Sequence numbers below the highest that never came.
    pub missing: u64,
    /// Frames that arrived after a higher sequence number.
    pub reordered: u64,
    /// Frames whose sequence number had been seen.
    pub duplicates: u64,
}

/// Totals over all flows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Totals {
    /// Test frames received.
    pub received: u64,
    /// Distinct test frames received.
    pub unique: u64,
    /// Missing sequence numbers below each flow's highest.
    pub missing: u64,
    /// Late frames.
    pub reordered: u64,
    /// Duplicate frames.
    pub duplicates: u64,
    /// Flows with at least one frame.
    pub flows_seen: u32,
    /// Frames that were not test frames (ARP, IPv6, foreign traffic).
    pub foreign: u64,
    /// Test frames with a flow id beyond the configured flow count.
    pub unknown_flow: u64,
    /// Frames whose timestamp lies in the future (clock misuse).
    pub bad_timestamps: u64,
    /// Latency from the payload timestamp to the sink's receive.
    pub latency: LatencySummary,
}

/// Per-flow bookkeeping of a sink.
#[derive(Clone, Debug)]
pub struct Tracker {
    flows: Vec<FlowState>,
    latency: Histogram,
    foreign: u64,
    unknown_flow: u64,
    bad_timestamps: u64,
}

impl Tracker {
    /// Bookkeeping for flows `0..flows`.
    pub fn new(flows: u32) -> Tracker {
        Tracker {
            flows: vec![FlowState::default(); flows as usize],
            latency: Histogram::new(),
            foreign: 0,
            unknown_flow: 0,
            bad_timestamps: 0,
        }
    }

    /// Records a test frame received at `rx_ns`.
    #[inline]
    pub fn record(&mut self, stamp: Stamp, rx_ns: u64) {
        let Some(f) = self.flows.get_mut(stamp.flow as usize) else {
            self.unknown_flow += 1;
            return;
        };
        f.record(stamp.seq);
        match rx_ns.checked_sub(stamp.tx_ns) {
            Some(d) => self.latency.record(d),
            None => self.bad_timestamps += 1,
        }
    }

    /// Records a frame that is not a test frame.
    pub fn foreign(&mut self) {
        self.foreign += 1;
    }

    /// One flow's figures.
    pub fn flow(&self, i: u32) -> FlowReport {
        let f = &self.flows[i as usize];
        FlowReport {
            flow: i,
            received: f.received,
            unique: f.unique,
            highest: f.next,
            missing: f.next.saturating_sub(f.unique),
            reordered: f.reordered,
            duplicates: f.duplicates,
        }
    }

    /// Every flow's figures.
    pub fn flows(&self) -> Vec<FlowReport> {
        (0..self.flows.len() as u32).map(|i| self.flow(i)).collect()
    }

    /// Totals over all flows.
    pub fn totals(&self) -> Totals {
        let mut t = Totals {
            foreign: self.foreign,
            unknown_flow: self.unknown_flow,
            bad_timestamps: self.bad_timestamps,
            latency: self.latency.summary(),
            ..Totals::default()
        };
        for i in 0..self.flows.len() as u32 {
            let f = self.flow(i);
            t.received += f.received;
            t.unique += f.unique;
            t.missing += f.missing;
            t.reordered += f.reordered;
            t.duplicates += f.duplicates;
            t.flows_seen += u32::from(f.received > 0);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(seqs: &[u32]) -> FlowReport {
        let mut t = Tracker::new(1);
        for &seq in seqs {
            t.record(
                Stamp {
                    flow: 0,
                    seq,
                    tx_ns: 100,
                },
                150,
            );
        }
        t.flow(0)
    }

    #[test]
    fn in_order_stream_is_clean() {
        let seqs: Vec<u32> = (0..1000).collect();
        let f = feed(&seqs);
        assert_eq!((f.received, f.unique, f.highest), (1000, 1000, 1000));
        assert_eq!((f.missing, f.reordered, f.duplicates), (0, 0, 0));
    }

    #[test]
    fn gaps_late_frames_and_duplicates_are_told_apart() {
        // 3 lost, 5 arrives after 6, 6 arrives twice, 0 arrives again late.
        let f = feed(&[0, 1, 2, 4, 6, 5, 6, 7, 9, 0]);
        assert_eq!(f.received, 10);
        assert_eq!(f.unique, 8, "0 1 2 4 5 6 7 9");
        assert_eq!(f.highest, 10);
        assert_eq!(f.missing, 2, "3 and 8");
        assert_eq!(f.reordered, 1);
        assert_eq!(f.duplicates, 2);
    }

    #[test]
    fn window_shifts_across_words() {
        // Jump by 70 and 200, then fill in some of the holes.
        let f = feed(&[0, 70, 270, 69, 200, 201, 200, 70]);
        assert_eq!(f.unique, 6);
        assert_eq!(f.duplicates, 2);
        assert_eq!(f.reordered, 3);
        assert_eq!(f.missing, 271 - 6);
        // A frame older than the window counts as late and distinct.
        let g = feed(&[1000, 1]);
        assert_eq!((g.unique, g.reordered, g.duplicates), (2, 1, 0));
    }

    #[test]
    fn totals_latency_and_strays() {
        let mut t = Tracker::new(2);
        for (flow, seq, tx, rx) in [(0, 0, 1_000, 11_000), (1, 0, 1_000, 21_000), (1, 1, 5, 4)] {
            t.record(
                Stamp {
                    flow,
                    seq,
                    tx_ns: tx,
                },
                rx,
            );
        }
        t.record(
            Stamp {
                flow: 9,
                seq: 0,
                tx_ns: 0,
            },
            1,
        );
        t.foreign();
        let s = t.totals();
        assert_eq!((s.received, s.unique, s.flows_seen), (3, 3, 2));
        assert_eq!((s.unknown_flow, s.foreign, s.bad_timestamps), (1, 1, 1));
        assert_eq!(s.latency.samples, 2);
        assert_eq!(s.latency.min_us, 10.0);
        assert_eq!(s.latency.max_us, 20.0);
    }
}
