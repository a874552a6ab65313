//! Decoding and validation of the whole file, section by section. Rules and
//! matches live in `rules.rs`.

use super::rules::{
    decode_capture_match, decode_chain, decode_raw, is_v6_text, parse_prefix, parse_prefix6,
    port_by_name, Ports,
};
use super::schema;
use super::yaml::{cut, error_at, quote, Val, R};
use super::{
    BindMode, Config, ConfigError, DataplaneSettings, KernelRoutesConfig, XdpMode, DEFAULT_SOCKET,
    DEFAULT_TUN, MAX_INTERFACES, RTPROT_ROUTERD,
};
use dataplane::addr::{IfAddr, IfAddr6, Ipv4Prefix, Ipv6Prefix, Mac};
use dataplane::conntrack::{ConntrackConfig, Timeouts};
use dataplane::packet::PortId;
use dataplane::tables::{
    IcmpErrorConfig, Interface, IpOptionsPolicy, NextHop, RouteSpec, StaticNeighbour, TablesSpec,
    MAX_PATHS,
};
use dataplane::tables6::{NextHop6, RaConfig, RaPrefix, RouteSpec6, Spec6, StaticNeighbour6};
use dataplane::wire::ipv6::AddrClass;
use marked_yaml::{parse_yaml_with_options, LoadError, LoaderOptions};
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// A capture's `--match` (a YAML/JSON flow mapping of rule match keys)
/// against the running config's interfaces; the error's `file` is left
/// empty for the caller.
pub(super) fn decode_match_text(text: &str, ifs: &[Interface]) -> R<dataplane::rules::Match> {
    if text.trim().is_empty() {
        return Ok(dataplane::rules::Match::default());
    }
    let opts = LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .prevent_coercion(true);
    let root = parse_yaml_with_options(0, text, opts).map_err(|e| match e {
        LoadError::TopLevelMustBeMapping(m) | LoadError::TopLevelMustBeSequence(m) => ConfigError {
            file: PathBuf::new(),
            line: m.line(),
            column: m.column(),
            path: String::new(),
            message: "not a mapping, expected match keys such as \
                          {protocol: tcp, destination_port: 22}"
                .into(),
        },
        e => load_error(e, text),
    })?;
    decode_capture_match(&Val::new(&root, "match"), &Ports::new(ifs))
}

/// `rtm_protocol` names of `kernel_routes.protocols` (iproute2's
/// `/etc/iproute2/rt_protos`).
pub(super) const RT_PROTOS: &[(&str, u8)] = &[
    ("redirect", 1),
    ("kernel", 2),
    ("boot", 3),
    ("static", 4),
    ("gated", 8),
    ("ra", 9),
    ("mrt", 10),
    ("zebra", 11),
    ("bird", 12),
    ("dnrouted", 13),
    ("xorp", 14),
    ("ntk", 15),
    ("dhcp", 16),
    ("keepalived", 18),
    ("babel", 42),
    ("openr", 99),
    ("bgp", 186),
    ("isis", 187),
    ("ospf", 188),
    ("rip", 189),
    ("eigrp", 192),
];

