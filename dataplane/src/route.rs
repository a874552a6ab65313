//! Longest-prefix-match IPv4 route table, DIR-24-8 (as DPDK `rte_lpm`).
//!
//! Owns the compiled LPM structure that maps a destination address to a
//! next-hop id (an index into [`crate::tables::Tables::next_hops`]). A lookup
//! is at most two dependent memory reads and never allocates, locks or
//! branches on the number of routes.
//!
//! # Layout
//!
//! - `tbl24`: 2^24 `u32` entries indexed by the top 24 bits of the address
//!   (64 MiB, allocated zeroed so untouched pages cost nothing until written).
//! - `tbl8`: groups of 256 `u32` entries indexed by the low 8 bits, one group
//!   per /24 that holds a prefix longer than /24 (1 KiB per group).
//!
//! # Entry encoding (both tables)
//!
//! | value                  | meaning                                         |
//! |------------------------|-------------------------------------------------|
//! | `0`                    | no route                                        |
//! | `1 ..= 0x7fff_ffff`    | route to next hop `value - 1`                   |
//! | `0x8000_0000 \| g`     | tbl24 only: look up group `g` of `tbl8`         |
//!
//! So next-hop ids go up to [`RouteTable::MAX_NEXT_HOP`] (`2^31 - 2`), and a
//! tbl8 entry never has bit 31 set.
//!
//! # Build
//!
//! The table is immutable: a config change builds a new one and swaps it in
//! (read-copy-update), so there is no incremental insert or delete. The build
//! sorts the routes by (length, address) and writes shorter prefixes first,
//! each as one slice `fill` over the entries it covers; a longer prefix then
//! simply overwrites what it covers. A prefix longer than /24 turns its tbl24
//! entry into a tbl8 group that inherits the old entry in all 256 slots.
//! The sort is stable, so of duplicate prefixes only the last is written.
//!
//! # Memory
//!
//! [`RouteTable::memory_bytes`] = 64 MiB (tbl24) + 1 KiB per tbl8 group.
//! A full Internet table (about 1M routes, almost all /8 to /24) stays close
//! to 64 MiB. The synthetic 1M-route mix of the `route` bench (2% of routes
//! /25../32, spread at random) needs 19,998 groups: 87,586,816 bytes
//! (83.5 MiB), built in ~200 ms on one core. The worst case is one
//! group per /24 that holds a long prefix: 1M /32s in distinct /24s would
//! need 1 GiB of groups.

use crate::addr::Ipv4Prefix;
use core::fmt;

/// Number of tbl24 entries (one per /24).
const TBL24_LEN: usize = 1 << 24;
/// tbl24 entry flag: the low 31 bits index a tbl8 group.
const GROUP: u32 = 1 << 31;

/// Route table mapping prefixes to next-hop ids, DIR-24-8 (see module doc).
pub struct RouteTable {
    tbl24: Box<[u32; TBL24_LEN]>,
    tbl8: Vec<[u32; 256]>,
    /// Distinct prefixes.
    len: usize,
}

impl RouteTable {
    /// Largest next-hop id the table can store.
    pub const MAX_NEXT_HOP: u32 = GROUP - 2;

