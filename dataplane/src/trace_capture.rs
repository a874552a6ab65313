//! Live packet traces (`routerctl trace`): the control plane arms a
//! [`TraceHub`] with a [`TraceRequest`]; workers look at one atomic per
//! burst and, only while a trace is armed, run matching packets through the
//! recording pipeline path and push what every stage decided into a bounded
//! lock-free queue that the control plane drains.
//!
//! Off, a trace costs one relaxed load per burst ([`TraceHub::any_armed`],
//! the word that also says whether a capture is armed: [`crate::capture`]);
//! the packet path never locks or allocates for it. Armed, matching packets are
//! traced one by one (allocation is fine then: it is a debugging tool).
//!
//! # What a worker does
//! ```text
//! // once, per worker:      let mut tap = TraceTap::default();
//! // every burst (worker::process_burst_traced; the capture half of the
//! // slow path is in crate::capture):
//! if !hub.any_armed() {
//!     pipeline.process_burst(&mut pkts, &mut verdicts);   // as before
//! } else if let Some(req) = tap.poll(&hub) {
//!     for (i, pkt) in pkts.iter_mut().enumerate() {
//!         let summary = PacketSummary::parse(&pkt.buf[..pkt.len], pkt.port);
//!         if req.matches(&summary) && hub.claim() {
//!             let mut events = Vec::new();
//!             verdicts[i] = pipeline.process(pkt, &mut events);
//!             hub.push(TraceRecord::capture(worker_id, summary, events,
//!                                           &pipeline, &pkt.buf[..pkt.len]));
//!         } else {
//!             pipeline.process_burst(std::slice::from_mut(pkt),
//!                                    std::slice::from_mut(&mut verdicts[i]));
//!         }
//!     }
//! }
//! ```

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_queue::ArrayQueue;

use crate::addr::{Ipv4Prefix, Ipv6Prefix, ParseAddrError};
use crate::capture::{CaptureSession, CaptureSlot};
use crate::conntrack::{FlowRef, FlowView};
use crate::packet::PortId;
use crate::pipeline::Pipeline;
use crate::tables::Tables;
use crate::trace::Event;
use crate::wire::ethernet::ETHERTYPE_IPV6;
use crate::wire::{icmpv6, ipv6};

/// Most packets one trace may ask for (and records the queue holds).
pub const MAX_TRACE_COUNT: u32 = 1000;

/// What a frame is, read from its bytes before the pipeline rewrites it.
/// Fields that the frame does not carry are 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketSummary {
    /// Arrival port.
    pub port: PortId,
    /// Frame length.
    pub frame_len: u16,
    /// Ethertype after at most one VLAN tag (0x0800 IPv4, 0x0806 ARP,
    /// 0x86DD IPv6).
    pub ethertype: u16,
    /// IPv4 protocol, or IPv6's upper-layer protocol (after the extension
    /// headers; the fragment header's next header in a later fragment).
    pub proto: u8,
    /// IPv4 addresses.
    pub src: u32,
    pub dst: u32,
    /// IPv6 addresses.
    pub src6: u128,
    pub dst6: u128,
    /// TTL, or IPv6's hop limit.
    pub ttl: u8,
    /// TCP/UDP ports; the ICMP query id in both for ICMP echo and friends.
    pub sport: u16,
    pub dport: u16,
    /// TCP flags.
    pub tcp_flags: u8,
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// A non-first fragment (no L4 header).
    pub fragment: bool,
}

fn be16(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .unwrap_or(0)
}

fn be32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .unwrap_or(0)
}

