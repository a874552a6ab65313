//! Routes from routing daemons: routerd follows one kernel routing table
//! over rtnetlink (`kernel_routes` in the config), so that BIRD, FRR or
//! `ip route` on the router's host side steer the dataplane (the linux-cp
//! model of VPP and Grout).
//!
//! - The receiver thread subscribes first (RTNLGRP_IPV4_ROUTE and
//!   RTNLGRP_NEXTHOP), then dumps the routes and the nexthop objects on a
//!   second socket, then follows RTM_NEWROUTE / RTM_DELROUTE and
//!   RTM_NEWNEXTHOP / RTM_DELNEXTHOP. Events queued during the dump are
//!   applied after it, in order, which ends in the kernel's state. A lost
//!   message (ENOBUFS on the subscribed socket) starts a full resync from
//!   a fresh dump; resyncs are counted.
//! - Routes of routerd's own protocol ([`RTPROT_ROUTERD`], the host
//!   path's) are never mirrored; only the configured table and protocols
//!   are.
//! - The publisher thread coalesces changes (those within [`COALESCE`] of
//!   a batch's first change, and never a build sooner after the last one
//!   than the last one took) and publishes new tables through the
//!   same read-copy-update slot as a reload ([`TablesSlot::replace`]): the
//!   workers pick them up at housekeeping and never wait.
//! - A gateway is mapped to the port whose connected network holds it,
//!   whatever device the kernel route names; a route that cannot be
//!   mapped is skipped and counted with its reason ([`SkipReason`]).
//!
//! Runs in control threads only, never on a worker.

use std::collections::HashMap;
use std::io;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dataplane::addr::Ipv4Prefix;
use dataplane::packet::PortId;
use dataplane::tables::{Interface, NextHop, RouteSource, RouteSpec, Tables, TablesSpec};
use dataplane::worker::TablesSlot;
use netlink_packet_core::{NetlinkMessage, NlasIterator, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use serde::Serialize;
use tracing::{info, warn};

use super::netlink::{route_table, Rtnl, RTPROT_ROUTERD};
use crate::config::KernelRoutesConfig;

/// How long a batch collects changes after its first one.
pub const COALESCE: Duration = Duration::from_millis(10);

const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_NEWNEXTHOP: u16 = 104;
const RTM_DELNEXTHOP: u16 = 105;
const RTM_GETNEXTHOP: u16 = 106;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// `RTMGRP_IPV4_ROUTE`: the bind mask of RTNLGRP_IPV4_ROUTE (7).
const RTMGRP_IPV4_ROUTE: u32 = 1 << 6;
/// `RTNLGRP_NEXTHOP`: above 31, joined with NETLINK_ADD_MEMBERSHIP.
const RTNLGRP_NEXTHOP: u32 = 32;
/// Linux's ENOBUFS: the socket's receive buffer overflowed.
const ENOBUFS: i32 = 105;
/// `RTM_F_CLONED`: a route cache entry, not a table route.
const RTM_F_CLONED: u32 = 0x200;
/// Receive buffer asked for the subscribed socket (the kernel caps it at
/// `net.core.rmem_max`). `ROUTERD_KERNEL_ROUTES_RCVBUF` overrides it (the
/// tests force overruns with a small one).
const RCVBUF: usize = 4 << 20;

/// What a kernel route says, before its gateways are mapped to ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelRoute {
    /// Destination.
    pub prefix: Ipv4Prefix,
    /// `rtm_protocol`.
    pub protocol: u8,
    /// Metric (`RTA_PRIORITY`): of several routes for a prefix the kernel
    /// and routerd use the lowest.
    pub priority: u32,
    /// Where it goes.
    pub target: KernelTarget,
}

/// The target of a kernel route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelTarget {
    /// Gateways (several: a multipath route); empty for a route through
    /// a device without a gateway.
    Gateways(Vec<u32>),
    /// A nexthop object (`RTA_NH_ID`).
    NexthopId(u32),
    /// `blackhole`.
    Blackhole,
    /// `unreachable` or `prohibit`.
    Unreachable,
    /// Another type (local, broadcast, throw, ...), by `rtm_type`.
    Other(u8),
}

/// A kernel nexthop object (`ip nexthop`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Nexthop {
    /// Its gateway, for a single nexthop.
    pub gateway: Option<u32>,
    /// Its members, for a group.
    pub group: Vec<u32>,
    /// A blackhole nexthop.
    pub blackhole: bool,
}

/// Why a kernel route is not in the dataplane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Its gateway is on none of routerd's connected networks.
    GatewayNotConnected,
    /// It names a device but no gateway.
    NoGateway,
    /// Its nexthop object is unknown (or an empty group).
    UnknownNexthop,
    /// A route type the dataplane does not forward (local, broadcast,
    /// multicast, throw, nat).
    UnsupportedType,
}

impl SkipReason {
    /// Every reason, for counters.
    pub const ALL: [SkipReason; 4] = [
        SkipReason::GatewayNotConnected,
        SkipReason::NoGateway,
        SkipReason::UnknownNexthop,
        SkipReason::UnsupportedType,
    ];

