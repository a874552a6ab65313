//! The compiled configuration: everything a worker reads on the packet path,
//! built by the control plane off the packet path and swapped in whole
//! (read-copy-update through an `Arc`). Nothing here is written by workers.

use crate::addr::{IfAddr, IfAddr6, Ipv4Prefix, Mac};
use crate::conntrack::ConntrackConfig;
use crate::dispatch::{Dispatch, FastRules, LocalRules};
use crate::meta::Meta;
use crate::packet::PortId;
use crate::rules::{Chain, ChainId, FilterAction, LocalAddrs, RawAction, RawHook, RawRule};
use crate::tables6::{RaConfig, Spec6, Tables6};

/// One router port.
#[derive(Clone, Debug)]
pub struct Interface {
    /// Name used by rules and routes (`wan`).
    pub name: String,
    /// Kernel netdev taken over (`r0`).
    pub device: String,
    /// MAC address used as source of frames sent on the port. Filled from
    /// the device at start-up; `explain` uses a made-up one.
    pub mac: Mac,
    /// The router's addresses on this port.
    pub addresses: Vec<IfAddr>,
    /// The router's IPv6 addresses on this port (global or unique local;
    /// the link-local one comes from the MAC).
    pub addresses6: Vec<IfAddr6>,
    /// Largest IP packet sent on the port.
    pub mtu: u16,
    /// Router advertisements sent on the port, when configured.
    pub ra: Option<RaConfig>,
}

impl Interface {
    /// Whether `a` is the broadcast address of one of this port's networks
    /// (a directed broadcast; /31 and /32 networks have none).
    #[inline]
    pub fn is_broadcast(&self, a: u32) -> bool {
        self.addresses
            .iter()
            .any(|n| n.net.len() < 31 && n.net.broadcast() == a)
    }
}

/// A route's target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextHop {
    /// One of the router's addresses: deliver to the host.
    Local,
    /// A directly connected network on this port: the destination is the
    /// neighbour.
    Connected(PortId),
    /// Through a gateway on this port.
    Via { port: PortId, gateway: u32 },
    /// Drop silently (a `blackhole` route).
    Blackhole,
    /// Answer with ICMP network unreachable (an `unreachable` route).
    Unreachable,
    /// Several next hops (ECMP): `count` ids in [`Tables::multipath`] from
    /// `first`, one chosen per packet by a hash of its flow, so a flow
    /// keeps its path. Only in [`Tables::next_hops`]; a route lookup for a
    /// packet ([`Tables::route_flow`]) never returns it.
    Multipath { count: u16, first: u32 },
}

/// Where a route comes from. Of the routes for one prefix the dataplane
/// uses the one with the smallest administrative distance
/// ([`RouteSource::distance`], as FRR and Grout: connected 0, static 1,
/// kernel routes after them); the others are kept for display.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum RouteSource {
    /// One of the router's addresses (a /32 to the host).
    Local,
    /// The network of an interface address.
    Connected,
    /// A `routes` entry of the config.
    #[default]
    Static,
    /// Mirrored from the kernel's table (`kernel_routes`), with its
    /// `rtm_protocol` (bird 12, zebra 11, bgp 186, static 4, ...).
    Kernel { protocol: u8 },
}

impl RouteSource {
    /// The administrative distance of kernel routes.
    pub const KERNEL_DISTANCE: u8 = 20;

    /// Administrative distance: lower wins for the same prefix.
    pub fn distance(self) -> u8 {
        match self {
            RouteSource::Local | RouteSource::Connected => 0,
            RouteSource::Static => 1,
            RouteSource::Kernel { .. } => Self::KERNEL_DISTANCE,
        }
    }

    /// Order among equal distances: the router's own addresses first.
    pub(crate) fn rank(self) -> u8 {
        match self {
            RouteSource::Local => 0,
            RouteSource::Connected => 1,
            RouteSource::Static => 2,
            RouteSource::Kernel { .. } => 3,
        }
    }

    /// `local`, `connected`, `static`, `kernel`.
    pub fn name(self) -> &'static str {
        match self {
            RouteSource::Local => "local",
            RouteSource::Connected => "connected",
            RouteSource::Static => "static",
            RouteSource::Kernel { .. } => "kernel",
        }
    }
}

