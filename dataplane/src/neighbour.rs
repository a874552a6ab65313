//! The neighbour tables: address to MAC per port, from static config
//! entries and ARP (IPv4, `Neighbours<u32>`) or NDP (IPv6,
//! `Neighbours<Key6>`: by address and port). Capacity is reserved at start-up; the packet path
//! only reads them. Learned entries expire; shortly before, they are
//! refreshed with ARP requests or unicast neighbour solicitations (see
//! `Pipeline::housekeeping`). The queue of packets waiting for a
//! resolution ([`PendingQueue`]) is generic over the address the same way.

use crate::addr::Mac;
use crate::packet::PortId;
use crate::tables::Tables;
use std::collections::HashMap;
use std::hash::Hash;

/// An IPv6 neighbour's key: its address and the port it is on. A
/// link-local address names a neighbour only with its link (`fe80::1` on
/// two ports is two routers, a common way to number gateways), so IPv6
/// neighbours are keyed by both, as Linux keys them by address and device.
pub type Key6 = (u128, PortId);

/// Most neighbours the table holds.
pub const MAX_NEIGHBOURS: usize = 4096;

/// A neighbour's state as RFC 4861 7.3.2 names them, for display (the
/// table keeps no INCOMPLETE entries: a resolution in progress lives in
/// the [`PendingQueue`]). IPv4 entries use the same names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeighbourState {
    /// Confirmed: a solicited answer (an NA with the S flag, an ARP reply
    /// or request).
    Reachable,
    /// Learned without confirmation (from a solicitation or an unsolicited
    /// advertisement): used, and probed before it expires.
    Stale,
    /// Being refreshed: unicast solicitations are under way.
    Probe,
    /// The refresh went unanswered: the entry expires soon.
    Failed,
    /// From the config: never aged out nor replaced.
    Permanent,
}

impl NeighbourState {
    /// Lower-case name (`ip -6 neigh` spells them the same).
    pub const fn name(self) -> &'static str {
        match self {
            NeighbourState::Reachable => "reachable",
            NeighbourState::Stale => "stale",
            NeighbourState::Probe => "probe",
            NeighbourState::Failed => "failed",
            NeighbourState::Permanent => "permanent",
        }
    }
}

/// A resolved neighbour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neighbour {
    /// Its MAC.
    pub mac: Mac,
    /// Port it was seen on.
    pub port: PortId,
    /// From the config: never aged out nor replaced by ARP.
    pub is_static: bool,
    /// Second at which a learned entry expires.
    pub expires: u32,
    /// A refresh (ARP request before expiry) is under way or failed; cleared
    /// when the neighbour is heard from again.
    pub refreshing: bool,
    /// Its state, for display.
    pub state: NeighbourState,
}

/// A neighbour as the operator sees it (`routerctl neighbours`, like
/// `ip neigh`): either family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighbourView {
    pub addr: std::net::IpAddr,
    /// The port it is on.
    pub port: PortId,
    pub mac: Mac,
    pub state: NeighbourState,
    /// Seconds until a learned entry expires; `None` for a static one.
    pub expires_in: Option<u32>,
}

impl NeighbourView {
    /// The view of `n` at `addr`, at second `now`.
    pub fn new(addr: std::net::IpAddr, n: &Neighbour, now: u32) -> NeighbourView {
        NeighbourView {
            addr,
            port: n.port,
            mac: n.mac,
            state: n.state,
            expires_in: (!n.is_static).then(|| n.expires.saturating_sub(now)),
        }
    }
}

/// Address to neighbour map: `u32` for IPv4, `u128` for IPv6.
pub struct Neighbours<A = u32> {
    map: HashMap<A, Neighbour, ahash::RandomState>,
}

impl<A: Copy + Eq + Hash> Default for Neighbours<A> {
    fn default() -> Self {
        Self::new()
    }
}

impl Neighbours<u32> {
    /// Replace static entries with the config's; learned ones stay.
    pub fn load_static(&mut self, tables: &Tables) {
        self.replace_static(tables.neighbours.iter().map(|s| (s.addr, s.mac, s.port)));
    }
}

impl Neighbours<Key6> {
    /// Replace static entries with the config's IPv6 ones; learned ones stay.
    pub fn load_static(&mut self, tables: &Tables) {
        self.replace_static(
            tables
                .v6
                .neighbours
                .iter()
                .map(|s| ((s.addr, s.port), s.mac, s.port)),
        );
    }
}

