//! The compiled configuration: everything a worker reads on the packet path,
//! built by the control plane off the packet path and swapped in whole
//! (read-copy-update through an `Arc`). Nothing here is written by workers.

use crate::addr::{IfAddr, Ipv4Prefix, Mac};
use crate::dispatch::{Dispatch, FastRules, LocalRules};
use crate::packet::PortId;
use smallvec::SmallVec;

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

/// Connection tracking states, as in netfilter's `ct state`.
#[repr(u8)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CtState {
    /// First packet of a flow not yet in the table.
    New = 0,
    /// Packet of a flow that has seen traffic (or is continuing its handshake).
    Established = 1,
    /// ICMP error about a tracked flow.
    Related = 2,
    /// Tracked, but fits no flow and starts none.
    Invalid = 3,
    /// Marked `notrack` in the raw stage: conntrack never saw it.
    #[default]
    Untracked = 4,
}

impl CtState {
    /// Bit of this state in a [`Match::state`] mask.
    pub const fn bit(self) -> u8 {
        1 << self as u8
    }

    /// Lower-case name as in config and output.
    pub const fn name(self) -> &'static str {
        match self {
            CtState::New => "new",
            CtState::Established => "established",
            CtState::Related => "related",
            CtState::Invalid => "invalid",
            CtState::Untracked => "untracked",
        }
    }
}

/// Where an address match looks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddrMatch {
    /// One of the router's own addresses (iptables `addrtype LOCAL`).
    Local,
    /// Any of these prefixes.
    Prefixes(SmallVec<[Ipv4Prefix; 2]>),
}

/// A port match: any of these inclusive ranges.
pub type PortRanges = SmallVec<[(u16, u16); 4]>;

/// Conditions of a rule; all present ones must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Match {
    /// Input port mask (bits of [`PortId::bit`]).
    pub in_ports: Option<u64>,
    /// Output port mask; `host` means delivered to the router.
    pub out_ports: Option<u64>,
    /// Source address.
    pub source: Option<AddrMatch>,
    /// Destination address.
    pub destination: Option<AddrMatch>,
    /// IP protocol number.
    pub protocol: Option<u8>,
    /// TCP/UDP source port. Never matches a non-first fragment.
    pub source_port: Option<PortRanges>,
    /// TCP/UDP destination port. Never matches a non-first fragment.
    pub destination_port: Option<PortRanges>,
    /// Mask of [`CtState::bit`]; not allowed in raw rules.
    pub state: Option<u8>,
    /// ICMP type.
    pub icmp_type: Option<u8>,
    /// ICMP code.
    pub icmp_code: Option<u8>,
    /// Which conditions are present ([`Match::NEED_IN`], ...): computed by
    /// [`Tables::build`] so the matcher skips absent ones with one test.
    pub need: u16,
}

impl Match {
    pub const NEED_IN: u16 = 1 << 0;
    pub const NEED_OUT: u16 = 1 << 1;
    pub const NEED_SRC: u16 = 1 << 2;
    pub const NEED_DST: u16 = 1 << 3;
    pub const NEED_PROTO: u16 = 1 << 4;
    pub const NEED_SPORT: u16 = 1 << 5;
    pub const NEED_DPORT: u16 = 1 << 6;
    pub const NEED_STATE: u16 = 1 << 7;
    pub const NEED_ICMP_TYPE: u16 = 1 << 8;
    pub const NEED_ICMP_CODE: u16 = 1 << 9;

    /// The `need` mask of the conditions present.
    pub fn compute_need(&self) -> u16 {
        let mut n = 0;
        let mut set = |present: bool, bit: u16| {
            if present {
                n |= bit;
            }
        };
        set(self.in_ports.is_some(), Self::NEED_IN);
        set(self.out_ports.is_some(), Self::NEED_OUT);
        set(self.source.is_some(), Self::NEED_SRC);
        set(self.destination.is_some(), Self::NEED_DST);
        set(self.protocol.is_some(), Self::NEED_PROTO);
        set(self.source_port.is_some(), Self::NEED_SPORT);
        set(self.destination_port.is_some(), Self::NEED_DPORT);
        set(self.state.is_some(), Self::NEED_STATE);
        set(self.icmp_type.is_some(), Self::NEED_ICMP_TYPE);
        set(self.icmp_code.is_some(), Self::NEED_ICMP_CODE);
        n
    }
}