/// The hash of a packet's flow that picks its path of a multipath route:
/// addresses, protocol and ports (0 without), so every packet of a flow
/// takes the same path. A multiply-xor mix: no table, no branch.
#[inline(always)]
pub fn flow_hash(src: u32, dst: u32, proto: u8, sport: u16, dport: u16) -> u32 {
    let a = (u64::from(src) << 32 | u64::from(dst)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let b = (u64::from(sport) << 24 | u64::from(dport) << 8 | u64::from(proto))
        .wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    let h = (a ^ b.rotate_left(31)).wrapping_mul(0x1656_67b1_9e37_79f9);
    (h >> 32) as u32
}

/// Most next hops of one multipath route; more are left out.
pub const MAX_PATHS: usize = 64;

/// A static neighbour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaticNeighbour {
    /// The neighbour's address.
    pub addr: u32,
    /// Its MAC.
    pub mac: Mac,
    /// Port it is on (from the connected network it lies in).
    pub port: PortId,
}

/// What to do with packets carrying IP options.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IpOptionsPolicy {
    /// Forward them with the options untouched (not processed).
    #[default]
    Forward,
    /// Drop them (`ip_options`).
    Drop,
}

/// ICMP error generation settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpErrorConfig {
    /// Token bucket refill, errors per second per source.
    pub rate: u32,
    /// Token bucket depth.
    pub burst: u32,
}

impl Default for IcmpErrorConfig {
    fn default() -> Self {
        IcmpErrorConfig {
            rate: 10,
            burst: 20,
        }
    }
}

/// Route as given to the table builder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    /// Destination prefix.
    pub prefix: Ipv4Prefix,
    /// Where it goes (the first path of a multipath route). Never
    /// [`NextHop::Multipath`].
    pub next_hop: NextHop,
    /// Further equal-cost paths (ECMP; gateways only), usually none.
    pub also: Vec<NextHop>,
    /// Where the route comes from.
    pub source: RouteSource,
}

impl RouteSpec {
    /// A static single-path route.
    pub fn new(prefix: Ipv4Prefix, next_hop: NextHop) -> RouteSpec {
        RouteSpec {
            prefix,
            next_hop,
            also: Vec::new(),
            source: RouteSource::Static,
        }
    }

    /// The route with `source`.
    pub fn with_source(mut self, source: RouteSource) -> RouteSpec {
        self.source = source;
        self
    }

    /// Every path: `next_hop`, then `also`.
    pub fn paths(&self) -> impl Iterator<Item = NextHop> + '_ {
        std::iter::once(self.next_hop).chain(self.also.iter().copied())
    }
}

/// The whole compiled configuration.
#[derive(Debug)]
pub struct Tables {
    /// Ports in config order (`PortId(i)` is `interfaces[i]`).
    pub interfaces: Vec<Interface>,
    /// Distinct next hops; the route table maps to indexes here.
    pub next_hops: Vec<NextHop>,
    /// The members of the [`NextHop::Multipath`] next hops: ids in
    /// `next_hops`.
    pub multipath: Vec<u32>,
    /// Longest-prefix-match table.
    pub routes: crate::route::RouteTable,
    /// The routes in use, one per prefix: configured, kernel, connected
    /// and local ones (for display), sorted by prefix.
    pub route_specs: Vec<RouteSpec>,
    /// Routes that lost to a route of smaller administrative distance for
    /// the same prefix (for display).
    pub shadowed: Vec<RouteSpec>,
    /// Static neighbours.
    pub neighbours: Vec<StaticNeighbour>,
    /// Raw rules for packets arriving on ports.
    pub raw_prerouting: Vec<RawRule>,
    /// Raw rules for packets from the host.
    pub raw_output: Vec<RawRule>,
    /// Filter chains indexed by [`ChainId`].
    pub filter: [Chain; 3],
    /// Dispatch tables of `raw_prerouting` and `raw_output`.
    pub raw_dispatch: [Dispatch; 2],
    /// Dispatch tables of the filter chains, indexed by [`ChainId`].
    pub filter_dispatch: [Dispatch; 3],
    /// Both rule decisions of the transit fast path in one lookup.
    pub fast_rules: FastRules,
    /// `raw_dispatch`, `filter_dispatch` and `fast_rules` for IPv6 packets.
    pub raw_dispatch6: [Dispatch; 2],
    pub filter_dispatch6: [Dispatch; 3],
    pub fast_rules6: FastRules,
    /// The rule decisions for packets to the router, a lookup each.
    pub local_rules: LocalRules,
    /// `local_rules` for IPv6 packets.
    pub local_rules6: LocalRules,
    /// Connection tracking settings.
    pub conntrack: ConntrackConfig,
    /// IP options policy.
    pub ip_options: IpOptionsPolicy,
    /// ICMP error rate limit.
    pub icmp_errors: IcmpErrorConfig,
    /// The IPv6 routes, neighbours and addresses.
    pub v6: Tables6,
}