/// Parses and validates; the error's `file` is left empty for the caller.
pub(super) fn decode(text: &str, path: &Path) -> R<Config> {
    let opts = LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .prevent_coercion(true);
    let root = parse_yaml_with_options(0, text, opts).map_err(|e| load_error(e, text))?;
    let top = Val::new(&root, "").map(&schema::TOP)?;

    let (dataplane, ip_options) = match top.get("dataplane") {
        Some(v) => decode_dataplane(&v)?,
        None => (DataplaneSettings::default(), IpOptionsPolicy::Forward),
    };
    let control_socket = match top.get("control") {
        Some(v) => {
            let m = v.map(&schema::CONTROL)?;
            match m.get("socket") {
                Some(s) => {
                    let p = s.name("an absolute path for the control socket")?;
                    if !p.starts_with('/') {
                        return Err(s.err(format!(
                            "{} is a relative path, expected an absolute path such as {DEFAULT_SOCKET}", quote(p)
                        )));
                    }
                    PathBuf::from(p)
                }
                None => PathBuf::from(DEFAULT_SOCKET),
            }
        }
        None => PathBuf::from(DEFAULT_SOCKET),
    };
    let interfaces = decode_interfaces(&top.require("interfaces", "a list of interfaces")?)?;
    let tun = match top.get("host") {
        Some(v) => {
            let m = v.map(&schema::HOST)?;
            let enabled = m
                .get("enabled")
                .map(|v| v.bool())
                .transpose()?
                .unwrap_or(true);
            let tun = match m.get("tun") {
                Some(t) => {
                    let name = t.name("a TUN device name such as rtr0")?;
                    check_ifname(&t, name)?;
                    if let Some(i) = interfaces.iter().find(|i| i.device == name) {
                        return Err(t.err(format!(
                            "{} is the device of interface {}, expected a TUN device name of its own", quote(name),
                            i.name
                        )));
                    }
                    name.to_string()
                }
                None => DEFAULT_TUN.to_string(),
            };
            enabled.then_some(tun)
        }
        None => Some(DEFAULT_TUN.to_string()),
    };
    let metrics_listen = match top.get("metrics") {
        Some(v) => {
            let m = v.map(&schema::METRICS)?;
            match m.get("listen") {
                Some(l) => Some(l.parse::<SocketAddr>(
                    "a socket address",
                    "an address and port such as \"127.0.0.1:9477\"",
                )?),
                None => None,
            }
        }
        None => None,
    };
    let kernel_routes = match top.get("kernel_routes") {
        Some(v) => Some(decode_kernel_routes(&v)?),
        None => None,
    };
    let ports = Ports::new(&interfaces);
    let (routes, routes6) = match top.get("routes") {
        Some(v) => decode_routes(&v, &interfaces)?,
        None => Default::default(),
    };
    let (neighbours, neighbours6) = match top.get("neighbors") {
        Some(v) => decode_neighbours(&v, &interfaces)?,
        None => Default::default(),
    };
    let conntrack = match top.get("conntrack") {
        Some(v) => decode_conntrack(&v)?,
        None => ConntrackConfig::default(),
    };
    let icmp_errors = match top.get("icmp_errors") {
        Some(v) => {
            let m = v.map(&schema::ICMP_ERRORS)?;
            let d = IcmpErrorConfig::default();
            IcmpErrorConfig {
                rate: m
                    .get("rate")
                    .map(|v| v.int(1, 1_000_000))
                    .transpose()?
                    .map_or(d.rate, |n| n as u32),
                burst: m
                    .get("burst")
                    .map(|v| v.int(1, 1_000_000))
                    .transpose()?
                    .map_or(d.burst, |n| n as u32),
            }
        }
        None => IcmpErrorConfig::default(),
    };
    let (raw_prerouting, raw_output) = match top.get("raw") {
        Some(v) => decode_raw(&v, &ports)?,
        None => (Vec::new(), Vec::new()),
    };
    let (filter_input, filter_forward, filter_output) = match top.get("filter") {
        Some(v) => {
            let m = v.map(&schema::FILTER)?;
            use super::rules::Hook;
            let chain = |name: &str, hook: Hook| -> R<_> {
                Ok(match m.get(name) {
                    Some(c) => decode_chain(&c, hook, &ports)?,
                    None => Default::default(),
                })
            };
            (
                chain("input", Hook::Input)?,
                chain("forward", Hook::Forward)?,
                chain("output", Hook::Output)?,
            )
        }
        None => Default::default(),
    };
    Ok(Config {
        path: path.to_path_buf(),
        dataplane,
        control_socket,
        tun,
        metrics_listen,
        kernel_routes,
        spec: TablesSpec {
            interfaces,
            routes,
            kernel_routes: Vec::new(),
            neighbours,
            raw_prerouting,
            raw_output,
            filter_input,
            filter_forward,
            filter_output,
            conntrack,
            ip_options,
            icmp_errors,
            v6: Spec6 {
                routes: routes6,
                kernel_routes: Vec::new(),
                neighbours: neighbours6,
            },
        },
    })
}

fn load_error(e: LoadError, text: &str) -> ConfigError {
    let at = |m: &marked_yaml::Marker, message: String| ConfigError {
        file: PathBuf::new(),
        line: m.line(),
        column: m.column(),
        path: String::new(),
        message,
    };
    match e {
        LoadError::ScanError(m, se) => at(&m, format!("YAML syntax error: {}", se.info())),
        LoadError::TopLevelMustBeMapping(m) | LoadError::TopLevelMustBeSequence(m) => at(
            &m,
            "the file is not a mapping, expected top-level keys such as interfaces:".into(),
        ),
        LoadError::UnexpectedAnchor(m) => at(
            &m,
            "YAML anchors and aliases are not supported, expected plain values".into(),
        ),
        LoadError::MappingKeyMustBeScalar(m) => at(
            &m,
            "a mapping key must be a plain word, expected key: value".into(),
        ),
        LoadError::UnexpectedTag(m) => at(
            &m,
            "YAML tags (!x) are not supported, expected plain values".into(),
        ),
        LoadError::DuplicateKey(d) => {
            let first = d.prev_key.span().start().map_or(0, |m| m.line());
            let node = marked_yaml::Node::Scalar(d.key.clone());
            let mut err = error_at(
                &node,
                "",
                format!(
                    "duplicate key {} (first at line {first}), expected each key once",
                    quote(d.key.as_str())
                ),
            );
            // The loader does not know paths: find the first key in a
            // lenient parse, where it survives, and take its path from there.
            let lenient = LoaderOptions::default().prevent_coercion(true);
            let at = d.prev_key.span().start().copied();
            err.path = parse_yaml_with_options(0, text, lenient)
                .ok()
                .and_then(|root| at.and_then(|at| key_path(&root, "", &at)))
                .unwrap_or_else(|| cut(d.key.as_str()));
            err
        }
    }
}

/// The field path of the mapping key that starts at `at`.
fn key_path(node: &marked_yaml::Node, path: &str, at: &marked_yaml::Marker) -> Option<String> {
    use marked_yaml::Node;
    match node {
        Node::Scalar(_) => None,
        Node::Mapping(m) => m.iter().find_map(|(k, v)| {
            let p = if path.is_empty() {
                cut(k.as_str())
            } else {
                format!("{path}.{}", cut(k.as_str()))
            };
            if k.span().start() == Some(at) {
                Some(p)
            } else {
                key_path(v, &p, at)
            }
        }),
        Node::Sequence(s) => s
            .iter()
            .enumerate()
            .find_map(|(i, v)| key_path(v, &format!("{path}[{i}]"), at)),
    }
}

