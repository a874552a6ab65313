//! The neighbour table: IPv4 address to MAC per port, from static config
//! entries and (later) ARP. Capacity is reserved at start-up; the packet
//! path only reads it.

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
            },
        );
        true
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
