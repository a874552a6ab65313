//! The kernel's side of the host path: what routerd gives the kernel so
//! that it reaches the world through the TUN, and takes back at exit.
//!
//! The ports' addresses are the dataplane's ([`super::kernel`] takes them
//! off the ports), but the kernel still has to own them for its sockets:
//! a service bound to 198.18.0.1 must accept connections, and a connection
//! the router opens must get 198.18.0.1 or 198.19.0.1 as its source. So, on
//! the TUN:
//!
//! - IPv6 off (no router solicitations or MLD into the dataplane), reverse
//!   path filter off (`rp_filter = 0`: the TUN is the way back to every
//!   source), MTU the smallest of the ports' (so the kernel's packets fit
//!   every port, and PMTU discovery starts right), link up;
//! - each interface address as a /32 (what `ip addr add 198.18.0.1/32 dev
//!   rtr0` does, over rtnetlink);
//! - the connected networks and the configured routes via the TUN, each
//!   with the source address of the port it leaves by (as `ip route add
//!   198.19.0.0/24 dev rtr0 src 198.19.0.1 proto 250`: routerd's own
//!   protocol, [`super::netlink::RTPROT_ROUTERD`], which the kernel route
//!   feed never mirrors back); blackhole and unreachable
//!   routes as the kernel's own blackhole and unreachable routes, so the
//!   kernel's sockets get the error at once.
//!
//! A route the kernel already has (same prefix and metric, e.g. a
//! management interface's default route) is left alone and logged: the
//! kernel then sends that traffic its own way. Only what was added is
//! removed at exit. The TUN itself disappears when routerd's descriptor
//! closes, which removes whatever is left even after SIGKILL.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use dataplane::addr::Ipv4Prefix;
use dataplane::tables::NextHop;
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
    addresses: Vec<Ipv4Addr>,
    routes: Vec<HostRoute>,
    removed: bool,
}

/// One kernel route of the host path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostRoute {
    /// Destination.
    pub prefix: Ipv4Prefix,
    /// Where the kernel sends it.
    pub kind: RouteKind,
}

/// Where a host-path route sends the kernel's packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteKind {
    /// Into the TUN, with this source address.
    Tun { src: u32 },
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
                    RouteAttribute::PrefSource(RouteAddress::Inet(Ipv4Addr::from(src))),
                ],
            ),
            RouteKind::Blackhole => (RouteType::BlackHole, RouteScope::Universe, vec![]),
            RouteKind::Unreachable => (RouteType::Unreachable, RouteScope::Universe, vec![]),
        };
        netlink::ipv4_route(
            Ipv4Addr::from(self.prefix.addr()),
            self.prefix.len(),
            kind,
            scope,
            attrs,
        )
    }

    /// As `ip route` would print it, through device `tun`.
    pub fn text(&self, tun: &str) -> String {
        let to = if self.prefix == Ipv4Prefix::DEFAULT {
            "default".to_string()
        } else {
            self.prefix.to_string()
        };
        match self.kind {
            RouteKind::Tun { src } => format!("{to} dev {tun} src {}", Ipv4Addr::from(src)),
            RouteKind::Blackhole => format!("blackhole {to}"),
            RouteKind::Unreachable => format!("unreachable {to}"),
        }
    }
}

/// The kernel routes the host path needs for `cfg`: connected networks
/// first, then the configured routes.
pub fn planned_routes(cfg: &Config) -> Vec<HostRoute> {
    let mut out: Vec<HostRoute> = Vec::new();
    let mut push = |r: HostRoute| {
        if !out.iter().any(|o| o.prefix == r.prefix) {
            out.push(r);
        }
    };
    for ifc in &cfg.spec.interfaces {
        for a in &ifc.addresses {
            if a.net.len() < 32 {
                push(HostRoute {
                    prefix: a.net,
                    kind: RouteKind::Tun { src: a.addr },
                });
            }
        }
    }
    // The address a packet leaving by port `p` towards `dst` carries.
    let src_on = |p: dataplane::packet::PortId, dst: Option<u32>| {
        let addrs = &cfg.spec.interfaces.get(p.0 as usize)?.addresses;
        dst.and_then(|d| addrs.iter().find(|a| a.net.contains(d)))
            .or(addrs.first())
            .map(|a| a.addr)
    };
    for r in &cfg.spec.routes {
        let kind = match r.next_hop {
            NextHop::Via { port, gateway } => {
                src_on(port, Some(gateway)).map(|src| RouteKind::Tun { src })
            }
            NextHop::Connected(port) => src_on(port, None).map(|src| RouteKind::Tun { src }),
            NextHop::Blackhole => Some(RouteKind::Blackhole),
            NextHop::Unreachable => Some(RouteKind::Unreachable),
            NextHop::Local | NextHop::Multipath { .. } => None,
        };
        if let Some(kind) = kind {
            push(HostRoute {
                prefix: r.prefix,
                kind,
            });
        }
    }
    out
}

fn write_proc(path: &str, value: &str) -> Result<(), KernelError> {
    std::fs::write(path, value).map_err(|err| KernelError::Proc {
        path: PathBuf::from(path),
        err,
    })
}

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
        let v6 = format!("/proc/sys/net/ipv6/conf/{tun}/disable_ipv6");
        if std::path::Path::new(&v6).exists() {
            write_proc(&v6, "1")?;
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
        for ifc in &cfg.spec.interfaces {
            for a in &ifc.addresses {
                let host = Ipv4Addr::from(a.addr);
                if hk.addresses.contains(&host) {
                    continue;
                }
                nl.add_address(index, host, 32, false)
                    .map_err(nl_err(format!("adding {host}/32 to {tun}")))?;
                hk.addresses.push(host);
            }
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
            "host path: TUN {tun} up (mtu {mtu}), kernel addresses {}, {} route(s) via {tun}{}",
            hk.addresses
                .iter()
                .map(|a| format!("{a}/32"))
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

    /// The addresses added to the TUN (as /32s).
    pub fn addresses(&self) -> &[Ipv4Addr] {
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
            if let Err(e) = nl.del_address(self.index, *a, 32) {
                problems.push(format!("removing {a}/32 from {}: {e}", self.tun));
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
}
