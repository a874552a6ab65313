//! The pipeline: one frame in, one verdict out, run to completion.
//!
//! ```text
//! port:  parse -> raw/prerouting -> conntrack -> route
//!        -> local: filter/input -> host
//!        -> else:  TTL -> filter/forward -> neighbour -> rewrite -> port
//! host:  parse -> raw/output -> conntrack -> route -> filter/output
//!        -> neighbour -> rewrite -> port
//! ```
//! IPv6 takes the same stages (`general6` draws its path): `parse6`,
//! `route6`, `neighbour6` and `icmp6` are the IPv6 twins, `ndp` answers
//! neighbour discovery in the neighbour stage before the raw stage (not
//! filtered, as ARP), and raw, conntrack, filter and rewrite serve both.
//! A worker owns one `Pipeline` (its connection table, neighbour cache and
//! counters); the compiled [`Tables`] are shared read-only and swapped whole
//! at housekeeping. No allocation, lock or syscall per packet.
//!
//! One [`State`], its `impl` spread over a file per path and per stage (as
//! smoltcp spreads `InterfaceInner` over `iface/interface/*.rs`):
//! - `burst`: the burst loop, fast path first, and the counting of runs
//!   (`run`: the run key, its layout written once);
//! - the paths: `transit` (the transit fast path), `local` (packets to
//!   the router that the fast parser read), `local6` (its IPv6 twin, with
//!   a reader of its own), `general` (everything else, every stage in
//!   turn);
//! - the stages, in packet order: `parse`, `raw`, `conntrack`, `route`,
//!   `filter`, `neighbour`, `rewrite`; and the replies the router builds:
//!   `icmp` (ICMP errors), `arp` (ARP requests for our addresses);
//! - IPv6's neighbour stage: `ndp` (neighbour and router discovery
//!   addressed to the router), `neighbour6` (next hops resolved by NDP,
//!   their queue, probes and the periodic router advertisements).

mod arp;
mod burst;
mod conntrack;
mod filter;
mod general;
mod general6;
mod icmp;
mod icmp6;
mod local;
mod local6;
mod ndp;
mod neighbour;
mod neighbour6;
mod parse;
mod parse6;
mod raw;
mod rewrite;
mod route;
mod route6;
mod run;
mod transit;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::addr::Mac;
use crate::conntrack::Conntrack;
use crate::counters::Counters;
use crate::drop::DropReason;
use crate::neighbour::{Key6, NeighbourState, NeighbourView, Neighbours, PendingQueue};
use crate::packet::{Pkt, PortId, Verdict};
use crate::reply::IcmpLimiter;
use crate::rewrite::L2;
use crate::tables::Tables;
use crate::trace::Tracer;

/// Seconds a learned neighbour stays valid.
pub const NEIGHBOUR_TIMEOUT: u32 = 300;
/// Seconds before a learned neighbour expires when the router asks for it
/// again (three ARP requests a second apart, as for a resolution); an
/// answer renews the entry, silence lets it expire.
pub const NEIGHBOUR_REFRESH: u32 = 30;
/// Neighbour refreshes started per housekeeping scan (one scan a second).
const REFRESH_BATCH: usize = 16;
/// Neighbours learned in one loop that are passed on to the other workers,
/// at most (more is rare: a refresh brings them again).
const LEARNED_MAX: usize = 64;