    /// `gateway_not_connected`, ...
    pub fn name(self) -> &'static str {
        match self {
            SkipReason::GatewayNotConnected => "gateway_not_connected",
            SkipReason::NoGateway => "no_gateway",
            SkipReason::UnknownNexthop => "unknown_nexthop",
            SkipReason::UnsupportedType => "unsupported_type",
        }
    }
}

/// A kernel route routerd skipped, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// Destination.
    pub prefix: String,
    /// Its protocol's name.
    pub protocol: String,
    /// Why.
    pub reason: SkipReason,
    /// In words (`gateway 192.0.2.1 is on no connected network`).
    pub detail: String,
}

/// The kernel's table as routerd has seen it.
#[derive(Clone, Debug, Default)]
pub struct KernelState {
    /// Routes by (prefix, priority).
    pub routes: HashMap<(Ipv4Prefix, u32), KernelRoute>,
    /// Nexthop objects by id.
    pub nexthops: HashMap<u32, Nexthop>,
}

/// One change read from the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A route of the followed table and protocols appeared or changed.
    NewRoute(KernelRoute),
    /// One went away.
    DelRoute(Ipv4Prefix, u32),
    /// A nexthop object appeared or changed.
    NewNexthop(u32, Nexthop),
    /// One went away.
    DelNexthop(u32),
}

impl KernelState {
    /// Applies a change; whether it changed anything.
    pub fn apply(&mut self, c: Change) -> bool {
        match c {
            Change::NewRoute(r) => {
                let key = (r.prefix, r.priority);
                self.routes.get(&key) != Some(&r) && {
                    self.routes.insert(key, r);
                    true
                }
            }
            Change::DelRoute(p, prio) => self.routes.remove(&(p, prio)).is_some(),
            Change::NewNexthop(id, nh) => self.nexthops.insert(id, nh.clone()) != Some(nh),
            Change::DelNexthop(id) => {
                let known = self.nexthops.remove(&id).is_some();
                // As the kernel does: the nexthop leaves every group, and a
                // group left empty goes too (its notifications follow, but
                // a batch may end before them: FRR's groups lose members
                // this way when a peer or a device goes).
                let mut gone = vec![id];
                for (g, nh) in self.nexthops.iter_mut() {
                    if nh.group.contains(&id) {
                        nh.group.retain(|m| *m != id);
                        if nh.group.is_empty() {
                            gone.push(*g);
                        }
                    }
                }
                for g in &gone[1..] {
                    self.nexthops.remove(g);
                }
                // The kernel removes the routes using them without telling.
                self.routes.retain(|_, r| match r.target {
                    KernelTarget::NexthopId(n) => !gone.contains(&n),
                    _ => true,
                });
                known
            }
        }
    }

    /// The routes for the dataplane (one per prefix, lowest metric) with
    /// gateways mapped to ports of `interfaces`, and the skipped ones.
    pub fn map(&self, interfaces: &[Interface]) -> (Vec<RouteSpec>, Vec<Skipped>) {
        let mut best: HashMap<Ipv4Prefix, &KernelRoute> = HashMap::with_capacity(self.routes.len());
        for r in self.routes.values() {
            best.entry(r.prefix)
                .and_modify(|b| {
                    if r.priority < b.priority {
                        *b = r;
                    }
                })
                .or_insert(r);
        }
        let mut out = Vec::with_capacity(best.len());
        let mut skipped = Vec::new();
        for r in best.into_values() {
            match self.map_route(r, interfaces) {
                Ok(spec) => out.push(spec),
                Err((reason, detail)) => skipped.push(Skipped {
                    prefix: r.prefix.to_string(),
                    protocol: KernelRoutesConfig::protocol_name(r.protocol),
                    reason,
                    detail,
                }),
            }
        }
        out.sort_by_key(|r| (r.prefix.addr(), r.prefix.len()));
        skipped.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        (out, skipped)
    }

