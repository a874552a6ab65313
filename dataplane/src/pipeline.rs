//! The pipeline: one frame in, one verdict out, run to completion.
//!
//! ```text
//! port:  parse -> raw/prerouting -> conntrack -> route
//!        -> local: filter/input -> host
//!        -> else:  TTL -> filter/forward -> neighbour -> rewrite -> port
//! host:  parse -> raw/output -> conntrack -> route -> filter/output
//!        -> neighbour -> rewrite -> port
//! ```
//! A worker owns one `Pipeline` (its connection table, neighbour cache and
//! counters); the compiled [`Tables`] are shared read-only and swapped whole
//! at housekeeping. No allocation, lock or syscall per packet.

use std::sync::Arc;

use crate::addr::Mac;
use crate::conntrack::{self, Conntrack, CtResult, CtState, FlowKey, PktInfo};
use crate::counters::Counters;
use crate::dispatch::{FastCode, LocalRules};
use crate::drop::DropReason;
use crate::meta::Meta;
use crate::neighbour::{Neighbours, PendingQueue, RESOLVE_TRIES};
use crate::packet::{Pkt, PortId, Verdict, ETH_HDR_LEN};
use crate::reply::{self, IcmpLimiter};
use crate::rewrite;
use crate::rules::{ChainId, FilterAction, RawAction, RawHook};
use crate::tables::{IpOptionsPolicy, NextHop, Tables};
use crate::trace::{Event, Tracer};
use crate::wire::{self, ethernet, icmp, ipv4, tcp, udp};

/// Seconds a learned neighbour stays valid.
pub const NEIGHBOUR_TIMEOUT: u32 = 300;
/// Seconds before a learned neighbour expires when the router asks for it
/// again (three ARP requests a second apart, as for a resolution); an
/// answer renews the entry, silence lets it expire.
pub const NEIGHBOUR_REFRESH: u32 = 30;
/// Neighbour refreshes started per housekeeping scan (one scan a second).
const REFRESH_BATCH: usize = 16;

/// Outcome of the stages before counting.
struct Outcome {
    verdict: Verdict,
    /// The received packet was dropped for this reason.
    dropped: Option<DropReason>,
    /// The frame now holds a reply the router generated (ICMP error, RST,
    /// ARP) in place of the received packet.
    generated: bool,
    /// The packet was copied into the neighbour queue: its fate (forwarded
    /// or dropped) is counted when the neighbour resolves or fails.
    deferred: bool,
}

impl Outcome {
    #[inline]
    fn drop(r: DropReason) -> Outcome {
        Outcome {
            verdict: Verdict::Drop(r),
            dropped: Some(r),
            generated: false,
            deferred: false,
        }
    }
    #[inline]
    fn of(verdict: Verdict) -> Outcome {
        Outcome {
            verdict,
            dropped: None,
            generated: false,
            deferred: false,
        }
    }
    /// A reply generated in the frame, sent out of `port`.
    #[inline]
    fn reply(port: PortId, dropped: Option<DropReason>) -> Outcome {
        Outcome {
            verdict: Verdict::Tx(port),
            dropped,
            generated: true,
            deferred: false,
        }
    }
}

/// The mutable state of a worker's pipeline.
pub struct State {
    ct: Conntrack,
    neigh: Neighbours,
    /// Resolved MAC per next-hop id (gateways), rebuilt when neighbours change.
    nh_mac: Vec<Option<Mac>>,
    /// Ethernet destination and source per next-hop id (gateways with a
    /// resolved MAC), for the fast path.
    nh_fast: Vec<FastHop>,
    /// Each port's MAC as a 48-bit number (the frame's first six bytes read
    /// little-endian), indexed by port; `u64::MAX`, which no MAC equals,
    /// for the host path and ports that do not exist.
    port_mac: [u64; 64],
    limiter: IcmpLimiter,
    /// Packets waiting for ARP.
    pending: PendingQueue,
    /// Where a queued packet is rewritten before it is handed out.
    scratch: Box<[u8]>,
    now: u32,
    /// Second of the last scan for neighbours to refresh.
    refresh_scan: u32,
    /// This worker's counters.
    pub counters: Counters,
}

/// A worker's pipeline.
pub struct Pipeline {
    tables: Arc<Tables>,
    st: State,
}

impl Pipeline {
    /// A pipeline over `tables`; reserves the connection table.
    pub fn new(tables: Arc<Tables>) -> Pipeline {
        let mut st = State {
            ct: Conntrack::new(tables.conntrack),
            neigh: Neighbours::new(),
            nh_mac: Vec::new(),
            nh_fast: Vec::new(),
            port_mac: [u64::MAX; 64],
            limiter: IcmpLimiter::new(tables.icmp_errors.rate, tables.icmp_errors.burst),
            pending: PendingQueue::default(),
            scratch: vec![0u8; 2048].into_boxed_slice(),
            now: 1,
            refresh_scan: 0,
            counters: Counters::default(),
        };
        st.adopt(&tables);
        Pipeline { tables, st }
    }

    /// Swap in new tables (between bursts). The connection table and learned
    /// neighbours survive; rule counters restart with the new rule set.
    pub fn set_tables(&mut self, tables: Arc<Tables>) {
        self.st.ct.set_config(tables.conntrack);
        self.st.limiter = IcmpLimiter::new(tables.icmp_errors.rate, tables.icmp_errors.burst);
        self.st.adopt(&tables);
        self.tables = tables;
    }

    /// The tables in force.
    pub fn tables(&self) -> &Arc<Tables> {
        &self.tables
    }

    /// Set the clock (seconds, monotonic) once per burst.
    #[inline]
    pub fn set_now(&mut self, secs: u32) {
        self.st.now = secs.max(1);
    }

    /// The clock.
    pub fn now(&self) -> u32 {
        self.st.now
    }

    /// Expire flows and neighbours, and (once a second) start refreshing
    /// learned neighbours that expire within [`NEIGHBOUR_REFRESH`] seconds:
    /// their ARP requests go out from [`Pipeline::drain_pending`]. Call at
    /// housekeeping.
    pub fn housekeeping(&mut self, gc_budget: usize) {
        let now = self.st.now;
        self.st.ct.gc(now, gc_budget);
        if self.st.neigh.expire(now) > 0 {
            self.st.rebuild_nh_cache(&self.tables);
        }
        if now != self.st.refresh_scan {
            self.st.refresh_scan = now;
            let mut due = [(0u32, PortId(0)); REFRESH_BATCH];
            let n = self
                .st
                .neigh
                .due_for_refresh(now, NEIGHBOUR_REFRESH, &mut due);
            for &(addr, port) in &due[..n] {
                // No room among the resolutions: try again at the next scan.
                if let Some(r) = self.st.pending.resolving(addr, port) {
                    r.refresh = true;
                    self.st.neigh.set_refreshing(addr);
                }
            }
        }
    }

    /// The connection table.
    pub fn conntrack(&self) -> &Conntrack {
        &self.st.ct
    }

    /// The connection table, to flush it.
    pub fn conntrack_mut(&mut self) -> &mut Conntrack {
        &mut self.st.ct
    }

    /// Add or refresh a learned neighbour (ARP, or `explain`'s assumption).
    pub fn learn_neighbour(&mut self, addr: u32, mac: Mac, port: PortId) {
        let expires = self.st.now.saturating_add(NEIGHBOUR_TIMEOUT);
        self.st.neigh.learn(addr, mac, port, expires);
        self.st.rebuild_nh_cache(&self.tables);
    }

    /// Whether packets wait for ARP (then call [`Pipeline::drain_pending`]).
    #[inline]
    pub fn has_pending(&self) -> bool {
        !self.st.pending.is_empty()
    }

    /// Packets waiting for ARP.
    pub fn pending_packets(&self) -> usize {
        self.st.pending.len()
    }

