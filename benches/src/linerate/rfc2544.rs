//! RFC 2544 section 26.1 throughput: the highest offered rate at which the
//! device forwards every frame, found by binary search over trials of a
//! set duration; a PDR ("partial drop rate") mode accepts a loss ratio.
//!
//! The search itself is pure ([`search`] takes the trial as a closure);
//! [`trial`] runs one trial with a generator and a sink.

use std::time::Duration;

use serde::Serialize;

use super::frame::SizeMix;
use super::gen::RunSpec;
use super::handles::{GenHandle, SinkHandle};
use super::LinerateError;

/// Share of the target rate the generator must reach for a trial to test
/// that rate; below it the trial is "generator-limited".
pub const REACHED: f64 = 0.97;

/// How to search.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SearchParams {
    /// Highest rate tried (the first trial), frames a second.
    pub max_pps: f64,
    /// Stop when the bracket `[pass, fail]` is narrower than this share of
    /// the failing rate.
    pub resolution: f64,
    /// Accepted loss ratio: 0 for RFC 2544 throughput, e.g. 0.001 for PDR.
    pub loss_tolerance: f64,
    /// Most trials.
    pub max_trials: u32,
}

impl Default for SearchParams {
    fn default() -> Self {
        SearchParams {
            max_pps: 2_000_000.0,
            resolution: 0.02,
            loss_tolerance: 0.0,
            max_trials: 12,
        }
    }
}

/// What one trial measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct TrialOutcome {
    /// Rate the generator achieved.
    pub offered_pps: f64,
    /// Frames sent.
    pub sent: u64,
    /// Frames received.
    pub received: u64,
    /// Frames received per second of sending.
    pub received_pps: f64,
}

/// One trial of a search.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Trial {
    /// Rate asked for.
    pub target_pps: f64,
    /// What happened.
    pub outcome: TrialOutcome,
    /// `lost / sent`.
    pub loss_ratio: f64,
    /// Loss within tolerance.
    pub passed: bool,
    /// The generator fell short of [`REACHED`] of the target.
    pub generator_limited: bool,
}

/// The result of a search.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SearchResult {
    /// Highest passing rate, as offered (measured at the generator); `None`
    /// when no trial passed.
    pub throughput_pps: Option<f64>,
    /// The target rate of that trial.
    pub target_pps: Option<f64>,
    /// Lowest failing target rate (`None`: nothing failed).
    pub failed_at_pps: Option<f64>,
    /// The passing result is bounded by the generator, not the device: the
    /// device took all the generator could offer.
    pub generator_limited: bool,
    /// Every trial, in order.
    pub trials: Vec<Trial>,
}

impl SearchResult {
    /// One line for people.
    pub fn describe(&self) -> String {
        match (self.throughput_pps, self.generator_limited) {
            (None, _) => "no rate passed".into(),
            (Some(r), false) => format!("{:.0} pps", r),
            (Some(r), true) => format!(
                "{:.0} pps, generator-limited: the device took every frame the generator \
                 could offer; its throughput is higher",
                r
            ),
        }
    }
}

/// Binary search for the highest passing rate. The first trial is at
/// `max_pps`; after a failure the next is at the rate the device forwarded
/// (a good guess), then the bracket is halved.
pub fn search(
    params: &SearchParams,
    mut trial: impl FnMut(f64) -> Result<TrialOutcome, LinerateError>,
) -> Result<SearchResult, LinerateError> {
    if params.max_pps <= 0.0 || params.max_trials == 0 {
        return Err(LinerateError::Config(
            "search needs max_pps > 0 and at least one trial".into(),
        ));
    }
    let mut out = SearchResult::default();
    let mut lo: Option<(f64, f64, bool)> = None; // (target, offered, limited)
    let mut hi = params.max_pps;
    let mut hi_failed = false;
    let mut next = params.max_pps;
    for _ in 0..params.max_trials {
        let o = trial(next)?;
        let lost = o.sent.saturating_sub(o.received);
        let ratio = if o.sent == 0 {
            1.0
        } else {
            lost as f64 / o.sent as f64
        };
        let t = Trial {
            target_pps: next,
            outcome: o,
            loss_ratio: ratio,
            passed: o.sent > 0 && ratio <= params.loss_tolerance,
            generator_limited: o.offered_pps < REACHED * next,
        };
        out.trials.push(t);
        if t.passed {
            lo = Some((next, o.offered_pps, t.generator_limited));
            if !hi_failed || t.generator_limited {
                // Passed at the top, or the generator cannot go higher.
                break;
            }
        } else {
            hi = next;
            hi_failed = true;
        }
        let low = lo.map_or(0.0, |l| l.0);
        if hi - low <= params.resolution * hi {
            break;
        }
        next = if out.trials.len() == 1 && o.received_pps > 0.0 && o.received_pps < hi {
            // The forwarded rate is close to the answer.
            o.received_pps.max(low + params.resolution * hi)
        } else {
            (low + hi) / 2.0
        };
    }
    if let Some((target, offered, limited)) = lo {
        out.throughput_pps = Some(offered.min(target));
        out.target_pps = Some(target);
        out.generator_limited = limited;
    }
    out.failed_at_pps = hi_failed.then_some(hi);
    Ok(out)
}