    fn map_route(
        &self,
        r: &KernelRoute,
        ifs: &[Interface],
    ) -> Result<RouteSpec, (SkipReason, String)> {
        let gateways: Vec<u32> = match &r.target {
            KernelTarget::Gateways(g) => g.clone(),
            KernelTarget::NexthopId(id) => match self.nexthops.get(id) {
                Some(nh) if nh.blackhole => return Ok(spec(r, NextHop::Blackhole, vec![])),
                Some(nh) if !nh.group.is_empty() => {
                    let mut g = Vec::new();
                    for m in &nh.group {
                        match self.nexthops.get(m).and_then(|x| x.gateway) {
                            Some(gw) => g.push(gw),
                            None => {
                                return Err((
                                    SkipReason::UnknownNexthop,
                                    format!("member {m} of nexthop group {id} has no gateway"),
                                ))
                            }
                        }
                    }
                    g
                }
                Some(Nexthop {
                    gateway: Some(gw), ..
                }) => vec![*gw],
                Some(_) => {
                    return Err((
                        SkipReason::NoGateway,
                        format!("nexthop {id} names a device but no gateway"),
                    ))
                }
                None => {
                    return Err((
                        SkipReason::UnknownNexthop,
                        format!("nexthop {id} is unknown"),
                    ))
                }
            },
            KernelTarget::Blackhole => return Ok(spec(r, NextHop::Blackhole, vec![])),
            KernelTarget::Unreachable => return Ok(spec(r, NextHop::Unreachable, vec![])),
            KernelTarget::Other(t) => {
                return Err((
                    SkipReason::UnsupportedType,
                    format!("route type {t} is not forwarded"),
                ))
            }
        };
        if gateways.is_empty() {
            return Err((
                SkipReason::NoGateway,
                "the route names a device but no gateway".into(),
            ));
        }
        let mut paths = Vec::with_capacity(gateways.len());
        for gw in gateways {
            let Some(port) = connected_port(ifs, gw) else {
                return Err((
                    SkipReason::GatewayNotConnected,
                    format!("gateway {} is on no connected network", Ipv4Addr::from(gw)),
                ));
            };
            let nh = NextHop::Via { port, gateway: gw };
            if !paths.contains(&nh) {
                paths.push(nh);
            }
        }
        let first = paths.remove(0);
        Ok(spec(r, first, paths))
    }
}

fn spec(r: &KernelRoute, next_hop: NextHop, also: Vec<NextHop>) -> RouteSpec {
    RouteSpec {
        prefix: r.prefix,
        next_hop,
        also,
        source: RouteSource::Kernel {
            protocol: r.protocol,
        },
    }
}

/// The port whose connected network holds `gw` (the first such).
pub fn connected_port(ifs: &[Interface], gw: u32) -> Option<PortId> {
    ifs.iter()
        .position(|i| i.addresses.iter().any(|a| a.net.contains(gw)))
        .map(|i| PortId(i as u8))
}

/// A route message as a change for `cfg`'s table and protocols; `None`
/// for one routerd does not follow (another table or protocol, IPv6, a
/// cache entry, routerd's own).
pub fn route_change(m: &RouteMessage, del: bool, cfg: &KernelRoutesConfig) -> Option<Change> {
    if m.header.address_family != AddressFamily::Inet || route_table(m) != cfg.table {
        return None;
    }
    let protocol: u8 = m.header.protocol.into();
    if protocol == RTPROT_ROUTERD || !cfg.takes(protocol) {
        return None;
    }
    if m.header.flags.bits() & RTM_F_CLONED != 0 {
        return None;
    }
    let dst = m
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Destination(RouteAddress::Inet(d)) => Some(u32::from(*d)),
            _ => None,
        })
        .unwrap_or(0);
    let len = m.header.destination_prefix_length;
    let prefix = Ipv4Prefix::new(dst, len)?;
    let priority = m
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Priority(p) => Some(*p),
            _ => None,
        })
        .unwrap_or(0);
    if del {
        return Some(Change::DelRoute(prefix, priority));
    }
    let target = match m.header.kind {
        RouteType::Unicast => {
            let nh_id = m.attributes.iter().find_map(|a| match a {
                RouteAttribute::NhId(id) => Some(*id),
                _ => None,
            });
            match nh_id {
                Some(id) => KernelTarget::NexthopId(id),
                None => {
                    let mut gws: Vec<u32> = m
                        .attributes
                        .iter()
                        .filter_map(|a| match a {
                            RouteAttribute::Gateway(RouteAddress::Inet(g)) => Some(u32::from(*g)),
                            _ => None,
                        })
                        .collect();
                    for a in &m.attributes {
                        if let RouteAttribute::MultiPath(hops) = a {
                            for h in hops {
                                gws.extend(h.attributes.iter().filter_map(|x| match x {
                                    RouteAttribute::Gateway(RouteAddress::Inet(g)) => {
                                        Some(u32::from(*g))
                                    }
                                    _ => None,
                                }));
                            }
                        }
                    }
                    KernelTarget::Gateways(gws)
                }
            }
        }
        RouteType::BlackHole => KernelTarget::Blackhole,
        RouteType::Unreachable | RouteType::Prohibit => KernelTarget::Unreachable,
        other => KernelTarget::Other(u8::from(other)),
    };
    Some(Change::NewRoute(KernelRoute {
        prefix,
        protocol,
        priority,
        target,
    }))
}

