//! The IPv6 half of the compiled configuration: next hops, the route
//! table ([`RouteTable6`], a Poptrie), static neighbours and the router's
//! own IPv6 addresses. Built with [`crate::tables::Tables`] from the same
//! interfaces and swapped in with it; read-only on the packet path.
//!
//! Link-local addresses (`fe80::/64` from each port's MAC, RFC 4291
//! 2.5.6) belong to one link each: they are the router's own on their
//! port, never routed, and a gateway may be one when its port is named.

use crate::addr::{IfAddr6, Ipv6Prefix, Mac};
use crate::packet::PortId;
use crate::route6::RouteTable6;
use crate::tables::{Interface, RouteSource};
use crate::wire::ipv6::{link_local_from_mac, AddrClass};

/// A route's IPv6 target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NextHop6 {
    /// One of the router's addresses: deliver to the host.
    Local,
    /// An on-link prefix on this port: the destination is the neighbour.
    Connected(PortId),
    /// Through a gateway (global or link-local) on this port.
    Via { port: PortId, gateway: u128 },
    /// Drop silently (a `blackhole` route).
    Blackhole,
    /// Answer with ICMPv6 no route to destination (an `unreachable` route).
    Unreachable,
}

/// An IPv6 route as given to the table builder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSpec6 {
    /// Destination prefix.
    pub prefix: Ipv6Prefix,
    /// Where it goes.
    pub next_hop: NextHop6,
    /// Where the route comes from.
    pub source: RouteSource,
}

impl RouteSpec6 {
    /// A static route.
    pub fn new(prefix: Ipv6Prefix, next_hop: NextHop6) -> RouteSpec6 {
        RouteSpec6 {
            prefix,
            next_hop,
            source: RouteSource::Static,
        }
    }

    /// The route with `source`.
    pub fn with_source(mut self, source: RouteSource) -> RouteSpec6 {
        self.source = source;
        self
    }
}

/// A static IPv6 neighbour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaticNeighbour6 {
    /// The neighbour's address.
    pub addr: u128,
    /// Its MAC.
    pub mac: Mac,
    /// Port it is on.
    pub port: PortId,
}

/// A prefix announced in router advertisements (RFC 4861 4.6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RaPrefix {
    /// The prefix (a /64 for SLAAC).
    pub prefix: Ipv6Prefix,
    /// Valid lifetime, seconds (`u32::MAX`: infinity).
    pub valid_lifetime: u32,
    /// Preferred lifetime, seconds.
    pub preferred_lifetime: u32,
    /// On-link flag (L).
    pub on_link: bool,
    /// Autonomous address-configuration flag (A): hosts form addresses.
    pub autonomous: bool,
}

/// Router advertisements sent on one port (RFC 4861 6.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaConfig {
    /// Seconds between unsolicited advertisements.
    pub interval: u32,
    /// Router lifetime, seconds (0: not a default router).
    pub router_lifetime: u16,
    /// Cur hop limit advertised (0: unspecified).
    pub hop_limit: u8,
    /// Managed address configuration flag (M).
    pub managed: bool,
    /// Other configuration flag (O).
    pub other: bool,
    /// Announce the port's MTU (the MTU option).
    pub mtu: bool,
    /// Prefixes announced.
    pub prefixes: Vec<RaPrefix>,
}

impl Default for RaConfig {
    fn default() -> Self {
        RaConfig {
            interval: 200,
            router_lifetime: 1800,
            hop_limit: 64,
            managed: false,
            other: false,
            mtu: true,
            prefixes: Vec::new(),
        }
    }
}

/// Input to the IPv6 part of [`crate::tables::Tables::build`].
#[derive(Clone, Debug, Default)]
pub struct Spec6 {
    /// Configured routes (on-link and local routes come from the
    /// interface addresses).
    pub routes: Vec<RouteSpec6>,
    /// Routes mirrored from the kernel, used where no other route has the
    /// prefix.
    pub kernel_routes: Vec<RouteSpec6>,
    /// Static neighbours.
    pub neighbours: Vec<StaticNeighbour6>,
}

