//! `routerctl route`: the dataplane's route table with each route's
//! source, a lookup, and the comparison with the kernel's table
//! (`kernel_routes`). The data of the `route` request and its text form.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dataplane::addr::{Ipv4Prefix, Ipv6Prefix};
use dataplane::tables::{NextHop, RouteSource, RouteSpec, Tables};
use dataplane::tables6::{NextHop6, RouteSpec6};
use serde::{Deserialize, Serialize};

use crate::config::KernelRoutesConfig;

/// What `routerctl route` asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum RouteRequest {
    /// [`RouteShow`]: the routes equal to or inside `prefix` (all without).
    Show {
        #[serde(default)]
        prefix: Option<String>,
        /// Only the counts, no routes.
        #[serde(default)]
        summary: bool,
    },
    /// [`RouteLookup`]: the longest-prefix match of `address`.
    Lookup { address: String },
    /// [`RouteVerify`]: the kernel's table against the dataplane's.
    Verify,
}

/// One path of a route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathEntry {
    /// `via`, `connected`, `local`, `blackhole` or `unreachable`.
    pub kind: String,
    /// The gateway of a `via` path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// The output interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
}

/// One route of the dataplane.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteEntry {
    /// `203.0.113.0/24`, `2001:db8:5::/48`, `default` (either family's).
    pub prefix: String,
    /// `connected`, `local`, `static` or `kernel`.
    pub source: String,
    /// The kernel route's protocol (`bird`, `static`, `186`), for kernel routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Administrative distance (lower wins).
    pub distance: u8,
    /// Whether it is the route in use for its prefix (false: a route of
    /// smaller distance has the prefix).
    pub active: bool,
    /// Its paths (several: ECMP).
    pub paths: Vec<PathEntry>,
}

/// The feed's state (`kernel_routes` on).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelFeedStatus {
    /// The table followed.
    pub table: u32,
    /// The protocols taken (`all but kernel` when not given).
    pub protocols: Vec<String>,
    /// Kernel routes routerd holds (all metrics).
    pub kernel_routes: u64,
    /// Route and nexthop messages applied.
    pub messages: u64,
    /// Full resyncs after lost notifications (ENOBUFS).
    pub resyncs: u64,
    /// Tables published for kernel changes.
    pub publishes: u64,
    /// Microseconds the last publish took.
    pub last_build_us: u64,
    /// Skipped routes by reason.
    pub skipped_by_reason: BTreeMap<String, u64>,
    /// Every skipped route with why.
    pub skipped: Vec<SkippedEntry>,
}

/// A kernel route that is not in the dataplane.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedEntry {
    pub prefix: String,
    pub protocol: String,
    /// `gateway_not_connected`, `no_gateway`, `unknown_nexthop`, `unsupported_type`.
    pub reason: String,
    pub detail: String,
}

/// `route show`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteShow {
    /// Routes in use (and shadowed ones after them), by address.
    pub routes: Vec<RouteEntry>,
    /// IPv4 routes in use by source (of the routes shown).
    pub counts: BTreeMap<String, u64>,
    /// IPv6 routes in use by source (of the routes shown).
    #[serde(default)]
    pub counts6: BTreeMap<String, u64>,
    /// The kernel feed, when `kernel_routes` is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelFeedStatus>,
}

/// `route lookup`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteLookup {
    pub address: String,
    /// The matching route, if any.
    pub route: Option<RouteEntry>,
}

/// A route that differs between the kernel and the dataplane.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteDiff {
    pub prefix: String,
    /// What the kernel's route maps to (none: not in the kernel).
    pub kernel: Option<Vec<PathEntry>>,
    /// What the dataplane has from the kernel (none: not there).
    pub dataplane: Option<Vec<PathEntry>>,
}

/// `route verify`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteVerify {
    /// No difference.
    pub clean: bool,
    /// Routes of the kernel table (the selected protocols, one per prefix)
    /// that routerd can map.
    pub kernel_routes: u64,
    /// Kernel routes in the dataplane.
    pub dataplane_routes: u64,
    /// The differences.
    pub differences: Vec<RouteDiff>,
    /// Kernel routes skipped (not differences: they cannot be forwarded).
    pub skipped: Vec<SkippedEntry>,
}

fn addr(a: u32) -> String {
    Ipv4Addr::from(a).to_string()
}

