//! Decoding and validation of the whole file, section by section. Rules and
//! matches live in `rules.rs`.

use super::rules::{
    decode_capture_match, decode_chain, decode_raw, parse_prefix, port_by_name, Ports,
};
use super::schema;
use super::yaml::{cut, error_at, quote, Val, R};
use super::{
    BindMode, Config, ConfigError, DataplaneSettings, KernelRoutesConfig, XdpMode, DEFAULT_SOCKET,
    DEFAULT_TUN, MAX_INTERFACES, RTPROT_ROUTERD,
};
use dataplane::addr::{IfAddr, Ipv4Prefix, Mac};
use dataplane::conntrack::{ConntrackConfig, Timeouts};
use dataplane::packet::PortId;
use dataplane::tables::{
    IcmpErrorConfig, Interface, IpOptionsPolicy, NextHop, RouteSpec, StaticNeighbour, TablesSpec,
    MAX_PATHS,
};
use marked_yaml::{parse_yaml_with_options, LoadError, LoaderOptions};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
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
    let routes = match top.get("routes") {
        Some(v) => decode_routes(&v, &interfaces)?,
        None => Vec::new(),
    };
    let neighbours = match top.get("neighbors") {
        Some(v) => decode_neighbours(&v, &interfaces)?,
        None => Vec::new(),
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
            v6: Default::default(),
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
        if let Some(av) = m.get("addresses") {
            for a in av.one_or_many() {
                let ifa: IfAddr = a.parse(
                    "an interface address",
                    "an address with its prefix length such as 198.18.0.1/24",
                )?;
                let s = a.str("")?;
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
        lines.push((nv.line(), dv.line()));
        out.push(Interface {
            name: name.to_string(),
            device: device.to_string(),
            mac: Mac::ZERO,
            addresses,
            addresses6: Vec::new(),
            mtu,
            ra: None,
        });
    }
    Ok(out)
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

fn decode_routes(v: &Val, ifs: &[Interface]) -> R<Vec<RouteSpec>> {
    let mut out: Vec<RouteSpec> = Vec::new();
    let mut seen: HashMap<Ipv4Prefix, usize> = HashMap::new();
    for it in v.seq("a list of routes")? {
        let m = it.map(&schema::ROUTE)?;
        let tv = m.require(
            "to",
            "a destination prefix such as 203.0.113.0/24 or default",
        )?;
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
    Ok(out)
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

fn decode_neighbours(v: &Val, ifs: &[Interface]) -> R<Vec<StaticNeighbour>> {
    let mut out: Vec<StaticNeighbour> = Vec::new();
    let mut seen: HashMap<u32, usize> = HashMap::new();
    for it in v.seq("a list of neighbours")? {
        let m = it.map(&schema::NEIGHBOUR)?;
        let av = m.require("address", "the neighbour's IPv4 address")?;
        let ip: Ipv4Addr = av.parse("an IPv4 address", "an address such as 198.19.0.2")?;
        let addr = u32::from(ip);
        if let Some(line) = seen.get(&addr) {
            return Err(av.err(format!(
                "duplicate neighbour {ip} (first at line {line}), expected each address once"
            )));
        }
        let port = connected_port(&av, addr, "a neighbour on a connected network", ifs)?;
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
        seen.insert(addr, av.line());
        out.push(StaticNeighbour { addr, mac, port });
    }
    Ok(out)
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
