//! The kernel's side of the host path: what routerd gives the kernel so
//! that it reaches the world through the TUN, and takes back at exit.
//!
//! The ports' addresses are the dataplane's ([`super::kernel`] takes them
//! off the ports), but the kernel still has to own them for its sockets:
//! a service bound to 198.18.0.1 or 2001:db8::1 must accept connections,
//! and a connection the router opens must get one of the ports' addresses
//! as its source. So, on the TUN:
//!
//! - reverse path filter off (`rp_filter = 0`: the TUN is the way back to
//!   every source), MTU the smallest of the ports' (so the kernel's packets
//!   fit every port, and PMTU discovery starts right), link up;
//! - IPv6 on only when the config has IPv6 addresses, and then quiet: no
//!   link-local address (`addr_gen_mode = 1`), no router advertisements
//!   taken (`accept_ra = 0`, `autoconf = 0`), no duplicate address
//!   detection (`accept_dad = 0`), so that the kernel sends no router
//!   solicitations, DAD probes or MLD reports into the dataplane (the TUN
//!   is `NOARP`: no solicited-node groups either); `forwarding` stays 0;
//! - each interface address as a /32 or /128 (what `ip addr add
//!   198.18.0.1/32 dev rtr0` and `ip addr add 2001:db8::1/128 dev rtr0
//!   nodad noprefixroute` do, over rtnetlink);
//! - the connected networks and the configured routes of both families via
//!   the TUN, each with the source address of the port it leaves by (as
//!   `ip route add 198.19.0.0/24 dev rtr0 src 198.19.0.1 proto 250`:
//!   routerd's own protocol, [`super::netlink::RTPROT_ROUTERD`], which the
//!   kernel route feed never mirrors back); blackhole and unreachable
//!   routes as the kernel's own blackhole and unreachable routes, so the
//!   kernel's sockets get the error at once.
//!
//! A route the kernel already has (same prefix and metric, e.g. a
//! management interface's default route) is left alone and logged: the
//! kernel then sends that traffic its own way. Only what was added is
//! removed at exit. The TUN itself disappears when routerd's descriptor
//! closes, which removes whatever is left even after SIGKILL.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use dataplane::addr::{Ipv4Prefix, Ipv6Prefix};
use dataplane::tables::NextHop;
use dataplane::tables6::NextHop6;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteScope, RouteType,
};
use tracing::{info, warn};

use super::kernel::{device_index, nl_err, rtnl, KernelError};
use super::netlink::{self, RouteOp};
use crate::config::Config;

/// What routerd added to the kernel for the host path.
#[derive(Debug)]
pub struct HostKernel {
    tun: String,
    index: u32,
    addresses: Vec<IpAddr>,
    routes: Vec<HostRoute>,
    removed: bool,
}

/// A host-path route's destination, of either family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostPrefix {
    /// An IPv4 prefix.
    V4(Ipv4Prefix),
    /// An IPv6 prefix.
    V6(Ipv6Prefix),
}

impl std::fmt::Display for HostPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostPrefix::V4(p) if p.len() == 0 => f.write_str("default"),
            HostPrefix::V6(p) if p.len() == 0 => f.write_str("default"),
            HostPrefix::V4(p) => p.fmt(f),
            HostPrefix::V6(p) => p.fmt(f),
        }
    }
}

/// One kernel route of the host path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostRoute {
    /// Destination.
    pub prefix: HostPrefix,
    /// Where the kernel sends it.
    pub kind: RouteKind,
}

/// Where a host-path route sends the kernel's packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteKind {
    /// Into the TUN, with this source address (of the route's family).
    Tun { src: IpAddr },
    /// Nowhere (the kernel's blackhole route).
    Blackhole,
    /// Back to the socket as unreachable.
    Unreachable,
}