fn decode_dataplane(v: &Val) -> R<(DataplaneSettings, IpOptionsPolicy)> {
    let m = v.map(&schema::DATAPLANE)?;
    let mut d = DataplaneSettings::default();
    if let Some(w) = m.get("workers") {
        let items = w.seq("a list of cores such as [0, 1]")?;
        if items.is_empty() {
            return Err(w.err("empty list, expected at least one core such as [0]"));
        }
        let mut cores: Vec<usize> = Vec::with_capacity(items.len());
        for it in &items {
            let c = it.int(0, 4095)? as usize;
            if cores.contains(&c) {
                let mut e = it.err(format!(
                    "overlapping cores: core {c} is listed twice, expected one worker per core"
                ));
                e.path = w.path.clone();
                return Err(e);
            }
            cores.push(c);
        }
        d.workers = cores;
    }
    if let Some(b) = m.get("burst") {
        d.burst = b.int(1, 256)? as u16;
    }
    if let Some(u) = m.get("umem_frames") {
        let n = u.int(1, 1 << 20)?;
        if !n.is_power_of_two() || n < 512 {
            return Err(u.err(format!(
                "{n} frames, expected a power of two from 512 to 1048576 (16384 is the default)"
            )));
        }
        d.umem_frames = n as u32;
    }
    // Fill, RX, TX and completion rings each hold up to a burst in flight.
    if u64::from(d.umem_frames) < 4 * u64::from(d.burst) {
        let at = m.get("umem_frames").unwrap_or_else(|| m.val.clone());
        return Err(at.err(format!(
            "{} umem frames cannot hold 4 bursts of {}, expected at least {}",
            d.umem_frames,
            d.burst,
            (4 * u64::from(d.burst)).next_power_of_two().max(512)
        )));
    }
    if let Some(x) = m.get("xdp_mode") {
        d.xdp_mode = x.word(&[("native", XdpMode::Native), ("generic", XdpMode::Generic)])?;
    }
    if let Some(x) = m.get("xdp_bind") {
        d.xdp_bind = x.word(&[
            ("auto", BindMode::Auto),
            ("copy", BindMode::Copy),
            ("zerocopy", BindMode::ZeroCopy),
        ])?;
    }
    if let Some(b) = m.get("busy_poll") {
        d.busy_poll = b.bool()?;
    }
    let ip_options = match m.get("ip_options") {
        Some(v) => v.word(&[
            ("forward", IpOptionsPolicy::Forward),
            ("drop", IpOptionsPolicy::Drop),
        ])?,
        None => IpOptionsPolicy::Forward,
    };
    Ok((d, ip_options))
}

/// Linux `dev_valid_name`: 1 to 15 bytes, no `/`, `:` or white space.
fn check_ifname(v: &Val, name: &str) -> R<()> {
    if name.len() > 15
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(v.err(format!(
            "{} is not a valid Linux device name, expected 1 to 15 characters without '/', ':' or spaces", quote(name)
        )));
    }
    Ok(())
}

fn decode_interfaces(v: &Val) -> R<Vec<Interface>> {
    let items = v.seq("a list of interfaces")?;
    if items.is_empty() {
        return Err(v.err("no interfaces, expected at least one"));
    }
    if items.len() > MAX_INTERFACES {
        return Err(items[MAX_INTERFACES].err(format!(
            "{} interfaces, expected at most {MAX_INTERFACES}",
            items.len()
        )));
    }
    let mut out: Vec<Interface> = Vec::with_capacity(items.len());
    let mut lines: Vec<(usize, usize)> = Vec::new();
    let mut addr_at: HashMap<u32, (String, usize)> = HashMap::new();
    let mut addr6_at = Seen6::default();
    for it in &items {
        let m = it.map(&schema::INTERFACE)?;
        let nv = m.require("name", "the name rules and routes use, such as wan")?;
        let name = nv.name("an interface name such as wan")?;
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            || name.len() > 32
        {
            return Err(nv.err(format!(
                "{} is not a valid interface name, expected up to 32 letters, digits, '-', '_' or '.'", quote(name)
            )));
        }
        if name == "host" || name == "local" {
            return Err(nv.err(format!(
                "{} is reserved in rules, expected another interface name",
                quote(name)
            )));
        }
        let dv = m.require("device", "the kernel device to take over, such as eth0")?;
        let device = dv.name("a Linux device name such as eth0")?;
        check_ifname(&dv, device)?;
        for (j, prev) in out.iter().enumerate() {
            if prev.name == name {
                return Err(nv.err(format!(
                    "duplicate interface name {} (also interfaces[{j}] at line {}), expected a unique name", quote(name),
                    lines[j].0
                )));
            }
            if prev.device == device {
                return Err(dv.err(format!(
                    "duplicate device {} (also interfaces[{j}] at line {}), expected each device once", quote(device),
                    lines[j].1
                )));
            }
        }
        let mut addresses = Vec::new();
        let mut addresses6: Vec<IfAddr6> = Vec::new();
        if let Some(av) = m.get("addresses") {
            for a in av.one_or_many() {
                let s = a.str("an address with its prefix length such as 198.18.0.1/24")?;
                if is_v6_text(s) {
                    let ifa = interface_address6(&a, s, name, &mut addr6_at)?;
                    addresses6.push(ifa);
                    continue;
                }
                let ifa: IfAddr = a.parse(
                    "an interface address",
                    "an address with its prefix length such as 198.18.0.1/24 or 2001:db8::1/64",
                )?;
                if ifa.net.len() < 31
                    && (ifa.addr == ifa.net.addr() || ifa.addr == ifa.net.broadcast())
                {
                    return Err(a.err(format!(
                        "{} is the network or broadcast address of {}, expected a host address in it", quote(s),
                        ifa.net
                    )));
                }
                if let Some((other, line)) = addr_at.get(&ifa.addr) {
                    return Err(a.err(format!(
                        "address {} is already on interface {other} (line {line}), expected each address once",
                        Ipv4Addr::from(ifa.addr)
                    )));
                }
                addr_at.insert(ifa.addr, (name.to_string(), a.line()));
                addresses.push(ifa);
            }
        }
        let mtu = match m.get("mtu") {
            Some(v) => v.int(68, 9000)? as u16,
            None => 1500,
        };
        let ra = match m.get("router_advertisements") {
            Some(v) => decode_ra(&v, &addresses6)?,
            None => None,
        };
        lines.push((nv.line(), dv.line()));
        out.push(Interface {
            name: name.to_string(),
            device: device.to_string(),
            mac: Mac::ZERO,
            addresses,
            addresses6,
            mtu,
            ra,
        });
    }
    Ok(out)
}