impl PacketSummary {
    /// Read an Ethernet frame; never panics, whatever the bytes.
    pub fn parse(frame: &[u8], port: PortId) -> PacketSummary {
        let mut s = PacketSummary {
            port,
            frame_len: frame.len().min(u16::MAX as usize) as u16,
            ..Default::default()
        };
        let mut l3 = 14;
        s.ethertype = be16(frame, 12);
        if s.ethertype == 0x8100 {
            s.ethertype = be16(frame, 16);
            l3 = 18;
        }
        if s.ethertype == ETHERTYPE_IPV6 {
            s.parse6(frame.get(l3..).unwrap_or(&[]));
            return s;
        }
        if s.ethertype != 0x0800 || frame.len() < l3 + 20 {
            return s;
        }
        let ip = &frame[l3..];
        let ihl = (ip[0] & 0x0f) as usize * 4;
        s.ttl = ip[8];
        s.proto = ip[9];
        s.src = be32(ip, 12);
        s.dst = be32(ip, 16);
        s.fragment = be16(ip, 6) & 0x1fff != 0;
        if s.fragment || ihl < 20 {
            return s;
        }
        let l4 = ip.get(ihl..).unwrap_or(&[]);
        s.upper(l4);
        s
    }

    /// The IPv6 fields; the upper layer's when the extension headers walk.
    fn parse6(&mut self, ip: &[u8]) {
        let Ok(p) = ipv6::Packet::new_checked(ip) else {
            return;
        };
        self.ttl = p.hop_limit();
        self.src6 = p.src_addr();
        self.dst6 = p.dst_addr();
        self.proto = p.next_header();
        let Ok(chain) = p.chain() else {
            return;
        };
        self.proto = chain.last_next_header;
        self.fragment = chain.fragment.is_some_and(|f| !f.is_first());
        if chain.upper.is_some() {
            self.upper(p.payload().get(chain.offset..).unwrap_or(&[]));
        }
    }

    /// Ports, TCP flags, ICMP or ICMPv6 type, code and query id.
    fn upper(&mut self, l4: &[u8]) {
        let s = self;
        match s.proto {
            6 | 17 => {
                s.sport = be16(l4, 0);
                s.dport = be16(l4, 2);
                if s.proto == 6 {
                    s.tcp_flags = l4.get(13).copied().unwrap_or(0);
                }
            }
            1 => {
                s.icmp_type = l4.first().copied().unwrap_or(0);
                s.icmp_code = l4.get(1).copied().unwrap_or(0);
                if matches!(s.icmp_type, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18) {
                    s.sport = be16(l4, 4);
                    s.dport = s.sport;
                }
            }
            58 => {
                s.icmp_type = l4.first().copied().unwrap_or(0);
                s.icmp_code = l4.get(1).copied().unwrap_or(0);
                if matches!(s.icmp_type, icmpv6::ECHO_REQUEST | icmpv6::ECHO_REPLY) {
                    s.sport = be16(l4, 4);
                    s.dport = s.sport;
                }
            }
            _ => {}
        }
    }

    /// An IPv4 packet.
    pub fn is_ipv4(&self) -> bool {
        self.ethertype == 0x0800
    }

    /// An IPv6 packet.
    pub fn is_ipv6(&self) -> bool {
        self.ethertype == ETHERTYPE_IPV6
    }
}

/// An IPv4 or IPv6 prefix of a trace match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpPrefix {
    V4(Ipv4Prefix),
    V6(Ipv6Prefix),
}

impl IpPrefix {
    /// Whether the packet's source (or destination) address is inside; a
    /// prefix never holds a packet of the other family.
    fn holds(&self, p: &PacketSummary, source: bool) -> bool {
        match self {
            IpPrefix::V4(x) => p.is_ipv4() && x.contains(if source { p.src } else { p.dst }),
            IpPrefix::V6(x) => p.is_ipv6() && x.contains(if source { p.src6 } else { p.dst6 }),
        }
    }
}

impl std::str::FromStr for IpPrefix {
    type Err = ParseAddrError;

    /// `198.18.0.0/24`, `2001:db8::/32`, or one address (a host prefix).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains(':') {
            s.parse().map(IpPrefix::V6)
        } else {
            s.parse().map(IpPrefix::V4)
        }
    }
}