/// `default` or the prefix.
pub fn prefix_text(p: Ipv4Prefix) -> String {
    if p == Ipv4Prefix::DEFAULT {
        "default".into()
    } else {
        p.to_string()
    }
}

/// A next hop in words.
pub fn path_entry(t: &Tables, nh: NextHop) -> PathEntry {
    let (kind, gateway, interface) = match nh {
        NextHop::Local => ("local", None, Some("host".to_string())),
        NextHop::Connected(p) => ("connected", None, Some(t.port_name(p).to_string())),
        NextHop::Via { port, gateway } => (
            "via",
            Some(addr(gateway)),
            Some(t.port_name(port).to_string()),
        ),
        NextHop::Blackhole => ("blackhole", None, None),
        NextHop::Unreachable => ("unreachable", None, None),
        NextHop::Multipath { .. } => ("multipath", None, None),
    };
    PathEntry {
        kind: kind.into(),
        gateway,
        interface,
    }
}

/// `default` or the IPv6 prefix.
pub fn prefix_text6(p: Ipv6Prefix) -> String {
    if p == Ipv6Prefix::DEFAULT {
        "default".into()
    } else {
        p.to_string()
    }
}

/// An IPv6 next hop in words.
pub fn path_entry6(t: &Tables, nh: NextHop6) -> PathEntry {
    let (kind, gateway, interface) = match nh {
        NextHop6::Local => ("local", None, Some("host".to_string())),
        NextHop6::Connected(p) => ("connected", None, Some(t.port_name(p).to_string())),
        NextHop6::Via { port, gateway } => (
            "via",
            Some(Ipv6Addr::from(gateway).to_string()),
            Some(t.port_name(port).to_string()),
        ),
        NextHop6::Blackhole => ("blackhole", None, None),
        NextHop6::Unreachable => ("unreachable", None, None),
    };
    PathEntry {
        kind: kind.into(),
        gateway,
        interface,
    }
}

/// An IPv6 route in words.
pub fn route_entry6(t: &Tables, r: &RouteSpec6, active: bool) -> RouteEntry {
    RouteEntry {
        prefix: prefix_text6(r.prefix),
        source: r.source.name().into(),
        protocol: match r.source {
            RouteSource::Kernel { protocol } => Some(KernelRoutesConfig::protocol_name(protocol)),
            _ => None,
        },
        distance: r.source.distance(),
        active,
        paths: vec![path_entry6(t, r.next_hop)],
    }
}

/// A route in words.
pub fn route_entry(t: &Tables, r: &RouteSpec, active: bool) -> RouteEntry {
    RouteEntry {
        prefix: prefix_text(r.prefix),
        source: r.source.name().into(),
        protocol: match r.source {
            RouteSource::Kernel { protocol } => Some(KernelRoutesConfig::protocol_name(protocol)),
            _ => None,
        },
        distance: r.source.distance(),
        active,
        paths: r.paths().map(|nh| path_entry(t, nh)).collect(),
    }
}

/// Parses `203.0.113.0/24`, `203.0.113.7` (a /32) or `default`.
pub fn parse_prefix(s: &str) -> Result<Ipv4Prefix, String> {
    if s == "default" {
        return Ok(Ipv4Prefix::DEFAULT);
    }
    if let Ok(a) = s.parse::<Ipv4Addr>() {
        return Ok(Ipv4Prefix::host(u32::from(a)));
    }
    s.parse::<Ipv4Prefix>()
        .map_err(|_| format!("{s:?} is not a prefix, expected one such as 203.0.113.0/24"))
}

/// The prefix `route show` lists routes inside of, of either family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Within {
    V4(Ipv4Prefix),
    V6(Ipv6Prefix),
}

/// Parses `route show`'s prefix: an IPv4 one as [`parse_prefix`] does, or
/// `2001:db8::/32`, `2001:db8::7` (a /128). `default` is IPv4's.
pub fn parse_within(s: &str) -> Result<Within, String> {
    if !s.contains(':') {
        return parse_prefix(s).map(Within::V4);
    }
    if let Ok(a) = s.parse::<Ipv6Addr>() {
        return Ok(Within::V6(Ipv6Prefix::host(u128::from(a))));
    }
    s.parse::<Ipv6Prefix>().map(Within::V6).map_err(|_| {
        format!("{s:?} is not a prefix, expected one such as 203.0.113.0/24 or 2001:db8::/32")
    })
}