/// Where each IPv6 address and on-link prefix already is: (address or
/// prefix, interface, line).
#[derive(Default)]
struct Seen6 {
    addrs: Vec<(IfAddr6, String, usize)>,
}

/// One IPv6 interface address, checked against those already seen.
fn interface_address6(a: &Val, s: &str, ifname: &str, seen: &mut Seen6) -> R<IfAddr6> {
    let ifa: IfAddr6 = s.parse().map_err(|e: dataplane::addr::ParseAddrError| {
        a.err(format!(
            "{} is not an interface address, expected {e}",
            quote(s)
        ))
    })?;
    let what = match AddrClass::of(ifa.addr) {
        AddrClass::LinkLocal => Some(
            "is link-local: each port's link-local address comes from its MAC (fe80::/64, \
             EUI-64) and is not configured",
        ),
        AddrClass::Multicast(_) => Some("is a multicast address"),
        AddrClass::Unspecified => Some("is the unspecified address"),
        AddrClass::Loopback => Some("is the loopback address"),
        AddrClass::Ipv4Mapped => Some("is an IPv4-mapped address (write IPv4 addresses as such)"),
        AddrClass::UniqueLocal | AddrClass::Global => None,
    };
    if let Some(what) = what {
        return Err(a.err(format!(
            "{} {what}, expected a global or unique local address such as 2001:db8::1/64",
            quote(s)
        )));
    }
    // RFC 4291 2.6.1: the all-zero interface id is the Subnet-Router anycast
    // address (RFC 6164 allows it on /127 links).
    if ifa.net.len() < 127 && ifa.addr == ifa.net.addr() {
        return Err(a.err(format!(
            "{} is the Subnet-Router anycast address of {} (RFC 4291 2.6.1), expected a host address in it",
            quote(s),
            ifa.net
        )));
    }
    for (prev, other, line) in &seen.addrs {
        if prev.addr == ifa.addr {
            return Err(a.err(format!(
                "address {} is already on interface {other} (line {line}), expected each address once",
                Ipv6Addr::from(ifa.addr)
            )));
        }
        let overlap = prev.net.contains(ifa.net.addr()) || ifa.net.contains(prev.net.addr());
        if overlap && other != ifname {
            return Err(a.err(format!(
                "on-link prefix {} overlaps {} of interface {other} (line {line}), expected \
                 on-link prefixes of different interfaces apart",
                ifa.net, prev.net
            )));
        }
    }
    seen.addrs.push((ifa, ifname.to_string(), a.line()));
    Ok(ifa)
}

/// RFC 4861 6.2.1: default lifetimes of an announced prefix.
const RA_VALID: u32 = 2_592_000;
const RA_PREFERRED: u32 = 604_800;