    /// Send what the neighbour queue can send now: packets whose next hop
    /// resolved (rewritten as they would have been), ARP retries (one a
    /// second, three in all); and drop the packets of next hops that never
    /// answered (`neighbour_unresolved`, and `arp_resolution_failures`).
    /// `emit` transmits a frame on a port and returns false when it has no
    /// room (the rest waits for the next call). Slow path: the worker calls
    /// it after a burst when [`Pipeline::has_pending`] says so.
    pub fn drain_pending(&mut self, mut emit: impl FnMut(&[u8], PortId) -> bool) {
        let t = &*self.tables;
        let State {
            pending,
            neigh,
            counters,
            scratch,
            now,
            ..
        } = &mut self.st;
        let now = *now;
        let mut i = 0;
        while let Some(&r) = pending.in_progress().get(i) {
            // A refresh is done once the neighbour answered (which clears
            // `refreshing`); a resolution once the neighbour is known.
            if let Some(n) = neigh
                .get(r.addr)
                .filter(|n| n.port == r.port && !(r.refresh && n.refreshing))
            {
                let l2 = rewrite::l2_header(n.mac, t.interfaces[r.port.0 as usize].mac);
                pending.release(r.addr, |buf, port, forwarded| {
                    let out = &mut scratch[..buf.len()];
                    out.copy_from_slice(buf);
                    let (eth, ipb) = out.split_at_mut(ETH_HDR_LEN);
                    match <&mut [u8; 20]>::try_from(&mut ipb[..20]) {
                        Ok(h) if forwarded => rewrite::forward(h, eth, &l2),
                        _ => rewrite::set_l2(eth, &l2),
                    }
                    if !emit(out, port) {
                        return false;
                    }
                    counters.tx[port.0 as usize & 63].add(out.len());
                    counters.forwarded += 1;
                    true
                });
                if pending.in_progress().get(i) != Some(&r) {
                    continue;
                }
            } else if r.tries >= RESOLVE_TRIES && now > r.last_sent + 1 {
                let n = pending.abandon(r.addr);
                counters.drops[DropReason::NeighbourUnresolved as usize] += n as u64;
                counters.arp_resolution_failures += 1;
                continue;
            } else if r.tries < RESOLVE_TRIES && now > r.last_sent {
                let ifc = &t.interfaces[r.port.0 as usize];
                let src = ifc
                    .addresses
                    .iter()
                    .find(|a| a.net.contains(r.addr))
                    .map(|a| a.addr);
                if let Some(len) = src.and_then(|s| reply::arp_request(scratch, ifc.mac, s, r.addr))
                {
                    if !emit(&scratch[..len], r.port) {
                        return;
                    }
                    counters.tx[r.port.0 as usize & 63].add(len);
                    counters.arp_requests_sent += 1;
                    counters.generated += 1;
                    if let Some(e) = pending.resolving(r.addr, r.port) {
                        e.tries += 1;
                        e.last_sent = now;
                    }
                }
            }
            i += 1;
        }
    }

    /// The neighbour table.
    pub fn neighbours(&self) -> &Neighbours {
        &self.st.neigh
    }

    /// Counters.
    pub fn counters(&self) -> &Counters {
        &self.st.counters
    }

    /// Counters, to reset them.
    pub fn counters_mut(&mut self) -> &mut Counters {
        &mut self.st.counters
    }

    /// Run a burst; `out[i]` gets the verdict of `pkts[i]`. Out of line: one
    /// call a burst, and a whole function for the fast path's registers.
    #[inline(never)]
    pub fn process_burst(&mut self, pkts: &mut [Pkt<'_>], out: &mut [Verdict]) {
        let n = pkts.len().min(out.len());
        // A run's byte sums fit 32 bits each below 65,536 packets.
        for (pkts, out) in pkts[..n]
            .chunks_mut(RUN_MAX)
            .zip(out[..n].chunks_mut(RUN_MAX))
        {
            self.process_chunk(pkts, out);
        }
    }

    /// [`Pipeline::process_burst`] for at most [`RUN_MAX`] packets. Fast-path
    /// packets with the same decision form a run, counted once when it ends
    /// (a packet with another decision, one for the general path, or the end
    /// of the chunk): in locals, `key` its decision, `start` its first
    /// packet, `bytes` its received bytes (high half) and IP bytes (low).
    #[inline(always)]
    fn process_chunk(&mut self, pkts: &mut [Pkt<'_>], out: &mut [Verdict]) {
        let t = &*self.tables;
        let mut run = (NO_RUN, 0usize, 0u64);
        for (i, (p, v)) in pkts.iter_mut().zip(out.iter_mut()).enumerate() {
            let fast = self
                .st
                .fast_l3(p)
                .and_then(|m| Some((m.total_len, self.st.fast_decide(t, p, m)?)));
            let hdr = p.buf.get_mut(..ETH_HDR_LEN + ipv4::HEADER_LEN);
            *v = match (fast, hdr) {
                (Some((total, f)), Some(hdr)) if f.key != NO_RUN => {
                    self.st.run_add(&mut run, i, f.key, p.len, total);
                    let (eth, ip) = hdr.split_at_mut(ETH_HDR_LEN);
                    if let (Ok(eth), Ok(h)) = (eth.try_into(), <&mut [u8; 20]>::try_from(ip)) {
                        // RFC 1812 5.3.1 TTL - 1 (fast_decide saw it above
                        // 1); the ethertype stays IPv4.
                        rewrite::decrement_ttl(h);
                        f.l2.write(eth);
                    }
                    // Trailing Ethernet padding is not part of what we send.
                    p.len = ETH_HDR_LEN + total;
                    Verdict::Tx(f.out)
                }
                // To the router (`fast_l3` checked the header).
                (Some((total, _)), _) => {
                    let len = p.len;
                    let (v, k) = self.st.local(t, p);
                    self.st.run_add(&mut run, i, k, len, total);
                    v
                }
                _ => {
                    self.st.run_add(&mut run, i, NO_RUN, 0, 0);
                    self.st.slow(t, p)
                }
            };
        }
        let (key, start, bytes) = run;
        self.st.flush_run(key, pkts.len() - start, bytes);
    }

    /// Run one frame, recording each stage's decision in `tr`.
    #[inline(always)]
    pub fn process<T: Tracer>(&mut self, pkt: &mut Pkt<'_>, tr: &mut T) -> Verdict {
        let t = &*self.tables;
        self.st.process(t, pkt, tr)
    }
}

#[inline]
fn map_ip_error(e: wire::Error) -> DropReason {
    match e {
        wire::Error::BadVersion => DropReason::IpBadVersion,
        wire::Error::BadHeaderLength => DropReason::IpBadHeaderLength,
        wire::Error::BadTotalLength => DropReason::IpBadTotalLength,
        _ => DropReason::IpTruncated,
    }
}

/// What conntrack needs of a packet (not an ICMP error): its tuple, with
/// the query identifier in both ports for ICMP and no ports for protocols
/// without them.
#[inline(always)]
fn ct_info(m: &Meta) -> PktInfo {
    let (sport, dport) = if m.has_ports {
        (m.sport, m.dport)
    } else if m.has_icmp {
        (m.icmp_ident, m.icmp_ident)
    } else {
        (0, 0)
    };
    PktInfo {
        key: FlowKey {
            src: m.src,
            dst: m.dst,
            sport,
            dport,
            proto: m.proto,
        },
        tcp_flags: m.tcp_flags,
        icmp_type: m.icmp_type,
        len: m.total_len as u16,
    }
}

/// What the fast path can send to a next hop without looking further.
#[derive(Clone, Copy, Debug)]
struct FastHop {
    kind: FastHopKind,
    /// The output port.
    out: PortId,
    /// Its MTU.
    mtu: u16,
    /// [`crate::dispatch::FastRules::out_offset`] of `out`.
    rules_off: u32,
    /// The Ethernet addresses to write (for `Via`).
    l2: L2,
}

/// The fast path's next hop for what it does not handle.
const NO_HOP: FastHop = FastHop {
    kind: FastHopKind::No,
    out: PortId(0),
    mtu: 0,
    rules_off: 0,
    l2: L2 { head: 0, tail: 0 },
};

/// Destination and source MAC (from [`rewrite::l2_header`]) as two words,
/// for two stores.
#[derive(Clone, Copy, Debug, Default)]
struct L2 {
    head: u64,
    tail: u32,
}

impl L2 {
    fn new(l2: [u8; 12]) -> L2 {
        let [a, b, c, d, e, f, g, h, i, j, k, l] = l2;
        L2 {
            head: u64::from_ne_bytes([a, b, c, d, e, f, g, h]),
            tail: u32::from_ne_bytes([i, j, k, l]),
        }
    }

    /// Write into the first 12 bytes of a frame.
    #[inline(always)]
    fn write(self, eth: &mut [u8; ETH_HDR_LEN]) {
        let (head, rest) = eth.split_at_mut(8);
        head.copy_from_slice(&self.head.to_ne_bytes());
        rest[..4].copy_from_slice(&self.tail.to_ne_bytes());
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FastHopKind {
    /// A gateway whose MAC is known.
    Via,
    /// A connected network: the neighbour is the destination.
    Connected,
    /// The router itself.
    Local,
    /// Anything else takes the general path.
    No,
}

/// The fast path's decision for a packet to the router: [`State::local`].
const LOCAL: Fast = Fast {
    out: PortId::HOST,
    l2: L2 { head: 0, tail: 0 },
    key: NO_RUN,
};

/// What the transit fast path reads of a packet.
#[derive(Clone, Copy)]
struct L3 {
    in_port: PortId,
    total_len: usize,
    src: u32,
    dst: u32,
    proto: u8,
    ttl: u8,
}

impl L3 {
    /// The fields of a frame whose header [`State::fast_l3`] checked
    /// already, read again without the checks.
    #[inline(always)]
    fn checked_before(pkt: &Pkt<'_>) -> Option<L3> {
        let h: &[u8; 20] = pkt
            .buf
            .get(ETH_HDR_LEN..ETH_HDR_LEN + 20)?
            .try_into()
            .ok()?;
        Some(L3 {
            in_port: pkt.port,
            total_len: u16::from_be_bytes([h[2], h[3]]) as usize,
            src: u32::from_be_bytes([h[12], h[13], h[14], h[15]]),
            dst: u32::from_be_bytes([h[16], h[17], h[18], h[19]]),
            proto: h[9],
            ttl: h[8],
        })
    }
}

/// The rules a packet delivered to the router took, as a run key (see
/// `process_chunk`): the output port is the host's, which no transit key
/// has. Rules as [`LocalRules`] codes.
#[derive(Clone, Copy)]
struct LocalKey {
    in_port: PortId,
    /// Raw prerouting rule ([`LocalRules::NONE`]: no rule matched).
    raw: u16,
    /// Through conntrack (else NOTRACK).
    tracked: bool,
    /// Input rule ([`LocalRules::NONE`]: the policy).
    input: u16,
}

impl LocalKey {
    #[inline(always)]
    fn pack(self) -> u64 {
        u64::from(self.in_port.0 & 63)
            | u64::from(PortId::HOST.0) << 8
            | u64::from(self.raw) << 16
            | u64::from(self.input) << 32
            | u64::from(self.tracked) << 48
    }

    /// The raw rule, whether tracked, and the input rule, for
    /// [`State::count_local`].
    fn rules(self) -> (Option<usize>, bool, Option<usize>) {
        (
            LocalRules::rule(self.raw),
            self.tracked,
            LocalRules::rule(self.input),
        )
    }

    fn unpack(key: u64) -> Option<LocalKey> {
        ((key >> 8) & 0xff == u64::from(PortId::HOST.0)).then_some(LocalKey {
            in_port: PortId((key & 63) as u8),
            raw: (key >> 16) as u16,
            input: (key >> 32) as u16,
            tracked: (key >> 48) & 1 == 1,
        })
    }
}

/// Most packets in a run of the fast path (see `process_chunk`).
const RUN_MAX: usize = 1 << 16;
/// The key of no run.
const NO_RUN: u64 = u64::MAX;

/// The fast path's decision for a packet: where it goes, with which
/// addresses, and the key of its counters.
#[derive(Clone, Copy)]
struct Fast {
    out: PortId,
    l2: L2,
    key: u64,
}

/// A MAC as a number: the low 48 bits of its six bytes read little-endian.
#[inline(always)]
fn mac48(m: &[u8; 6]) -> u64 {
    u64::from(u32::from_le_bytes([m[0], m[1], m[2], m[3]]))
        | u64::from(u16::from_le_bytes([m[4], m[5]])) << 32
}

/// [`martian_source`] by first octet, for the fast parser.
static BAD_SOURCE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = martian_source((i as u32) << 24);
        i += 1;
    }
    t
};

/// First octets the fast path never forwards to: 0/8 and 127/8 (martian),
/// multicast and above (not unicast); the general parser names the reason.
static BAD_DESTINATION: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i == 0 || i == 127 || i >= 224;
        i += 1;
    }
    t
};

