//! Live packet capture (`routerctl capture`): the control plane arms a
//! [`CaptureSession`] on the workers' [`TraceHub`]; while it is armed, the
//! workers copy the frames it wants (as received, as sent, or dropped with
//! the reason) into its bounded lock-free queue, and the control plane
//! drains it into a pcapng file.
//!
//! Off, capture costs what traces cost: the one relaxed load per burst of
//! the hub's armed word ([`TraceHub::any_armed`]); nothing is copied and
//! nothing allocates. Armed, the burst goes packet by packet through
//! [`crate::worker::process_burst_traced`]'s slow path; frames that pass
//! the match are copied into fresh buffers (allocation is fine then: it is
//! a debugging tool). A session ends by itself: after its packet count,
//! its byte budget, or its expiry (the control plane pushes the expiry out
//! at every poll, so a capture whose client went away stops within
//! [`CAPTURE_WATCHDOG_NS`]).
//!
//! What is recorded (each frame at most once per direction):
//! - a frame that the pipeline drops: once, as received, with the drop
//!   reason and, for filter drops, the chain and rule (a `reject` is such a
//!   drop; its reply is then a sent frame);
//! - a frame received and not dropped: as received (a packet handed to the
//!   worker owning its flow is recorded by that worker);
//! - a frame sent on a port or written to the host path: as sent, after
//!   the rewrite (TTL, checksum, MACs) or as generated (ICMP errors, RSTs,
//!   ARP), and packets released after ARP resolution.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::drop::DropReason;
use crate::meta::Meta;
use crate::packet::{Pkt, PortId, Verdict};
use crate::rules::{self, ChainId, Match};
use crate::tables::Tables;
use crate::trace::{Event, Tracer};
use crate::trace_capture::{PacketSummary, TraceHub};

/// Most records a session's queue holds between two polls.
pub const CAPTURE_QUEUE: usize = 4096;
/// Most packets one capture may ask for.
pub const MAX_CAPTURE_COUNT: u32 = 1_000_000;
/// How long a session stays armed without a poll (ns).
pub const CAPTURE_WATCHDOG_NS: u64 = 5_000_000_000;

/// Which way a recorded frame went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureDir {
    /// As received on the port (or from the host path).
    Received,
    /// As sent on the port (or written to the host path).
    Sent,
    /// As received, then dropped by the pipeline.
    Dropped,
}

/// What a capture wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureRequest {
    /// The ports captured: bits of [`PortId::bit`] (the host path included).
    pub ports: u64,
    /// Frames as received (not dropped).
    pub rx: bool,
    /// Frames as sent.
    pub tx: bool,
    /// Dropped frames, with the reason.
    pub drops: bool,
    /// Conditions as in a rule (`in`, `out`, addresses, protocol, ports,
    /// ICMP); no `state`. [`Match::need`] must be computed.
    pub matcher: Match,
    /// Bytes kept of each frame (at least 1).
    pub snaplen: u32,
}

impl CaptureRequest {
    /// The matcher without its `out` condition: what can be checked before
    /// the pipeline decides where a frame goes.
    fn before_routing(&self) -> Match {
        let mut m = self.matcher.clone();
        m.need &= !Match::NEED_OUT;
        m
    }
}

/// One recorded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureRecord {
    /// The port it was received or sent on ([`PortId::HOST`]: the host path).
    pub port: PortId,
    /// Which way it went.
    pub dir: CaptureDir,
    /// Wall-clock time, ns since the Unix epoch (when the worker took the
    /// burst; AF_XDP frames carry no time of their own).
    pub ts_ns: u64,
    /// The frame's length.
    pub orig_len: u32,
    /// Its first `snaplen` bytes.
    pub data: Vec<u8>,
    /// Why it was dropped ([`CaptureDir::Dropped`]).
    pub drop: Option<DropReason>,
    /// The filter chain and rule (index; `None`: the policy) that decided
    /// a dropped frame, when a filter chain did.
    pub filter: Option<(ChainId, Option<usize>)>,
    /// The pipeline answered the dropped frame (a reject's RST or ICMP
    /// error, an ARP request for its next hop).
    pub answered: bool,
    /// The worker that saw it.
    pub worker: u16,
}

