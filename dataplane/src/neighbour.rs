//! The neighbour table: IPv4 address to MAC per port, from static config
//! entries and ARP. Capacity is reserved at start-up; the packet path only
//! reads it. Learned entries expire; shortly before, they are refreshed
//! with ARP requests (see `Pipeline::housekeeping`).

use crate::addr::Mac;
use crate::packet::PortId;
use crate::tables::Tables;
use std::collections::HashMap;

/// Most neighbours the table holds.
pub const MAX_NEIGHBOURS: usize = 4096;

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
}

/// Address to neighbour map.
pub struct Neighbours {
    map: HashMap<u32, Neighbour, ahash::RandomState>,
}

impl Default for Neighbours {
    fn default() -> Self {
        Self::new()
    }
}

impl Neighbours {
    /// An empty table with all its memory reserved.
    pub fn new() -> Self {
        Neighbours {
            map: HashMap::with_capacity_and_hasher(MAX_NEIGHBOURS, ahash::RandomState::new()),
        }
    }

    /// Replace static entries with the config's; learned ones stay.
    pub fn load_static(&mut self, tables: &Tables) {
        self.map.retain(|_, n| !n.is_static);
        for s in &tables.neighbours {
            self.map.insert(
                s.addr,
                Neighbour {
                    mac: s.mac,
                    port: s.port,
                    is_static: true,
                    expires: u32::MAX,
                    refreshing: false,
                },
            );
        }
    }

    /// Learn or refresh a dynamic entry. Static entries win. Returns false
    /// when the table is full.
    pub fn learn(&mut self, addr: u32, mac: Mac, port: PortId, expires: u32) -> bool {
        if let Some(n) = self.map.get_mut(&addr) {
            if !n.is_static {
                n.mac = mac;
                n.port = port;
                n.expires = expires;
                n.refreshing = false;
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
            },
        );
        true
    }

    /// Learned entries that expire within `window` seconds of `now` and are
    /// not being refreshed yet, up to `out.len()` of them; returns how many.
    pub fn due_for_refresh(&self, now: u32, window: u32, out: &mut [(u32, PortId)]) -> usize {
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
    pub fn set_refreshing(&mut self, addr: u32) {
        if let Some(e) = self.map.get_mut(&addr).filter(|e| !e.is_static) {
            e.refreshing = true;
        }
    }

    /// The neighbour at `addr`, if resolved.
    #[inline]
    pub fn get(&self, addr: u32) -> Option<&Neighbour> {
        self.map.get(&addr)
    }

    /// Drop learned entries that expired.
    pub fn expire(&mut self, now: u32) -> usize {
        let before = self.map.len();
        self.map.retain(|_, n| n.is_static || n.expires > now);
        before - self.map.len()
    }

    /// All entries.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Neighbour)> {
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
pub struct Resolving {
    /// The address asked for.
    pub addr: u32,
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
struct Slot {
    used: bool,
    addr: u32,
    port: PortId,
    /// Forwarded (TTL to decrement) rather than from the host.
    forwarded: bool,
    len: usize,
    buf: Box<[u8]>,
}

/// Packets waiting for ARP, copied out of their frames (the slow path: the
/// frames go back to the ports at once). All memory is reserved up front.
pub struct PendingQueue {
    slots: Vec<Slot>,
    resolving: Vec<Resolving>,
}

impl Default for PendingQueue {
    fn default() -> Self {
        PendingQueue {
            slots: (0..PENDING_SLOTS)
                .map(|_| Slot {
                    used: false,
                    addr: 0,
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

impl PendingQueue {
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
    pub fn resolving(&mut self, addr: u32, port: PortId) -> Option<&mut Resolving> {
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
    pub fn enqueue(&mut self, addr: u32, port: PortId, forwarded: bool, frame: &[u8]) -> bool {
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
    pub fn in_progress(&self) -> &[Resolving] {
        &self.resolving
    }

    /// Forget the resolution of `addr`; returns its waiting packets' count
    /// and frees them.
    pub fn abandon(&mut self, addr: u32) -> usize {
        self.resolving.retain(|r| r.addr != addr);
        let mut n = 0;
        for s in self.slots.iter_mut().filter(|s| s.used && s.addr == addr) {
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
        addr: u32,
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