/// `router_advertisements: true` or its map (RFC 4861 6.2.1's variables).
fn decode_ra(v: &Val, addrs: &[IfAddr6]) -> R<Option<RaConfig>> {
    let m = if v.is_map() {
        Some(v.map(&schema::RA)?)
    } else {
        if !v.bool()? {
            return Ok(None);
        }
        None
    };
    if addrs.is_empty() {
        return Err(v.err(
            "this interface has no IPv6 address, expected an IPv6 address in addresses \
             (such as 2001:db8:1::1/64) to advertise",
        ));
    }
    let mut ra = RaConfig::default();
    let default_prefix = |net: Ipv6Prefix| RaPrefix {
        prefix: net,
        valid_lifetime: RA_VALID,
        preferred_lifetime: RA_PREFERRED,
        on_link: true,
        autonomous: true,
    };
    ra.prefixes = addrs
        .iter()
        .filter(|a| a.net.len() == 64)
        .map(|a| default_prefix(a.net))
        .collect();
    ra.prefixes.dedup();
    let Some(m) = m else {
        return Ok(Some(ra));
    };
    // RFC 4861 6.2.1: MaxRtrAdvInterval 4..=1800, AdvDefaultLifetime 0 or
    // MaxRtrAdvInterval..=9000.
    if let Some(i) = m.get("interval") {
        ra.interval = i.int(4, 1800)? as u32;
    }
    if let Some(l) = m.get("router_lifetime") {
        let n = l.int(0, 9000)?;
        if n != 0 && n < u64::from(ra.interval) {
            return Err(l.err(format!(
                "a router lifetime of {n} s is shorter than the interval ({} s): hosts would \
                 drop the router between advertisements, expected 0 (not a default router) \
                 or {} to 9000",
                ra.interval, ra.interval
            )));
        }
        ra.router_lifetime = n as u16;
    }
    if let Some(h) = m.get("hop_limit") {
        ra.hop_limit = h.int(0, 255)? as u8;
    }
    for (key, slot) in [
        ("managed", &mut ra.managed),
        ("other", &mut ra.other),
        ("mtu", &mut ra.mtu),
    ] {
        if let Some(b) = m.get(key) {
            *slot = b.bool()?;
        }
    }
    if let Some(pv) = m.get("prefixes") {
        let mut out: Vec<RaPrefix> = Vec::new();
        for it in pv.seq("a list of on-link prefixes such as [2001:db8:1::/64]")? {
            let (pval, pm) = if it.is_map() {
                let pm = it.map(&schema::RA_PREFIX)?;
                (
                    pm.require("prefix", "an on-link prefix such as 2001:db8:1::/64")?,
                    Some(pm),
                )
            } else {
                (it.clone(), None)
            };
            let prefix = parse_prefix6(&pval)?;
            if !addrs.iter().any(|a| a.net == prefix) {
                let nets: Vec<String> = addrs.iter().map(|a| a.net.to_string()).collect();
                return Err(pval.err(format!(
                    "{prefix} is not an on-link prefix of this interface, expected one of {}",
                    nets.join(", ")
                )));
            }
            if out.iter().any(|p| p.prefix == prefix) {
                return Err(pval.err(format!(
                    "prefix {prefix} is listed twice, expected each prefix once"
                )));
            }
            let mut p = default_prefix(prefix);
            if let Some(pm) = &pm {
                if let Some(x) = pm.get("valid_lifetime") {
                    p.valid_lifetime = lifetime(&x)?;
                }
                if let Some(x) = pm.get("preferred_lifetime") {
                    p.preferred_lifetime = lifetime(&x)?;
                }
                if let Some(x) = pm.get("on_link") {
                    p.on_link = x.bool()?;
                }
                if let Some(x) = pm.get("autonomous") {
                    p.autonomous = x.bool()?;
                }
                if p.preferred_lifetime > p.valid_lifetime {
                    let at = pm
                        .get("preferred_lifetime")
                        .unwrap_or_else(|| pm.val.clone());
                    return Err(at.err(format!(
                        "preferred lifetime {} is longer than the valid lifetime {} \
                         (RFC 4862 5.5.3), expected at most the valid lifetime",
                        lifetime_text(p.preferred_lifetime),
                        lifetime_text(p.valid_lifetime)
                    )));
                }
            }
            // RFC 4862 5.5.3 (d): SLAAC forms 64-bit interface ids.
            if p.autonomous && prefix.len() != 64 {
                let at = pm
                    .as_ref()
                    .and_then(|pm| pm.get("autonomous"))
                    .unwrap_or_else(|| pval.clone());
                return Err(at.err(format!(
                    "{prefix} is not a /64: hosts cannot form addresses in it (SLAAC needs \
                     64-bit interface ids), expected a /64 or autonomous: false"
                )));
            }
            out.push(p);
        }
        ra.prefixes = out;
    }
    Ok(Some(ra))
}

/// A prefix lifetime: seconds or `infinity` (RFC 4861 4.6.2: all ones).
fn lifetime(v: &Val) -> R<u32> {
    if v.str("seconds or infinity")? == "infinity" {
        return Ok(u32::MAX);
    }
    Ok(v.int(0, u64::from(u32::MAX))? as u32)
}

/// A lifetime as the config writes it.
pub(super) fn lifetime_text(secs: u32) -> String {
    if secs == u32::MAX {
        "infinity".into()
    } else {
        format!("{secs} s")
    }
}

/// The port whose connected network holds `ip`, or an error naming them.
fn connected_port(v: &Val, ip: u32, what: &str, ifs: &[Interface]) -> R<PortId> {
    for (i, ifc) in ifs.iter().enumerate() {
        if ifc.addresses.iter().any(|a| a.addr == ip) {
            return Err(v.err(format!(
                "{} is the router's own address on {}, expected {what}",
                Ipv4Addr::from(ip),
                ifc.name
            )));
        }
        if ifc.addresses.iter().any(|a| a.net.contains(ip)) {
            return Ok(PortId(i as u8));
        }
    }
    let nets: Vec<String> = ifs
        .iter()
        .flat_map(|i| {
            i.addresses
                .iter()
                .map(move |a| format!("{} {}", i.name, a.net))
        })
        .collect();
    let nets = if nets.is_empty() {
        "none: no interface has an address".to_string()
    } else {
        nets.join(", ")
    };
    Err(v.err(format!(
        "{} is on no connected network, expected {what} (connected: {nets})",
        Ipv4Addr::from(ip)
    )))
}

/// The port whose on-link prefix holds the IPv6 address `ip`, or an
/// error naming them.
fn connected_port6(v: &Val, ip: u128, what: &str, ifs: &[Interface]) -> R<PortId> {
    for ifc in ifs {
        if ifc.addresses6.iter().any(|a| a.addr == ip) {
            return Err(v.err(format!(
                "{} is the router's own address on {}, expected {what}",
                Ipv6Addr::from(ip),
                ifc.name
            )));
        }
    }
    // The longest on-link prefix holding it, as the route lookup would.
    let best = (ifs.iter().enumerate())
        .flat_map(|(i, ifc)| ifc.addresses6.iter().map(move |a| (i, a.net)))
        .filter(|(_, n)| n.contains(ip))
        .max_by_key(|(_, n)| n.len());
    if let Some((i, _)) = best {
        return Ok(PortId(i as u8));
    }
    let nets: Vec<String> = ifs
        .iter()
        .flat_map(|i| {
            i.addresses6
                .iter()
                .map(move |a| format!("{} {}", i.name, a.net))
        })
        .collect();
    let nets = if nets.is_empty() {
        "none: no interface has an IPv6 address".to_string()
    } else {
        nets.join(", ")
    };
    Err(v.err(format!(
        "{} is on no on-link prefix, expected {what} (on-link: {nets})",
        Ipv6Addr::from(ip)
    )))
}