/// Input to [`Tables::build`].
#[derive(Clone, Debug, Default)]
pub struct TablesSpec {
    pub interfaces: Vec<Interface>,
    /// Configured routes (connected and local routes are added from the
    /// interface addresses).
    pub routes: Vec<RouteSpec>,
    /// Routes mirrored from the kernel (`kernel_routes`), used where no
    /// connected, local or configured route has the prefix.
    pub kernel_routes: Vec<RouteSpec>,
    pub neighbours: Vec<StaticNeighbour>,
    pub raw_prerouting: Vec<RawRule>,
    pub raw_output: Vec<RawRule>,
    pub filter_input: Chain,
    pub filter_forward: Chain,
    pub filter_output: Chain,
    pub conntrack: ConntrackConfig,
    pub ip_options: IpOptionsPolicy,
    pub icmp_errors: IcmpErrorConfig,
    /// IPv6 routes and neighbours.
    pub v6: Spec6,
}

impl Tables {
    /// Build the tables: adds connected and local routes, picks one route
    /// per prefix by administrative distance ([`RouteSource::distance`];
    /// among equals the later one), dedups next hops and multipath groups,
    /// builds the LPM table.
    pub fn build(spec: TablesSpec) -> Tables {
        let mut candidates: Vec<RouteSpec> = Vec::with_capacity(
            spec.routes.len() + spec.kernel_routes.len() + 2 * spec.interfaces.len(),
        );
        for (i, ifc) in spec.interfaces.iter().enumerate() {
            let port = PortId(i as u8);
            for a in &ifc.addresses {
                candidates.push(
                    RouteSpec::new(a.net, NextHop::Connected(port))
                        .with_source(RouteSource::Connected),
                );
            }
        }
        let mut spec = spec;
        candidates.append(&mut spec.routes.clone());
        candidates.append(&mut spec.kernel_routes);
        for ifc in &spec.interfaces {
            for a in &ifc.addresses {
                candidates.push(
                    RouteSpec::new(Ipv4Prefix::host(a.addr), NextHop::Local)
                        .with_source(RouteSource::Local),
                );
            }
        }
        // One route per prefix: sorted by prefix, then by precedence (the
        // later of equals first, as the stable sort keeps input order).
        let mut order: Vec<u32> = (0..candidates.len() as u32).collect();
        order.sort_by_key(|&i| {
            let r = &candidates[i as usize];
            (
                r.prefix.len(),
                r.prefix.addr(),
                r.source.distance(),
                r.source.rank(),
                std::cmp::Reverse(i),
            )
        });
        let mut next_hops: Vec<NextHop> = Vec::new();
        let mut multipath: Vec<u32> = Vec::new();
        let mut index: ahash::AHashMap<NextHopKey, u32> = ahash::AHashMap::new();
        let mut groups: ahash::AHashMap<Vec<u32>, u32> = ahash::AHashMap::new();
        let mut id_of = |nh: NextHop, next_hops: &mut Vec<NextHop>| -> u32 {
            *index.entry(NextHopKey::of(nh)).or_insert_with(|| {
                next_hops.push(nh);
                (next_hops.len() - 1) as u32
            })
        };
        let mut entries = Vec::with_capacity(candidates.len());
        let mut route_specs = Vec::with_capacity(candidates.len());
        let mut shadowed = Vec::new();
        let mut slots: Vec<Option<RouteSpec>> = candidates.into_iter().map(Some).collect();
        let mut last: Option<Ipv4Prefix> = None;
        for i in order {
            let r = slots[i as usize].take().expect("each route once");
            if last == Some(r.prefix) {
                shadowed.push(r);
                continue;
            }
            last = Some(r.prefix);
            let id = if r.also.is_empty() {
                id_of(r.next_hop, &mut next_hops)
            } else {
                let mut members: Vec<u32> = Vec::with_capacity(1 + r.also.len());
                for nh in r.paths().take(MAX_PATHS) {
                    let id = id_of(nh, &mut next_hops);
                    if !members.contains(&id) {
                        members.push(id);
                    }
                }
                if members.len() == 1 {
                    members[0]
                } else {
                    *groups.entry(members).or_insert_with_key(|m| {
                        let nh = NextHop::Multipath {
                            count: m.len() as u16,
                            first: multipath.len() as u32,
                        };
                        multipath.extend_from_slice(m);
                        next_hops.push(nh);
                        (next_hops.len() - 1) as u32
                    })
                }
            };
            entries.push((r.prefix, id));
            route_specs.push(r);
        }
        let routes = crate::route::RouteTable::build(&entries);
        for r in spec
            .raw_prerouting
            .iter_mut()
            .chain(spec.raw_output.iter_mut())
        {
            r.matches.compile();
        }
        for ch in [
            &mut spec.filter_input,
            &mut spec.filter_forward,
            &mut spec.filter_output,
        ] {
            for r in ch.rules.iter_mut() {
                r.matches.compile();
            }
        }
        let raw_for = |v6| {
            [&spec.raw_prerouting, &spec.raw_output].map(|rs| {
                Dispatch::build_for(&rs.iter().map(|r| &r.matches).collect::<Vec<_>>(), v6)
            })
        };
        let filter_for = |v6| {
            [
                &spec.filter_input,
                &spec.filter_forward,
                &spec.filter_output,
            ]
            .map(|ch| {
                Dispatch::build_for(&ch.rules.iter().map(|r| &r.matches).collect::<Vec<_>>(), v6)
            })
        };
        let (raw_dispatch, filter_dispatch) = (raw_for(false), filter_for(false));
        let (raw_dispatch6, filter_dispatch6) = (raw_for(true), filter_for(true));
        let fast_rules6 = FastRules::build(
            spec.interfaces.len(),
            &spec.raw_prerouting,
            &raw_dispatch6[0],
            &spec.filter_forward,
            &filter_dispatch6[ChainId::Forward as usize],
        );
        let fast_rules = FastRules::build(
            spec.interfaces.len(),
            &spec.raw_prerouting,
            &raw_dispatch[0],
            &spec.filter_forward,
            &filter_dispatch[ChainId::Forward as usize],
        );
        let local_rules = LocalRules::build(
            spec.interfaces.len(),
            &spec.raw_prerouting,
            &raw_dispatch[0],
            &spec.filter_input,
            &filter_dispatch[ChainId::Input as usize],
        );
        let local_rules6 = LocalRules::build(
            spec.interfaces.len(),
            &spec.raw_prerouting,
            &raw_dispatch6[0],
            &spec.filter_input,
            &filter_dispatch6[ChainId::Input as usize],
        );
        let v6 = Tables6::build(&spec.interfaces, std::mem::take(&mut spec.v6));
        Tables {
            v6,
            raw_dispatch6,
            filter_dispatch6,
            fast_rules6,
            fast_rules,
            local_rules,
            local_rules6,
            interfaces: spec.interfaces,
            next_hops,
            multipath,
            routes,
            route_specs,
            shadowed,
            neighbours: spec.neighbours,
            raw_prerouting: spec.raw_prerouting,
            raw_output: spec.raw_output,
            filter: [spec.filter_input, spec.filter_forward, spec.filter_output],
            raw_dispatch,
            filter_dispatch,
            conntrack: spec.conntrack,
            ip_options: spec.ip_options,
            icmp_errors: spec.icmp_errors,
        }
    }

