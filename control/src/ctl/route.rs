//! `routerctl route`: the dataplane's route table with each route's
//! source, a lookup, and the comparison with the kernel's table
//! (`kernel_routes`). The data of the `route` request and its text form.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use dataplane::addr::Ipv4Prefix;
use dataplane::tables::{NextHop, RouteSource, RouteSpec, Tables};
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
    /// `203.0.113.0/24`.
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
    /// Routes in use by source (of the routes shown).
    pub counts: BTreeMap<String, u64>,
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

/// `route show` of `t`.
pub fn show(t: &Tables, within: Option<Ipv4Prefix>, summary: bool) -> RouteShow {
    let inside = |p: Ipv4Prefix| within.is_none_or(|w| p.len() >= w.len() && w.contains(p.addr()));
    let mut out = RouteShow::default();
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

/// `route lookup` of `t`.
pub fn lookup(t: &Tables, address: &str) -> Result<RouteLookup, String> {
    let a: Ipv4Addr = address
        .parse()
        .map_err(|_| format!("{address:?} is not an IPv4 address"))?;
    let a = u32::from(a);
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
        let s = show(&t, Some(p("198.51.100.0/23")), false);
        let lines: Vec<String> = s.routes.iter().map(route_line).collect();
        assert_eq!(
            lines,
            ["198.51.100.0/24 kernel proto bird\n    nexthop via 198.19.0.2 dev lan\n    nexthop via 198.19.0.3 dev lan"]
        );
        let s = show(&t, Some(p("203.0.113.0/24")), false);
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