/// One armed capture, shared by the control plane and the workers.
pub struct CaptureSession {
    id: u64,
    request: CaptureRequest,
    before: Match,
    remaining: AtomicU32,
    bytes_left: AtomicU64,
    expires_ns: AtomicU64,
    ended: AtomicBool,
    records: ArrayQueue<CaptureRecord>,
    lost: AtomicU64,
}

impl std::fmt::Debug for CaptureSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureSession")
            .field("id", &self.id)
            .field("request", &self.request)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl CaptureSession {
    /// Its id (unique per hub).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// What it captures.
    pub fn request(&self) -> &CaptureRequest {
        &self.request
    }

    /// Take the next record (control plane).
    pub fn pop(&self) -> Option<CaptureRecord> {
        self.records.pop()
    }

    /// Records lost to a full queue.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Packets it still takes.
    pub fn remaining(&self) -> u32 {
        self.remaining.load(Ordering::Acquire)
    }

    /// Whether it has stopped taking packets (count, bytes, expiry or stop).
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Push the expiry to `ns` (Unix time), as the control plane does at
    /// every poll.
    pub fn set_expiry(&self, ns: u64) {
        self.expires_ns.store(ns, Ordering::Release);
    }

    /// Take one record of `len` bytes; false once the count or the byte
    /// budget is spent (the session then ends).
    fn claim(&self, hub: &TraceHub, len: usize) -> bool {
        if self.ended() {
            return false;
        }
        let count = self
            .remaining
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| r.checked_sub(1));
        let bytes = self
            .bytes_left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                b.checked_sub(len as u64)
            });
        match (count, bytes) {
            (Ok(c), Ok(_)) => {
                if c == 1 {
                    hub.end_capture(self);
                }
                true
            }
            _ => {
                hub.end_capture(self);
                false
            }
        }
    }

    fn push(&self, rec: CaptureRecord) {
        if self.records.push(rec).is_err() {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The hub's capture half: the armed session, if any.
#[derive(Default)]
pub(crate) struct CaptureSlot {
    /// Bumped at every arm; workers compare it with their cached session.
    pub(crate) generation: AtomicU64,
    pub(crate) session: std::sync::Mutex<Option<Arc<CaptureSession>>>,
}

/// Why a capture could not be armed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureBusy {
    /// Another capture is armed and was polled recently.
    Running { id: u64 },
}

impl TraceHub {
    /// Arm a capture (control plane) of at most `count` packets and
    /// `bytes` bytes, expiring at `expires_ns` (Unix time). Refused while
    /// another one runs, unless `take_over` (its client is gone).
    pub fn arm_capture(
        &self,
        request: CaptureRequest,
        count: u32,
        bytes: u64,
        expires_ns: u64,
        take_over: bool,
    ) -> Result<Arc<CaptureSession>, CaptureBusy> {
        let mut slot = self
            .capture
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(s) = slot.as_ref() {
            if !s.ended() && !take_over {
                return Err(CaptureBusy::Running { id: s.id });
            }
            s.ended.store(true, Ordering::Release);
        }
        let id = self.capture.generation.load(Ordering::Relaxed) + 1;
        let before = request.before_routing();
        let s = Arc::new(CaptureSession {
            id,
            request: CaptureRequest {
                snaplen: request.snaplen.max(1),
                ..request
            },
            before,
            remaining: AtomicU32::new(count.clamp(1, MAX_CAPTURE_COUNT)),
            bytes_left: AtomicU64::new(bytes.max(1)),
            expires_ns: AtomicU64::new(expires_ns),
            ended: AtomicBool::new(false),
            records: ArrayQueue::new(CAPTURE_QUEUE),
            lost: AtomicU64::new(0),
        });
        *slot = Some(Arc::clone(&s));
        self.capture.generation.store(id, Ordering::Release);
        self.set_armed(crate::trace_capture::ARMED_CAPTURE, true);
        Ok(s)
    }

    /// The armed session, or the last one (control plane).
    pub fn capture_session(&self) -> Option<Arc<CaptureSession>> {
        self.capture
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// End a session (control plane: stop; worker: count, bytes or expiry).
    pub fn end_capture(&self, s: &CaptureSession) {
        s.ended.store(true, Ordering::Release);
        let slot = self
            .capture
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|cur| cur.id == s.id) {
            self.set_armed(crate::trace_capture::ARMED_CAPTURE, false);
        }
    }
}

/// What the pipeline decided about a frame, gathered from its trace
/// events (the general path reports them; no allocation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureOutcome {
    /// Why it was dropped.
    pub drop: Option<DropReason>,
    /// A reply was generated in place of it.
    pub generated: bool,
    /// The last filter chain decision: chain and rule (`None`: policy).
    pub filter: Option<(ChainId, Option<usize>)>,
}