/// An IPv6 gateway or neighbour address: a global one gives its port from
/// the on-link prefixes (and `interface`, if given, must agree), a
/// link-local one needs `interface`.
fn ipv6_on_link(av: &Val, iface: Option<&Val>, what: &str, ifs: &[Interface]) -> R<(u128, PortId)> {
    let ip: Ipv6Addr = av.parse("an IPv6 address", "an address such as 2001:db8::2")?;
    let addr = u128::from(ip);
    let named = match iface {
        Some(i) => Some((i, port_by_name(i, i.name("an interface name")?, ifs)?)),
        None => None,
    };
    match AddrClass::of(addr) {
        AddrClass::LinkLocal => {
            let Some((_, port)) = named else {
                return Err(av.err(format!(
                    "{ip} is link-local: a link-local {what} needs `interface`, expected \
                     interface: NAME next to it (the link it is on)"
                )));
            };
            Ok((addr, port))
        }
        AddrClass::Global | AddrClass::UniqueLocal => {
            let port = connected_port6(av, addr, &format!("a {what} on an on-link prefix"), ifs)?;
            if let Some((i, p)) = named {
                if p != port {
                    return Err(i.err(format!(
                        "{ip} is on-link on interface {}, not on {}, expected interface: {} \
                         or no interface",
                        ifs[port.0 as usize].name,
                        ifs[p.0 as usize].name,
                        ifs[port.0 as usize].name
                    )));
                }
            }
            Ok((addr, port))
        }
        _ => Err(av.err(format!(
            "{ip} is not a unicast address, expected a {what}'s global or link-local address"
        ))),
    }
}

/// Whether a route is IPv6: its `to` is written as IPv6, or it is
/// `default` with an IPv6 gateway.
fn route_is_v6(m: &super::yaml::Map, to: &str) -> bool {
    if to != "default" {
        return is_v6_text(to);
    }
    let Some(via) = m.get("via") else {
        return false;
    };
    let first = via.one_or_many().into_iter().next();
    first.is_some_and(|g| g.str("").is_ok_and(is_v6_text))
}

fn decode_route6(
    m: &super::yaml::Map,
    tv: &Val,
    ifs: &[Interface],
    seen: &mut HashMap<Ipv6Prefix, usize>,
) -> R<RouteSpec6> {
    let prefix = parse_prefix6(tv)?;
    if let Some(line) = seen.get(&prefix) {
        return Err(tv.err(format!(
            "duplicate route to {prefix} (first at line {line}), expected each prefix once"
        )));
    }
    for ifc in ifs {
        if ifc.addresses6.iter().any(|a| a.net == prefix) {
            return Err(tv.err(format!(
                "{prefix} is the on-link prefix of interface {}, expected a prefix that is not already on-link",
                ifc.name
            )));
        }
    }
    seen.insert(prefix, tv.line());
    let expected = "exactly one of via (with interface for a link-local gateway), interface, \
                    blackhole: true or unreachable: true";
    let via = m.get("via");
    let iface = m.get("interface");
    let others: Vec<Val> = ["blackhole", "unreachable"]
        .iter()
        .filter_map(|k| m.get(k))
        .collect();
    let targets = usize::from(via.is_some() || iface.is_some()) + others.len();
    if targets == 0 {
        return Err(m.err(format!(
            "route to {prefix} has no target, expected {expected}"
        )));
    }
    if targets > 1 {
        let second = if via.is_some() || iface.is_some() {
            &others[0]
        } else {
            &others[1]
        };
        return Err(second.err(format!(
            "route to {prefix} has {targets} targets, expected {expected}"
        )));
    }
    let next_hop = if let Some(g) = via {
        let g = if g.is_seq() {
            let gws = g.seq("a list of gateway addresses")?;
            match gws.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(
                        g.err("empty list of gateways, expected at least one gateway address")
                    )
                }
                [_, second, ..] => {
                    return Err(second.err(
                        "equal-cost paths (several gateways) are not supported for IPv6 yet, \
                         expected one gateway",
                    ))
                }
            }
        } else {
            g
        };
        let s = g.str("a gateway address such as 2001:db8::2")?;
        if !is_v6_text(s) {
            return Err(g.err(format!(
                "{} is an IPv4 gateway for the IPv6 prefix {prefix}, expected an IPv6 gateway \
                 such as 2001:db8::2 (a route is of one family)",
                quote(s)
            )));
        }
        let (gateway, port) = ipv6_on_link(&g, iface.as_ref(), "gateway", ifs)?;
        NextHop6::Via { port, gateway }
    } else if let Some(i) = iface {
        NextHop6::Connected(port_by_name(&i, i.name("an interface name")?, ifs)?)
    } else {
        let t = &others[0];
        let k = t.path.rsplit('.').next().unwrap_or("");
        if !t.bool()? {
            return Err(t.err(format!(
                "{k}: false does not say where the route goes, expected {k}: true or another target"
            )));
        }
        if k == "blackhole" {
            NextHop6::Blackhole
        } else {
            NextHop6::Unreachable
        }
    };
    Ok(RouteSpec6::new(prefix, next_hop))
}