    /// Build from `(prefix, next_hop_id)`; a later duplicate prefix wins.
    ///
    /// # Panics
    ///
    /// If a next-hop id is above [`RouteTable::MAX_NEXT_HOP`].
    pub fn build(routes: &[(Ipv4Prefix, u32)]) -> RouteTable {
        let mut sorted: Vec<(u64, u32)> = routes
            .iter()
            .map(|&(p, nh)| {
                assert!(
                    nh <= Self::MAX_NEXT_HOP,
                    "next-hop id {nh} above RouteTable::MAX_NEXT_HOP"
                );
                (u64::from(p.len()) << 32 | u64::from(p.addr()), nh + 1)
            })
            .collect();
        // Stable: duplicates keep input order, so the last one comes last.
        sorted.sort_by_key(|&(key, _)| key);

        let mut table = RouteTable::default();
        for (i, &(key, value)) in sorted.iter().enumerate() {
            if sorted.get(i + 1).is_some_and(|next| next.0 == key) {
                continue; // a later duplicate replaces this one
            }
            table.len += 1;
            let len = (key >> 32) as u32;
            let addr = key as u32;
            let i24 = (addr >> 8) as usize;
            if len <= 24 {
                let n = 1usize << (24 - len);
                table.tbl24[i24..i24 + n].fill(value);
            } else {
                let entry = table.tbl24[i24];
                let group = if entry & GROUP != 0 {
                    (entry & !GROUP) as usize
                } else {
                    table.tbl8.push([entry; 256]);
                    let g = table.tbl8.len() - 1;
                    // At most 2^24 groups (one per tbl24 entry), so this fits in 31 bits.
                    table.tbl24[i24] = GROUP | g as u32;
                    g
                };
                let lo = (addr & 0xff) as usize;
                let n = 1usize << (32 - len);
                table.tbl8[group][lo..lo + n].fill(value);
            }
        }
        table.tbl8.shrink_to_fit();
        table
    }

    /// Next-hop id of the longest matching prefix; `ip` in host byte order.
    #[inline]
    pub fn lookup(&self, ip: u32) -> Option<u32> {
        self.lookup_slot(ip).checked_sub(1)
    }

    /// [`RouteTable::lookup`] as a table slot: 0 for no route, next-hop id
    /// plus one otherwise (for tables indexed by next hop with a slot for
    /// "none" first).
    #[inline]
    pub fn lookup_slot(&self, ip: u32) -> u32 {
        // Both indexes are provably in bounds (array lengths 2^24 and 256),
        // so only the group index is checked.
        let entry = self.tbl24[(ip >> 8) as usize];
        if entry & GROUP == 0 {
            entry
        } else {
            self.tbl8[(entry & !GROUP) as usize][(ip & 0xff) as usize]
        }
    }

    /// Number of distinct prefixes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds no route.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes allocated for the lookup structure: 64 MiB of tbl24 (virtual;
    /// pages are only backed once written) plus 1 KiB per tbl8 group.
    pub fn memory_bytes(&self) -> usize {
        core::mem::size_of_val(&*self.tbl24)
            + self.tbl8.capacity() * core::mem::size_of::<[u32; 256]>()
    }

    /// Number of tbl8 groups (/24s holding a prefix longer than /24).
    pub fn tbl8_groups(&self) -> usize {
        self.tbl8.len()
    }
}

impl Default for RouteTable {
    /// The empty table (no route for any address).
    fn default() -> Self {
        let tbl24: Box<[u32; TBL24_LEN]> = vec![0u32; TBL24_LEN]
            .into_boxed_slice()
            .try_into()
            .expect("vec has TBL24_LEN entries");
        RouteTable {
            tbl24,
            tbl8: Vec::new(),
            len: 0,
        }
    }
}