    /// Whether `a` is the broadcast address of one of the connected
    /// networks.
    pub fn is_directed_broadcast(&self, a: u32) -> bool {
        self.interfaces.iter().any(|i| i.is_broadcast(a))
    }

    /// Whether `ip` is one of the router's addresses.
    #[inline]
    pub fn is_local(&self, ip: u32) -> bool {
        // A multipath next hop is never the router's: no need to resolve.
        matches!(
            self.routes.lookup(ip).map(|id| self.next_hops[id as usize]),
            Some(NextHop::Local)
        )
    }

    /// The raw rules of `hook` for a packet: the deciding rule (None: no
    /// rule matched) and whether to track (no match: tracked). First match
    /// wins; `notrack` marks the packet UNTRACKED, `accept` stops the stage
    /// and leaves it to conntrack.
    #[inline(always)]
    pub fn raw_verdict(&self, hook: RawHook, meta: &Meta) -> (Option<usize>, RawAction) {
        let rules = match hook {
            RawHook::Prerouting => &self.raw_prerouting,
            RawHook::Output => &self.raw_output,
        };
        let d = if meta.v6 {
            &self.raw_dispatch6[hook as usize]
        } else {
            &self.raw_dispatch[hook as usize]
        };
        match d.first_match(rules, |r| &r.matches, meta, self) {
            Some(i) => (Some(i), rules[i].action),
            None => (None, RawAction::Accept),
        }
    }