/// The compiled IPv6 tables.
#[derive(Debug)]
pub struct Tables6 {
    /// Distinct next hops; the route table maps to indexes here.
    pub next_hops: Vec<NextHop6>,
    /// Longest-prefix-match table.
    pub routes: RouteTable6,
    /// The routes in use, one per prefix, sorted by (length, prefix).
    pub route_specs: Vec<RouteSpec6>,
    /// Routes that lost to a route of smaller distance for their prefix.
    pub shadowed: Vec<RouteSpec6>,
    /// Static neighbours.
    pub neighbours: Vec<StaticNeighbour6>,
    /// Each port's link-local address, by port.
    pub link_local: Vec<u128>,
    /// The router's global (and unique local) addresses: a handful, so a
    /// scan answers "is it ours" faster than the trie's deepest level,
    /// where a /128 lives. Private: `local_slots` is derived from it.
    local: Vec<u128>,
    /// `local` by [`local_slot`]: the index plus one of the one address
    /// of that slot, 0 for none, [`LOCAL_MANY`] when several share it (or
    /// the index does not fit). Most addresses not ours are told by a zero,
    /// ours by one compare, without the scan.
    local_slots: [u8; 64],
}

/// [`Tables6`]'s `local_slots` entry of slots shared by several addresses:
/// scan `local`.
const LOCAL_MANY: u8 = u8::MAX;