impl fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteTable")
            .field("len", &self.len)
            .field("tbl8_groups", &self.tbl8.len())
            .field("memory_bytes", &self.memory_bytes())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn p(s: &str) -> Ipv4Prefix {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> u32 {
        u32::from(s.parse::<std::net::Ipv4Addr>().unwrap())
    }

    /// xorshift64* for deterministic test inputs.
    struct Rng(u64);

    impl Rng {
        fn next_u32(&mut self) -> u32 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
        }
    }

    #[test]
    fn empty_table_has_no_route() {
        let t = RouteTable::build(&[]);
        assert!(t.is_empty());
        assert_eq!(t.len(), 0);
        for a in [0, 1, ip("198.18.0.1"), u32::MAX] {
            assert_eq!(t.lookup(a), None);
        }
        assert_eq!(t.memory_bytes(), 64 << 20);
    }

    #[test]
    fn default_route_matches_everything() {
        let t = RouteTable::build(&[(Ipv4Prefix::DEFAULT, 7)]);
        assert_eq!(t.len(), 1);
        for a in [0, 1, ip("198.18.0.1"), ip("255.255.255.254"), u32::MAX] {
            assert_eq!(t.lookup(a), Some(7));
        }
    }

    #[test]
    fn single_prefix_of_each_length_covers_exactly_its_range() {
        for len in 0..=32u8 {
            let pre = Ipv4Prefix::new(ip("203.0.113.77"), len).unwrap();
            let t = RouteTable::build(&[(pre, 3)]);
            let (first, last) = (pre.addr(), pre.broadcast());
            assert_eq!(t.lookup(first), Some(3), "/{len} first");
            assert_eq!(t.lookup(last), Some(3), "/{len} last");
            if let Some(below) = first.checked_sub(1) {
                assert_eq!(t.lookup(below), None, "/{len} below");
            }
            if let Some(above) = last.checked_add(1) {
                assert_eq!(t.lookup(above), None, "/{len} above");
            }
        }
    }

    #[test]
    fn nested_prefixes_of_all_lengths() {
        // 203.0.113.77/0 ..= /32, next hop = length.
        let base = ip("203.0.113.77");
        let routes: Vec<_> = (0..=32u8)
            .map(|len| (Ipv4Prefix::new(base, len).unwrap(), u32::from(len)))
            .collect();
        let t = RouteTable::build(&routes);
        assert_eq!(t.len(), 33);
        assert_eq!(t.lookup(base), Some(32));
        for k in 0..32u32 {
            // Differs from `base` first in bit k (from the top): matches /0../k only.
            assert_eq!(t.lookup(base ^ (1 << (31 - k))), Some(k), "bit {k}");
        }
        assert_eq!(t.lookup(0), Some(0));
        // 203 = 0b1100_1011: all-ones shares the first two bits.
        assert_eq!(t.lookup(u32::MAX), Some(2));
    }

    #[test]
    fn more_specific_wins_regardless_of_input_order() {
        let routes = [
            (p("0.0.0.0/0"), 0),
            (p("198.18.0.0/15"), 1),
            (p("198.18.128.0/17"), 2),
            (p("198.18.130.0/24"), 3),
            (p("198.18.130.64/26"), 4),
            (p("198.18.130.70/32"), 5),
        ];
        let checks = [
            ("192.0.2.1", 0),
            ("198.19.255.255", 1),
            ("198.18.127.255", 1),
            ("198.18.128.0", 2),
            ("198.18.130.63", 3),
            ("198.18.130.64", 4),
            ("198.18.130.69", 4),
            ("198.18.130.70", 5),
            ("198.18.130.71", 4),
            ("198.18.130.128", 3),
            ("198.18.131.0", 2),
        ];
        let mut order = routes.to_vec();
        for round in 0..4 {
            match round {
                1 => order.reverse(),
                2 => order.rotate_left(2),
                3 => order.swap(0, 5),
                _ => {}
            }
            let t = RouteTable::build(&order);
            for (a, nh) in checks {
                assert_eq!(t.lookup(ip(a)), Some(nh), "{a} with order {order:?}");
            }
        }
    }

    #[test]
    fn long_prefixes_inside_a_routed_24_and_16() {
        let mut routes = vec![
            (p("198.18.5.0/24"), 24),
            (p("198.18.0.0/16"), 16),
            // A /28 in a /24 without its own route: the group inherits the /16.
            (p("198.18.7.16/28"), 28),
        ];
        for len in 25..=32u8 {
            routes.push((
                Ipv4Prefix::new(ip("198.18.5.0"), len).unwrap(),
                u32::from(len),
            ));
        }
        let t = RouteTable::build(&routes);
        assert_eq!(t.len(), 11);
        assert_eq!(t.tbl8_groups(), 2);
        let checks = [
            ("198.18.5.0", Some(32)),
            ("198.18.5.1", Some(31)),
            ("198.18.5.2", Some(30)),
            ("198.18.5.3", Some(30)),
            ("198.18.5.4", Some(29)),
            ("198.18.5.7", Some(29)),
            ("198.18.5.8", Some(28)),
            ("198.18.5.16", Some(27)),
            ("198.18.5.32", Some(26)),
            ("198.18.5.63", Some(26)),
            ("198.18.5.64", Some(25)),
            ("198.18.5.127", Some(25)),
            ("198.18.5.128", Some(24)),
            ("198.18.5.255", Some(24)),
            ("198.18.4.255", Some(16)),
            ("198.18.6.0", Some(16)),
            ("198.18.7.15", Some(16)),
            ("198.18.7.16", Some(28)),
            ("198.18.7.31", Some(28)),
            ("198.18.7.32", Some(16)),
            ("198.18.255.255", Some(16)),
            ("198.19.0.0", None),
            ("198.17.255.255", None),
        ];
        for (a, nh) in checks {
            assert_eq!(t.lookup(ip(a)), nh, "{a}");
        }
        assert_eq!(t.memory_bytes(), (64 << 20) + 2 * 1024);
    }

    #[test]
    fn duplicate_prefix_last_wins() {
        let routes = [
            (p("198.51.100.0/24"), 1),
            (p("198.51.100.128/25"), 2),
            (p("198.51.100.0/24"), 3),
            (p("198.51.100.128/25"), 4),
            (p("0.0.0.0/0"), 5),
            (p("0.0.0.0/0"), 6),
        ];
        let t = RouteTable::build(&routes);
        assert_eq!(t.len(), 3);
        assert_eq!(t.lookup(ip("198.51.100.1")), Some(3));
        assert_eq!(t.lookup(ip("198.51.100.200")), Some(4));
        assert_eq!(t.lookup(ip("192.0.2.1")), Some(6));
    }

    #[test]
    fn max_next_hop_is_stored() {
        let t = RouteTable::build(&[
            (p("192.0.2.0/24"), RouteTable::MAX_NEXT_HOP),
            (p("192.0.2.128/25"), RouteTable::MAX_NEXT_HOP - 1),
        ]);
        assert_eq!(t.lookup(ip("192.0.2.1")), Some(RouteTable::MAX_NEXT_HOP));
        assert_eq!(
            t.lookup(ip("192.0.2.129")),
            Some(RouteTable::MAX_NEXT_HOP - 1)
        );
    }

    #[test]
    #[should_panic(expected = "MAX_NEXT_HOP")]
    fn next_hop_above_max_panics() {
        RouteTable::build(&[(p("192.0.2.0/24"), RouteTable::MAX_NEXT_HOP + 1)]);
    }

    #[test]
    fn matches_naive_reference_on_random_routes() {
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        let mut routes = Vec::new();
        for i in 0..2_000u32 {
            let len = (rng.next_u32() % 33) as u8;
            // Reuse a few addresses so nested and duplicate prefixes occur.
            let addr = if i % 4 == 0 && !routes.is_empty() {
                let (prev, _): (Ipv4Prefix, u32) = routes[rng.next_u32() as usize % routes.len()];
                prev.addr() | (rng.next_u32() & !prev.mask())
            } else {
                rng.next_u32()
            };
            routes.push((Ipv4Prefix::new(addr, len).unwrap(), rng.next_u32() % 1000));
        }
        let t = RouteTable::build(&routes);

        let mut last: HashMap<Ipv4Prefix, u32> = HashMap::new();
        for &(pre, nh) in &routes {
            last.insert(pre, nh);
        }
        assert_eq!(t.len(), last.len());
        // Naive LPM: try every length from /32 down. (A linear scan over all
        // prefixes per probe takes ~10 s in a debug build.)
        let naive = |a: u32| {
            (0..=32u8)
                .rev()
                .find_map(|len| last.get(&Ipv4Prefix::new(a, len).unwrap()).copied())
        };

        let mut probes: Vec<u32> = (0..100_000).map(|_| rng.next_u32()).collect();
        for pre in last.keys() {
            let (first, last) = (pre.addr(), pre.broadcast());
            probes.extend([first, last, first.wrapping_sub(1), last.wrapping_add(1)]);
        }
        for a in probes {
            assert_eq!(t.lookup(a), naive(a), "address {a:#010x}");
        }
    }
}