/// When a port's next unsolicited router advertisement is due.
#[derive(Clone, Copy, Debug, Default)]
struct RaSched {
    /// The port advertises (its interface has `ra`).
    on: bool,
    /// Second the next one is due.
    next: u32,
    /// Advertisements sent since the port began to advertise (the first
    /// few come faster, RFC 4861 6.2.4).
    sent: u8,
    /// Second of the last multicast answer to a solicitation (RFC 4861
    /// 6.2.6: at most one per `MIN_DELAY_BETWEEN_RAS`).
    last_solicited: u32,
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

/// The mutable state of a worker's pipeline: its connection table,
/// neighbour table and caches, ARP queue, ICMP rate limiter, clock and
/// counters. Every stage is a method of `State` taking the tables as a
/// separate `&Tables`: the tables are shared and read-only, the state is
/// the worker's own.
pub struct State {
    ct: Conntrack,
    neigh: Neighbours,
    /// Resolved MAC per next-hop id (gateways), rebuilt when neighbours change.
    nh_mac: Vec<Option<Mac>>,
    /// Ethernet destination and source per next-hop id (gateways with a
    /// resolved MAC), for the fast path.
    nh_fast: Vec<FastHop>,
    /// The IPv6 fast path's next hops, by route slot
    /// ([`transit::fast_hops6`]).
    nh_fast6: Vec<FastHop>,
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
    /// This worker's index and the number of workers: a tracked packet
    /// whose flow another worker owns is handed to it.
    me: usize,
    workers: usize,
    /// Neighbours learned from ARP since the worker last asked (several
    /// workers only; room reserved up front).
    learned: Vec<(u32, Mac, PortId)>,
    /// Second of the last scan for neighbours to refresh.
    refresh_scan: u32,
    /// IPv6 neighbours (NDP), their resolved MAC per IPv6 next-hop id,
    /// the packets waiting for NDP and the neighbours learned for the
    /// other workers, as the IPv4 ones above.
    neigh6: Neighbours<Key6>,
    nh6_mac: Vec<Option<Mac>>,
    pending6: PendingQueue<Key6>,
    learned6: Vec<(u128, Mac, PortId)>,
    /// Router advertisement schedule per port (worker 0 sends them).
    ra: Vec<RaSched>,
    /// An unsolicited router advertisement is due (set at housekeeping,
    /// sent from `drain_pending`).
    ra_due: bool,
    /// This worker's counters.
    pub counters: Counters,
}

/// A worker's pipeline: the tables in force (an `Arc`, swapped whole at
/// housekeeping) and its [`State`]. Two parts, so that a stage can hold a
/// `&Tables` borrowed from the `Arc` and a `&mut State` at once: one struct
/// would be borrowed whole by either.
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
            nh_fast6: Vec::new(),
            port_mac: [u64::MAX; 64],
            limiter: IcmpLimiter::new(tables.icmp_errors.rate, tables.icmp_errors.burst),
            pending: PendingQueue::default(),
            scratch: vec![0u8; 2048].into_boxed_slice(),
            now: 1,
            me: 0,
            workers: 1,
            learned: Vec::with_capacity(LEARNED_MAX),
            refresh_scan: 0,
            neigh6: Neighbours::new(),
            nh6_mac: Vec::new(),
            pending6: PendingQueue::default(),
            learned6: Vec::with_capacity(LEARNED_MAX),
            ra: Vec::new(),
            ra_due: false,
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