    /// Run a filter chain for a packet: the index of the rule that decided
    /// (None: the policy) and the action. First match wins.
    #[inline(always)]
    pub fn filter_verdict(&self, chain: ChainId, meta: &Meta) -> (Option<usize>, FilterAction) {
        let ch: &Chain = &self.filter[chain as usize];
        let d = if meta.v6 {
            &self.filter_dispatch6[chain as usize]
        } else {
            &self.filter_dispatch[chain as usize]
        };
        match d.first_match(&ch.rules, |r| &r.matches, meta, self) {
            Some(i) => (Some(i), ch.rules[i].action),
            None => (None, ch.policy),
        }
    }

    /// Longest-prefix match (the first path of a multipath route).
    #[inline]
    pub fn route(&self, ip: u32) -> Option<NextHop> {
        self.route_flow(ip, 0).map(|(_, nh)| nh)
    }

    /// Longest-prefix match for a packet whose flow hashes to `hash`: the
    /// next hop's id and the next hop, one path of a multipath route.
    #[inline(always)]
    pub fn route_flow(&self, ip: u32, hash: u32) -> Option<(u32, NextHop)> {
        let id = self.routes.lookup(ip)?;
        Some(self.resolve(id, hash))
    }

    /// The next hop `id` for a flow hashing to `hash`: itself, or for a
    /// multipath next hop the member the hash picks.
    #[inline(always)]
    pub fn resolve(&self, id: u32, hash: u32) -> (u32, NextHop) {
        match self.next_hops[id as usize] {
            NextHop::Multipath { count, first } => self.pick(count, first, hash),
            nh => (id, nh),
        }
    }

    #[inline(never)]
    fn pick(&self, count: u16, first: u32, hash: u32) -> (u32, NextHop) {
        // Multiply-shift maps the hash onto 0..count without a division.
        let k = (u64::from(hash) * u64::from(count)) >> 32;
        let id = self.multipath[first as usize + k as usize];
        (id, self.next_hops[id as usize])
    }

    /// The paths of next hop `id`: itself, or a multipath one's members.
    pub fn paths_of(&self, id: u32) -> Vec<NextHop> {
        match self.next_hops[id as usize] {
            NextHop::Multipath { count, first } => self.multipath
                [first as usize..first as usize + count as usize]
                .iter()
                .map(|&m| self.next_hops[m as usize])
                .collect(),
            nh => vec![nh],
        }
    }

    /// The route in use for `prefix`, if any.
    pub fn route_spec(&self, prefix: Ipv4Prefix) -> Option<&RouteSpec> {
        self.route_specs
            .binary_search_by_key(&(prefix.len(), prefix.addr()), |r| {
                (r.prefix.len(), r.prefix.addr())
            })
            .ok()
            .map(|i| &self.route_specs[i])
    }

    /// The port by name.
    pub fn port_by_name(&self, name: &str) -> Option<PortId> {
        self.interfaces
            .iter()
            .position(|i| i.name == name)
            .map(|i| PortId(i as u8))
    }

    /// The name of a port (`host` for the host path).
    pub fn port_name(&self, p: PortId) -> &str {
        if p.is_host() {
            "host"
        } else {
            self.interfaces
                .get(p.0 as usize)
                .map(|i| i.name.as_str())
                .unwrap_or("?")
        }
    }

    /// The router's address on `port` used as source of generated packets
    /// (the first address, or the one on the same network as `towards`).
    pub fn port_address(&self, port: PortId, towards: u32) -> Option<u32> {
        let ifc = self.interfaces.get(port.0 as usize)?;
        ifc.addresses
            .iter()
            .find(|a| a.net.contains(towards))
            .or(ifc.addresses.first())
            .map(|a| a.addr)
    }
}