/// 0/8, 127/8, multicast, class E and limited broadcast never source a packet.
#[inline]
const fn martian_source(a: u32) -> bool {
    let top = a >> 24;
    top == 0 || top == 127 || top >= 224
}

/// Whether `a` is the broadcast address of one of the connected networks.
fn directed_broadcast(t: &Tables, a: u32) -> bool {
    t.interfaces
        .iter()
        .flat_map(|i| i.addresses.iter())
        .any(|n| n.net.len() < 31 && n.net.broadcast() == a)
}

impl State {
    fn adopt(&mut self, t: &Tables) {
        self.neigh.load_static(t);
        self.rebuild_nh_cache(t);
        let c = &mut self.counters;
        c.raw_rules[0] = vec![Default::default(); t.raw_prerouting.len()];
        c.raw_rules[1] = vec![Default::default(); t.raw_output.len()];
        for (i, ch) in t.filter.iter().enumerate() {
            c.filter_rules[i] = vec![Default::default(); ch.rules.len()];
        }
    }

    fn rebuild_nh_cache(&mut self, t: &Tables) {
        self.nh_mac.clear();
        self.nh_mac.extend(t.next_hops.iter().map(|nh| {
            match *nh {
                NextHop::Via { port, gateway } => self
                    .neigh
                    .get(gateway)
                    .filter(|n| n.port == port)
                    .map(|n| n.mac),
                _ => None,
            }
        }));
        self.nh_fast.clear();
        self.nh_fast
            .extend(t.next_hops.iter().zip(&self.nh_mac).map(|(nh, mac)| {
                let hop = |kind, out: PortId, l2| FastHop {
                    kind,
                    out,
                    mtu: t.interfaces[out.0 as usize].mtu,
                    rules_off: t.fast_rules.out_offset(out),
                    l2,
                };
                match (*nh, mac) {
                    (NextHop::Via { port, .. }, Some(mac)) => hop(
                        FastHopKind::Via,
                        port,
                        L2::new(rewrite::l2_header(*mac, t.interfaces[port.0 as usize].mac)),
                    ),
                    (NextHop::Connected(out), _) => hop(FastHopKind::Connected, out, L2::default()),
                    (NextHop::Local, _) => FastHop {
                        kind: FastHopKind::Local,
                        ..NO_HOP
                    },
                    _ => NO_HOP,
                }
            }));
        // Slot 0: no route (see `RouteTable::lookup_slot`).
        self.nh_fast.insert(0, NO_HOP);
        self.port_mac = [u64::MAX; 64];
        for (i, ifc) in t.interfaces.iter().enumerate().take(PortId::MAX_PORTS) {
            self.port_mac[i] = mac48(&ifc.mac.0);
        }
    }

    #[inline]
    fn process<T: Tracer>(&mut self, t: &Tables, pkt: &mut Pkt<'_>, tr: &mut T) -> Verdict {
        self.counters.rx[pkt.port.0 as usize & 63].add(pkt.len);
        let o = if pkt.port.is_host() {
            self.host_output(t, pkt, tr)
        } else {
            self.port_input(t, pkt, tr)
        };
        self.account(pkt, o, tr)
    }

    /// The general path, out of line so the fast path keeps its registers.
    #[inline(never)]
    fn slow(&mut self, t: &Tables, pkt: &mut Pkt<'_>) -> Verdict {
        self.process(t, pkt, &mut ())
    }