/// `route show` of `t`: the IPv4 routes, then the IPv6 ones (only the
/// family of `within` when given).
pub fn show(t: &Tables, within: Option<Within>, summary: bool) -> RouteShow {
    let mut out = show4(
        t,
        match within {
            None => Some(None),
            Some(Within::V4(w)) => Some(Some(w)),
            Some(Within::V6(_)) => None,
        },
        summary,
    );
    let w6 = match within {
        None => Some(None),
        Some(Within::V6(w)) => Some(Some(w)),
        Some(Within::V4(_)) => None,
    };
    if let Some(w6) = w6 {
        let inside = |p: Ipv6Prefix| {
            w6.is_none_or(|w: Ipv6Prefix| p.len() >= w.len() && w.contains(p.addr()))
        };
        let v6 = &t.v6;
        for r in v6.route_specs.iter().filter(|r| inside(r.prefix)) {
            *out.counts6.entry(r.source.name().to_string()).or_default() += 1;
        }
        if !summary {
            let mut routes: Vec<(Ipv6Prefix, RouteEntry)> = v6
                .route_specs
                .iter()
                .filter(|r| inside(r.prefix))
                .map(|r| (r.prefix, route_entry6(t, r, true)))
                .chain(
                    v6.shadowed
                        .iter()
                        .filter(|r| inside(r.prefix))
                        .map(|r| (r.prefix, route_entry6(t, r, false))),
                )
                .collect();
            routes.sort_by_key(|(p, e)| (p.addr(), p.len(), !e.active));
            out.routes.extend(routes.into_iter().map(|(_, e)| e));
        }
    }
    out
}

/// The IPv4 routes of `route show`: `None` for none, `Some(None)` for all.
fn show4(t: &Tables, within: Option<Option<Ipv4Prefix>>, summary: bool) -> RouteShow {
    let mut out = RouteShow::default();
    let Some(within) = within else {
        return out;
    };
    let inside = |p: Ipv4Prefix| within.is_none_or(|w| p.len() >= w.len() && w.contains(p.addr()));
    for r in t.route_specs.iter().filter(|r| inside(r.prefix)) {
        *out.counts.entry(r.source.name().to_string()).or_default() += 1;
        if !summary {
            out.routes.push(route_entry(t, r, true));
        }
    }
    if !summary {
        out.routes.extend(
            t.shadowed
                .iter()
                .filter(|r| inside(r.prefix))
                .map(|r| route_entry(t, r, false)),
        );
        out.routes.sort_by_key(|e| {
            let p = parse_prefix(&e.prefix).unwrap_or(Ipv4Prefix::DEFAULT);
            (p.addr(), p.len(), !e.active)
        });
    }
    out
}

/// `route lookup` of `t`, for an IPv4 or IPv6 address.
pub fn lookup(t: &Tables, address: &str) -> Result<RouteLookup, String> {
    let a: IpAddr = address
        .parse()
        .map_err(|_| format!("{address:?} is not an IPv4 or IPv6 address"))?;
    let a = match a {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => {
            let a = u128::from(a);
            let route = (0..=128u8).rev().find_map(|len| {
                let p = Ipv6Prefix::new(a, len)?;
                t.v6.route_spec(p).map(|r| route_entry6(t, r, true))
            });
            return Ok(RouteLookup {
                address: address.to_string(),
                route,
            });
        }
    };
    let route = (0..=32u8).rev().find_map(|len| {
        let p = Ipv4Prefix::new(a, len)?;
        t.route_spec(p).map(|r| route_entry(t, r, true))
    });
    Ok(RouteLookup {
        address: address.to_string(),
        route,
    })
}

/// The paths of kernel routes, by prefix.
fn kernel_paths<'a>(
    t: &Tables,
    routes: impl Iterator<Item = &'a RouteSpec>,
) -> BTreeMap<(u32, u8), Vec<PathEntry>> {
    routes
        .filter(|r| matches!(r.source, RouteSource::Kernel { .. }))
        .map(|r| {
            let mut paths: Vec<PathEntry> = r.paths().map(|nh| path_entry(t, nh)).collect();
            paths.sort_by(|a, b| (&a.gateway, &a.interface).cmp(&(&b.gateway, &b.interface)));
            ((r.prefix.addr(), r.prefix.len()), paths)
        })
        .collect()
}