fn decode_routes(v: &Val, ifs: &[Interface]) -> R<(Vec<RouteSpec>, Vec<RouteSpec6>)> {
    let mut out: Vec<RouteSpec> = Vec::new();
    let mut out6: Vec<RouteSpec6> = Vec::new();
    let mut seen: HashMap<Ipv4Prefix, usize> = HashMap::new();
    let mut seen6: HashMap<Ipv6Prefix, usize> = HashMap::new();
    for it in v.seq("a list of routes")? {
        let m = it.map(&schema::ROUTE)?;
        let tv = m.require(
            "to",
            "a destination prefix such as 203.0.113.0/24, 2001:db8:5::/48 or default",
        )?;
        if route_is_v6(&m, tv.str("a destination prefix")?) {
            out6.push(decode_route6(&m, &tv, ifs, &mut seen6)?);
            continue;
        }
        let prefix: Ipv4Prefix = parse_prefix(&tv)?;
        if let Some(line) = seen.get(&prefix) {
            return Err(tv.err(format!(
                "duplicate route to {prefix} (first at line {line}), expected each prefix once"
            )));
        }
        for ifc in ifs {
            if ifc.addresses.iter().any(|a| a.net == prefix) {
                return Err(tv.err(format!(
                    "{prefix} is the connected network of interface {}, expected a prefix that is not already connected",
                    ifc.name
                )));
            }
        }
        seen.insert(prefix, tv.line());
        let targets: Vec<Val> = ["via", "interface", "blackhole", "unreachable"]
            .iter()
            .filter_map(|k| m.get(k))
            .collect();
        let expected = "exactly one of via, interface, blackhole: true or unreachable: true";
        let mut paths: Vec<NextHop> = Vec::new();
        let next_hop = match targets.as_slice() {
            [] => {
                return Err(m.err(format!(
                    "route to {prefix} has no target, expected {expected}"
                )))
            }
            [t] => {
                let key = t.path.rsplit('.').next().unwrap_or("");
                match key {
                    "via" => {
                        // One gateway, or a list of them: equal-cost paths.
                        let gws = if t.is_seq() {
                            t.seq("a list of gateway addresses")?
                        } else {
                            vec![t.clone()]
                        };
                        if gws.is_empty() {
                            return Err(t.err(
                                "empty list of gateways, expected at least one gateway address",
                            ));
                        }
                        if gws.len() > MAX_PATHS {
                            return Err(t.err(format!(
                                "{} gateways, expected at most {MAX_PATHS}",
                                gws.len()
                            )));
                        }
                        for g in gws {
                            if g.str("").is_ok_and(is_v6_text) {
                                return Err(g.err(format!(
                                    "{} is an IPv6 gateway for the IPv4 prefix {prefix}, expected \
                                     an IPv4 gateway such as 198.18.0.2 (a route is of one family)",
                                    quote(g.str("")?)
                                )));
                            }
                            let gw: Ipv4Addr =
                                g.parse("an IPv4 address", "a gateway address such as 198.18.0.2")?;
                            let gateway = u32::from(gw);
                            let port = connected_port(
                                &g,
                                gateway,
                                "a gateway on a connected network",
                                ifs,
                            )?;
                            let nh = NextHop::Via { port, gateway };
                            if paths.contains(&nh) {
                                return Err(g.err(format!(
                                    "gateway {gw} is listed twice, expected each gateway once"
                                )));
                            }
                            paths.push(nh);
                        }
                        paths.remove(0)
                    }
                    "interface" => {
                        let name = t.name("an interface name")?;
                        NextHop::Connected(port_by_name(t, name, ifs)?)
                    }
                    k => {
                        if !t.bool()? {
                            return Err(t.err(format!(
                                "{k}: false does not say where the route goes, expected {k}: true or another target"
                            )));
                        }
                        if k == "blackhole" {
                            NextHop::Blackhole
                        } else {
                            NextHop::Unreachable
                        }
                    }
                }
            }
            [_, second, ..] => {
                return Err(second.err(format!(
                    "route to {prefix} has {} targets, expected {expected}",
                    targets.len()
                )))
            }
        };
        let mut r = RouteSpec::new(prefix, next_hop);
        r.also = paths;
        out.push(r);
    }
    Ok((out, out6))
}

fn decode_kernel_routes(v: &Val) -> R<KernelRoutesConfig> {
    let m = v.map(&schema::KERNEL_ROUTES)?;
    let table = match m.get("table") {
        Some(t) => match t.str("main or a table number from 1 to 4294967295")? {
            "main" => 254,
            _ => {
                let n = t.int(1, u64::from(u32::MAX))? as u32;
                if n == 255 {
                    return Err(t.err(
                        "table 255 is the kernel's local table, expected main or another table number",
                    ));
                }
                n
            }
        },
        None => 254,
    };
    let protocols = match m.get("protocols") {
        Some(p) => {
            let mut out: Vec<u8> = Vec::new();
            let names: Vec<&str> = RT_PROTOS.iter().map(|(n, _)| *n).collect();
            for it in p.seq("a list of route protocols such as [bgp, bird, zebra]")? {
                let word = it.str("a route protocol name or number")?;
                let proto = match word.parse::<u64>() {
                    Ok(_) => it.int(0, 255)? as u8,
                    Err(_) => match RT_PROTOS.iter().find(|(n, _)| *n == word) {
                        Some((_, n)) => *n,
                        None => {
                            let hint = match super::yaml::suggest(word, names.iter().copied()) {
                                Some(c) => format!(" (did you mean {c}?)"),
                                None => String::new(),
                            };
                            return Err(it.err(format!(
                                "{word:?} is not a route protocol{hint}, expected a number \
                                 0-255 or one of {}",
                                names.join(", ")
                            )));
                        }
                    },
                };
                if proto == RTPROT_ROUTERD {
                    return Err(it.err(format!(
                        "protocol {proto} marks routerd's own host-path routes, which are never \
                         mirrored, expected another protocol"
                    )));
                }
                if out.contains(&proto) {
                    return Err(it.err(format!(
                        "protocol {word} is listed twice, expected each protocol once"
                    )));
                }
                out.push(proto);
            }
            if out.is_empty() {
                return Err(p.err(
                    "empty list, expected route protocols such as [bgp, bird, zebra] (or leave \
                     protocols out for all but kernel)",
                ));
            }
            Some(out)
        }
        None => None,
    };
    Ok(KernelRoutesConfig { table, protocols })
}