/// Parses an RTM_NEWNEXTHOP / RTM_DELNEXTHOP payload (`struct nhmsg` and
/// its attributes). Written here because `netlink-packet-route` has no
/// nexthop messages.
pub fn nexthop_change(payload: &[u8], del: bool) -> Option<Change> {
    const NHMSG_LEN: usize = 8;
    const NHA_ID: u16 = 1;
    const NHA_GROUP: u16 = 2;
    const NHA_BLACKHOLE: u16 = 4;
    const NHA_GATEWAY: u16 = 6;
    let family = *payload.first()?;
    let attrs = payload.get(NHMSG_LEN..)?;
    let mut id = None;
    let mut nh = Nexthop::default();
    let mut v6 = false;
    for a in NlasIterator::new(attrs) {
        let a = a.ok()?;
        let v = a.value();
        match a.kind() {
            NHA_ID => id = Some(u32::from_ne_bytes(v.get(..4)?.try_into().ok()?)),
            NHA_GROUP => {
                // struct nexthop_grp { u32 id; u8 weight; u8 weight_high; u16 resvd2; }
                nh.group = v
                    .chunks_exact(8)
                    .map(|c| u32::from_ne_bytes(c[..4].try_into().unwrap()))
                    .collect();
            }
            NHA_BLACKHOLE => nh.blackhole = true,
            NHA_GATEWAY => match v.len() {
                4 => nh.gateway = Some(u32::from_be_bytes(v.try_into().ok()?)),
                _ => v6 = true,
            },
            _ => {}
        }
    }
    let id = id?;
    if del {
        return Some(Change::DelNexthop(id));
    }
    // An IPv6 gateway (AF_INET6 = 10) is of no use to IPv4 routes.
    if v6 || (family == 10 && nh.group.is_empty() && !nh.blackhole) {
        nh.gateway = None;
    }
    Some(Change::NewNexthop(id, nh))
}

/// What one netlink message is to the feed.
enum Parsed {
    Change(Change),
    Ignored,
    Done,
    Error(io::Error),
}

fn parse_message(bytes: &[u8], cfg: &KernelRoutesConfig) -> Parsed {
    let kind = u16::from_ne_bytes([bytes[4], bytes[5]]);
    match kind {
        NLMSG_DONE => Parsed::Done,
        NLMSG_ERROR => {
            let code = bytes
                .get(16..20)
                .map(|b| i32::from_ne_bytes(b.try_into().unwrap()))
                .unwrap_or(0);
            if code == 0 {
                Parsed::Done
            } else {
                Parsed::Error(io::Error::from_raw_os_error(-code))
            }
        }
        RTM_NEWROUTE | RTM_DELROUTE => {
            match NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes) {
                Ok(m) => match m.payload {
                    netlink_packet_core::NetlinkPayload::InnerMessage(
                        RouteNetlinkMessage::NewRoute(r),
                    ) => route_change(&r, false, cfg).map_or(Parsed::Ignored, Parsed::Change),
                    netlink_packet_core::NetlinkPayload::InnerMessage(
                        RouteNetlinkMessage::DelRoute(r),
                    ) => route_change(&r, true, cfg).map_or(Parsed::Ignored, Parsed::Change),
                    _ => Parsed::Ignored,
                },
                Err(_) => Parsed::Ignored,
            }
        }
        RTM_NEWNEXTHOP | RTM_DELNEXTHOP => nexthop_change(&bytes[16..], kind == RTM_DELNEXTHOP)
            .map_or(Parsed::Ignored, Parsed::Change),
        _ => Parsed::Ignored,
    }
}

/// Splits a datagram into netlink messages.
fn messages(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut off = 0;
    std::iter::from_fn(move || {
        if off + 16 > buf.len() {
            return None;
        }
        let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
        if len < 16 || off + len > buf.len() {
            return None;
        }
        let m = &buf[off..off + len];
        off += (len + 3) & !3;
        Some(m)
    })
}

/// A fresh dump of the kernel's table for `cfg`: nexthop objects, then
/// routes.
pub fn dump(cfg: &KernelRoutesConfig) -> io::Result<KernelState> {
    let mut st = KernelState::default();
    // Nexthop objects: raw, see `nexthop_change`.
    let mut sock = Socket::new(NETLINK_ROUTE)?;
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    let mut req = [0u8; 24];
    req[0..4].copy_from_slice(&24u32.to_ne_bytes());
    req[4..6].copy_from_slice(&RTM_GETNEXTHOP.to_ne_bytes());
    req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    sock.send(&req, 0)?;
    let mut buf = vec![0u8; 256 * 1024];
    'nh: loop {
        let n = sock.recv(&mut &mut buf[..], 0)?;
        for m in messages(&buf[..n]) {
            match parse_message(m, cfg) {
                Parsed::Change(c) => {
                    st.apply(c);
                }
                Parsed::Done => break 'nh,
                // Kernels without nexthop objects answer EINVAL or
                // EOPNOTSUPP: there are none then.
                Parsed::Error(e) => {
                    tracing::debug!("kernel routes: no nexthop dump ({e})");
                    break 'nh;
                }
                Parsed::Ignored => {}
            }
        }
    }
    for r in Rtnl::new()?.ipv4_routes()? {
        if let Some(c) = route_change(&r, false, cfg) {
            st.apply(c);
        }
    }
    Ok(st)
}

/// Counters and the last outcome of the feed, for routerctl and metrics.
#[derive(Debug, Default)]
pub struct FeedCounters {
    /// Route and nexthop messages applied.
    pub messages: AtomicU64,
    /// Full resyncs after lost messages (ENOBUFS).
    pub resyncs: AtomicU64,
    /// Tables published for kernel changes.
    pub publishes: AtomicU64,
    /// Microseconds the last publish took (mapping and table build).
    pub last_build_us: AtomicU64,
}