/// Compares the kernel's mapped routes with the kernel routes in `t`.
pub fn verify(t: &Tables, kernel: &[RouteSpec], skipped: Vec<SkippedEntry>) -> RouteVerify {
    let want = kernel_paths(t, kernel.iter());
    let have = kernel_paths(t, t.route_specs.iter().chain(t.shadowed.iter()));
    let mut differences = Vec::new();
    let text =
        |(a, l): (u32, u8)| prefix_text(Ipv4Prefix::new(a, l).unwrap_or(Ipv4Prefix::DEFAULT));
    for (k, w) in &want {
        match have.get(k) {
            Some(h) if h == w => {}
            h => differences.push(RouteDiff {
                prefix: text(*k),
                kernel: Some(w.clone()),
                dataplane: h.cloned(),
            }),
        }
    }
    for (k, h) in &have {
        if !want.contains_key(k) {
            differences.push(RouteDiff {
                prefix: text(*k),
                kernel: None,
                dataplane: Some(h.clone()),
            });
        }
    }
    RouteVerify {
        clean: differences.is_empty(),
        kernel_routes: want.len() as u64,
        dataplane_routes: have.len() as u64,
        differences,
        skipped,
    }
}

fn paths_text(paths: &[PathEntry]) -> String {
    let one = |p: &PathEntry| match (&p.gateway, &p.interface) {
        (Some(g), Some(i)) => format!("via {g} dev {i}"),
        (None, Some(i)) if p.kind == "local" => format!("local dev {i}"),
        (None, Some(i)) => format!("dev {i}"),
        _ => p.kind.clone(),
    };
    match paths {
        [p] => one(p),
        many => many
            .iter()
            .map(|p| format!("\n    nexthop {}", one(p)))
            .collect(),
    }
}

/// One line (more for ECMP) per route, as `ip route` prints them, with
/// the source.
pub fn route_line(e: &RouteEntry) -> String {
    let mut s = format!("{} {}", e.prefix, paths_text(&e.paths));
    let src = match &e.protocol {
        Some(p) => format!("{} proto {p}", e.source),
        None => e.source.clone(),
    };
    if e.paths.len() > 1 {
        // The source before the nexthops.
        let head = format!("{} {src}", e.prefix);
        s = format!("{head}{}", paths_text(&e.paths));
    } else {
        let _ = write!(s, " {src}");
    }
    if !e.active {
        let _ = write!(s, " (inactive: distance {})", e.distance);
    }
    s
}

/// `route show`'s text.
pub fn show_text(s: &RouteShow) -> String {
    let mut out = String::new();
    for e in &s.routes {
        let _ = writeln!(out, "{}", route_line(e));
    }
    let counts: Vec<String> = s.counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(
        out,
        "routes in use: {}",
        if counts.is_empty() {
            "none".into()
        } else {
            counts.join(", ")
        }
    );
    if !s.counts6.is_empty() {
        let counts: Vec<String> = s.counts6.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(out, "ipv6 routes in use: {}", counts.join(", "));
    }
    if let Some(k) = &s.kernel {
        let _ = writeln!(
            out,
            "kernel table {} ({}): {} route(s), {} message(s), {} resync(s), {} publish(es), last build {} us",
            k.table,
            k.protocols.join(", "),
            k.kernel_routes,
            k.messages,
            k.resyncs,
            k.publishes,
            k.last_build_us
        );
        for sk in &k.skipped {
            let _ = writeln!(
                out,
                "skipped {} proto {}: {} ({})",
                sk.prefix, sk.protocol, sk.reason, sk.detail
            );
        }
    }
    out
}