impl<A: Copy + Eq + Hash> Neighbours<A> {
    /// An empty table with all its memory reserved.
    pub fn new() -> Self {
        Neighbours {
            map: HashMap::with_capacity_and_hasher(MAX_NEIGHBOURS, ahash::RandomState::new()),
        }
    }

    /// Replace static entries with `entries`; learned ones stay.
    fn replace_static(&mut self, entries: impl Iterator<Item = (A, Mac, PortId)>) {
        self.map.retain(|_, n| !n.is_static);
        for (addr, mac, port) in entries {
            self.map.insert(
                addr,
                Neighbour {
                    mac,
                    port,
                    is_static: true,
                    expires: u32::MAX,
                    refreshing: false,
                    state: NeighbourState::Permanent,
                },
            );
        }
    }

    /// Learn or refresh a dynamic entry. Static entries win. Returns false
    /// when the table is full.
    pub fn learn(&mut self, addr: A, mac: Mac, port: PortId, expires: u32) -> bool {
        self.learn_as(addr, mac, port, expires, NeighbourState::Reachable)
    }

    /// [`Neighbours::learn`] in `state` (NDP tells reachable from stale).
    pub fn learn_as(
        &mut self,
        addr: A,
        mac: Mac,
        port: PortId,
        expires: u32,
        state: NeighbourState,
    ) -> bool {
        if let Some(n) = self.map.get_mut(&addr) {
            if !n.is_static {
                n.mac = mac;
                n.port = port;
                n.expires = expires;
                n.refreshing = false;
                n.state = state;
            }
            return true;
        }
        if self.map.len() >= MAX_NEIGHBOURS {
            return false;
        }
        self.map.insert(
            addr,
            Neighbour {
                mac,
                port,
                is_static: false,
                expires,
                refreshing: false,
                state,
            },
        );
        true
    }

    /// Sets a learned entry's state (RFC 4861 7.2.5: a reachable entry
    /// turns stale on a non-override advertisement of another address).
    pub fn set_state(&mut self, addr: A, state: NeighbourState) {
        if let Some(e) = self.map.get_mut(&addr).filter(|e| !e.is_static) {
            e.state = state;
        }
    }

    /// Learned entries that expire within `window` seconds of `now` and are
    /// not being refreshed yet, up to `out.len()` of them; returns how many.
    pub fn due_for_refresh(&self, now: u32, window: u32, out: &mut [(A, PortId)]) -> usize {
        let mut n = 0;
        for (&addr, e) in &self.map {
            if n == out.len() {
                break;
            }
            if !e.is_static && !e.refreshing && e.expires <= now.saturating_add(window) {
                out[n] = (addr, e.port);
                n += 1;
            }
        }
        n
    }

    /// Marks a learned entry as being refreshed.
    pub fn set_refreshing(&mut self, addr: A) {
        if let Some(e) = self.map.get_mut(&addr).filter(|e| !e.is_static) {
            e.refreshing = true;
            e.state = NeighbourState::Probe;
        }
    }

    /// The neighbour at `addr`, if resolved.
    #[inline]
    pub fn get(&self, addr: A) -> Option<&Neighbour> {
        self.map.get(&addr)
    }

    /// Drop learned entries that expired.
    pub fn expire(&mut self, now: u32) -> usize {
        let before = self.map.len();
        self.map.retain(|_, n| n.is_static || n.expires > now);
        before - self.map.len()
    }

    /// All entries.
    pub fn iter(&self) -> impl Iterator<Item = (A, &Neighbour)> {
        self.map.iter().map(|(a, n)| (*a, n))
    }
}

/// Packets held while their next hop is resolved, at most this many in all.
pub const PENDING_SLOTS: usize = 64;
/// ... and at most this many per neighbour (Linux's `unres_qlen` idea).
pub const PENDING_PER_NEIGHBOUR: usize = 3;
/// ARP requests sent for an address before it is declared unreachable.
pub const RESOLVE_TRIES: u8 = 3;
/// Largest frame a pending slot holds.
const PENDING_FRAME: usize = 2048;

/// A neighbour being resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolving<A = u32> {
    /// The address asked for.
    pub addr: A,
    /// Port the request goes out of.
    pub port: PortId,
    /// Requests sent so far.
    pub tries: u8,
    /// Second the last request went out.
    pub last_sent: u32,
    /// Started to refresh a learned entry before it expires (done when the
    /// neighbour answers), not for a packet.
    pub refresh: bool,
}