/// Raw stage actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawAction {
    /// Skip connection tracking: the packet is UNTRACKED.
    NoTrack,
    /// Stop the raw stage; the packet is tracked.
    Accept,
}

/// A raw rule.
#[derive(Clone, Debug)]
pub struct RawRule {
    /// Conditions.
    pub matches: Match,
    /// Action when all conditions hold.
    pub action: RawAction,
    /// Operator's comment, shown in stats and traces.
    pub comment: Option<String>,
}

/// Filter actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterAction {
    /// Let the packet through.
    Accept,
    /// Drop silently.
    Drop,
    /// Drop and answer: TCP RST for TCP, ICMP port unreachable otherwise.
    Reject,
}

impl FilterAction {
    /// Lower-case name as in config and output.
    pub const fn name(self) -> &'static str {
        match self {
            FilterAction::Accept => "accept",
            FilterAction::Drop => "drop",
            FilterAction::Reject => "reject",
        }
    }
}

/// A filter rule.
#[derive(Clone, Debug)]
pub struct FilterRule {
    /// Conditions.
    pub matches: Match,
    /// Action when all conditions hold.
    pub action: FilterAction,
    /// Operator's comment.
    pub comment: Option<String>,
}

/// Filter chains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChainId {
    /// Packets to the router.
    Input = 0,
    /// Packets through the router.
    Forward = 1,
    /// Packets from the router.
    Output = 2,
}

impl ChainId {
    /// Lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            ChainId::Input => "input",
            ChainId::Forward => "forward",
            ChainId::Output => "output",
        }
    }
}

/// A filter chain: rules in order, then the policy.
#[derive(Clone, Debug)]
pub struct Chain {
    /// Verdict when no rule matches (`Accept` or `Drop`).
    pub policy: FilterAction,
    /// Rules, first match wins.
    pub rules: Vec<FilterRule>,
}

impl Default for Chain {
    fn default() -> Self {
        Chain {
            policy: FilterAction::Accept,
            rules: Vec::new(),
        }
    }
}

/// Connection tracking timeouts, in seconds (netfilter's defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp_syn_sent: u32,
    pub tcp_syn_recv: u32,
    pub tcp_established: u32,
    pub tcp_fin_wait: u32,
    pub tcp_close_wait: u32,
    pub tcp_last_ack: u32,
    pub tcp_time_wait: u32,
    pub tcp_close: u32,
    pub udp: u32,
    pub udp_stream: u32,
    pub icmp: u32,
    pub generic: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_syn_sent: 120,
            tcp_syn_recv: 60,
            tcp_established: 5 * 24 * 3600,
            tcp_fin_wait: 120,
            tcp_close_wait: 60,
            tcp_last_ack: 30,
            tcp_time_wait: 120,
            tcp_close: 10,
            udp: 30,
            udp_stream: 120,
            icmp: 30,
            generic: 600,
        }
    }
}

/// Connection tracking settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConntrackConfig {
    /// Hard limit of entries per worker table.
    pub max_entries: u32,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Pick up TCP flows mid-stream (netfilter `nf_conntrack_tcp_loose`, on
    /// by default there): a non-SYN packet with no entry is NEW instead of
    /// INVALID.
    pub tcp_loose: bool,
}

impl Default for ConntrackConfig {
    fn default() -> Self {
        ConntrackConfig {
            max_entries: 262_144,
            timeouts: Timeouts::default(),
            tcp_loose: true,
        }
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

    /// Whether `ip` is one of the router's addresses.
    #[inline]
    pub fn is_local(&self, ip: u32) -> bool {
        matches!(self.route(ip), Some(NextHop::Local))
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