/// How long the sink keeps counting after the generator stops, for frames
/// still in flight.
pub const DRAIN: Duration = Duration::from_millis(100);

/// One trial: the sink measures while the generator sends at `rate_pps`
/// for `duration`.
pub fn trial(
    gen: &GenHandle,
    sink: &mut SinkHandle,
    sizes: &SizeMix,
    rate_pps: f64,
    duration: Duration,
) -> Result<TrialOutcome, LinerateError> {
    sink.start(duration + DRAIN + Duration::from_secs(5))?;
    let g = gen.run(&RunSpec {
        rate_pps,
        sizes: sizes.clone(),
        duration,
        count: None,
        whole_bursts: false,
    });
    std::thread::sleep(DRAIN);
    let s = sink.finish()?;
    let g = g?;
    let loss = s.loss(&g);
    Ok(TrialOutcome {
        offered_pps: g.offered_pps,
        sent: g.sent,
        received: loss.received,
        received_pps: if g.seconds > 0.0 {
            loss.received as f64 / g.seconds
        } else {
            0.0
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device that forwards up to `capacity` pps and drops `drop_share`
    /// of all frames, fed by a generator that tops out at `gen_max`.
    fn device(
        capacity: f64,
        drop_share: f64,
        gen_max: f64,
    ) -> impl FnMut(f64) -> Result<TrialOutcome, LinerateError> {
        move |rate| {
            let offered = rate.min(gen_max);
            let sent = offered as u64; // one-second trials
            let through = offered.min(capacity) * (1.0 - drop_share);
            let received = (through as u64).min(sent);
            Ok(TrialOutcome {
                offered_pps: offered,
                sent,
                received,
                received_pps: received as f64,
            })
        }
    }

    #[test]
    fn finds_capacity_within_resolution() {
        for capacity in [123_456.0, 700_000.0, 1_999_000.0, 10_000.0] {
            let p = SearchParams::default();
            let r = search(&p, device(capacity, 0.0, 5e6)).unwrap();
            let got = r.throughput_pps.unwrap();
            assert!(got <= capacity, "{capacity}: {got} passes only if no loss");
            assert!(
                got >= capacity - p.resolution * p.max_pps,
                "{capacity}: {got}, trials {:?}",
                r.trials
            );
            assert!(!r.generator_limited);
            assert!(r.trials.len() <= p.max_trials as usize);
            assert!(r
                .trials
                .iter()
                .all(|t| t.passed == (t.target_pps <= capacity)));
        }
    }

    #[test]
    fn passing_at_the_top_stops_at_once() {
        let r = search(&SearchParams::default(), device(3e6, 0.0, 5e6)).unwrap();
        assert_eq!(r.trials.len(), 1);
        assert_eq!(r.throughput_pps, Some(2e6));
        assert_eq!(r.failed_at_pps, None);
    }

    #[test]
    fn steady_loss_fails_no_drop_but_passes_pdr() {
        let nd = search(&SearchParams::default(), device(3e6, 0.005, 5e6)).unwrap();
        assert_eq!(nd.throughput_pps, None, "{:?}", nd.trials);
        assert_eq!(nd.describe(), "no rate passed");
        let pdr = SearchParams {
            loss_tolerance: 0.01,
            ..SearchParams::default()
        };
        let r = search(&pdr, device(1e6, 0.005, 5e6)).unwrap();
        let got = r.throughput_pps.unwrap();
        assert!(got > 0.95e6 && got <= 1.0e6 / 0.995, "{got}");
    }

    #[test]
    fn a_weak_generator_is_reported() {
        // The device could take 1.5 Mpps; the generator offers 0.9 Mpps.
        let r = search(&SearchParams::default(), device(1.5e6, 0.0, 0.9e6)).unwrap();
        assert!(r.generator_limited);
        assert_eq!(r.throughput_pps, Some(0.9e6));
        assert!(r.describe().contains("generator-limited"));
        // The device is the limit below the generator's maximum.
        let r = search(&SearchParams::default(), device(0.5e6, 0.0, 0.9e6)).unwrap();
        assert!(!r.generator_limited, "{:?}", r.trials);
    }
}