impl Tracer for CaptureOutcome {
    #[inline]
    fn event(&mut self, e: Event) {
        match e {
            Event::Filter { chain, rule, .. } => self.filter = Some((chain, rule)),
            Event::Done {
                drop, generated, ..
            } => {
                self.drop = drop;
                self.generated = generated;
            }
            _ => {}
        }
    }
}

/// Unix time in ns.
pub fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The match fields of a frame read from its bytes (never panics): the
/// metadata a rule looks at, and whether the frame is IP (IPv4 or IPv6).
pub fn frame_meta(frame: &[u8], in_port: PortId, tables: &Tables) -> (Meta, bool) {
    let s = PacketSummary::parse(frame, in_port);
    // An IP header was there to read (the summary leaves zeros otherwise).
    let v6 = s.is_ipv6() && frame.len() >= 14 + 40;
    let ip = v6 || (s.is_ipv4() && frame.len() >= 14 + 20);
    let l4 = !s.fragment;
    let icmp = if v6 { 58 } else { 1 };
    let m = Meta {
        in_port,
        src: s.src,
        dst: s.dst,
        v6,
        src6: s.src6,
        dst6: s.dst6,
        proto: s.proto,
        ttl: s.ttl,
        fragment: s.fragment,
        nonfirst_fragment: s.fragment,
        has_ports: ip && l4 && matches!(s.proto, 6 | 17),
        sport: s.sport,
        dport: s.dport,
        tcp_flags: s.tcp_flags,
        has_icmp: ip && l4 && s.proto == icmp,
        icmp_type: s.icmp_type,
        icmp_code: s.icmp_code,
        local_dst: if v6 {
            tables.v6.is_local(s.dst6)
        } else {
            ip && tables.is_local(s.dst)
        },
        ..Meta::default()
    };
    (m, ip)
}

/// Whether a rule-style match holds for a frame's metadata; conditions on
/// IP fields never hold for other frames (ARP).
fn holds(m: &Match, meta: &Meta, ip: bool, tables: &Tables) -> bool {
    if m.need == 0 {
        return true;
    }
    if !ip && m.need & !(Match::NEED_IN | Match::NEED_OUT) != 0 {
        return false;
    }
    rules::matches(m, meta, tables)
}

/// A received frame that passed the match before routing: its bytes as
/// received (copied before the pipeline rewrites them).
pub struct Seen {
    meta: Meta,
    /// An IP frame (IPv4 or IPv6).
    ip: bool,
    orig_len: u32,
    data: Vec<u8>,
}

/// A worker's view of an armed session for one burst.
pub struct CaptureBurst<'a> {
    /// The session.
    pub session: &'a CaptureSession,
    /// The hub (to end the session).
    pub hub: &'a TraceHub,
    /// The tables the burst runs with (for `destination: local`).
    pub tables: &'a Tables,
    /// When the burst was taken.
    pub now_ns: u64,
    /// The worker.
    pub worker: u16,
}