/// Which packets a trace wants; all present conditions must hold (as in
/// tcpdump: `tcp dst 198.18.0.1 port 22`). An empty matcher takes every frame;
/// any condition takes only IP packets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceMatch {
    /// Only IPv6 (`true`) or only IPv4 (`false`) packets.
    pub v6: Option<bool>,
    /// IP protocol (IPv6: the upper-layer protocol).
    pub proto: Option<u8>,
    /// Source address in this prefix.
    pub src: Option<IpPrefix>,
    /// Destination address in this prefix.
    pub dst: Option<IpPrefix>,
    /// Source or destination in this prefix.
    pub host: Option<IpPrefix>,
    /// TCP/UDP source port.
    pub sport: Option<u16>,
    /// TCP/UDP destination port.
    pub dport: Option<u16>,
    /// TCP/UDP source or destination port.
    pub port: Option<u16>,
}

impl TraceMatch {
    /// Whether the packet satisfies every condition.
    pub fn matches(&self, p: &PacketSummary) -> bool {
        if *self == TraceMatch::default() {
            return true;
        }
        if !p.is_ipv4() && !p.is_ipv6() {
            return false;
        }
        let l4 = matches!(p.proto, 6 | 17) && !p.fragment;
        let ok_port = |want: Option<u16>, have: &[u16]| match want {
            None => true,
            Some(w) => l4 && have.contains(&w),
        };
        self.v6.is_none_or(|x| x == p.is_ipv6())
            && self.proto.is_none_or(|x| x == p.proto)
            && self.src.is_none_or(|x| x.holds(p, true))
            && self.dst.is_none_or(|x| x.holds(p, false))
            && self
                .host
                .is_none_or(|x| x.holds(p, true) || x.holds(p, false))
            && ok_port(self.sport, &[p.sport])
            && ok_port(self.dport, &[p.dport])
            && ok_port(self.port, &[p.sport, p.dport])
    }
}

/// One armed trace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceRequest {
    /// Packets to trace (at most [`MAX_TRACE_COUNT`]).
    pub count: u32,
    /// Only frames arriving on this port (`PortId::HOST` for the host path).
    pub in_port: Option<PortId>,
    /// Conditions on the packet.
    pub matcher: TraceMatch,
}

impl TraceRequest {
    /// Whether a frame is wanted.
    pub fn matches(&self, p: &PacketSummary) -> bool {
        self.in_port.is_none_or(|x| x == p.port) && self.matcher.matches(p)
    }
}

/// One traced packet, with everything needed to put it in words later.
#[derive(Clone, Debug)]
pub struct TraceRecord {
    /// The worker that saw it.
    pub worker: usize,
    /// The packet as it arrived.
    pub packet: PacketSummary,
    /// Each stage's decision.
    pub events: Vec<Event>,
    /// The tables it went through (rule numbers and comments refer to them).
    pub tables: Arc<Tables>,
    /// The flows the events refer to, read right after the packet.
    pub flows: Vec<(FlowRef, FlowView)>,
    /// Next hops of `Neighbour` events that are static entries.
    pub static_neighbours: Vec<u32>,
    /// Next hops (and their ports) of `Neighbour6` events that are static
    /// entries.
    pub static_neighbours6: Vec<(u128, PortId)>,
    /// The first bytes of the frame after the pipeline (rewritten or a
    /// generated reply).
    pub out_head: Vec<u8>,
    /// Clock of the worker (seconds) when traced.
    pub now: u32,
}

impl TraceRecord {
    /// Gather a record right after `pipeline.process(pkt, &mut events)`;
    /// `out_frame` is the frame as the pipeline left it.
    pub fn capture(
        worker: usize,
        packet: PacketSummary,
        events: Vec<Event>,
        pipeline: &Pipeline,
        out_frame: &[u8],
    ) -> TraceRecord {
        let now = pipeline.now();
        let mut flows = Vec::new();
        let mut static_neighbours = Vec::new();
        let mut static_neighbours6 = Vec::new();
        for e in &events {
            match *e {
                Event::Conntrack { flow: Some(f), .. } | Event::Confirmed { flow: f } => {
                    if let Some(v) = pipeline.conntrack().flow(f, now) {
                        flows.push((f, v));
                    }
                }
                Event::Neighbour { addr, .. }
                    if pipeline.neighbours().get(addr).is_some_and(|n| n.is_static) =>
                {
                    static_neighbours.push(addr);
                }
                Event::Neighbour6 { addr, port, .. }
                    if pipeline
                        .neighbours6()
                        .get((addr, port))
                        .is_some_and(|n| n.is_static) =>
                {
                    static_neighbours6.push((addr, port));
                }
                _ => {}
            }
        }
        TraceRecord {
            worker,
            packet,
            events,
            tables: Arc::clone(pipeline.tables()),
            flows,
            static_neighbours,
            static_neighbours6,
            out_head: out_frame[..out_frame.len().min(128)].to_vec(),
            now,
        }
    }