    /// The fast path's rule decisions when [`FastRules`] leaves rules with
    /// address or port conditions to try: the raw and forward dispatch
    /// tables with their searches, as the general path evaluates them. A
    /// fast code, or None for the general path. Out of line, and it parses
    /// the packet again: the fast path never keeps a `Meta` in memory, which
    /// costs more than parsing twice in this rarer case.
    #[inline(never)]
    fn fast_search(&self, t: &Tables, pkt: &Pkt<'_>, out: PortId) -> Option<u32> {
        let mut m = self.fast_parse(pkt)?;
        let (raw_rule, raw_action) = t.raw_verdict(RawHook::Prerouting, &m);
        if raw_action != RawAction::NoTrack {
            return None;
        }
        let raw_rule = raw_rule?;
        m.out_port = Some(out);
        let (rule, action) = t.filter_verdict(ChainId::Forward, &m);
        if action != FilterAction::Accept {
            return None;
        }
        FastCode::pack(raw_rule, rule)
    }

    /// Count a frame's outcome.
    #[inline(always)]
    fn account<T: Tracer>(&mut self, pkt: &Pkt<'_>, o: Outcome, tr: &mut T) -> Verdict {
        let c = &mut self.counters;
        match o.verdict {
            Verdict::Tx(p) => {
                c.tx[p.0 as usize & 63].add(pkt.len);
                if !o.generated {
                    c.forwarded += 1;
                } else {
                    c.generated += 1;
                    if o.dropped.is_none() && !o.deferred {
                        // Answered (an ARP request for us): consumed.
                        c.consumed += 1;
                    }
                }
            }
            Verdict::Host => c.to_host += 1,
            Verdict::Consumed if !o.deferred => c.consumed += 1,
            Verdict::Consumed | Verdict::Drop(_) => {}
        }
        if let Some(r) = o.dropped {
            c.drops[r as usize] += 1;
        }
        tr.event(Event::Done {
            verdict: o.verdict,
            drop: o.dropped,
            generated: o.generated,
        });
        o.verdict
    }

    /// Read the common frame's IPv4 header (to our MAC, IPv4 without
    /// options, not a fragment, good checksum, unicast addresses, and for
    /// TCP the whole fixed header) in one pass; anything else returns `None`
    /// and takes the general parser, which names the drop reason. No L4
    /// field: the transit fast path needs none.
    #[inline(always)]
    fn fast_l3(&self, pkt: &Pkt<'_>) -> Option<L3> {
        let len = pkt.len;
        let port = pkt.port;
        let buf = pkt.buf.get(..len)?;
        if len < ETH_HDR_LEN + 28 {
            return None;
        }
        // Destination MAC (the low 48 bits) and ethertype 0x0800, version
        // 4 and IHL 5 (options take the general path) in two loads.
        let head = u64::from_le_bytes(buf[..8].try_into().ok()?);
        let tag = u32::from_le_bytes(buf[12..16].try_into().ok()?);
        if head & 0xffff_ffff_ffff != self.port_mac[port.0 as usize & 63]
            || tag & 0xff_ffff != 0x45_0008
        {
            return None;
        }
        let h: &[u8; 20] = buf[ETH_HDR_LEN..ETH_HDR_LEN + 20].try_into().ok()?;
        let total = u16::from_be_bytes([h[2], h[3]]) as usize;
        // No MF, no offset.
        if total > len - ETH_HDR_LEN || total < 28 || u16::from_ne_bytes([h[6], h[7]]) & 0xff3f != 0
        {
            return None;
        }
        if !wire::checksum::verify20(h) {
            return None;
        }
        let src = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
        let dst = u32::from_be_bytes([h[16], h[17], h[18], h[19]]);
        if BAD_SOURCE[(src >> 24) as usize] | BAD_DESTINATION[(dst >> 24) as usize] {
            return None;
        }
        let proto = h[9];
        // The general parser names a short TCP header (`l4_truncated`); 28
        // bytes hold the UDP and ICMP ones.
        if proto == ipv4::PROTO_TCP && total < 20 + tcp::HEADER_LEN {
            return None;
        }
        Some(L3 {
            in_port: port,
            total_len: total,
            src,
            dst,
            proto,
            ttl: h[8],
        })
    }

    /// [`State::fast_l3`] and the L4 fields, as the general parser reads
    /// them, into a `Meta`.
    #[inline(always)]
    fn fast_parse(&self, pkt: &Pkt<'_>) -> Option<Meta> {
        self.fast_l4(pkt, self.fast_l3(pkt)?)
    }

    /// The `Meta` of a packet `fast_l3` read.
    #[inline(always)]
    fn fast_l4(&self, pkt: &Pkt<'_>, l3: L3) -> Option<Meta> {
        let L3 {
            in_port,
            total_len: total,
            src,
            dst,
            proto,
            ttl,
        } = l3;
        // `fast_l3` saw at least 8 bytes of L4 header (20 for TCP) within the
        // total length: fixed-size reads, one bounds check.
        let l4: &[u8; 20] = pkt
            .buf
            .get(ETH_HDR_LEN + 20..ETH_HDR_LEN + 40)?
            .try_into()
            .ok()?;
        let a = u16::from_be_bytes([l4[0], l4[1]]);
        let b = u16::from_be_bytes([l4[2], l4[3]]);
        let mut m = Meta {
            in_port,
            out_port: None,
            ihl: 20,
            total_len: total,
            src,
            dst,
            proto,
            ttl,
            fragment: false,
            nonfirst_fragment: false,
            has_ports: true,
            sport: a,
            dport: b,
            tcp_flags: 0,
            has_icmp: false,
            icmp_type: 0,
            icmp_code: 0,
            icmp_ident: 0,
            local_dst: false,
            ct_state: CtState::Untracked,
        };
        match proto {
            ipv4::PROTO_TCP => m.tcp_flags = l4[13],
            ipv4::PROTO_UDP => {}
            ipv4::PROTO_ICMP => {
                m.has_ports = false;
                m.sport = 0;
                m.dport = 0;
                m.has_icmp = true;
                m.icmp_type = l4[0];
                m.icmp_code = l4[1];
                m.icmp_ident = u16::from_be_bytes([l4[4], l4[5]]);
            }
            // Other protocols: no L4 fields, as in the general parser.
            _ => {
                m.has_ports = false;
                m.sport = 0;
                m.dport = 0;
            }
        }
        Some(m)
    }

    /// The transit fast path's decision for a packet `fast_l3` read:
    /// untracked, TTL > 1, accepted by the forward chain, to a resolved next
    /// hop within the MTU. It makes exactly the decisions of the general
    /// path (a differential test holds them equal) and changes nothing:
    /// `None` leaves the packet to the general path.
    #[inline(always)]
    fn fast_decide(&self, t: &Tables, pkt: &Pkt<'_>, pm: L3) -> Option<Fast> {
        let hop = self.nh_fast.get(t.routes.lookup_slot(pm.dst) as usize)?;
        let out = hop.out;
        // Gateways first: the common case costs one test.
        let l2 = if hop.kind == FastHopKind::Via {
            hop.l2
        } else if hop.kind == FastHopKind::Local {
            return Some(LOCAL);
        } else {
            self.connected_l2(t, hop, pm.dst)?
        };
        if pm.ttl <= 1 || pm.total_len > hop.mtu as usize {
            return None;
        }
        let code = match t.fast_rules.get_at(pm.in_port, hop.rules_off, pm.proto) {
            FastCode::Fast { code } => code,
            FastCode::Slow => return None,
            FastCode::Search => self.fast_search(t, pkt, out)?,
        };
        let key = u64::from(pm.in_port.0) | u64::from(out.0) << 8 | u64::from(code) << 16;
        Some(Fast { out, l2, key })
    }

    /// [`State::fast_decide`] for a next hop other than a resolved gateway
    /// or the router: the MACs for a connected destination whose neighbour
    /// is known, else None (the general path).
    #[inline(never)]
    fn connected_l2(&self, t: &Tables, hop: &FastHop, dst: u32) -> Option<L2> {
        if hop.kind != FastHopKind::Connected {
            return None;
        }
        let ifc = &t.interfaces[hop.out.0 as usize];
        // Directed broadcast: the general path names the drop.
        if ifc
            .addresses
            .iter()
            .any(|a| a.net.len() < 31 && a.net.broadcast() == dst)
        {
            return None;
        }
        let n = self.neigh.get(dst).filter(|n| n.port == hop.out)?;
        Some(L2::new(rewrite::l2_header(n.mac, ifc.mac)))
    }