/// `route verify`'s text.
pub fn verify_text(v: &RouteVerify) -> String {
    let mut out = String::new();
    for d in &v.differences {
        let side = |p: &Option<Vec<PathEntry>>| match p {
            Some(p) => paths_text(p).replace('\n', " "),
            None => "absent".into(),
        };
        let _ = writeln!(
            out,
            "{}: kernel {} / dataplane {}",
            d.prefix,
            side(&d.kernel),
            side(&d.dataplane)
        );
    }
    for sk in &v.skipped {
        let _ = writeln!(
            out,
            "skipped {} proto {}: {} ({})",
            sk.prefix, sk.protocol, sk.reason, sk.detail
        );
    }
    let _ = writeln!(
        out,
        "{}: {} kernel route(s), {} in the dataplane, {} difference(s), {} skipped",
        if v.clean { "clean" } else { "DIFFERENT" },
        v.kernel_routes,
        v.dataplane_routes,
        v.differences.len(),
        v.skipped.len()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::addr::{IfAddr, Mac};
    use dataplane::packet::PortId;
    use dataplane::tables::{Interface, TablesSpec};

    fn p(s: &str) -> Ipv4Prefix {
        s.parse().unwrap()
    }

    fn via(port: u8, g: [u8; 4]) -> NextHop {
        NextHop::Via {
            port: PortId(port),
            gateway: u32::from(Ipv4Addr::from(g)),
        }
    }

    fn tables() -> Tables {
        let ifc = |name: &str, a: &str| Interface {
            name: name.into(),
            device: name.into(),
            mac: Mac::ZERO,
            addresses: vec![a.parse::<IfAddr>().unwrap()],
            addresses6: Vec::new(),
            mtu: 1500,
            ra: None,
        };
        let bird = RouteSource::Kernel { protocol: 12 };
        let mut ecmp = RouteSpec::new(p("198.51.100.0/24"), via(1, [198, 19, 0, 2]));
        ecmp.also.push(via(1, [198, 19, 0, 3]));
        Tables::build(TablesSpec {
            interfaces: vec![ifc("wan", "198.18.0.1/24"), ifc("lan", "198.19.0.1/24")],
            routes: vec![RouteSpec::new(p("203.0.113.0/24"), via(1, [198, 19, 0, 2]))],
            kernel_routes: vec![
                RouteSpec::new(p("203.0.113.0/24"), via(0, [198, 18, 0, 2])).with_source(bird),
                ecmp.with_source(bird),
            ],
            ..TablesSpec::default()
        })
    }

    #[test]
    fn show_gives_sources_ecmp_and_shadowed_routes_as_ip_route_does() {
        let t = tables();
        let s = show(&t, Some(Within::V4(p("198.51.100.0/23"))), false);
        let lines: Vec<String> = s.routes.iter().map(route_line).collect();
        assert_eq!(
            lines,
            ["198.51.100.0/24 kernel proto bird\n    nexthop via 198.19.0.2 dev lan\n    nexthop via 198.19.0.3 dev lan"]
        );
        let s = show(&t, Some(Within::V4(p("203.0.113.0/24"))), false);
        let lines: Vec<String> = s.routes.iter().map(route_line).collect();
        assert_eq!(
            lines,
            [
                "203.0.113.0/24 via 198.19.0.2 dev lan static",
                "203.0.113.0/24 via 198.18.0.2 dev wan kernel proto bird (inactive: distance 20)",
            ]
        );
        let all = show(&t, None, true);
        assert!(all.routes.is_empty());
        let counts: Vec<(&str, u64)> = all.counts.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            counts,
            [("connected", 2), ("kernel", 1), ("local", 2), ("static", 1)]
        );
        let l = lookup(&t, "198.51.100.9").unwrap();
        assert_eq!(l.route.unwrap().paths.len(), 2);
        assert!(lookup(&t, "192.0.2.1").unwrap().route.is_none());
        assert!(lookup(&t, "nope").is_err());
        assert_eq!(parse_prefix("203.0.113.7").unwrap(), p("203.0.113.7/32"));
        assert!(parse_prefix("203.0.113.0/33").is_err());
    }

    fn tables6() -> Tables {
        let ifc = |name: &str, a: &str, a6: &str| Interface {
            name: name.into(),
            device: name.into(),
            mac: Mac::ZERO,
            addresses: vec![a.parse::<IfAddr>().unwrap()],
            addresses6: vec![a6.parse().unwrap()],
            mtu: 1500,
            ra: None,
        };
        let v6 = |s: &str| u128::from(s.parse::<Ipv6Addr>().unwrap());
        let p6 = |s: &str| s.parse::<Ipv6Prefix>().unwrap();
        let mut spec = TablesSpec {
            interfaces: vec![
                ifc("wan", "198.18.0.1/24", "2001:db8::1/64"),
                ifc("lan", "198.19.0.1/24", "2001:db8:1::1/64"),
            ],
            ..TablesSpec::default()
        };
        spec.v6.routes = vec![
            RouteSpec6::new(
                Ipv6Prefix::DEFAULT,
                NextHop6::Via {
                    port: PortId(0),
                    gateway: v6("2001:db8::2"),
                },
            ),
            RouteSpec6::new(
                p6("2001:db8:5::/48"),
                NextHop6::Via {
                    port: PortId(1),
                    gateway: v6("fe80::2"),
                },
            ),
        ];
        spec.v6.kernel_routes = vec![RouteSpec6::new(
            p6("2001:db8:5::/48"),
            NextHop6::Via {
                port: PortId(0),
                gateway: v6("2001:db8::9"),
            },
        )
        .with_source(RouteSource::Kernel { protocol: 12 })];
        Tables::build(spec)
    }

    #[test]
    fn show_and_lookup_take_ipv6_routes() {
        let t = tables6();
        let s = show(&t, Some(parse_within("2001:db8:5::/48").unwrap()), false);
        let lines: Vec<String> = s.routes.iter().map(route_line).collect();
        assert_eq!(
            lines,
            [
                "2001:db8:5::/48 via fe80::2 dev lan static",
                "2001:db8:5::/48 via 2001:db8::9 dev wan kernel proto bird (inactive: distance 20)",
            ]
        );
        assert!(s.counts.is_empty(), "an IPv6 prefix shows no IPv4 route");
        let all = show(&t, None, false);
        let lines: Vec<String> = all.routes.iter().map(route_line).collect();
        for want in [
            "198.18.0.0/24 dev wan connected",
            "default via 2001:db8::2 dev wan static",
            "2001:db8::/64 dev wan connected",
            "2001:db8::1/128 local dev host local",
            "2001:db8:1::/64 dev lan connected",
        ] {
            assert!(lines.iter().any(|l| l == want), "{want} in {lines:#?}");
        }
        let counts: Vec<(&str, u64)> = all.counts6.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(counts, [("connected", 2), ("local", 2), ("static", 2)]);
        let text = show_text(&all);
        assert!(
            text.contains("ipv6 routes in use: connected 2, local 2, static 2"),
            "{text}"
        );
        let only4 = show(&t, Some(parse_within("198.18.0.0/16").unwrap()), true);
        assert!(only4.counts6.is_empty());

        let l = lookup(&t, "2001:db8:5::9").unwrap();
        let r = l.route.expect("a route");
        assert_eq!(
            (r.prefix.as_str(), route_line(&r).as_str()),
            (
                "2001:db8:5::/48",
                "2001:db8:5::/48 via fe80::2 dev lan static"
            )
        );
        let r = lookup(&t, "2001:db8:77::1").unwrap().route.unwrap();
        assert_eq!(r.prefix, "default");
        let r = lookup(&t, "2001:db8:1::1").unwrap().route.unwrap();
        assert_eq!(r.paths[0].kind, "local");
        assert!(parse_within("2001:db8::/129").is_err());
        assert_eq!(
            parse_within("2001:db8::7").unwrap(),
            Within::V6("2001:db8::7/128".parse().unwrap())
        );
    }

    #[test]
    fn verify_names_missing_extra_and_different_routes() {
        let t = tables();
        let bird = RouteSource::Kernel { protocol: 12 };
        // The kernel as the dataplane has it: clean (paths in any order).
        let mut same = RouteSpec::new(p("198.51.100.0/24"), via(1, [198, 19, 0, 3]));
        same.also.push(via(1, [198, 19, 0, 2]));
        let kernel = vec![
            RouteSpec::new(p("203.0.113.0/24"), via(0, [198, 18, 0, 2])).with_source(bird),
            same.clone().with_source(bird),
        ];
        let v = verify(&t, &kernel, vec![]);
        assert!(v.clean, "{v:?}");
        assert_eq!((v.kernel_routes, v.dataplane_routes), (2, 2));
        // One gone, one new, one with another gateway.
        let kernel = vec![
            RouteSpec::new(p("203.0.113.0/24"), via(0, [198, 18, 0, 9])).with_source(bird),
            RouteSpec::new(p("192.0.2.0/24"), via(0, [198, 18, 0, 2])).with_source(bird),
        ];
        let v = verify(&t, &kernel, vec![]);
        assert!(!v.clean);
        let diffs: Vec<(String, bool, bool)> = v
            .differences
            .iter()
            .map(|d| (d.prefix.clone(), d.kernel.is_some(), d.dataplane.is_some()))
            .collect();
        assert_eq!(
            diffs,
            [
                ("192.0.2.0/24".to_string(), true, false),
                ("203.0.113.0/24".to_string(), true, true),
                ("198.51.100.0/24".to_string(), false, true),
            ]
        );
        assert!(verify_text(&v).ends_with(
            "DIFFERENT: 2 kernel route(s), 2 in the dataplane, 3 difference(s), 0 skipped\n"
        ));
    }
}