impl HostRoute {
    /// The route as the kernel takes it (routerd's protocol, main table).
    fn message(&self, tun_index: u32) -> RouteMessage {
        let (kind, scope, attrs) = match self.kind {
            RouteKind::Tun { src } => (
                RouteType::Unicast,
                RouteScope::Link,
                vec![
                    RouteAttribute::Oif(tun_index),
                    RouteAttribute::PrefSource(RouteAddress::from(src)),
                ],
            ),
            RouteKind::Blackhole => (RouteType::BlackHole, RouteScope::Universe, vec![]),
            RouteKind::Unreachable => (RouteType::Unreachable, RouteScope::Universe, vec![]),
        };
        match self.prefix {
            HostPrefix::V4(p) => {
                netlink::ipv4_route(Ipv4Addr::from(p.addr()), p.len(), kind, scope, attrs)
            }
            HostPrefix::V6(p) => {
                netlink::ipv6_route(Ipv6Addr::from(p.addr()), p.len(), kind, attrs)
            }
        }
    }

    /// As `ip route` (or `ip -6 route`) would print it, through device `tun`.
    pub fn text(&self, tun: &str) -> String {
        let to = self.prefix;
        match self.kind {
            RouteKind::Tun { src } => format!("{to} dev {tun} src {src}"),
            RouteKind::Blackhole => format!("blackhole {to}"),
            RouteKind::Unreachable => format!("unreachable {to}"),
        }
    }
}

/// The kernel routes the host path needs for `cfg`: IPv4 connected
/// networks, then the configured IPv4 routes, then the same for IPv6.
pub fn planned_routes(cfg: &Config) -> Vec<HostRoute> {
    let mut out: Vec<HostRoute> = Vec::new();
    let mut push = |r: HostRoute| {
        if !out.iter().any(|o| o.prefix == r.prefix) {
            out.push(r);
        }
    };
    let tun = |src: IpAddr| RouteKind::Tun { src };
    for ifc in &cfg.spec.interfaces {
        for a in &ifc.addresses {
            if a.net.len() < 32 {
                push(HostRoute {
                    prefix: HostPrefix::V4(a.net),
                    kind: tun(Ipv4Addr::from(a.addr).into()),
                });
            }
        }
    }
    let port = |p: dataplane::packet::PortId| cfg.spec.interfaces.get(p.0 as usize);
    // The address a packet leaving by port `p` towards `dst` carries.
    let src_on = |p: dataplane::packet::PortId, dst: Option<u32>| {
        let addrs = &port(p)?.addresses;
        dst.and_then(|d| addrs.iter().find(|a| a.net.contains(d)))
            .or(addrs.first())
            .map(|a| IpAddr::from(Ipv4Addr::from(a.addr)))
    };
    for r in &cfg.spec.routes {
        let kind = match r.next_hop {
            NextHop::Via { port, gateway } => src_on(port, Some(gateway)).map(tun),
            NextHop::Connected(port) => src_on(port, None).map(tun),
            NextHop::Blackhole => Some(RouteKind::Blackhole),
            NextHop::Unreachable => Some(RouteKind::Unreachable),
            NextHop::Local | NextHop::Multipath { .. } => None,
        };
        if let Some(kind) = kind {
            push(HostRoute {
                prefix: HostPrefix::V4(r.prefix),
                kind,
            });
        }
    }
    for ifc in &cfg.spec.interfaces {
        for a in &ifc.addresses6 {
            if a.net.len() < 128 {
                push(HostRoute {
                    prefix: HostPrefix::V6(a.net),
                    kind: tun(Ipv6Addr::from(a.addr).into()),
                });
            }
        }
    }
    // As for IPv4; a link-local gateway lies in no prefix of the port, so
    // its route gets the port's first address.
    let src6_on = |p: dataplane::packet::PortId, dst: Option<u128>| {
        let addrs = &port(p)?.addresses6;
        dst.and_then(|d| addrs.iter().find(|a| a.net.contains(d)))
            .or(addrs.first())
            .map(|a| IpAddr::from(Ipv6Addr::from(a.addr)))
    };
    for r in &cfg.spec.v6.routes {
        let kind = match r.next_hop {
            NextHop6::Via { port, gateway } => src6_on(port, Some(gateway)).map(tun),
            NextHop6::Connected(port) => src6_on(port, None).map(tun),
            NextHop6::Blackhole => Some(RouteKind::Blackhole),
            NextHop6::Unreachable => Some(RouteKind::Unreachable),
            NextHop6::Local => None,
        };
        if let Some(kind) = kind {
            push(HostRoute {
                prefix: HostPrefix::V6(r.prefix),
                kind,
            });
        }
    }
    out
}