/// The slot of an address among [`Tables6`]'s `local_slots`: its two
/// halves folded and multiplied (Fibonacci hashing), top 6 bits.
#[inline(always)]
fn local_slot(ip: u128) -> usize {
    (((ip as u64) ^ (ip >> 64) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58) as usize
}

impl Default for Tables6 {
    /// No interfaces, no routes.
    fn default() -> Self {
        Tables6::build(&[], Spec6::default())
    }
}

impl Tables6 {
    /// Builds the IPv6 tables for `interfaces` (their MACs give the
    /// link-local addresses): on-link and local routes from the interface
    /// addresses, then the configured and kernel routes, one route per
    /// prefix by administrative distance as for IPv4.
    pub fn build(interfaces: &[Interface], spec: Spec6) -> Tables6 {
        let mut candidates: Vec<RouteSpec6> = Vec::new();
        for (i, ifc) in interfaces.iter().enumerate() {
            for a in &ifc.addresses6 {
                candidates.push(
                    RouteSpec6::new(a.net, NextHop6::Connected(PortId(i as u8)))
                        .with_source(RouteSource::Connected),
                );
            }
        }
        candidates.extend(spec.routes);
        candidates.extend(spec.kernel_routes);
        for ifc in interfaces {
            for a in &ifc.addresses6 {
                candidates.push(
                    RouteSpec6::new(Ipv6Prefix::host(a.addr), NextHop6::Local)
                        .with_source(RouteSource::Local),
                );
            }
        }
        let mut order: Vec<usize> = (0..candidates.len()).collect();
        order.sort_by_key(|&i| {
            let r = &candidates[i];
            (
                r.prefix.len(),
                r.prefix.addr(),
                r.source.distance(),
                r.source.rank(),
                std::cmp::Reverse(i),
            )
        });
        let mut next_hops: Vec<NextHop6> = Vec::new();
        let mut ids: ahash::AHashMap<NextHop6, u32> = ahash::AHashMap::new();
        let mut entries = Vec::with_capacity(candidates.len());
        let mut route_specs = Vec::with_capacity(candidates.len());
        let mut shadowed = Vec::new();
        let mut slots: Vec<Option<RouteSpec6>> = candidates.into_iter().map(Some).collect();
        let mut last: Option<Ipv6Prefix> = None;
        for i in order {
            let r = slots[i].take().expect("each route once");
            if last == Some(r.prefix) {
                shadowed.push(r);
                continue;
            }
            last = Some(r.prefix);
            let id = *ids.entry(r.next_hop).or_insert_with(|| {
                next_hops.push(r.next_hop);
                (next_hops.len() - 1) as u32
            });
            entries.push((r.prefix, id));
            route_specs.push(r);
        }
        Tables6 {
            next_hops,
            routes: RouteTable6::build(&entries),
            route_specs,
            shadowed,
            neighbours: spec.neighbours,
            link_local: interfaces
                .iter()
                .map(|i| link_local_from_mac(i.mac))
                .collect(),
            local_slots: [0; 64],
            local: interfaces
                .iter()
                .flat_map(|i| i.addresses6.iter().map(|a| a.addr))
                .collect(),
        }
        .with_local_slots()
    }

    /// Fills `local_slots` from `local`.
    fn with_local_slots(mut self) -> Tables6 {
        for (i, &a) in self.local.iter().enumerate() {
            let s = &mut self.local_slots[local_slot(a)];
            *s = match (*s, u8::try_from(i + 1)) {
                (0, Ok(k)) if k != LOCAL_MANY => k,
                // The same address twice (two interfaces) needs no scan.
                (k, _) if k != 0 && k != LOCAL_MANY && self.local[k as usize - 1] == a => k,
                _ => LOCAL_MANY,
            };
        }
        self
    }

    /// Longest-prefix match: the next hop's id and the next hop. A
    /// link-local destination has no route ([`Tables6::is_link_local_of`]
    /// answers for the router's own).
    #[inline(always)]
    pub fn route(&self, ip: u128) -> Option<(u32, NextHop6)> {
        let id = self.routes.lookup(ip)?;
        Some((id, self.next_hops[id as usize]))
    }

    /// Whether `ip` is one of the router's global (or unique local)
    /// addresses.
    #[inline]
    pub fn is_local_global(&self, ip: u128) -> bool {
        match self.local_slots[local_slot(ip)] {
            0 => false,
            LOCAL_MANY => self.local.contains(&ip),
            k => self.local.get(k as usize - 1) == Some(&ip),
        }
    }

    /// Whether `ip` is the router's link-local address on `port`.
    #[inline]
    pub fn is_link_local_of(&self, ip: u128, port: PortId) -> bool {
        self.link_local.get(port.0 as usize) == Some(&ip)
    }

    /// Whether `ip` is one of the router's IPv6 addresses: global, or the
    /// link-local address of any port.
    #[inline]
    pub fn is_local(&self, ip: u128) -> bool {
        if matches!(AddrClass::of(ip), AddrClass::LinkLocal) {
            self.link_local.contains(&ip)
        } else {
            self.is_local_global(ip)
        }
    }

    /// The route in use for `prefix`, if any.
    pub fn route_spec(&self, prefix: Ipv6Prefix) -> Option<&RouteSpec6> {
        self.route_specs
            .binary_search_by_key(&(prefix.len(), prefix.addr()), |r| {
                (r.prefix.len(), r.prefix.addr())
            })
            .ok()
            .map(|i| &self.route_specs[i])
    }
}

/// The router's address on `ifc` used as source of packets it sends to
/// `towards`: the link-local one for a link-local or multicast
/// destination (NDP), else the global address on the same prefix, the
/// first global one, or the link-local one.
pub fn source_address(ifc: &Interface, towards: u128) -> u128 {
    let ll = link_local_from_mac(ifc.mac);
    match AddrClass::of(towards) {
        AddrClass::LinkLocal | AddrClass::Multicast(_) => ll,
        _ => ifc
            .addresses6
            .iter()
            .find(|a| a.net.contains(towards))
            .or(ifc.addresses6.first())
            .map(|a: &IfAddr6| a.addr)
            .unwrap_or(ll),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> u128 {
        u128::from(s.parse::<std::net::Ipv6Addr>().unwrap())
    }

    fn ifc(name: &str, mac: u8, addr: &str) -> Interface {
        Interface {
            name: name.into(),
            device: name.into(),
            mac: Mac([2, 0, 0, 0, 0, mac]),
            addresses: Vec::new(),
            addresses6: vec![addr.parse().unwrap()],
            mtu: 1500,
            ra: None,
        }
    }

    /// The slots in front of the scan of local addresses never hide one
    /// of them (also where several share a slot), and the others are told
    /// apart; most without a compare.
    #[test]
    fn local_addresses_are_found_through_their_slots() {
        for n in [1u8, 8, 40, 200, 255] {
            let ifs: Vec<Interface> = (0..n)
                .map(|i| ifc("p", i, &format!("2001:db8:{i:x}::1/64")))
                .collect();
            let t = Tables6::build(&ifs, Spec6::default());
            for i in 0..n {
                assert!(
                    t.is_local_global(a(&format!("2001:db8:{i:x}::1"))),
                    "{i} of {n}"
                );
            }
            if n == 200 {
                // More addresses than slots: some share.
                assert!(t.local_slots.contains(&LOCAL_MANY));
            }
            let others: Vec<u128> = (2..10_002u128).map(|h| a("2001:db8:1::") | h).collect();
            assert!(others.iter().all(|&o| !t.is_local_global(o)), "{n}");
            if n == 8 {
                let compared = others
                    .iter()
                    .filter(|&&o| t.local_slots[local_slot(o)] != 0)
                    .count();
                // 8 of 64 slots taken: about one in eight is compared.
                assert!(
                    compared < others.len() / 4,
                    "{compared} of {}",
                    others.len()
                );
            }
        }
    }

    #[test]
    fn on_link_local_static_and_kernel_routes_by_distance() {
        let ifs = [
            ifc("wan", 1, "2001:db8::1/64"),
            ifc("lan", 2, "2001:db8:1::1/64"),
        ];
        let gw = NextHop6::Via {
            port: PortId(0),
            gateway: a("fe80::2"),
        };
        let kernel = RouteSource::Kernel { protocol: 186 };
        let spec = Spec6 {
            routes: vec![RouteSpec6::new("::/0".parse().unwrap(), gw)],
            kernel_routes: vec![
                RouteSpec6::new("2001:db8:1::/64".parse().unwrap(), gw).with_source(kernel),
                RouteSpec6::new("2001:db8:5::/48".parse().unwrap(), gw).with_source(kernel),
            ],
            neighbours: Vec::new(),
        };
        let t = Tables6::build(&ifs, spec);
        assert_eq!(t.route(a("2001:db8:ffff::9")).unwrap().1, gw);
        assert_eq!(
            t.route(a("2001:db8:1::7")).unwrap().1,
            NextHop6::Connected(PortId(1)),
            "on-link beats the kernel's route"
        );
        assert_eq!(t.route(a("2001:db8:5::1")).unwrap().1, gw);
        assert_eq!(t.route(a("2001:db8:1::1")).unwrap().1, NextHop6::Local);
        assert!(t.is_local(a("2001:db8::1")));
        assert!(t.is_local(a("fe80::ff:fe00:2")), "lan's link-local");
        assert!(t.is_link_local_of(a("fe80::ff:fe00:2"), PortId(1)));
        assert!(!t.is_link_local_of(a("fe80::ff:fe00:2"), PortId(0)));
        assert!(!t.is_local(a("fe80::ff:fe00:3")));
        assert_eq!(t.shadowed.len(), 1);
        assert_eq!(
            t.route_spec("::/0".parse().unwrap()).unwrap().source,
            RouteSource::Static
        );
    }

    #[test]
    fn source_address_is_link_local_for_ndp_and_global_on_the_prefix() {
        let mut i = ifc("lan", 2, "2001:db8:1::1/64");
        i.addresses6.push("2001:db8:2::1/64".parse().unwrap());
        assert_eq!(
            source_address(&i, a("ff02::1:ff00:5")),
            a("fe80::ff:fe00:2")
        );
        assert_eq!(source_address(&i, a("fe80::9")), a("fe80::ff:fe00:2"));
        assert_eq!(source_address(&i, a("2001:db8:2::9")), a("2001:db8:2::1"));
        assert_eq!(source_address(&i, a("2001:db8:7::9")), a("2001:db8:1::1"));
        i.addresses6.clear();
        assert_eq!(source_address(&i, a("2001:db8:7::9")), a("fe80::ff:fe00:2"));
    }
}