/// The kernel-route side of a running router, shared by the feed threads
/// and the control handler: the config's tables input, the kernel's
/// table as last seen, and publishing both to the workers.
pub struct RoutePublisher {
    slot: Arc<TablesSlot>,
    cfg: Option<KernelRoutesConfig>,
    base: Mutex<TablesSpec>,
    state: Mutex<KernelState>,
    /// Held for a whole publish: builds are applied in order.
    publishing: Mutex<Vec<Skipped>>,
    dirty: Mutex<Option<Instant>>,
    wake: Condvar,
    /// Counters.
    pub counters: FeedCounters,
}

impl std::fmt::Debug for RoutePublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutePublisher")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl RoutePublisher {
    /// A publisher into `slot` for the config's `base` tables input.
    pub fn new(
        slot: Arc<TablesSlot>,
        base: TablesSpec,
        cfg: Option<KernelRoutesConfig>,
    ) -> RoutePublisher {
        RoutePublisher {
            slot,
            cfg,
            base: Mutex::new(base),
            state: Mutex::new(KernelState::default()),
            publishing: Mutex::new(Vec::new()),
            dirty: Mutex::new(None),
            wake: Condvar::new(),
            counters: FeedCounters::default(),
        }
    }

    /// The `kernel_routes` config, if on.
    pub fn config(&self) -> Option<&KernelRoutesConfig> {
        self.cfg.as_ref()
    }

    /// The routes skipped by the last publish.
    pub fn skipped(&self) -> Vec<Skipped> {
        self.publishing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The tables input of the config in force (with kernel routes none).
    pub fn base_interfaces(&self) -> Vec<Interface> {
        self.base
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .interfaces
            .clone()
    }

    /// Replaces the config's tables input (a reload) and publishes.
    pub fn set_base(&self, base: TablesSpec) {
        *self.base.lock().unwrap_or_else(|e| e.into_inner()) = base;
        self.publish();
    }

    /// Builds tables from the config's input and the kernel's routes and
    /// publishes them; returns the tables generation.
    pub fn publish(&self) -> u64 {
        let mut skipped_slot = self.publishing.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        let mut spec = self.base.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (routes, skipped) = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(&spec.interfaces);
        spec.kernel_routes = routes;
        let tables = Tables::build(spec);
        self.slot.replace(Arc::new(tables));
        *skipped_slot = skipped;
        self.counters
            .last_build_us
            .store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        self.slot.generation()
    }

    /// Applies changes read from the kernel; wakes the publisher if one
    /// changed anything.
    fn apply(&self, changes: Vec<Change>, replace: bool) {
        let n = changes.len() as u64;
        let mut changed = false;
        {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if replace {
                *st = KernelState::default();
                changed = true;
            }
            for c in changes {
                changed |= st.apply(c);
            }
        }
        self.counters.messages.fetch_add(n, Ordering::Relaxed);
        if changed {
            let mut d = self.dirty.lock().unwrap_or_else(|e| e.into_inner());
            if d.is_none() {
                *d = Some(Instant::now());
            }
            self.wake.notify_one();
        }
    }

    fn replace_state(&self, st: KernelState) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = st;
    }

    /// Kernel routes in routerd's view now (for `route verify`'s other side).
    pub fn state_routes(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .routes
            .len()
    }
}