    /// The flow behind a reference, as it was when traced.
    pub fn flow(&self, r: FlowRef) -> Option<FlowView> {
        self.flows.iter().find(|(f, _)| *f == r).map(|(_, v)| *v)
    }
}

/// Bit of [`TraceHub`]'s armed word: a trace is armed.
pub(crate) const ARMED_TRACE: u32 = 1;
/// Bit of [`TraceHub`]'s armed word: a capture is armed.
pub(crate) const ARMED_CAPTURE: u32 = 2;

/// Shared between the control plane and the workers: the armed request,
/// how many packets it still wants, and the records; and the armed
/// capture ([`crate::capture`]).
pub struct TraceHub {
    /// [`ARMED_TRACE`] | [`ARMED_CAPTURE`]: the one word a worker loads
    /// per burst.
    armed: AtomicU32,
    /// 0: off; else the generation of the armed request.
    generation: AtomicU64,
    next_generation: AtomicU64,
    remaining: AtomicU32,
    request: Mutex<Option<Arc<TraceRequest>>>,
    records: ArrayQueue<TraceRecord>,
    lost: AtomicU64,
    /// The armed capture.
    pub(crate) capture: CaptureSlot,
}

impl Default for TraceHub {
    fn default() -> Self {
        TraceHub::new()
    }
}

impl TraceHub {
    /// An idle hub.
    pub fn new() -> TraceHub {
        TraceHub {
            armed: AtomicU32::new(0),
            generation: AtomicU64::new(0),
            next_generation: AtomicU64::new(1),
            remaining: AtomicU32::new(0),
            request: Mutex::new(None),
            records: ArrayQueue::new(MAX_TRACE_COUNT as usize),
            lost: AtomicU64::new(0),
            capture: CaptureSlot::default(),
        }
    }

    /// Whether a trace or a capture is armed: the worker's one load per
    /// burst (relaxed: what it then reads is behind acquire loads or a lock).
    #[inline(always)]
    pub fn any_armed(&self) -> bool {
        self.armed.load(Ordering::Relaxed) != 0
    }

    pub(crate) fn set_armed(&self, bit: u32, on: bool) {
        if on {
            self.armed.fetch_or(bit, Ordering::AcqRel);
        } else {
            self.armed.fetch_and(!bit, Ordering::AcqRel);
        }
    }

    /// Arm a trace (control plane). Replaces any armed one and drops
    /// records not yet taken.
    pub fn arm(&self, mut req: TraceRequest) {
        req.count = req.count.clamp(1, MAX_TRACE_COUNT);
        self.set_armed(ARMED_TRACE, false);
        self.generation.store(0, Ordering::Release);
        while self.records.pop().is_some() {}
        let count = req.count;
        *self.request.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(req));
        self.remaining.store(count, Ordering::Release);
        let g = self.next_generation.fetch_add(1, Ordering::Relaxed);
        self.generation.store(g, Ordering::Release);
        self.set_armed(ARMED_TRACE, true);
    }

    /// Stop tracing (control plane).
    pub fn disarm(&self) {
        self.generation.store(0, Ordering::Release);
        self.remaining.store(0, Ordering::Release);
        self.set_armed(ARMED_TRACE, false);
    }

    /// Whether a trace is armed and still wants packets.
    pub fn is_armed(&self) -> bool {
        self.generation.load(Ordering::Acquire) != 0
    }

    /// Packets the armed trace still wants.
    pub fn remaining(&self) -> u32 {
        self.remaining.load(Ordering::Acquire)
    }

    /// Take one of the remaining packets (worker, for a matching packet);
    /// false when the trace already has all it asked for.
    pub fn claim(&self) -> bool {
        let r = self
            .remaining
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| r.checked_sub(1));
        match r {
            Ok(1) => {
                self.generation.store(0, Ordering::Release);
                self.set_armed(ARMED_TRACE, false);
                true
            }
            Ok(_) => true,
            Err(_) => false,
        }
    }

    /// Hand over a record (worker). A full queue loses the record (counted).
    pub fn push(&self, rec: TraceRecord) {
        if self.records.push(rec).is_err() {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Take the next record (control plane).
    pub fn pop(&self) -> Option<TraceRecord> {
        self.records.pop()
    }

    /// Records lost to a full queue.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    fn current(&self) -> (u64, Option<Arc<TraceRequest>>) {
        let req = self
            .request
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        (self.generation.load(Ordering::Acquire), req)
    }
}