    /// Packets to the router's own addresses that `fast_l3` read: the
    /// general path's decisions (raw prerouting, conntrack, filter input,
    /// delivery to the host) without its parsing and routing again, and
    /// with rules decided by their dispatch entries. ICMP errors (RELATED
    /// lookups) take the general path. Out of line, to keep the transit
    /// loop's registers.
    #[inline(never)]
    fn local(&mut self, t: &Tables, pkt: &mut Pkt<'_>) -> (Verdict, u64) {
        let m = L3::checked_before(pkt).and_then(|l3| self.fast_l4(pkt, l3));
        let Some(m) = m.filter(|m| !(m.has_icmp && icmp::is_error(m.icmp_type))) else {
            return (self.process(t, pkt, &mut ()), NO_RUN);
        };
        let (in_port, proto) = (m.in_port, m.proto);
        // Raw prerouting: no output port yet, untracked until conntrack.
        let lr = &t.local_rules;
        let at = lr.at(in_port, proto);
        let (raw_code, notrack) = match lr.raw(at) {
            Some(d) => d,
            None => {
                let raw = &t.raw_prerouting;
                let e = t.raw_dispatch[0].entry(in_port, None, proto, CtState::Untracked, true);
                let r = self.local_search(t, pkt, e, raw, |r| &r.matches, None, CtState::Untracked);
                let notrack = r.is_some_and(|i| raw[i].action == RawAction::NoTrack);
                match LocalRules::code(r) {
                    Some(c) => (c, notrack),
                    // Beyond what a code holds: the general path counts it.
                    None => return (self.process(t, pkt, &mut ()), NO_RUN),
                }
            }
        };
        let ct = if notrack {
            None
        } else {
            let info = ct_info(&m);
            Some(match self.ct.classify_existing(&info, self.now) {
                Some(state) => (state, None),
                None => {
                    let r = self.ct_classify(info);
                    (r.state, r.pending)
                }
            })
        };
        let state = ct.map_or(CtState::Untracked, |r| r.0);
        // Filter input.
        let (input_code, action) = match lr.input(at, state) {
            Some(d) => d,
            None => {
                let input = &t.filter[ChainId::Input as usize];
                let e = t.filter_dispatch[ChainId::Input as usize].entry(
                    in_port,
                    Some(PortId::HOST),
                    proto,
                    state,
                    true,
                );
                let (rules, host) = (&input.rules, Some(PortId::HOST));
                let r = self.local_search(t, pkt, e, rules, |r| &r.matches, host, state);
                let action = r.map_or(input.policy, |i| input.rules[i].action);
                match LocalRules::code(r) {
                    Some(c) => (c, action),
                    // Beyond what a code holds (a chain of 65,535 rules).
                    None => {
                        let rules = (LocalRules::rule(raw_code), ct.is_some(), r);
                        return self.local_outcome(
                            t,
                            pkt,
                            rules,
                            action,
                            ct.and_then(|r| r.1),
                            state,
                        );
                    }
                }
            }
        };
        let key = LocalKey {
            in_port,
            raw: raw_code,
            tracked: ct.is_some(),
            input: input_code,
        };
        if action == FilterAction::Accept && ct.and_then(|r| r.1).is_none() {
            // Delivered: the caller counts it with its run.
            return (Verdict::Host, key.pack());
        }
        self.local_outcome(t, pkt, key.rules(), action, ct.and_then(|r| r.1), state)
    }

    /// The end of [`State::local`] for a packet not simply delivered: a NEW
    /// flow to confirm, a drop or a reject. Counts it, as the general path
    /// would, with `rules` (raw rule, tracked, input rule).
    #[inline(never)]
    fn local_outcome(
        &mut self,
        t: &Tables,
        pkt: &mut Pkt<'_>,
        rules: (Option<usize>, bool, Option<usize>),
        action: FilterAction,
        pending: Option<conntrack::Pending>,
        state: CtState,
    ) -> (Verdict, u64) {
        // `local` read the header: the IP total length is there.
        let total = pkt.buf.get(ETH_HDR_LEN + 2..ETH_HDR_LEN + 4);
        let total = total.map_or(0, |b| u64::from(u16::from_be_bytes([b[0], b[1]])));
        self.count_local(pkt.port, rules, 1, pkt.len as u64, total);
        let reason = match action {
            FilterAction::Accept => match pending {
                Some(p) if self.ct.confirm(p, self.now).is_err() => DropReason::ConntrackTableFull,
                _ => {
                    self.counters.to_host += 1;
                    return (Verdict::Host, NO_RUN);
                }
            },
            FilterAction::Drop if rules.2.is_some() => DropReason::FilterDenied,
            FilterAction::Drop => DropReason::FilterPolicy,
            FilterAction::Reject => return (self.local_reject(t, pkt, state), NO_RUN),
        };
        self.counters.drops[reason as usize] += 1;
        (Verdict::Drop(reason), NO_RUN)
    }

    /// `Conntrack::classify`, out of line: new flows for [`State::local`].
    #[inline(never)]
    fn ct_classify(&mut self, info: PktInfo) -> CtResult {
        self.ct.classify(info, self.now)
    }

    /// Count `pkts` packets to the router that took the same rules (raw
    /// rule, tracked, input rule), as the general path does each: received,
    /// raw rule, tracked or untracked, input rule or policy (their fate,
    /// delivery or drop, is the caller's).
    fn count_local(
        &mut self,
        in_port: PortId,
        (raw, tracked, rule): (Option<usize>, bool, Option<usize>),
        pkts: u64,
        rx_bytes: u64,
        ip_bytes: u64,
    ) {
        let c = &mut self.counters;
        c.rx[in_port.0 as usize & 63].add_n(pkts, rx_bytes);
        if let Some(x) = raw.and_then(|i| c.raw_rules[0].get_mut(i)) {
            x.add_n(pkts, ip_bytes);
        }
        if tracked {
            c.tracked += pkts;
        } else {
            c.untracked += pkts;
        }
        let input = ChainId::Input as usize;
        let x = match rule {
            Some(i) => c.filter_rules[input].get_mut(i),
            None => Some(&mut c.filter_policy[input]),
        };
        if let Some(x) = x {
            x.add_n(pkts, ip_bytes);
        }
    }