impl LocalAddrs for Tables {
    #[inline]
    fn is_local(&self, addr: u32) -> bool {
        Tables::is_local(self, addr)
    }
    #[inline]
    fn is_local6(&self, addr: u128) -> bool {
        self.v6.is_local(addr)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum NextHopKey {
    Local,
    Connected(u8),
    Via(u8, u32),
    Blackhole,
    Unreachable,
    /// Never a key: multipath next hops are deduplicated by their members.
    Multipath(u32),
}

impl NextHopKey {
    fn of(n: NextHop) -> Self {
        match n {
            NextHop::Local => NextHopKey::Local,
            NextHop::Connected(p) => NextHopKey::Connected(p.0),
            NextHop::Via { port, gateway } => NextHopKey::Via(port.0, gateway),
            NextHop::Blackhole => NextHopKey::Blackhole,
            NextHop::Unreachable => NextHopKey::Unreachable,
            NextHop::Multipath { first, .. } => NextHopKey::Multipath(first),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::IfAddr;
    use proptest::prelude::*;

    fn ifc(name: &str, a: &str) -> Interface {
        Interface {
            name: name.into(),
            device: name.into(),
            mac: Mac::ZERO,
            addresses: vec![a.parse::<IfAddr>().unwrap()],
            addresses6: Vec::new(),
            mtu: 1500,
            ra: None,
        }
    }

    fn p(s: &str) -> Ipv4Prefix {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> u32 {
        u32::from(s.parse::<std::net::Ipv4Addr>().unwrap())
    }

    fn via(port: u8, g: &str) -> NextHop {
        NextHop::Via {
            port: PortId(port),
            gateway: ip(g),
        }
    }

    fn spec() -> TablesSpec {
        TablesSpec {
            interfaces: vec![ifc("wan", "198.18.0.1/24"), ifc("lan", "198.19.0.1/24")],
            ..TablesSpec::default()
        }
    }

    #[test]
    fn connected_beats_static_beats_kernel_for_the_same_prefix() {
        let mut s = spec();
        let kernel = RouteSource::Kernel { protocol: 12 };
        s.routes = vec![RouteSpec::new(p("203.0.113.0/24"), via(1, "198.19.0.2"))];
        s.kernel_routes = vec![
            RouteSpec::new(p("203.0.113.0/24"), via(0, "198.18.0.2")).with_source(kernel),
            RouteSpec::new(p("198.19.0.0/24"), via(0, "198.18.0.2")).with_source(kernel),
            RouteSpec::new(p("198.51.100.0/24"), via(0, "198.18.0.2")).with_source(kernel),
        ];
        let t = Tables::build(s);
        assert_eq!(t.route(ip("203.0.113.9")), Some(via(1, "198.19.0.2")));
        assert_eq!(
            t.route(ip("198.19.0.7")),
            Some(NextHop::Connected(PortId(1)))
        );
        assert_eq!(t.route(ip("198.51.100.1")), Some(via(0, "198.18.0.2")));
        assert_eq!(t.route(ip("198.19.0.1")), Some(NextHop::Local));
        let shadowed: Vec<(Ipv4Prefix, RouteSource)> =
            t.shadowed.iter().map(|r| (r.prefix, r.source)).collect();
        assert_eq!(
            shadowed,
            [(p("198.19.0.0/24"), kernel), (p("203.0.113.0/24"), kernel)]
        );
        assert_eq!(
            t.route_spec(p("203.0.113.0/24")).unwrap().source,
            RouteSource::Static
        );
        assert_eq!(RouteSource::Connected.distance(), 0);
        assert_eq!(RouteSource::Static.distance(), 1);
        assert_eq!(kernel.distance(), RouteSource::KERNEL_DISTANCE);
    }

    #[test]
    fn a_multipath_route_picks_one_member_per_hash_and_uses_them_all() {
        let mut s = spec();
        let mut r = RouteSpec::new(p("203.0.113.0/24"), via(1, "198.19.0.2"));
        r.also = vec![
            via(1, "198.19.0.3"),
            via(0, "198.18.0.2"),
            via(1, "198.19.0.2"),
        ];
        s.routes = vec![r];
        let t = Tables::build(s);
        let (id, _) = t.route_flow(ip("203.0.113.1"), 0).unwrap();
        let mp = t.routes.lookup(ip("203.0.113.1")).unwrap();
        assert!(matches!(
            t.next_hops[mp as usize],
            NextHop::Multipath { count: 3, .. }
        ));
        assert_eq!(t.paths_of(mp).len(), 3, "the duplicate path is left out");
        let mut used = std::collections::HashSet::new();
        for h in 0..1000u32 {
            let hash = flow_hash(ip("198.18.0.2"), ip("203.0.113.1"), 17, 1000 + h as u16, 53);
            let (a, nh) = t.route_flow(ip("203.0.113.1"), hash).unwrap();
            assert_eq!(t.route_flow(ip("203.0.113.1"), hash).unwrap(), (a, nh));
            assert_eq!(t.next_hops[a as usize], nh, "the member's own id");
            used.insert(a);
        }
        assert_eq!(used.len(), 3, "{used:?}");
        let _ = id;
    }

    /// A naive reference: for every candidate route, the longest prefix
    /// holding `a`, of those the smallest (distance, rank), of those the
    /// last; its distinct paths.
    fn reference(cands: &[RouteSpec], a: u32) -> Option<Vec<NextHop>> {
        let best = cands
            .iter()
            .enumerate()
            .filter(|(_, r)| r.prefix.contains(a))
            .min_by_key(|(i, r)| {
                (
                    std::cmp::Reverse(r.prefix.len()),
                    r.source.distance(),
                    r.source.rank(),
                    std::cmp::Reverse(*i),
                )
            })?
            .1;
        let mut paths: Vec<NextHop> = Vec::new();
        for nh in best.paths() {
            if !paths.contains(&nh) {
                paths.push(nh);
            }
        }
        Some(paths)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn lookups_match_a_naive_reference_with_sources_and_ecmp(
            routes in proptest::collection::vec(
                (any::<u32>(), 8u8..=32, 0u8..3, proptest::collection::vec(0u8..6, 1..4)),
                1..60,
            ),
            probes in proptest::collection::vec((any::<u32>(), any::<u32>()), 50),
        ) {
            let gws = ["198.18.0.2", "198.18.0.3", "198.19.0.2", "198.19.0.3", "198.19.0.4", "198.18.0.9"];
            let mut s = spec();
            let mut cands: Vec<RouteSpec> = Vec::new();
            for (a, len, src, paths) in &routes {
                // Keep prefixes near each other so that they nest and collide.
                let addr = 0xcb00_7100 ^ (a & 0x0000_ffff);
                let hops: Vec<NextHop> = paths
                    .iter()
                    .map(|&g| via(u8::from(g >= 2 && g != 5), gws[g as usize]))
                    .collect();
                let mut r = RouteSpec::new(Ipv4Prefix::new(addr, *len).unwrap(), hops[0]);
                r.also = hops[1..].to_vec();
                r.source = match src {
                    0 => RouteSource::Static,
                    _ => RouteSource::Kernel { protocol: *src },
                };
                cands.push(r);
            }
            s.routes = cands.iter().filter(|r| r.source == RouteSource::Static).cloned().collect();
            s.kernel_routes = cands.iter().filter(|r| r.source != RouteSource::Static).cloned().collect();
            // The reference sees them in the order the builder does.
            let mut ordered = s.routes.clone();
            ordered.extend(s.kernel_routes.iter().cloned());
            let t = Tables::build(s);
            for (x, hash) in probes {
                let a = 0xcb00_7100 ^ (x & 0x0000_ffff);
                let want = reference(&ordered, a);
                match (want, t.route_flow(a, hash)) {
                    (None, got) => prop_assert_eq!(got, None),
                    (Some(paths), Some((id, nh))) => {
                        prop_assert!(paths.contains(&nh), "{:?} not in {:?}", nh, paths);
                        prop_assert_eq!(t.next_hops[id as usize], nh);
                        let mp = t.routes.lookup(a).unwrap();
                        let mut all = t.paths_of(mp);
                        let mut p2 = paths.clone();
                        all.sort_by_key(|n| format!("{n:?}"));
                        p2.sort_by_key(|n| format!("{n:?}"));
                        prop_assert_eq!(all, p2);
                    }
                    (Some(paths), None) => prop_assert!(false, "no route, want {:?}", paths),
                }
            }
        }
    }
}