/// The addresses the kernel gets on the TUN: each interface address, as a
/// /32 or a /128, once.
pub fn planned_addresses(cfg: &Config) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    let v4 = cfg.spec.interfaces.iter().flat_map(|i| {
        i.addresses
            .iter()
            .map(|a| IpAddr::from(Ipv4Addr::from(a.addr)))
    });
    let v6 = cfg.spec.interfaces.iter().flat_map(|i| {
        i.addresses6
            .iter()
            .map(|a| IpAddr::from(Ipv6Addr::from(a.addr)))
    });
    for a in v4.chain(v6) {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

/// A host address's prefix length: the whole address.
fn host_len(a: &IpAddr) -> u8 {
    match a {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn write_proc(path: &str, value: &str) -> Result<(), KernelError> {
    std::fs::write(path, value).map_err(|err| KernelError::Proc {
        path: PathBuf::from(path),
        err,
    })
}

/// The TUN's IPv6 settings, in the order written: everything that makes
/// the kernel talk on its own is off before IPv6 goes on.
const TUN_IPV6_QUIET: [(&str, &str); 4] = [
    ("accept_ra", "0"),
    ("autoconf", "0"),
    ("accept_dad", "0"),
    ("addr_gen_mode", "1"),
];

impl HostKernel {
    /// Configures the TUN `tun` (already created) for `cfg`. On error,
    /// what was added is removed again (on drop).
    pub fn setup(tun: &str, cfg: &Config) -> Result<HostKernel, KernelError> {
        let index = device_index(tun)?;
        let mut hk = HostKernel {
            tun: tun.to_string(),
            index,
            addresses: Vec::new(),
            routes: Vec::new(),
            removed: false,
        };
        let planned = planned_addresses(cfg);
        let ipv6 = planned.iter().any(IpAddr::is_ipv6);
        let conf6 = format!("/proc/sys/net/ipv6/conf/{tun}");
        if std::path::Path::new(&conf6).exists() {
            if ipv6 {
                for (key, value) in TUN_IPV6_QUIET {
                    write_proc(&format!("{conf6}/{key}"), value)?;
                }
            }
            write_proc(
                &format!("{conf6}/disable_ipv6"),
                if ipv6 { "0" } else { "1" },
            )?;
        }
        write_proc(&format!("/proc/sys/net/ipv4/conf/{tun}/rp_filter"), "0")?;
        let mtu = cfg
            .spec
            .interfaces
            .iter()
            .map(|i| i.mtu)
            .min()
            .unwrap_or(1500);
        let mut nl = rtnl()?;
        nl.set_link_up(index, u32::from(mtu))
            .map_err(nl_err(format!("setting {tun} up with mtu {mtu}")))?;
        for a in planned {
            let len = host_len(&a);
            let added = match a {
                IpAddr::V4(v4) => nl.add_address(index, v4, len, false),
                IpAddr::V6(v6) => nl.add_address6_nodad(index, v6, len),
            };
            added.map_err(nl_err(format!("adding {a}/{len} to {tun}")))?;
            hk.addresses.push(a);
        }
        for r in planned_routes(cfg) {
            match nl.route(r.message(index), RouteOp::Add) {
                Ok(()) => hk.routes.push(r),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => warn!(
                    "kernel route {} not added: the kernel has one already (its traffic \
                     does not go through routerd)",
                    r.text(tun)
                ),
                Err(e) => return Err(nl_err(format!("adding the route {}", r.text(tun)))(e)),
            }
        }
        let all = std::fs::read_to_string("/proc/sys/net/ipv4/conf/all/rp_filter")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        info!(
            "host path: TUN {tun} up (mtu {mtu}, IPv6 {}), kernel addresses {}, {} route(s) via {tun}{}",
            if ipv6 { "on, no link-local, no RA, no DAD" } else { "off" },
            hk.addresses
                .iter()
                .map(|a| format!("{a}/{}", host_len(a)))
                .collect::<Vec<_>>()
                .join(" "),
            hk.routes.len(),
            if all == "1" {
                " (net.ipv4.conf.all.rp_filter is 1: strict reverse path filtering applies)"
            } else {
                ""
            }
        );
        Ok(hk)
    }

    /// The addresses added to the TUN (as /32s and /128s).
    pub fn addresses(&self) -> &[IpAddr] {
        &self.addresses
    }

    /// The routes added.
    pub fn routes(&self) -> &[HostRoute] {
        &self.routes
    }

    /// Removes the routes and addresses added; returns the problems met.
    pub fn remove(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.removed {
            return problems;
        }
        self.removed = true;
        let mut nl = match rtnl() {
            Ok(nl) => nl,
            Err(e) => return vec![e.to_string()],
        };
        for r in self.routes.iter().rev() {
            let mut m = r.message(self.index);
            m.header.scope = RouteScope::NoWhere;
            if let Err(e) = nl.route(m, RouteOp::Del) {
                problems.push(format!("removing the route {}: {e}", r.text(&self.tun)));
            }
        }
        for a in self.addresses.iter().rev() {
            let len = host_len(a);
            if let Err(e) = nl.del_address(self.index, *a, len) {
                problems.push(format!("removing {a}/{len} from {}: {e}", self.tun));
            }
        }
        problems
    }
}

impl Drop for HostKernel {
    fn drop(&mut self) {
        for p in self.remove() {
            eprintln!("routerd: removing the host path's kernel state: {p}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transit_router_gets_connected_and_configured_routes_with_their_sources() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/transit-router.yaml");
        let cfg = Config::load(&path).unwrap();
        let routes: Vec<String> = planned_routes(&cfg)
            .iter()
            .map(|r| r.text("rtr0"))
            .collect();
        assert_eq!(
            routes,
            [
                "198.18.0.0/24 dev rtr0 src 198.18.0.1",
                "198.19.0.0/24 dev rtr0 src 198.19.0.1",
                "203.0.113.0/24 dev rtr0 src 198.19.0.1",
                "default dev rtr0 src 198.18.0.1",
                "2001:db8::/64 dev rtr0 src 2001:db8::1",
                "2001:db8:1::/64 dev rtr0 src 2001:db8:1::1",
                "2001:db8:100::/48 dev rtr0 src 2001:db8:1::1",
                "default dev rtr0 src 2001:db8::1",
            ]
        );
    }

    #[test]
    fn blackhole_and_unreachable_routes_stay_in_the_kernel() {
        let text = "interfaces:\n  - name: wan\n    device: r0\n    addresses: [198.18.0.1/24]\n\
                    routes:\n  - to: 192.0.2.0/25\n    blackhole: true\n  - to: 192.0.2.128/25\n    unreachable: true\n";
        let cfg = Config::from_str(text, std::path::Path::new("t.yaml")).unwrap();
        let routes: Vec<String> = planned_routes(&cfg).iter().map(|r| r.text("t0")).collect();
        assert_eq!(
            routes,
            [
                "198.18.0.0/24 dev t0 src 198.18.0.1",
                "blackhole 192.0.2.0/25",
                "unreachable 192.0.2.128/25",
            ]
        );
    }

    /// A dual-stack router: two IPv6 prefixes on lan, a gateway in the
    /// second, a link-local gateway, blackhole, unreachable, IPv6 default.
    fn dual_stack() -> Config {
        let text = "interfaces:\n  - name: wan\n    device: r0\n    \
                    addresses: [198.18.0.1/24, 2001:db8:0:1::1/64]\n  - name: lan\n    \
                    device: r1\n    addresses: [198.19.0.1/24, 2001:db8:0:2::1/64, \
                    2001:db8:0:3::1/64]\nroutes:\n  - to: 203.0.113.0/24\n    via: 198.19.0.2\n  \
                    - to: default\n    via: 198.18.0.2\n  - to: 2001:db8:99::/48\n    \
                    via: 2001:db8:0:3::2\n  - to: 2001:db8:98::/48\n    via: fe80::2\n    \
                    interface: lan\n  - to: 2001:db8:dead::/48\n    blackhole: true\n  \
                    - to: 2001:db8:beef::/48\n    unreachable: true\n  - to: \"::/0\"\n    \
                    via: 2001:db8:0:1::2\n";
        Config::from_str(text, std::path::Path::new("t.yaml")).unwrap()
    }

    #[test]
    fn a_dual_stack_router_gets_both_families_on_the_tun_with_their_sources() {
        let cfg = dual_stack();
        let routes: Vec<String> = planned_routes(&cfg)
            .iter()
            .map(|r| r.text("rtr0"))
            .collect();
        assert_eq!(
            routes,
            [
                "198.18.0.0/24 dev rtr0 src 198.18.0.1",
                "198.19.0.0/24 dev rtr0 src 198.19.0.1",
                "203.0.113.0/24 dev rtr0 src 198.19.0.1",
                "default dev rtr0 src 198.18.0.1",
                "2001:db8:0:1::/64 dev rtr0 src 2001:db8:0:1::1",
                "2001:db8:0:2::/64 dev rtr0 src 2001:db8:0:2::1",
                "2001:db8:0:3::/64 dev rtr0 src 2001:db8:0:3::1",
                "2001:db8:99::/48 dev rtr0 src 2001:db8:0:3::1",
                "2001:db8:98::/48 dev rtr0 src 2001:db8:0:2::1",
                "blackhole 2001:db8:dead::/48",
                "unreachable 2001:db8:beef::/48",
                "default dev rtr0 src 2001:db8:0:1::1",
            ]
        );
        let addrs: Vec<String> = planned_addresses(&cfg)
            .iter()
            .map(|a| format!("{a}/{}", host_len(a)))
            .collect();
        assert_eq!(
            addrs,
            [
                "198.18.0.1/32",
                "198.19.0.1/32",
                "2001:db8:0:1::1/128",
                "2001:db8:0:2::1/128",
                "2001:db8:0:3::1/128",
            ]
        );
        // The messages the kernel gets: IPv6, routerd's protocol, the source.
        let r = planned_routes(&cfg)[7];
        let m = r.message(9);
        assert_eq!(
            m.header.address_family,
            netlink_packet_route::AddressFamily::Inet6
        );
        assert_eq!(m.header.destination_prefix_length, 48);
        assert_eq!(u8::from(m.header.protocol), netlink::RTPROT_ROUTERD);
        assert!(m.attributes.contains(&RouteAttribute::Oif(9)));
        assert!(m
            .attributes
            .contains(&RouteAttribute::PrefSource(RouteAddress::Inet6(
                "2001:db8:0:3::1".parse().unwrap()
            ))));
    }

    #[test]
    fn a_port_without_ipv6_addresses_gives_its_ipv6_routes_no_kernel_route() {
        let mut cfg = dual_stack();
        cfg.spec.interfaces[1].addresses6.clear();
        let routes: Vec<String> = planned_routes(&cfg)
            .iter()
            .map(|r| r.text("rtr0"))
            .filter(|r| r.contains(':'))
            .collect();
        assert_eq!(
            routes,
            [
                "2001:db8:0:1::/64 dev rtr0 src 2001:db8:0:1::1",
                "blackhole 2001:db8:dead::/48",
                "unreachable 2001:db8:beef::/48",
                "default dev rtr0 src 2001:db8:0:1::1",
            ]
        );
    }
}