    /// The first match of `rules` from dispatch entry `e` for
    /// [`State::local`], at a stage whose output port and state are `out`
    /// and `state`. Out of line, and it reads the packet's `Meta` again:
    /// the decided case never keeps one in memory.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn local_search<R>(
        &self,
        t: &Tables,
        pkt: &Pkt<'_>,
        e: crate::dispatch::Entry,
        rules: &[R],
        cond: impl Fn(&R) -> &crate::rules::Match,
        out: Option<PortId>,
        state: CtState,
    ) -> Option<usize> {
        let m = self.local_meta(pkt, out, state)?;
        e.search(rules, cond, &m, t)
    }

    /// The `Meta` of a packet [`State::local`] read, again, at a stage whose
    /// output port and state are `out` and `state`. `local` read these bytes
    /// a moment ago: they read the same again.
    fn local_meta(&self, pkt: &Pkt<'_>, out: Option<PortId>, state: CtState) -> Option<Meta> {
        let mut m = L3::checked_before(pkt).and_then(|l3| self.fast_l4(pkt, l3))?;
        m.local_dst = true;
        m.out_port = out;
        m.ct_state = state;
        Some(m)
    }

    /// `reject` for [`State::local`], out of line like `local_search`.
    #[inline(never)]
    fn local_reject(&mut self, t: &Tables, pkt: &mut Pkt<'_>, state: CtState) -> Verdict {
        let o = match self.local_meta(pkt, Some(PortId::HOST), state) {
            Some(m) => self.reject(t, pkt, &m),
            // `local` read these bytes a moment ago: cannot happen.
            None => Outcome::drop(DropReason::FilterRejected),
        };
        self.account(pkt, o, &mut ())
    }

    /// Count packet `i`, of `len` bytes received and `total` IP bytes, in
    /// the run of decision `key` (`NO_RUN`: counted elsewhere): a new key
    /// ends the run before it. `run` holds the key, the run's first packet,
    /// and its received (high half) and IP (low half) byte sums.
    #[inline(always)]
    fn run_add(
        &mut self,
        run: &mut (u64, usize, u64),
        i: usize,
        key: u64,
        len: usize,
        total: usize,
    ) {
        if key != run.0 {
            self.flush_run(run.0, i - run.1, run.2);
            *run = (key, i, 0);
        }
        run.2 += (len as u64) << 32 | total as u64;
    }

    /// Add a run of fast-path packets with the same decision (ports and
    /// rules, packed in `key`) to the counters, as the general path counts
    /// each: received, raw rule, untracked, forward rule or policy, sent,
    /// forwarded. Once a run, not once a packet.
    #[cold]
    #[inline(never)]
    fn flush_run(&mut self, key: u64, pkts: usize, bytes: u64) {
        if key == NO_RUN || pkts == 0 {
            return;
        }
        let pkts = pkts as u64;
        let (rx_bytes, ip_bytes) = (bytes >> 32, bytes & 0xffff_ffff);
        if let Some(k) = LocalKey::unpack(key) {
            self.count_local(k.in_port, k.rules(), pkts, rx_bytes, ip_bytes);
            self.counters.to_host += pkts;
            return;
        }
        let c = &mut self.counters;
        let in_port = (key & 63) as usize;
        let out = ((key >> 8) & 63) as usize;
        let (raw_rule, rule) = FastCode::rules((key >> 16) as u32);
        c.rx[in_port].add_n(pkts, rx_bytes);
        if let Some(x) = c.raw_rules[0].get_mut(raw_rule) {
            x.add_n(pkts, ip_bytes);
        }
        c.untracked += pkts;
        let fwd = ChainId::Forward as usize;
        let x = match rule {
            None => Some(&mut c.filter_policy[fwd]),
            Some(i) => c.filter_rules[fwd].get_mut(i),
        };
        if let Some(x) = x {
            x.add_n(pkts, ip_bytes);
        }
        c.tx[out].add_n(pkts, ip_bytes + ETH_HDR_LEN as u64 * pkts);
        c.forwarded += pkts;
    }

    /// Frames from a port.
    #[inline(always)]
    fn port_input<T: Tracer>(&mut self, t: &Tables, pkt: &mut Pkt<'_>, tr: &mut T) -> Outcome {
        if pkt.len < ethernet::HEADER_LEN {
            return Outcome::drop(DropReason::EthTruncated);
        }
        let Some(ifc) = t.interfaces.get(pkt.port.0 as usize) else {
            return Outcome::drop(DropReason::EthNotForUs);
        };
        let eth = ethernet::Frame::new_unchecked(&pkt.buf[..pkt.len]);
        let dst_mac = eth.dst_addr();
        if dst_mac != ifc.mac && dst_mac != Mac::BROADCAST {
            return Outcome::drop(DropReason::EthNotForUs);
        }
        match eth.ethertype() {
            ethernet::ETHERTYPE_IPV4 => self.ip(t, pkt, tr),
            ethernet::ETHERTYPE_ARP => self.arp(t, pkt),
            ethernet::ETHERTYPE_VLAN => Outcome::drop(DropReason::EthVlanUnsupported),
            _ => Outcome::drop(DropReason::EthUnsupportedEthertype),
        }
    }

    fn arp(&mut self, t: &Tables, pkt: &mut Pkt<'_>) -> Outcome {
        use wire::arp;
        let end = ETH_HDR_LEN + arp::Repr::BUFFER_LEN;
        if pkt.len < end {
            return Outcome::drop(DropReason::ArpTruncated);
        }
        let Ok(req) = arp::Repr::parse(&arp::Packet::new_unchecked(&pkt.buf[ETH_HDR_LEN..end]))
        else {
            return Outcome::drop(DropReason::ArpUnsupported);
        };
        let ifc = &t.interfaces[pkt.port.0 as usize];
        let ours = ifc.addresses.iter().any(|a| a.addr == req.target_ip);
        let on_link = ifc.addresses.iter().any(|a| a.net.contains(req.sender_ip));
        if ours && on_link {
            // RFC 826: merge the sender into the table when the request is for us.
            let expires = self.now.saturating_add(NEIGHBOUR_TIMEOUT);
            let changed = self.neigh.get(req.sender_ip).map(|n| n.mac) != Some(req.sender_mac);
            self.neigh
                .learn(req.sender_ip, req.sender_mac, pkt.port, expires);
            if changed {
                self.rebuild_nh_cache(t);
            }
        }
        match req.operation {
            arp::OP_REQUEST if ours => match reply::arp_reply(pkt.buf, ifc.mac, req.target_ip) {
                Some(n) => {
                    pkt.len = n;
                    self.counters.arp_replies_sent += 1;
                    Outcome::reply(pkt.port, None)
                }
                None => Outcome::drop(DropReason::ArpTruncated),
            },
            arp::OP_REPLY if ours => {
                self.counters.arp_replies_received += 1;
                Outcome::of(Verdict::Consumed)
            }
            arp::OP_REQUEST | arp::OP_REPLY => Outcome::drop(DropReason::ArpNotForUs),
            _ => Outcome::drop(DropReason::ArpUnsupported),
        }
    }

    /// Parse and check the IPv4 header and the L4 header into `Meta`.
    #[inline(always)]
    fn parse_ip(&self, t: &Tables, pkt: &Pkt<'_>, m: &mut Meta) -> Result<(), DropReason> {
        let ip = ipv4::Packet::new_checked(&pkt.buf[ETH_HDR_LEN..pkt.len]).map_err(map_ip_error)?;
        // RFC 1812 5.2.2 (2): the header checksum must verify.
        if !ip.verify_checksum() {
            return Err(DropReason::IpBadChecksum);
        }
        m.ihl = ip.header_len();
        m.total_len = ip.total_len() as usize;
        m.src = ip.src_addr();
        m.dst = ip.dst_addr();
        m.proto = ip.protocol();
        m.ttl = ip.ttl();
        m.nonfirst_fragment = ip.frag_offset() != 0;
        m.fragment = m.nonfirst_fragment || ip.more_frags();
        if m.ihl > 20 && t.ip_options == IpOptionsPolicy::Drop {
            return Err(DropReason::IpOptions);
        }
        if martian_source(m.src) {
            return Err(DropReason::IpMartianSource);
        }
        let dtop = m.dst >> 24;
        if dtop == 0 || dtop == 127 {
            return Err(DropReason::IpMartianDestination);
        }
        if dtop >= 224 {
            return Err(DropReason::IpNotUnicast);
        }
        if m.nonfirst_fragment {
            return Ok(());
        }
        let l4 = ip.payload();
        match m.proto {
            // A router needs the fixed L4 header (ports, flags, ICMP type),
            // not a valid one: TCP data offset and UDP length are the end
            // hosts' business, as in Linux forwarding.
            ipv4::PROTO_TCP => {
                if l4.len() < tcp::HEADER_LEN {
                    return Err(DropReason::L4Truncated);
                }
                let s = tcp::Packet::new_unchecked(l4);
                m.sport = s.src_port();
                m.dport = s.dst_port();
                m.tcp_flags = s.flags();
                m.has_ports = true;
            }
            ipv4::PROTO_UDP => {
                if l4.len() < udp::HEADER_LEN {
                    return Err(DropReason::L4Truncated);
                }
                let d = udp::Packet::new_unchecked(l4);
                m.sport = d.src_port();
                m.dport = d.dst_port();
                m.has_ports = true;
            }
            ipv4::PROTO_ICMP => {
                if l4.len() < icmp::HEADER_LEN {
                    return Err(DropReason::L4Truncated);
                }
                let c = icmp::Packet::new_unchecked(l4);
                m.icmp_type = c.msg_type();
                m.icmp_code = c.code();
                m.icmp_ident = c.echo_ident();
                m.has_icmp = true;
            }
            _ => {}
        }
        Ok(())
    }

    /// The tuple of the packet an ICMP error quotes, as that packet was sent.
    fn quoted_flow(pkt: &Pkt<'_>, m: &Meta) -> Option<FlowKey> {
        let start = ETH_HDR_LEN + m.ihl + 8;
        let end = ETH_HDR_LEN + m.total_len;
        let inner = pkt.buf.get(start..end)?;
        if inner.len() < 20 || inner[0] >> 4 != 4 {
            return None;
        }
        let ihl = ((inner[0] & 0x0f) as usize) * 4;
        let proto = inner[9];
        let src = u32::from_be_bytes([inner[12], inner[13], inner[14], inner[15]]);
        let dst = u32::from_be_bytes([inner[16], inner[17], inner[18], inner[19]]);
        let l4 = inner.get(ihl..)?;
        let (sport, dport) = match proto {
            ipv4::PROTO_TCP | ipv4::PROTO_UDP => {
                let p = l4.get(..4)?;
                (
                    u16::from_be_bytes([p[0], p[1]]),
                    u16::from_be_bytes([p[2], p[3]]),
                )
            }
            ipv4::PROTO_ICMP => {
                let p = l4.get(..8)?;
                if !conntrack::is_icmp_request(p[0]) && !conntrack::is_icmp_reply(p[0]) {
                    return None;
                }
                let id = u16::from_be_bytes([p[4], p[5]]);
                (id, id)
            }
            _ => (0, 0),
        };
        Some(FlowKey {
            src,
            dst,
            sport,
            dport,
            proto,
        })
    }

    /// The raw stage of `hook`, then conntrack for what raw leaves tracked.
    /// Sets `m.ct_state`; returns the conntrack result (None: untracked).
    #[inline(always)]
    fn raw_and_track<T: Tracer>(
        &mut self,
        t: &Tables,
        pkt: &Pkt<'_>,
        m: &mut Meta,
        hook: RawHook,
        tr: &mut T,
    ) -> Result<Option<CtResult>, DropReason> {
        let (rule, action) = t.raw_verdict(hook, m);
        if let Some(i) = rule {
            self.counters.raw_rules[hook as usize][i].add(m.total_len);
        }
        tr.event(Event::Raw { hook, rule, action });
        let ct = if action == RawAction::NoTrack {
            self.counters.untracked += 1;
            None
        } else {
            Some(self.track(pkt, m)?)
        };
        m.ct_state = ct.map_or(CtState::Untracked, |r| r.state);
        tr.event(Event::Conntrack {
            state: m.ct_state,
            flow: ct.and_then(|r| r.flow),
        });
        Ok(ct)
    }

    /// Conntrack stage for a tracked packet.
    #[inline(always)]
    fn track(&mut self, pkt: &Pkt<'_>, m: &Meta) -> Result<CtResult, DropReason> {
        self.counters.tracked += 1;
        if m.fragment {
            return Err(DropReason::ConntrackFragment);
        }
        if m.has_icmp && icmp::is_error(m.icmp_type) {
            return Ok(match Self::quoted_flow(pkt, m) {
                Some(k) => self.ct.related(k, self.now),
                None => CtResult {
                    state: CtState::Invalid,
                    flow: None,
                    pending: None,
                },
            });
        }
        let info = ct_info(m);
        Ok(self.ct.classify(info, self.now))
    }

    /// Build an ICMP error about the packet in place, back out of its
    /// arrival port, if RFC 1812 and the rate limit allow it.
    #[allow(clippy::too_many_arguments)]
    fn send_icmp_error(
        &mut self,
        t: &Tables,
        pkt: &mut Pkt<'_>,
        m: &Meta,
        msg_type: u8,
        code: u8,
        rest: u32,
        reason: DropReason,
    ) -> Outcome {
        let icmp_type = m.has_icmp.then_some(m.icmp_type);
        if pkt.port.is_host() || !reply::may_send_error(m.proto, icmp_type, m.nonfirst_fragment) {
            return Outcome::drop(reason);
        }
        // RFC 1812 4.3.2.7: nor about a link-layer broadcast, nor to a source
        // that is not a single host (a connected network's broadcast).
        let l2_dst = ethernet::Frame::new_unchecked(&pkt.buf[..ETH_HDR_LEN]).dst_addr();
        if l2_dst == Mac::BROADCAST || directed_broadcast(t, m.src) {
            return Outcome::drop(reason);
        }
        let Some(src) = t.port_address(pkt.port, m.src) else {
            return Outcome::drop(reason);
        };
        if !self.limiter.allow(m.src, self.now) {
            self.counters.icmp_errors_rate_limited += 1;
            return Outcome::drop(reason);
        }
        let ifc = &t.interfaces[pkt.port.0 as usize];
        let peer = ethernet::Frame::new_unchecked(&pkt.buf[..ETH_HDR_LEN]).src_addr();
        match reply::icmp_error(
            pkt.buf,
            m.ihl,
            m.total_len,
            msg_type,
            code,
            rest,
            src,
            ifc.mac,
            peer,
        ) {
            Some(n) => {
                pkt.len = n;
                self.counters.icmp_errors_sent += 1;
                Outcome::reply(pkt.port, Some(reason))
            }
            None => Outcome::drop(reason),
        }
    }

    /// IPv4 from a port.
    #[inline(always)]
    fn ip<T: Tracer>(&mut self, t: &Tables, pkt: &mut Pkt<'_>, tr: &mut T) -> Outcome {
        let mut m = Meta {
            in_port: pkt.port,
            ..Meta::default()
        };
        if let Err(r) = self.parse_ip(t, pkt, &mut m) {
            return Outcome::drop(r);
        }
        let nh_id = t.routes.lookup(m.dst);
        let nh = nh_id.map(|i| t.next_hops[i as usize]);
        m.local_dst = matches!(nh, Some(NextHop::Local));
        if let Some(NextHop::Connected(p)) = nh {
            // Directed broadcast of a connected network: not forwarded.
            if t.interfaces[p.0 as usize]
                .addresses
                .iter()
                .any(|a| a.net.len() < 31 && a.net.broadcast() == m.dst)
            {
                return Outcome::drop(DropReason::IpNotUnicast);
            }
        }
        // RFC 1812 5.3.4: a packet received as a link-layer broadcast is for
        // the router only, never forwarded.
        if !m.local_dst
            && ethernet::Frame::new_unchecked(&pkt.buf[..ETH_HDR_LEN]).dst_addr() == Mac::BROADCAST
        {
            return Outcome::drop(DropReason::IpNotUnicast);
        }

        let ct = match self.raw_and_track(t, pkt, &mut m, RawHook::Prerouting, tr) {
            Ok(ct) => ct,
            Err(reason) => return Outcome::drop(reason),
        };

        // route
        tr.event(Event::Route { next_hop: nh });
        let (chain, out) = match nh {
            None | Some(NextHop::Unreachable) => {
                return self.send_icmp_error(
                    t,
                    pkt,
                    &m,
                    icmp::DEST_UNREACHABLE,
                    icmp::NET_UNREACHABLE,
                    0,
                    DropReason::RouteNoRoute,
                );
            }
            Some(NextHop::Blackhole) => return Outcome::drop(DropReason::RouteNoRoute),
            Some(NextHop::Local) => (ChainId::Input, PortId::HOST),
            Some(NextHop::Connected(p)) | Some(NextHop::Via { port: p, .. }) => {
                // RFC 1812 5.3.1: a forwarded packet whose TTL would reach 0.
                if m.ttl <= 1 {
                    return self.send_icmp_error(
                        t,
                        pkt,
                        &m,
                        icmp::TIME_EXCEEDED,
                        0,
                        0,
                        DropReason::IpTtlExpired,
                    );
                }
                (ChainId::Forward, p)
            }
        };
        m.out_port = Some(out);

        // filter
        if let Some(o) = self.filter(t, pkt, &m, chain, ct, tr) {
            return o;
        }
        if chain == ChainId::Input {
            return Outcome::of(Verdict::Host);
        }
        self.output(
            t,
            pkt,
            &m,
            nh_id.unwrap_or(0),
            nh.unwrap_or(NextHop::Blackhole),
            out,
            true,
            tr,
        )
    }

    /// The filter stage and the confirmation of NEW flows. `Some` ends the
    /// packet's path.
    #[inline(always)]
    fn filter<T: Tracer>(
        &mut self,
        t: &Tables,
        pkt: &mut Pkt<'_>,
        m: &Meta,
        chain: ChainId,
        ct: Option<CtResult>,
        tr: &mut T,
    ) -> Option<Outcome> {
        let (rule, action) = t.filter_verdict(chain, m);
        match rule {
            Some(i) => self.counters.filter_rules[chain as usize][i].add(m.total_len),
            None => self.counters.filter_policy[chain as usize].add(m.total_len),
        }
        tr.event(Event::Filter {
            chain,
            rule,
            action,
        });
        match action {
            FilterAction::Accept => {}
            FilterAction::Drop => {
                return Some(Outcome::drop(if rule.is_some() {
                    DropReason::FilterDenied
                } else {
                    DropReason::FilterPolicy
                }));
            }
            FilterAction::Reject => return Some(self.reject(t, pkt, m)),
        }
        if let Some(p) = ct.and_then(|r| r.pending) {
            match self.ct.confirm(p, self.now) {
                Ok(flow) => tr.event(Event::Confirmed { flow }),
                Err(_) => return Some(Outcome::drop(DropReason::ConntrackTableFull)),
            }
        }
        None
    }

    fn reject(&mut self, t: &Tables, pkt: &mut Pkt<'_>, m: &Meta) -> Outcome {
        let reason = DropReason::FilterRejected;
        if m.proto == ipv4::PROTO_TCP && m.has_ports && !pkt.port.is_host() {
            if m.tcp_flags & tcp::RST != 0 {
                return Outcome::drop(reason);
            }
            let ifc = &t.interfaces[pkt.port.0 as usize];
            let peer = ethernet::Frame::new_unchecked(&pkt.buf[..ETH_HDR_LEN]).src_addr();
            return match reply::tcp_reset(pkt.buf, m.ihl, m.total_len, ifc.mac, peer) {
                Some(n) => {
                    pkt.len = n;
                    self.counters.tcp_resets_sent += 1;
                    Outcome::reply(pkt.port, Some(reason))
                }
                None => Outcome::drop(reason),
            };
        }
        self.send_icmp_error(
            t,
            pkt,
            m,
            icmp::DEST_UNREACHABLE,
            icmp::PORT_UNREACHABLE,
            0,
            reason,
        )
    }

    /// Neighbour, MTU and rewrite: send the packet out of `out`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn output<T: Tracer>(
        &mut self,
        t: &Tables,
        pkt: &mut Pkt<'_>,
        m: &Meta,
        nh_id: u32,
        nh: NextHop,
        out: PortId,
        forwarded: bool,
        tr: &mut T,
    ) -> Outcome {
        let (addr, mac) = match nh {
            NextHop::Via { gateway, .. } => (gateway, self.nh_mac[nh_id as usize]),
            _ => (
                m.dst,
                self.neigh
                    .get(m.dst)
                    .filter(|n| n.port == out)
                    .map(|n| n.mac),
            ),
        };
        tr.event(Event::Neighbour {
            addr,
            port: out,
            resolved: mac.is_some(),
        });
        let ifc = &t.interfaces[out.0 as usize];
        // The MTU first: a packet too big is never queued for ARP.
        if m.total_len > ifc.mtu as usize {
            let df = pkt.buf[ETH_HDR_LEN + 6] & 0x40 != 0;
            if df && forwarded {
                return self.send_icmp_error(
                    t,
                    pkt,
                    m,
                    icmp::DEST_UNREACHABLE,
                    icmp::FRAG_NEEDED,
                    ifc.mtu as u32,
                    DropReason::IpMtuExceeded,
                );
            }
            return Outcome::drop(DropReason::IpMtuExceeded);
        }
        let Some(dst_mac) = mac else {
            return self.resolve(t, pkt, m, out, addr, forwarded);
        };
        let l2 = rewrite::l2_header(dst_mac, ifc.mac);
        let (eth, ipb) = pkt.buf.split_at_mut(ETH_HDR_LEN);
        if forwarded {
            let h: &mut [u8; 20] = (&mut ipb[..20]).try_into().expect("checked IPv4 header");
            rewrite::forward(h, eth, &l2);
        } else {
            rewrite::set_l2(eth, &l2);
        }
        // Trailing Ethernet padding is not part of the packet we send.
        pkt.len = ETH_HDR_LEN + m.total_len;
        Outcome::of(Verdict::Tx(out))
    }

    /// The next hop is unresolved: the packet waits in the neighbour queue
    /// (a copy; its frame is free at once) and the frame becomes an ARP
    /// request for the next hop (at most one a second per address, three in
    /// all). A full queue drops the packet (`neighbour_queue_full`).
    #[cold]
    #[allow(clippy::too_many_arguments)]
    fn resolve(
        &mut self,
        t: &Tables,
        pkt: &mut Pkt<'_>,
        m: &Meta,
        out: PortId,
        addr: u32,
        forwarded: bool,
    ) -> Outcome {
        let ifc = &t.interfaces[out.0 as usize];
        let Some(src) = ifc
            .addresses
            .iter()
            .find(|a| a.net.contains(addr))
            .map(|a| a.addr)
        else {
            return Outcome::drop(DropReason::NeighbourUnresolved);
        };
        let frame_len = (ETH_HDR_LEN + m.total_len).min(pkt.len);
        let now = self.now;
        let send = match self.pending.resolving(addr, out) {
            Some(r) if r.tries < RESOLVE_TRIES && (r.tries == 0 || now > r.last_sent) => {
                r.tries += 1;
                r.last_sent = now;
                true
            }
            Some(_) => false,
            None => return Outcome::drop(DropReason::NeighbourQueueFull),
        };
        let queued = self
            .pending
            .enqueue(addr, out, forwarded, &pkt.buf[..frame_len]);
        let dropped = (!queued).then_some(DropReason::NeighbourQueueFull);
        if send {
            if let Some(n) = reply::arp_request(pkt.buf, ifc.mac, src, addr) {
                pkt.len = n;
                self.counters.arp_requests_sent += 1;
                let mut o = Outcome::reply(out, dropped);
                o.deferred = queued;
                return o;
            }
        }
        match dropped {
            Some(r) => Outcome::drop(r),
            None => Outcome {
                deferred: true,
                ..Outcome::of(Verdict::Consumed)
            },
        }
    }

    /// Packets the router itself sends, from the host path.
    fn host_output<T: Tracer>(&mut self, t: &Tables, pkt: &mut Pkt<'_>, tr: &mut T) -> Outcome {
        if pkt.len < ETH_HDR_LEN + 20 || pkt.buf[ETH_HDR_LEN] >> 4 != 4 {
            return Outcome::drop(DropReason::HostBadPacket);
        }
        let mut m = Meta {
            in_port: PortId::HOST,
            ..Meta::default()
        };
        if let Err(r) = self.parse_ip(t, pkt, &mut m) {
            return Outcome::drop(r);
        }
        let nh_id = t.routes.lookup(m.dst);
        let nh = nh_id.map(|i| t.next_hops[i as usize]);
        m.local_dst = matches!(nh, Some(NextHop::Local));

        let ct = match self.raw_and_track(t, pkt, &mut m, RawHook::Output, tr) {
            Ok(ct) => ct,
            Err(reason) => return Outcome::drop(reason),
        };
        tr.event(Event::Route { next_hop: nh });
        let out = match nh {
            Some(NextHop::Connected(p)) | Some(NextHop::Via { port: p, .. }) => p,
            Some(NextHop::Local) => PortId::HOST,
            _ => return Outcome::drop(DropReason::RouteNoRoute),
        };
        m.out_port = Some(out);
        if let Some(o) = self.filter(t, pkt, &m, ChainId::Output, ct, tr) {
            return o;
        }
        if out.is_host() {
            return Outcome::of(Verdict::Host);
        }
        self.output(
            t,
            pkt,
            &m,
            nh_id.unwrap_or(0),
            nh.unwrap_or(NextHop::Blackhole),
            out,
            false,
            tr,
        )
    }
}