fn decode_neighbours(
    v: &Val,
    ifs: &[Interface],
) -> R<(Vec<StaticNeighbour>, Vec<StaticNeighbour6>)> {
    let mut out: Vec<StaticNeighbour> = Vec::new();
    let mut out6: Vec<StaticNeighbour6> = Vec::new();
    let mut seen: HashMap<u32, usize> = HashMap::new();
    let mut seen6: HashMap<(u128, PortId), usize> = HashMap::new();
    for it in v.seq("a list of neighbours")? {
        let m = it.map(&schema::NEIGHBOUR)?;
        let av = m.require(
            "address",
            "the neighbour's address such as 198.19.0.2 or 2001:db8:1::2",
        )?;
        let v6 = is_v6_text(av.str("an address such as 198.19.0.2")?);
        let iface = m.get("interface");
        let (key4, key6) = if v6 {
            let (addr, port) = ipv6_on_link(&av, iface.as_ref(), "neighbour", ifs)?;
            if let Some(line) = seen6.get(&(addr, port)) {
                return Err(av.err(format!(
                    "duplicate neighbour {} (first at line {line}), expected each address once",
                    Ipv6Addr::from(addr)
                )));
            }
            (None, Some((addr, port)))
        } else {
            let ip: Ipv4Addr = av.parse("an IPv4 address", "an address such as 198.19.0.2")?;
            let addr = u32::from(ip);
            if let Some(line) = seen.get(&addr) {
                return Err(av.err(format!(
                    "duplicate neighbour {ip} (first at line {line}), expected each address once"
                )));
            }
            if let Some(i) = iface {
                return Err(i.err(
                    "interface is for link-local IPv6 neighbours, expected no interface (an \
                     IPv4 neighbour's interface is the one whose connected network holds it)",
                ));
            }
            let port = connected_port(&av, addr, "a neighbour on a connected network", ifs)?;
            (Some((addr, port)), None)
        };
        let mv = m.require("mac", "its MAC address such as \"02:00:00:00:00:02\"")?;
        let s = mv.str("a MAC address")?;
        let mac: Mac = s
            .parse()
            .map_err(|e| mv.err(format!("{} is not a MAC address, expected {e}", quote(s))))?;
        if mac == Mac::ZERO || mac.0[0] & 1 == 1 {
            return Err(mv.err(format!(
                "{mac} is a zero, broadcast or multicast MAC, expected a unicast MAC such as 02:00:00:00:00:02"
            )));
        }
        if let Some((addr, port)) = key4 {
            seen.insert(addr, av.line());
            out.push(StaticNeighbour { addr, mac, port });
        }
        if let Some((addr, port)) = key6 {
            seen6.insert((addr, port), av.line());
            out6.push(StaticNeighbour6 { addr, mac, port });
        }
    }
    Ok((out, out6))
}

fn decode_conntrack(v: &Val) -> R<ConntrackConfig> {
    let m = v.map(&schema::CONNTRACK)?;
    let mut c = ConntrackConfig::default();
    if let Some(v) = m.get("max_entries") {
        c.max_entries = v.int(1, 16 * 1024 * 1024)? as u32;
    }
    if let Some(v) = m.get("tcp_loose") {
        c.tcp_loose = v.bool()?;
    }
    if let Some(v) = m.get("timeouts") {
        let tm = v.map(&schema::TIMEOUTS)?;
        let t: &mut Timeouts = &mut c.timeouts;
        let slots: [(&str, &mut u32); 12] = [
            ("tcp_syn_sent", &mut t.tcp_syn_sent),
            ("tcp_syn_recv", &mut t.tcp_syn_recv),
            ("tcp_established", &mut t.tcp_established),
            ("tcp_fin_wait", &mut t.tcp_fin_wait),
            ("tcp_close_wait", &mut t.tcp_close_wait),
            ("tcp_last_ack", &mut t.tcp_last_ack),
            ("tcp_time_wait", &mut t.tcp_time_wait),
            ("tcp_close", &mut t.tcp_close),
            ("udp", &mut t.udp),
            ("udp_stream", &mut t.udp_stream),
            ("icmp", &mut t.icmp),
            ("generic", &mut t.generic),
        ];
        for (key, slot) in slots {
            if let Some(d) = tm.get(key) {
                *slot = duration(&d)?;
            }
        }
    }
    Ok(c)
}

/// `30s`, `2m`, `1h`, `5d` or plain seconds; at least 1 s.
fn duration(v: &Val) -> R<u32> {
    const EXPECTED: &str = "seconds or a number with s, m, h or d (30s, 2m, 1h, 5d)";
    let s = v.str(EXPECTED)?;
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let mult: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    let n: Option<u64> = num.parse().ok();
    let (Some(n), true) = (n, mult != 0) else {
        return Err(v.err(format!(
            "{} is not a duration, expected {EXPECTED}",
            quote(s)
        )));
    };
    let secs = n.saturating_mul(mult);
    if secs == 0 {
        return Err(v.err(format!(
            "a timeout of {} would expire entries at once, expected at least 1s",
            cut(s)
        )));
    }
    u32::try_from(secs).map_err(|_| {
        v.err(format!(
            "{} is too long, expected at most {}s (about 136 years)",
            quote(s),
            u32::MAX
        ))
    })
}