    /// Makes this the pipeline of worker `me` of `workers`: tracked packets
    /// of flows another worker owns get [`Verdict::HandOff`]. One worker
    /// (the default) owns every flow.
    pub fn set_worker(&mut self, me: usize, workers: usize) {
        assert!(
            me < workers.max(1) && workers <= 256,
            "worker {me} of {workers}"
        );
        self.st.me = me;
        self.st.workers = workers.max(1);
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
    /// their ARP requests and neighbour solicitations go out from
    /// [`Pipeline::drain_pending`], as do the router advertisements found
    /// due here. Call at housekeeping.
    pub fn housekeeping(&mut self, gc_budget: usize) {
        let now = self.st.now;
        self.st.ct.gc(now, gc_budget);
        if self.st.neigh.expire(now) > 0 {
            self.st.rebuild_nh_cache(&self.tables);
        }
        let scan = now != self.st.refresh_scan;
        if scan {
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
        self.st.housekeeping6(&self.tables, scan);
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

    /// Add or refresh a learned IPv6 neighbour (NDP on another worker, or
    /// `explain`'s assumption), as reachable.
    pub fn learn_neighbour6(&mut self, addr: u128, mac: Mac, port: PortId) {
        let expires = self.st.now.saturating_add(NEIGHBOUR_TIMEOUT);
        self.st
            .neigh6
            .learn_as((addr, port), mac, port, expires, NeighbourState::Reachable);
        self.st.rebuild_nh6_cache(&self.tables);
    }

    /// Whether this worker learned neighbours from ARP or NDP that the
    /// other workers have not heard of (then call [`Pipeline::take_learned`]
    /// and [`Pipeline::take_learned6`]).
    #[inline]
    pub fn has_learned(&self) -> bool {
        !self.st.learned.is_empty() || !self.st.learned6.is_empty()
    }

    /// Hands the IPv6 neighbours learned from NDP since the last call to
    /// `each` (address, MAC, port), for the other workers'
    /// [`Pipeline::learn_neighbour6`].
    pub fn take_learned6(&mut self, mut each: impl FnMut(u128, Mac, PortId)) {
        for (addr, mac, port) in self.st.learned6.drain(..) {
            each(addr, mac, port);
        }
    }

    /// Hands the neighbours learned from ARP since the last call to `each`
    /// (address, MAC, port), for the other workers'
    /// [`Pipeline::learn_neighbour`].
    pub fn take_learned(&mut self, mut each: impl FnMut(u32, Mac, PortId)) {
        for (addr, mac, port) in self.st.learned.drain(..) {
            each(addr, mac, port);
        }
    }

    /// Whether packets wait for ARP or NDP, or a router advertisement is
    /// due (then call [`Pipeline::drain_pending`]).
    #[inline]
    pub fn has_pending(&self) -> bool {
        !self.st.pending.is_empty() || !self.st.pending6.is_empty() || self.st.ra_due
    }

    /// Packets waiting for ARP or NDP.
    pub fn pending_packets(&self) -> usize {
        self.st.pending.len() + self.st.pending6.len()
    }
    /// The neighbour table.
    pub fn neighbours(&self) -> &Neighbours {
        &self.st.neigh
    }

    /// The IPv6 neighbour table.
    pub fn neighbours6(&self) -> &Neighbours<Key6> {
        &self.st.neigh6
    }

    /// Both neighbour tables for the operator (in no order).
    pub fn neighbour_views(&self) -> Vec<NeighbourView> {
        let now = self.st.now;
        self.st
            .neigh
            .iter()
            .map(|(a, n)| NeighbourView::new(Ipv4Addr::from(a).into(), n, now))
            .chain(
                self.st
                    .neigh6
                    .iter()
                    .map(|((a, _), n)| NeighbourView::new(Ipv6Addr::from(a).into(), n, now)),
            )
            .collect()
    }

    /// Counters.
    pub fn counters(&self) -> &Counters {
        &self.st.counters
    }

    /// Counters, to reset them.
    pub fn counters_mut(&mut self) -> &mut Counters {
        &mut self.st.counters
    }

    /// Run one frame, recording each stage's decision in `tr`.
    #[inline(always)]
    pub fn process<T: Tracer>(&mut self, pkt: &mut Pkt<'_>, tr: &mut T) -> Verdict {
        let t = &*self.tables;
        self.st.process(t, pkt, tr)
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
    l2: L2::NONE,
};

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

impl State {
    fn adopt(&mut self, t: &Tables) {
        self.neigh.load_static(t);
        self.rebuild_nh_cache(t);
        self.adopt6(t);
        let c = &mut self.counters;
        c.raw_rules[0] = vec![Default::default(); t.raw_prerouting.len()];
        c.raw_rules[1] = vec![Default::default(); t.raw_output.len()];
        for (i, ch) in t.filter.iter().enumerate() {
            c.filter_rules[i] = vec![Default::default(); ch.rules.len()];
        }
    }
}
