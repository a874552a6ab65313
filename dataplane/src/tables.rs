//! The compiled configuration: everything a worker reads on the packet path,
//! built by the control plane off the packet path and swapped in whole
//! (read-copy-update through an `Arc`). Nothing here is written by workers.

use crate::addr::{IfAddr, Ipv4Prefix, Mac};
use crate::conntrack::ConntrackConfig;
use crate::dispatch::{Dispatch, FastRules, LocalRules};
use crate::meta::Meta;
use crate::packet::PortId;
use crate::rules::{Chain, ChainId, FilterAction, LocalAddrs, RawAction, RawHook, RawRule};

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
    /// Largest IP packet sent on the port.
    pub mtu: u16,
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
}

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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    /// Destination prefix.
    pub prefix: Ipv4Prefix,
    /// Where it goes.
    pub next_hop: NextHop,
}

/// The whole compiled configuration.
#[derive(Debug)]
pub struct Tables {
    /// Ports in config order (`PortId(i)` is `interfaces[i]`).
    pub interfaces: Vec<Interface>,
    /// Distinct next hops; the route table maps to indexes here.
    pub next_hops: Vec<NextHop>,
    /// Longest-prefix-match table.
    pub routes: crate::route::RouteTable,
    /// The routes as configured plus connected and local ones (for display).
    pub route_specs: Vec<RouteSpec>,
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
    /// The rule decisions for packets to the router, a lookup each.
    pub local_rules: LocalRules,
    /// Connection tracking settings.
    pub conntrack: ConntrackConfig,
    /// IP options policy.
    pub ip_options: IpOptionsPolicy,
    /// ICMP error rate limit.
    pub icmp_errors: IcmpErrorConfig,
}

/// Input to [`Tables::build`].
#[derive(Clone, Debug, Default)]
pub struct TablesSpec {
    pub interfaces: Vec<Interface>,
    /// Configured routes (connected and local routes are added from the
    /// interface addresses).
    pub routes: Vec<RouteSpec>,
    pub neighbours: Vec<StaticNeighbour>,
    pub raw_prerouting: Vec<RawRule>,
    pub raw_output: Vec<RawRule>,
    pub filter_input: Chain,
    pub filter_forward: Chain,
    pub filter_output: Chain,
    pub conntrack: ConntrackConfig,
    pub ip_options: IpOptionsPolicy,
    pub icmp_errors: IcmpErrorConfig,
}

impl Tables {
    /// Build the tables: adds connected and local routes, dedups next hops,
    /// builds the LPM table. Later routes for the same prefix replace
    /// earlier ones (the control plane rejects duplicates before this).
    pub fn build(spec: TablesSpec) -> Tables {
        let mut route_specs = Vec::with_capacity(spec.routes.len() + 2 * spec.interfaces.len());
        for (i, ifc) in spec.interfaces.iter().enumerate() {
            let port = PortId(i as u8);
            for a in &ifc.addresses {
                route_specs.push(RouteSpec {
                    prefix: a.net,
                    next_hop: NextHop::Connected(port),
                });
            }
        }
        route_specs.extend(spec.routes.iter().copied());
        for ifc in &spec.interfaces {
            for a in &ifc.addresses {
                route_specs.push(RouteSpec {
                    prefix: Ipv4Prefix::host(a.addr),
                    next_hop: NextHop::Local,
                });
            }
        }
        let mut next_hops: Vec<NextHop> = Vec::new();
        let mut index: ahash::AHashMap<NextHopKey, u32> = ahash::AHashMap::new();
        let mut entries = Vec::with_capacity(route_specs.len());
        for r in &route_specs {
            let id = *index.entry(NextHopKey::of(r.next_hop)).or_insert_with(|| {
                next_hops.push(r.next_hop);
                (next_hops.len() - 1) as u32
            });
            entries.push((r.prefix, id));
        }
        let routes = crate::route::RouteTable::build(&entries);
        let mut spec = spec;
        for r in spec
            .raw_prerouting
            .iter_mut()
            .chain(spec.raw_output.iter_mut())
        {
            r.matches.need = r.matches.compute_need();
        }
        for ch in [
            &mut spec.filter_input,
            &mut spec.filter_forward,
            &mut spec.filter_output,
        ] {
            for r in ch.rules.iter_mut() {
                r.matches.need = r.matches.compute_need();
            }
        }
        let raw_dispatch = [&spec.raw_prerouting, &spec.raw_output]
            .map(|rs| Dispatch::build(&rs.iter().map(|r| &r.matches).collect::<Vec<_>>()));
        let filter_dispatch = [
            &spec.filter_input,
            &spec.filter_forward,
            &spec.filter_output,
        ]
        .map(|ch| Dispatch::build(&ch.rules.iter().map(|r| &r.matches).collect::<Vec<_>>()));
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
        Tables {
            fast_rules,
            local_rules,
            interfaces: spec.interfaces,
            next_hops,
            routes,
            route_specs,
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
        matches!(self.route(ip), Some(NextHop::Local))
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
        let d = &self.raw_dispatch[hook as usize];
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
        let d = &self.filter_dispatch[chain as usize];
        match d.first_match(&ch.rules, |r| &r.matches, meta, self) {
            Some(i) => (Some(i), ch.rules[i].action),
            None => (None, ch.policy),
        }
    }

    /// Longest-prefix match.
    #[inline]
    pub fn route(&self, ip: u32) -> Option<NextHop> {
        self.routes.lookup(ip).map(|id| self.next_hops[id as usize])
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
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum NextHopKey {
    Local,
    Connected(u8),
    Via(u8, u32),
    Blackhole,
    Unreachable,
}

impl NextHopKey {
    fn of(n: NextHop) -> Self {
        match n {
            NextHop::Local => NextHopKey::Local,
            NextHop::Connected(p) => NextHopKey::Connected(p.0),
            NextHop::Via { port, gateway } => NextHopKey::Via(port.0, gateway),
            NextHop::Blackhole => NextHopKey::Blackhole,
            NextHop::Unreachable => NextHopKey::Unreachable,
        }
    }
}
