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
use crate::conntrack::{self, Conntrack, CtResult, FlowKey, PktInfo};
use crate::counters::Counters;
use crate::drop::DropReason;
use crate::filter;
use crate::neighbour::{Neighbours, PendingQueue, RESOLVE_TRIES};
use crate::packet::{Pkt, PortId, Verdict, ETH_HDR_LEN};
use crate::raw;
use crate::reply::{self, IcmpLimiter};
use crate::rewrite;
use crate::tables::{ChainId, CtState, FilterAction, IpOptionsPolicy, NextHop, RawAction, Tables};
use crate::trace::{Event, RawHook, Tracer};
use crate::wire::{self, ethernet, icmp, ipv4, tcp, udp};

/// Seconds a learned neighbour stays valid.
pub const NEIGHBOUR_TIMEOUT: u32 = 300;
/// Seconds before a learned neighbour expires when the router asks for it
/// again (three ARP requests a second apart, as for a resolution); an
/// answer renews the entry, silence lets it expire.
pub const NEIGHBOUR_REFRESH: u32 = 30;
/// Neighbour refreshes started per housekeeping scan (one scan a second).
const REFRESH_BATCH: usize = 16;

/// What the stages learned about a packet, so no stage parses twice.
#[derive(Clone, Copy, Debug, Default)]
pub struct Meta {
    /// Arrival port.
    pub in_port: PortId,
    /// Output port once routed ([`PortId::HOST`] for local delivery).
    pub out_port: Option<PortId>,
    /// IP header length in bytes.
    pub ihl: usize,
    /// IP total length.
    pub total_len: usize,
    pub src: u32,
    pub dst: u32,
    pub proto: u8,
    pub ttl: u8,
    /// More-fragments set or offset non-zero.
    pub fragment: bool,
    /// Offset non-zero: no L4 header in this packet.
    pub nonfirst_fragment: bool,
    /// `sport`/`dport` are valid (TCP or UDP, not a non-first fragment).
    pub has_ports: bool,
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u8,
    /// `icmp_type`/`icmp_code` are valid.
    pub has_icmp: bool,
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub icmp_ident: u16,
    /// Destination is one of the router's addresses.
    pub local_dst: bool,
    /// Connection tracking state.
    pub ct_state: CtState,
}

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
    /// Each port's MAC, indexed by port.
    port_mac: Vec<[u8; 6]>,
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
            port_mac: Vec::new(),
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

    /// Run a burst; `out[i]` gets the verdict of `pkts[i]`.
    #[inline]
    pub fn process_burst(&mut self, pkts: &mut [Pkt<'_>], out: &mut [Verdict]) {
        let t = &*self.tables;
        for (p, v) in pkts.iter_mut().zip(out.iter_mut()) {
            *v = match self.st.fast_parse(p) {
                Some(m) => match self.st.fast_forward(t, p, &m) {
                    Some(v) => v,
                    None => self.st.process_parsed(t, p, m),
                },
                None => self.st.process(t, p, &mut ()),
            };
        }
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

/// What the fast path can send to a next hop without looking further.
#[derive(Clone, Copy, Debug)]
enum FastHop {
    /// A gateway whose MAC is known: the output port, its MTU, and the
    /// Ethernet addresses to write.
    Via { out: PortId, mtu: u16, l2: [u8; 12] },
    /// A connected network: the neighbour is the destination.
    Connected(PortId),
    /// Anything else takes the general path.
    No,
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
            .extend(
                t.next_hops
                    .iter()
                    .zip(&self.nh_mac)
                    .map(|(nh, mac)| match (*nh, mac) {
                        (NextHop::Via { port, .. }, Some(mac)) => {
                            let ifc = &t.interfaces[port.0 as usize];
                            FastHop::Via {
                                out: port,
                                mtu: ifc.mtu,
                                l2: rewrite::l2_header(*mac, ifc.mac),
                            }
                        }
                        (NextHop::Connected(out), _) => FastHop::Connected(out),
                        _ => FastHop::No,
                    }),
            );
        self.port_mac.clear();
        self.port_mac.extend(t.interfaces.iter().map(|i| i.mac.0));
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

    /// The general path for a frame `fast_parse` already read.
    #[inline(always)]
    fn process_parsed(&mut self, t: &Tables, pkt: &mut Pkt<'_>, m: Meta) -> Verdict {
        self.counters.rx[pkt.port.0 as usize & 63].add(pkt.len);
        let o = self.ip(t, pkt, &mut (), Some(m));
        self.account(pkt, o, &mut ())
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

    /// Parse the common frame (to our MAC, IPv4 without options, not a
    /// fragment, TCP/UDP/ICMP with its fixed header, good checksum, unicast
    /// addresses) into `Meta` in one pass; anything else returns `None` and
    /// takes the general parser, which names the drop reason.
    #[inline(always)]
    fn fast_parse(&self, pkt: &Pkt<'_>) -> Option<Meta> {
        let len = pkt.len;
        let port = pkt.port;
        let buf = pkt.buf.get(..len)?;
        let port_mac = self.port_mac.get(port.0 as usize)?;
        if len < ETH_HDR_LEN + 28 || buf[..6] != port_mac[..] || buf[12..14] != [0x08, 0x00] {
            return None;
        }
        let h: &[u8; 20] = buf[ETH_HDR_LEN..ETH_HDR_LEN + 20].try_into().ok()?;
        let total = u16::from_be_bytes([h[2], h[3]]) as usize;
        // IHL 5 (options take the general path), no MF, no offset.
        if h[0] != 0x45 || total > len - ETH_HDR_LEN || total < 28 || (h[6] & 0x3f) | h[7] != 0 {
            return None;
        }
        if !wire::checksum::verify20(h) {
            return None;
        }
        let src = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
        let dst = u32::from_be_bytes([h[16], h[17], h[18], h[19]]);
        let dtop = dst >> 24;
        if BAD_SOURCE[(src >> 24) as usize] | BAD_DESTINATION[dtop as usize] {
            return None;
        }
        let proto = h[9];
        let l4 = &buf[ETH_HDR_LEN + 20..ETH_HDR_LEN + total];
        let a = u16::from_be_bytes([l4[0], l4[1]]);
        let b = u16::from_be_bytes([l4[2], l4[3]]);
        let mut m = Meta {
            in_port: port,
            out_port: None,
            ihl: 20,
            total_len: total,
            src,
            dst,
            proto,
            ttl: h[8],
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
            ipv4::PROTO_TCP if l4.len() >= tcp::HEADER_LEN => m.tcp_flags = l4[13],
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
            _ => return None,
        }
        Some(m)
    }

    /// The transit fast path for a packet `fast_parse` read: untracked,
    /// TTL > 1, accepted by the forward chain, to a resolved next hop within
    /// the MTU. It makes exactly the decisions of the general path (a
    /// differential test holds them equal) with less bookkeeping, and has
    /// no side effect before it commits: `None` leaves the packet untouched
    /// for the general path.
    #[inline(always)]
    fn fast_forward(&mut self, t: &Tables, pkt: &mut Pkt<'_>, pm: &Meta) -> Option<Verdict> {
        if pm.ttl <= 1 {
            return None;
        }
        let nh_id = t.routes.lookup(pm.dst)?;
        let (out, mtu, l2) = match *self.nh_fast.get(nh_id as usize)? {
            FastHop::Via { out, mtu, l2 } => (out, mtu, l2),
            FastHop::Connected(out) => {
                let ifc = &t.interfaces[out.0 as usize];
                if ifc
                    .addresses
                    .iter()
                    .any(|a| a.net.len() < 31 && a.net.broadcast() == pm.dst)
                {
                    return None;
                }
                let n = self.neigh.get(pm.dst).filter(|n| n.port == out)?;
                (out, ifc.mtu, rewrite::l2_header(n.mac, ifc.mac))
            }
            FastHop::No => return None,
        };
        let m = Meta {
            out_port: Some(out),
            ..*pm
        };
        let total = m.total_len;
        let (raw_rule, raw_action) = raw::evaluate(&t.raw_prerouting, &m, t);
        if raw_action != RawAction::NoTrack {
            return None;
        }
        let (rule, action) = filter::evaluate(&t.filter[ChainId::Forward as usize], &m, t);
        if action != FilterAction::Accept || total > mtu as usize {
            return None;
        }
        // Commit: count as the general path does, then rewrite.
        let c = &mut self.counters;
        c.rx[m.in_port.0 as usize & 63].add(pkt.len);
        if let Some(i) = raw_rule {
            c.raw_rules[0][i].add(total);
        }
        c.untracked += 1;
        match rule {
            Some(i) => c.filter_rules[ChainId::Forward as usize][i].add(total),
            None => c.filter_policy[ChainId::Forward as usize].add(total),
        }
        let (eth, ipb) = pkt.buf.split_at_mut(ETH_HDR_LEN);
        let h: &mut [u8; 20] = (&mut ipb[..20]).try_into().ok()?;
        rewrite::forward(h, eth, &l2);
        pkt.len = ETH_HDR_LEN + total;
        c.tx[out.0 as usize & 63].add(pkt.len);
        c.forwarded += 1;
        Some(Verdict::Tx(out))
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
            ethernet::ETHERTYPE_IPV4 => self.ip(t, pkt, tr, None),
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
        let (rules, counters) = match hook {
            RawHook::Prerouting => (&t.raw_prerouting, 0),
            RawHook::Output => (&t.raw_output, 1),
        };
        let (rule, action) = raw::evaluate(rules, m, t);
        if let Some(i) = rule {
            self.counters.raw_rules[counters][i].add(m.total_len);
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
        let (sport, dport) = if m.has_ports {
            (m.sport, m.dport)
        } else if m.has_icmp {
            (m.icmp_ident, m.icmp_ident)
        } else {
            (0, 0)
        };
        let info = PktInfo {
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
        };
        Ok(self.ct.classify(&info, self.now))
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
    fn ip<T: Tracer>(
        &mut self,
        t: &Tables,
        pkt: &mut Pkt<'_>,
        tr: &mut T,
        pre: Option<Meta>,
    ) -> Outcome {
        let mut m = match pre {
            Some(m) => m,
            None => {
                let mut m = Meta {
                    in_port: pkt.port,
                    ..Meta::default()
                };
                if let Err(r) = self.parse_ip(t, pkt, &mut m) {
                    return Outcome::drop(r);
                }
                m
            }
        };
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
        let ch = &t.filter[chain as usize];
        let (rule, action) = filter::evaluate(ch, m, t);
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