/// The feed's threads; stopped and joined on drop.
#[derive(Debug)]
pub struct KernelFeed {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl KernelFeed {
    /// Subscribes, dumps and publishes the kernel's routes once (so the
    /// router starts with them), then follows the table in two threads.
    pub fn start(publisher: Arc<RoutePublisher>) -> io::Result<KernelFeed> {
        let cfg = publisher
            .config()
            .cloned()
            .ok_or_else(|| io::Error::other("kernel_routes is off"))?;
        let sock = subscribe()?;
        let st = dump(&cfg)?;
        let n = st.routes.len();
        publisher.replace_state(st);
        publisher.publish();
        info!(
            "kernel routes: following table {} ({}), {n} route(s) at start, {} skipped",
            cfg.table,
            match &cfg.protocols {
                Some(p) => format!(
                    "protocols {}",
                    p.iter()
                        .map(|&x| KernelRoutesConfig::protocol_name(x))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None => "every protocol but kernel".into(),
            },
            publisher.skipped().len()
        );
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        {
            let (p, stop, cfg) = (publisher.clone(), stop.clone(), cfg.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("kroutes-rx".into())
                    .spawn(move || receive(sock, &p, &stop, &cfg))?,
            );
        }
        {
            let (p, stop) = (publisher, stop.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("kroutes-pub".into())
                    .spawn(move || publish_loop(&p, &stop))?,
            );
        }
        Ok(KernelFeed { stop, threads })
    }

    /// Stops and joins the threads.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for KernelFeed {
    fn drop(&mut self) {
        self.stop();
    }
}

fn subscribe() -> io::Result<Socket> {
    let mut sock = Socket::new(NETLINK_ROUTE)?;
    sock.bind(&SocketAddr::new(0, RTMGRP_IPV4_ROUTE))?;
    // Kernels without nexthop objects have no such group: routes then.
    if let Err(e) = sock.add_membership(RTNLGRP_NEXTHOP) {
        warn!("kernel routes: no nexthop object notifications ({e})");
    }
    let size = std::env::var("ROUTERD_KERNEL_ROUTES_RCVBUF")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(RCVBUF);
    sock.set_rx_buf_sz(size)?;
    socket2::SockRef::from(&sock).set_read_timeout(Some(Duration::from_millis(100)))?;
    Ok(sock)
}

fn receive(sock: Socket, p: &RoutePublisher, stop: &AtomicBool, cfg: &KernelRoutesConfig) {
    let mut buf = vec![0u8; 1 << 20];
    let mut resync = false;
    while !stop.load(Ordering::Relaxed) {
        if resync {
            // What is queued happened before the dump, which covers it:
            // drop it. An empty queue also re-arms the kernel's overrun
            // report (it stays quiet while the queue it overran is not
            // emptied). Events after this point queue while we dump and
            // are applied after it, in order.
            drain(&sock, &mut buf);
            match dump(cfg) {
                Ok(st) => {
                    let changes: Vec<Change> = st
                        .nexthops
                        .into_iter()
                        .map(|(id, nh)| Change::NewNexthop(id, nh))
                        .chain(st.routes.into_values().map(Change::NewRoute))
                        .collect();
                    p.apply(changes, true);
                    resync = false;
                }
                Err(e) => {
                    warn!("kernel routes: resync dump failed, retrying: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
        }
        match sock.recv(&mut &mut buf[..], 0) {
            Ok(n) => {
                let changes: Vec<Change> = messages(&buf[..n])
                    .filter_map(|m| match parse_message(m, cfg) {
                        Parsed::Change(c) => Some(c),
                        _ => None,
                    })
                    .collect();
                if !changes.is_empty() {
                    p.apply(changes, false);
                }
            }
            Err(e) if e.raw_os_error() == Some(ENOBUFS) => {
                // Messages were lost: what we hold may be wrong.
                p.counters.resyncs.fetch_add(1, Ordering::Relaxed);
                warn!("kernel routes: notifications lost (ENOBUFS), resyncing from a full dump");
                resync = true;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                warn!("kernel routes: receive failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// `MSG_DONTWAIT`.
const MSG_DONTWAIT: i32 = 0x40;

/// Reads and drops what `sock` holds, until it would block.
fn drain(sock: &Socket, buf: &mut [u8]) {
    loop {
        match sock.recv(&mut &mut buf[..], MSG_DONTWAIT) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(ENOBUFS) => {}
            Err(_) => return,
        }
    }
}

fn publish_loop(p: &RoutePublisher, stop: &AtomicBool) {
    let mut last_build = Duration::ZERO;
    let mut last_end = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let d = p.dirty.lock().unwrap_or_else(|e| e.into_inner());
        let Some(first) = *d else {
            let _ = p.wake.wait_timeout(d, Duration::from_millis(100));
            continue;
        };
        // A batch: what changes within COALESCE of its first change, and
        // at most one build per the last build's duration, so a burst
        // leaves the other core as much time as the builds take.
        let due = (first + COALESCE).max(last_end + last_build);
        let now = Instant::now();
        if now < due {
            drop(d);
            std::thread::sleep(due - now);
            continue;
        }
        let mut d = d;
        *d = None;
        drop(d);
        let t = Instant::now();
        p.publish();
        last_build = t.elapsed();
        last_end = Instant::now();
        p.counters.publishes.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::addr::{IfAddr, Mac};

    fn ifs() -> Vec<Interface> {
        let ifc = |name: &str, a: &str| Interface {
            name: name.into(),
            device: format!("d{name}"),
            mac: Mac::ZERO,
            addresses: vec![a.parse::<IfAddr>().unwrap()],
            addresses6: Vec::new(),
            mtu: 1500,
            ra: None,
        };
        vec![ifc("wan", "198.18.0.1/24"), ifc("lan", "198.19.0.1/24")]
    }

    fn ip(s: &str) -> u32 {
        u32::from(s.parse::<Ipv4Addr>().unwrap())
    }

    fn p(s: &str) -> Ipv4Prefix {
        s.parse().unwrap()
    }

    fn cfg(protocols: Option<Vec<u8>>) -> KernelRoutesConfig {
        KernelRoutesConfig {
            table: 254,
            protocols,
        }
    }

    fn msg(
        dst: &str,
        len: u8,
        proto: u8,
        kind: RouteType,
        attrs: Vec<RouteAttribute>,
    ) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.destination_prefix_length = len;
        m.header.table = 254;
        m.header.protocol = proto.into();
        m.header.kind = kind;
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(
                dst.parse().unwrap(),
            )));
        m.attributes.extend(attrs);
        m
    }

    fn gw(s: &str) -> RouteAttribute {
        RouteAttribute::Gateway(RouteAddress::Inet(s.parse().unwrap()))
    }

    #[test]
    fn a_gateway_maps_to_the_port_of_its_connected_network_whatever_the_device() {
        let m = msg(
            "203.0.113.0",
            24,
            4,
            RouteType::Unicast,
            vec![gw("198.19.0.2"), RouteAttribute::Oif(77)],
        );
        let mut st = KernelState::default();
        st.apply(route_change(&m, false, &cfg(None)).unwrap());
        let (routes, skipped) = st.map(&ifs());
        assert!(skipped.is_empty());
        assert_eq!(
            routes,
            [RouteSpec {
                prefix: p("203.0.113.0/24"),
                next_hop: NextHop::Via {
                    port: PortId(1),
                    gateway: ip("198.19.0.2")
                },
                also: vec![],
                source: RouteSource::Kernel { protocol: 4 },
            }]
        );
    }

    #[test]
    fn unmappable_routes_are_skipped_with_their_reason() {
        let c = cfg(None);
        let mut st = KernelState::default();
        for m in [
            msg(
                "203.0.113.0",
                25,
                12,
                RouteType::Unicast,
                vec![gw("192.0.2.1")],
            ),
            msg(
                "203.0.113.128",
                25,
                12,
                RouteType::Unicast,
                vec![RouteAttribute::Oif(3)],
            ),
            msg(
                "198.51.100.0",
                24,
                186,
                RouteType::Unicast,
                vec![RouteAttribute::NhId(9)],
            ),
            msg("198.51.101.0", 24, 186, RouteType::Throw, vec![]),
        ] {
            st.apply(route_change(&m, false, &c).unwrap());
        }
        let (routes, skipped) = st.map(&ifs());
        assert!(routes.is_empty(), "{routes:?}");
        let reasons: Vec<(&str, SkipReason)> = skipped
            .iter()
            .map(|s| (s.prefix.as_str(), s.reason))
            .collect();
        assert_eq!(
            reasons,
            [
                ("198.51.100.0/24", SkipReason::UnknownNexthop),
                ("198.51.101.0/24", SkipReason::UnsupportedType),
                ("203.0.113.0/25", SkipReason::GatewayNotConnected),
                ("203.0.113.128/25", SkipReason::NoGateway),
            ]
        );
        assert_eq!(
            skipped[2].detail,
            "gateway 192.0.2.1 is on no connected network"
        );
        assert_eq!(skipped[0].protocol, "bgp");
    }

    #[test]
    fn other_protocols_tables_and_routerd_s_own_routes_are_not_followed() {
        let c = cfg(Some(vec![12, 186]));
        let own = msg(
            "203.0.113.0",
            24,
            RTPROT_ROUTERD,
            RouteType::Unicast,
            vec![],
        );
        assert_eq!(route_change(&own, false, &cfg(None)), None);
        let boot = msg(
            "203.0.113.0",
            24,
            3,
            RouteType::Unicast,
            vec![gw("198.19.0.2")],
        );
        assert_eq!(route_change(&boot, false, &c), None);
        let kernel = msg("198.19.0.0", 24, 2, RouteType::Unicast, vec![]);
        assert_eq!(route_change(&kernel, false, &cfg(None)), None);
        let mut other_table = msg(
            "203.0.113.0",
            24,
            12,
            RouteType::Unicast,
            vec![gw("198.19.0.2")],
        );
        other_table.attributes.push(RouteAttribute::Table(100));
        other_table.header.table = 100;
        assert_eq!(route_change(&other_table, false, &c), None);
        let bird = msg(
            "203.0.113.0",
            24,
            12,
            RouteType::Unicast,
            vec![gw("198.19.0.2")],
        );
        assert!(route_change(&bird, false, &c).is_some());
    }

    /// As FRR installs a route: nexthop objects 1 and 2 (the gateways),
    /// group 10 of both, and `PREFIX/24 nhid 10 proto PROTO`.
    fn group_route(st: &mut KernelState, gateways: [&str; 2], prefix: &str, proto: u8) {
        for (id, g) in [1, 2].into_iter().zip(gateways) {
            st.apply(Change::NewNexthop(
                id,
                Nexthop {
                    gateway: Some(ip(g)),
                    ..Default::default()
                },
            ));
        }
        st.apply(Change::NewNexthop(
            10,
            Nexthop {
                group: vec![1, 2],
                ..Default::default()
            },
        ));
        let g = msg(
            prefix,
            24,
            proto,
            RouteType::Unicast,
            vec![RouteAttribute::NhId(10)],
        );
        st.apply(route_change(&g, false, &cfg(None)).unwrap());
    }

    #[test]
    fn multipath_routes_and_nexthop_groups_give_every_gateway() {
        use netlink_packet_route::route::RouteNextHop;
        let hop = |g: &str| {
            let mut h = RouteNextHop::default();
            h.attributes.push(gw(g));
            h
        };
        let m = msg(
            "203.0.113.0",
            24,
            186,
            RouteType::Unicast,
            vec![RouteAttribute::MultiPath(vec![
                hop("198.19.0.2"),
                hop("198.19.0.3"),
            ])],
        );
        let mut st = KernelState::default();
        st.apply(route_change(&m, false, &cfg(None)).unwrap());
        // FRR's way: nexthop objects 1 and 2, group 10, route with nhid 10.
        group_route(&mut st, ["198.18.0.2", "198.18.0.3"], "198.51.100.0", 11);
        let (routes, skipped) = st.map(&ifs());
        assert!(skipped.is_empty());
        let paths: Vec<Vec<NextHop>> = routes.iter().map(|r| r.paths().collect()).collect();
        let via = |port: u8, g: &str| NextHop::Via {
            port: PortId(port),
            gateway: ip(g),
        };
        assert_eq!(
            paths,
            [
                vec![via(0, "198.18.0.2"), via(0, "198.18.0.3")],
                vec![via(1, "198.19.0.2"), via(1, "198.19.0.3")],
            ]
        );
        // Deleting the group removes the route using it.
        st.apply(Change::DelNexthop(10));
        assert_eq!(st.map(&ifs()).0.len(), 1);
    }

    #[test]
    fn a_deleted_nexthop_leaves_its_groups_and_an_emptied_group_takes_its_routes() {
        let mut st = KernelState::default();
        group_route(&mut st, ["198.19.0.2", "198.19.0.3"], "203.0.113.0", 186);
        // `ip nexthop del id 1`: the kernel's group is now 2 alone, and so
        // is routerd's, before the group's own notification arrives.
        assert!(st.apply(Change::DelNexthop(1)));
        let (routes, skipped) = st.map(&ifs());
        assert!(skipped.is_empty(), "{skipped:?}");
        let paths: Vec<NextHop> = routes[0].paths().collect();
        assert_eq!(
            paths,
            [NextHop::Via {
                port: PortId(1),
                gateway: ip("198.19.0.3"),
            }]
        );
        // Its last member gone, the group and its route go (the kernel
        // sends no RTM_DELROUTE for it).
        assert!(st.apply(Change::DelNexthop(2)));
        assert!(!st.nexthops.contains_key(&10));
        let (routes, skipped) = st.map(&ifs());
        assert!(
            routes.is_empty() && skipped.is_empty(),
            "{routes:?} {skipped:?}"
        );
    }

    #[test]
    fn the_lowest_metric_of_a_prefix_is_used_and_a_delete_names_its_metric() {
        let c = cfg(None);
        let mut st = KernelState::default();
        let mut a = msg(
            "203.0.113.0",
            24,
            4,
            RouteType::Unicast,
            vec![gw("198.19.0.2")],
        );
        a.attributes.push(RouteAttribute::Priority(100));
        let mut b = msg(
            "203.0.113.0",
            24,
            4,
            RouteType::Unicast,
            vec![gw("198.18.0.2")],
        );
        b.attributes.push(RouteAttribute::Priority(10));
        st.apply(route_change(&a, false, &c).unwrap());
        st.apply(route_change(&b, false, &c).unwrap());
        assert_eq!(
            st.map(&ifs()).0[0].next_hop,
            NextHop::Via {
                port: PortId(0),
                gateway: ip("198.18.0.2")
            }
        );
        assert!(st.apply(route_change(&b, true, &c).unwrap()));
        assert_eq!(
            st.map(&ifs()).0[0].next_hop,
            NextHop::Via {
                port: PortId(1),
                gateway: ip("198.19.0.2")
            }
        );
    }

    #[test]
    fn nexthop_messages_are_parsed_from_their_bytes() {
        // nhmsg (AF_INET), NHA_ID 7, NHA_GATEWAY 198.19.0.2, NHA_OIF 3.
        let mut b = vec![2u8, 0, 11, 0, 0, 0, 0, 0];
        b.extend([8, 0, 1, 0, 7, 0, 0, 0]);
        b.extend([8, 0, 6, 0, 198, 19, 0, 2]);
        b.extend([8, 0, 5, 0, 3, 0, 0, 0]);
        assert_eq!(
            nexthop_change(&b, false),
            Some(Change::NewNexthop(
                7,
                Nexthop {
                    gateway: Some(ip("198.19.0.2")),
                    ..Default::default()
                }
            ))
        );
        // A group of 7 and 8 (family unspec).
        let mut g = vec![0u8, 0, 11, 0, 0, 0, 0, 0];
        g.extend([8, 0, 1, 0, 20, 0, 0, 0]);
        g.extend([20, 0, 2, 0, 7, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(
            nexthop_change(&g, false),
            Some(Change::NewNexthop(
                20,
                Nexthop {
                    group: vec![7, 8],
                    ..Default::default()
                }
            ))
        );
        assert_eq!(nexthop_change(&g, true), Some(Change::DelNexthop(20)));
        // Truncated: nothing, no panic.
        assert_eq!(nexthop_change(&g[..10], false), None);
        assert_eq!(nexthop_change(&[], false), None);
    }
}