/// A packet waiting for its next hop.
struct Slot<A> {
    used: bool,
    addr: A,
    port: PortId,
    /// Forwarded (TTL to decrement) rather than from the host.
    forwarded: bool,
    len: usize,
    buf: Box<[u8]>,
}

/// Packets waiting for ARP (or NDP), copied out of their frames (the slow
/// path: the frames go back to the ports at once). All memory is reserved
/// up front.
pub struct PendingQueue<A = u32> {
    slots: Vec<Slot<A>>,
    resolving: Vec<Resolving<A>>,
}

impl<A: Copy + Default> Default for PendingQueue<A> {
    fn default() -> Self {
        PendingQueue {
            slots: (0..PENDING_SLOTS)
                .map(|_| Slot {
                    used: false,
                    addr: A::default(),
                    port: PortId(0),
                    forwarded: false,
                    len: 0,
                    buf: vec![0u8; PENDING_FRAME].into_boxed_slice(),
                })
                .collect(),
            resolving: Vec::with_capacity(PENDING_SLOTS),
        }
    }
}

impl<A: Copy + Eq> PendingQueue<A> {
    /// Whether anything waits.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.resolving.is_empty()
    }

    /// Packets waiting.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.used).count()
    }

    /// The resolution in progress for `addr`, started if new (None when
    /// too many resolutions are in progress).
    pub fn resolving(&mut self, addr: A, port: PortId) -> Option<&mut Resolving<A>> {
        let i = match self.resolving.iter().position(|r| r.addr == addr) {
            Some(i) => i,
            None => {
                if self.resolving.len() == self.resolving.capacity() {
                    return None;
                }
                self.resolving.push(Resolving {
                    addr,
                    port,
                    tries: 0,
                    last_sent: 0,
                    refresh: false,
                });
                self.resolving.len() - 1
            }
        };
        Some(&mut self.resolving[i])
    }

    /// Copy a frame to wait for `addr`. False when the neighbour's share or
    /// the whole queue is full.
    pub fn enqueue(&mut self, addr: A, port: PortId, forwarded: bool, frame: &[u8]) -> bool {
        if frame.len() > PENDING_FRAME
            || self
                .slots
                .iter()
                .filter(|s| s.used && s.addr == addr)
                .count()
                >= PENDING_PER_NEIGHBOUR
        {
            return false;
        }
        let Some(s) = self.slots.iter_mut().find(|s| !s.used) else {
            return false;
        };
        s.used = true;
        s.addr = addr;
        s.port = port;
        s.forwarded = forwarded;
        s.len = frame.len();
        s.buf[..frame.len()].copy_from_slice(frame);
        true
    }

    /// The resolutions in progress.
    pub fn in_progress(&self) -> &[Resolving<A>] {
        &self.resolving
    }

    /// Forget the resolution of `addr`; returns its waiting packets' count
    /// and frees them.
    pub fn abandon(&mut self, addr: A) -> usize {
        self.abandon_each(addr, |_, _| {})
    }

    /// [`PendingQueue::abandon`], handing each freed packet to `f` first
    /// (frame bytes, forwarded), to answer it with an error.
    pub fn abandon_each(&mut self, addr: A, mut f: impl FnMut(&[u8], bool)) -> usize {
        self.resolving.retain(|r| r.addr != addr);
        let mut n = 0;
        for s in self.slots.iter_mut().filter(|s| s.used && s.addr == addr) {
            f(&s.buf[..s.len], s.forwarded);
            s.used = false;
            n += 1;
        }
        n
    }

    /// Hand each packet waiting for `addr` to `f` (frame bytes, mutable,
    /// port, forwarded) until `f` returns false; handed packets are freed.
    /// Returns how many were handed.
    pub fn release(
        &mut self,
        addr: A,
        mut f: impl FnMut(&mut [u8], PortId, bool) -> bool,
    ) -> usize {
        let mut n = 0;
        for s in self.slots.iter_mut().filter(|s| s.used && s.addr == addr) {
            if !f(&mut s.buf[..s.len], s.port, s.forwarded) {
                break;
            }
            s.used = false;
            n += 1;
        }
        if !self.slots.iter().any(|s| s.used && s.addr == addr) {
            self.resolving.retain(|r| r.addr != addr);
        }
        n
    }
}