impl CaptureBurst<'_> {
    /// Whether the session still takes packets; ends it once expired.
    pub fn live(&self) -> bool {
        let s = self.session;
        if s.ended() {
            return false;
        }
        if self.now_ns > s.expires_ns.load(Ordering::Acquire) {
            self.hub.end_capture(s);
            return false;
        }
        true
    }

    /// Before the pipeline: whether a received frame may be recorded (as
    /// received or dropped); if so, its bytes as received.
    pub fn before(&self, pkt: &Pkt<'_>) -> Option<Seen> {
        let r = &self.session.request;
        if !(r.rx || r.drops) || r.ports & pkt.port.bit() == 0 {
            return None;
        }
        let frame = &pkt.buf[..pkt.len.min(pkt.buf.len())];
        let (meta, ip) = frame_meta(frame, pkt.port, self.tables);
        if !holds(&self.session.before, &meta, ip, self.tables) {
            return None;
        }
        let keep = frame.len().min(r.snaplen as usize);
        Some(Seen {
            meta,
            ip,
            orig_len: frame.len() as u32,
            data: frame[..keep].to_vec(),
        })
    }

    /// After the pipeline: record the frame as received or dropped (from
    /// `seen`) and as sent (its bytes now), as the request wants.
    pub fn after(&self, pkt: &Pkt<'_>, v: Verdict, seen: Option<Seen>, out: CaptureOutcome) {
        let r = &self.session.request;
        let out_port = match v {
            Verdict::Tx(p) => Some(p),
            Verdict::Host => Some(PortId::HOST),
            _ => None,
        };
        if let Some(mut seen) = seen {
            seen.meta.out_port = out_port;
            let dropped = out.drop.or(match v {
                Verdict::Drop(d) => Some(d),
                _ => None,
            });
            let dir = match dropped {
                Some(_) => Some(CaptureDir::Dropped),
                None if r.rx && !matches!(v, Verdict::HandOff(_)) => Some(CaptureDir::Received),
                None => None,
            };
            if let Some(dir) = dir {
                if holds(&r.matcher, &seen.meta, seen.ip, self.tables)
                    && self.session.claim(self.hub, seen.data.len())
                {
                    self.session.push(CaptureRecord {
                        port: pkt.port,
                        dir,
                        ts_ns: self.now_ns,
                        orig_len: seen.orig_len,
                        data: seen.data,
                        drop: dropped,
                        filter: dropped.and(out.filter),
                        answered: dropped.is_some() && out.generated,
                        worker: self.worker,
                    });
                }
            }
        }
        if let Some(p) = out_port {
            let frame = &pkt.buf[..pkt.len.min(pkt.buf.len())];
            self.sent(frame, p, Some(pkt.port));
        }
    }

    /// A frame sent on `port` (or written to the host path): recorded as
    /// sent if wanted. `in_port`: where the packet came from, when known
    /// (`None` never matches an `in` condition).
    pub fn sent(&self, frame: &[u8], port: PortId, in_port: Option<PortId>) {
        let r = &self.session.request;
        if !r.tx || r.ports & port.bit() == 0 {
            return;
        }
        if in_port.is_none() && r.matcher.need & Match::NEED_IN != 0 {
            return;
        }
        let (mut meta, ip) = frame_meta(frame, in_port.unwrap_or(port), self.tables);
        meta.out_port = Some(port);
        let keep = frame.len().min(r.snaplen as usize);
        if holds(&r.matcher, &meta, ip, self.tables) && self.session.claim(self.hub, keep) {
            self.session.push(CaptureRecord {
                port,
                dir: CaptureDir::Sent,
                ts_ns: self.now_ns,
                orig_len: frame.len() as u32,
                data: frame[..keep].to_vec(),
                drop: None,
                filter: None,
                answered: false,
                worker: self.worker,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace_capture::TraceTap;

    fn req(m: Match) -> CaptureRequest {
        let mut matcher = m;
        matcher.compile();
        CaptureRequest {
            ports: u64::MAX,
            rx: true,
            tx: true,
            drops: true,
            matcher,
            snaplen: 65535,
        }
    }

    #[test]
    fn one_capture_at_a_time_and_the_armed_word_follows_it() {
        let hub = TraceHub::new();
        assert!(!hub.any_armed());
        let s = hub
            .arm_capture(req(Match::default()), 2, 1 << 20, u64::MAX, false)
            .expect("armed");
        assert!(hub.any_armed());
        assert_eq!(
            hub.arm_capture(req(Match::default()), 2, 1 << 20, u64::MAX, false)
                .unwrap_err(),
            CaptureBusy::Running { id: s.id() }
        );
        assert!(s.claim(&hub, 10));
        assert!(s.claim(&hub, 10), "the second of two");
        assert!(s.ended() && !hub.any_armed(), "ends at its count");
        assert!(!s.claim(&hub, 10));
        let s2 = hub
            .arm_capture(req(Match::default()), 5, 15, u64::MAX, false)
            .expect("armed again once the first ended");
        assert!(s2.claim(&hub, 10));
        assert!(!s2.claim(&hub, 10), "over the byte budget");
        assert!(!hub.any_armed());
        // A session that ended cannot disarm a newer one.
        let s3 = hub
            .arm_capture(req(Match::default()), 5, 100, u64::MAX, false)
            .expect("armed");
        hub.end_capture(&s2);
        assert!(hub.any_armed() && !s3.ended());
        let mut tap = TraceTap::default();
        assert!(tap.poll(&hub).is_none(), "no trace armed");
    }
}