/// A worker's view of the hub: caches the armed request (and capture
/// session) so that the burst loop reads one atomic and takes the hub's
/// lock only when a new trace or capture was armed.
#[derive(Default)]
pub struct TraceTap {
    generation: u64,
    request: Option<Arc<TraceRequest>>,
    capture_generation: u64,
    capture: Option<Arc<CaptureSession>>,
}

impl TraceTap {
    /// Call once per burst: `None` (tracing off, use the fast path) or the
    /// armed request.
    #[inline]
    pub fn poll(&mut self, hub: &TraceHub) -> Option<&TraceRequest> {
        let g = hub.generation.load(Ordering::Acquire);
        if g == 0 {
            return None;
        }
        if g != self.generation {
            self.refresh(hub);
        }
        self.request.as_deref()
    }

    #[cold]
    fn refresh(&mut self, hub: &TraceHub) {
        let (g, req) = hub.current();
        self.generation = g;
        self.request = req;
    }

    /// The armed capture session, if one is armed and still takes packets
    /// (slow path: call only when [`TraceHub::any_armed`]).
    pub fn capture(&mut self, hub: &TraceHub) -> Option<Arc<CaptureSession>> {
        if hub.armed.load(Ordering::Acquire) & ARMED_CAPTURE == 0 {
            return None;
        }
        let g = hub.capture.generation.load(Ordering::Acquire);
        if g != self.capture_generation {
            self.capture = hub.capture_session();
            self.capture_generation = self.capture.as_ref().map_or(g, |s| s.id());
        }
        self.capture.as_ref().filter(|s| !s.ended()).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12] = 0x08;
        f[14] = 0x45;
        f[14 + 8] = 64;
        f[14 + 9] = 6;
        f[14 + 12..14 + 16].copy_from_slice(&src);
        f[14 + 16..14 + 20].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f[34 + 13] = 0x02;
        f
    }

    #[test]
    fn summary_reads_tcp_and_never_panics_on_short_frames() {
        let f = frame_tcp([198, 18, 0, 2], [198, 18, 0, 1], 40000, 22);
        let s = PacketSummary::parse(&f, PortId(0));
        assert_eq!(s.proto, 6);
        assert_eq!((s.sport, s.dport, s.tcp_flags, s.ttl), (40000, 22, 2, 64));
        for n in 0..f.len() {
            let _ = PacketSummary::parse(&f[..n], PortId(0));
        }
    }

    #[test]
    fn matcher_checks_every_present_condition() {
        let f = frame_tcp([198, 18, 0, 2], [198, 18, 0, 1], 40000, 22);
        let s = PacketSummary::parse(&f, PortId(1));
        let m = |m: TraceMatch, in_port: Option<PortId>| {
            TraceRequest {
                count: 1,
                in_port,
                matcher: m,
            }
            .matches(&s)
        };
        assert!(m(TraceMatch::default(), None));
        assert!(m(TraceMatch::default(), Some(PortId(1))));
        assert!(!m(TraceMatch::default(), Some(PortId(0))));
        let port22 = TraceMatch {
            proto: Some(6),
            port: Some(22),
            dst: "198.18.0.0/24".parse().ok(),
            ..Default::default()
        };
        assert!(m(port22, None));
        let udp = TraceMatch {
            proto: Some(17),
            ..Default::default()
        };
        assert!(!m(udp, None));
        let sport22 = TraceMatch {
            sport: Some(22),
            ..Default::default()
        };
        assert!(!m(sport22, None));
    }

    /// IPv6 TCP behind a fragment header (first fragment, MF set, 24
    /// bytes of fragment data: a multiple of 8).
    fn frame_tcp6(src: u128, dst: u128, sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 40 + 8 + 24];
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[14] = 0x60;
        f[14 + 4..14 + 6].copy_from_slice(&32u16.to_be_bytes());
        f[14 + 6] = 44;
        f[14 + 7] = 63;
        f[14 + 8..14 + 24].copy_from_slice(&src.to_be_bytes());
        f[14 + 24..14 + 40].copy_from_slice(&dst.to_be_bytes());
        f[54] = 6;
        f[57] = 1;
        f[62..64].copy_from_slice(&sport.to_be_bytes());
        f[64..66].copy_from_slice(&dport.to_be_bytes());
        f[62 + 13] = 0x12;
        f
    }

    const A6: u128 = 0x2001_0db8 << 96 | 2;
    const B6: u128 = 0x2001_0db8_0001 << 80 | 1;

    #[test]
    fn summary_reads_ipv6_through_extension_headers_and_never_panics() {
        let f = frame_tcp6(A6, B6, 40000, 22);
        let s = PacketSummary::parse(&f, PortId(0));
        assert!(s.is_ipv6() && !s.is_ipv4());
        assert_eq!((s.src6, s.dst6, s.src, s.dst), (A6, B6, 0, 0));
        assert_eq!((s.proto, s.ttl, s.fragment), (6, 63, false));
        assert_eq!((s.sport, s.dport, s.tcp_flags), (40000, 22, 0x12));
        let mut later = f.clone();
        later[56..58].copy_from_slice(&64u16.to_be_bytes());
        let s = PacketSummary::parse(&later, PortId(0));
        assert_eq!((s.proto, s.fragment, s.sport), (6, true, 0));
        for n in 0..f.len() {
            let _ = PacketSummary::parse(&f[..n], PortId(0));
        }
    }

    #[test]
    fn matcher_takes_ipv6_prefixes_and_keeps_families_apart() {
        let s6 = PacketSummary::parse(&frame_tcp6(A6, B6, 40000, 22), PortId(0));
        let s4 = PacketSummary::parse(
            &frame_tcp([198, 18, 0, 2], [198, 18, 0, 1], 1, 22),
            PortId(0),
        );
        let dst6 = TraceMatch {
            dst: "2001:db8:1::/48".parse().ok(),
            dport: Some(22),
            ..Default::default()
        };
        assert!(dst6.matches(&s6));
        assert!(!dst6.matches(&s4), "an IPv6 prefix never holds IPv4");
        let host4 = TraceMatch {
            host: "198.18.0.0/16".parse().ok(),
            ..Default::default()
        };
        assert!(host4.matches(&s4) && !host4.matches(&s6));
        let only6 = TraceMatch {
            v6: Some(true),
            ..Default::default()
        };
        assert!(only6.matches(&s6) && !only6.matches(&s4));
        let other = TraceMatch {
            src: "2001:db8:1::/48".parse().ok(),
            ..Default::default()
        };
        assert!(!other.matches(&s6));
    }

    #[test]
    fn hub_hands_out_exactly_count_packets_then_turns_off() {
        let hub = TraceHub::new();
        let mut tap = TraceTap::default();
        assert!(tap.poll(&hub).is_none());
        hub.arm(TraceRequest {
            count: 2,
            ..Default::default()
        });
        assert!(tap.poll(&hub).is_some());
        assert!(hub.claim());
        assert!(hub.claim());
        assert!(!hub.claim());
        assert!(
            tap.poll(&hub).is_none(),
            "off once all packets were claimed"
        );
        hub.arm(TraceRequest {
            count: 1,
            in_port: Some(PortId(3)),
            ..Default::default()
        });
        assert_eq!(tap.poll(&hub).and_then(|r| r.in_port), Some(PortId(3)));
        hub.disarm();
        assert!(tap.poll(&hub).is_none());
    }
}
