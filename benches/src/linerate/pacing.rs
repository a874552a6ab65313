//! Pacing: a token bucket over elapsed nanoseconds, in bursts of at most
//! [`MAX_BURST`] frames. Pure arithmetic; the generator feeds it the clock.

/// Most frames one burst sends.
pub const MAX_BURST: usize = 64;

/// Frames allowed by `rate_pps` since the start: sending follows
/// `sent(t) = rate * t`, and a sender that fell behind catches up by at most
/// one burst (a slow generator offers less, it does not burst).
#[derive(Clone, Debug)]
pub struct Pacer {
    rate_pps: f64,
    /// Frames sent so far.
    sent: u64,
    /// Frames forgiven because the sender fell behind by more than a burst.
    skipped: u64,
}

impl Pacer {
    /// A pacer at `rate_pps` frames a second (0 or less: as fast as possible).
    pub fn new(rate_pps: f64) -> Pacer {
        Pacer {
            rate_pps,
            sent: 0,
            skipped: 0,
        }
    }

    /// Frames that may go now, `elapsed_ns` after the start (at most
    /// [`MAX_BURST`]).
    pub fn allowed(&mut self, elapsed_ns: u64) -> usize {
        if self.rate_pps <= 0.0 {
            return MAX_BURST;
        }
        let due = (elapsed_ns as f64 * self.rate_pps / 1e9) as u64;
        let owed = due.saturating_sub(self.sent + self.skipped);
        if owed > 2 * MAX_BURST as u64 {
            // Fell behind: forget what cannot be caught up within a burst.
            self.skipped += owed - MAX_BURST as u64;
            return MAX_BURST;
        }
        owed.min(MAX_BURST as u64) as usize
    }

    /// Records `n` frames sent.
    pub fn sent(&mut self, n: usize) {
        self.sent += n as u64;
    }

    /// Nanoseconds after the start at which the next frame is due.
    pub fn next_due_ns(&self) -> u64 {
        if self.rate_pps <= 0.0 {
            return 0;
        }
        ((self.sent + self.skipped + 1) as f64 * 1e9 / self.rate_pps) as u64
    }

    /// Nanoseconds after the start at which `n` more frames are due.
    pub fn due_ns(&self, n: usize) -> u64 {
        if self.rate_pps <= 0.0 {
            return 0;
        }
        ((self.sent + self.skipped + n as u64) as f64 * 1e9 / self.rate_pps) as u64
    }

    /// Frames the sender could not keep up with.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_rate_in_bursts() {
        let mut p = Pacer::new(1_000_000.0); // one frame a microsecond
        assert_eq!(p.allowed(0), 0);
        assert_eq!(p.allowed(10_000), 10);
        p.sent(10);
        assert_eq!(p.allowed(10_500), 0);
        assert_eq!(p.next_due_ns(), 11_000);
        assert_eq!(p.allowed(100_000), 64, "bursts are capped");
        p.sent(64);
        assert_eq!(p.allowed(100_000), 26);
        p.sent(26);
        assert_eq!(p.skipped(), 0);
    }

    #[test]
    fn a_slow_sender_is_not_allowed_a_huge_burst() {
        let mut p = Pacer::new(1_000_000.0);
        // A second passed with nothing sent: 1M frames due.
        assert_eq!(p.allowed(1_000_000_000), 64);
        assert_eq!(p.skipped(), 1_000_000 - 64);
        p.sent(64);
        assert_eq!(p.allowed(1_000_000_000), 0);
    }

    #[test]
    fn unpaced_always_allows_a_burst() {
        let mut p = Pacer::new(0.0);
        assert_eq!(p.allowed(0), MAX_BURST);
        assert_eq!(p.next_due_ns(), 0);
    }
}
