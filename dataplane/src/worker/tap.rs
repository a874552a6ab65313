//! The worker's slow path for bursts while a trace or a capture is armed
//! ([`super::process_burst_traced`] calls it after its one load): packet
//! by packet, the packets a trace wants through the recording pipeline,
//! the frames a capture wants copied before and after the pipeline
//! ([`crate::capture`]), everything else through the usual pipeline call.

use std::sync::Arc;

use crate::capture::{unix_now_ns, CaptureBurst, CaptureOutcome, CaptureSession};
use crate::packet::{Pkt, PortId, Verdict};
use crate::pipeline::Pipeline;
use crate::tables::Tables;
use crate::trace_capture::{PacketSummary, TraceHub, TraceRecord, TraceTap};

#[cold]
#[inline(never)]
pub(super) fn tapped_burst(
    pipeline: &mut Pipeline,
    tap: &mut TraceTap,
    hub: &TraceHub,
    worker: usize,
    pkts: &mut [Pkt<'_>],
    verdicts: &mut [Verdict],
) {
    let session = tap.capture(hub);
    let tables = session.as_ref().map(|_| Arc::clone(pipeline.tables()));
    let cap = match (&session, &tables) {
        (Some(s), Some(t)) => Some(CaptureBurst {
            session: s,
            hub,
            tables: t,
            now_ns: unix_now_ns(),
            worker: worker as u16,
        }),
        _ => None,
    };
    let cap = cap.filter(CaptureBurst::live);
    let trace = tap.poll(hub);
    for (pkt, v) in pkts.iter_mut().zip(verdicts.iter_mut()) {
        let traced = trace.and_then(|req| {
            let summary = PacketSummary::parse(&pkt.buf[..pkt.len], pkt.port);
            (req.matches(&summary) && hub.claim()).then_some(summary)
        });
        let seen = cap.as_ref().and_then(|c| c.before(pkt));
        let mut outcome = CaptureOutcome::default();
        if let Some(summary) = traced {
            let mut events = Vec::new();
            *v = pipeline.process(pkt, &mut events);
            for e in &events {
                crate::trace::Tracer::event(&mut outcome, *e);
            }
            hub.push(TraceRecord::capture(
                worker,
                summary,
                events,
                pipeline,
                &pkt.buf[..pkt.len],
            ));
        } else if seen.is_some() {
            // The general path, to learn the drop reason and the rule.
            *v = pipeline.process(pkt, &mut outcome);
        } else {
            pipeline.process_burst(std::slice::from_mut(pkt), std::slice::from_mut(v));
        }
        if let Some(c) = &cap {
            c.after(pkt, *v, seen, outcome);
        }
    }
}

/// The capture session that wants frames sent on a worker's ports, for
/// the packets the neighbour queue releases (`None`, after one load, when
/// no capture is armed).
pub(super) fn pending_capture(
    tap: &mut TraceTap,
    hub: &TraceHub,
    pipeline: &Pipeline,
) -> Option<(Arc<CaptureSession>, Arc<Tables>, u64)> {
    if !hub.any_armed() {
        return None;
    }
    let s = tap.capture(hub)?;
    Some((s, Arc::clone(pipeline.tables()), unix_now_ns()))
}

/// Records a frame the neighbour queue released on `port`.
pub(super) fn capture_pending(
    cap: &(Arc<CaptureSession>, Arc<Tables>, u64),
    hub: &TraceHub,
    worker: usize,
    frame: &[u8],
    port: PortId,
) {
    let c = CaptureBurst {
        session: &cap.0,
        hub,
        tables: &cap.1,
        now_ns: cap.2,
        worker: worker as u16,
    };
    if c.live() {
        c.sent(frame, port, None);
    }
}
