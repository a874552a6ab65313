//! Raw and filter rules: the match keys, the actions, and the checks that
//! catch a rule that can never match or means something else than it says.

use super::schema;
use super::yaml::{one_of, quote, suggest, Val, R};
use dataplane::addr::{Ipv4Prefix, Ipv6Prefix};
use dataplane::conntrack::CtState;
use dataplane::packet::PortId;
use dataplane::rules::{
    AddrMatch, Chain, Family, FilterAction, FilterRule, Match, PortRanges, Prefixes6, RawAction,
    RawRule, FAMILY_V4, FAMILY_V6,
};
use dataplane::tables::Interface;
use smallvec::SmallVec;

/// The interfaces, for resolving `in` / `out`.
pub(super) struct Ports<'a> {
    ifs: &'a [Interface],
}

impl<'a> Ports<'a> {
    pub fn new(ifs: &'a [Interface]) -> Self {
        Ports { ifs }
    }
}

/// A prefix such as `198.18.0.0/24`.
pub(super) fn parse_prefix(v: &Val) -> R<Ipv4Prefix> {
    let s = v.str("a prefix such as 198.18.0.0/24")?;
    s.parse::<Ipv4Prefix>()
        .map_err(|e| v.err(format!("{} is not a prefix, expected {e}", quote(s))))
}

/// An IPv6 prefix such as `2001:db8::/32` (`default` is `::/0`).
pub(super) fn parse_prefix6(v: &Val) -> R<Ipv6Prefix> {
    let s = v.str("a prefix such as 2001:db8::/32")?;
    s.parse::<Ipv6Prefix>()
        .map_err(|e| v.err(format!("{} is not a prefix, expected {e}", quote(s))))
}

/// Whether config text is written as an IPv6 address or prefix.
pub(super) fn is_v6_text(s: &str) -> bool {
    s.contains(':')
}

/// The port of the interface called `name`.
pub(super) fn port_by_name(v: &Val, name: &str, ifs: &[Interface]) -> R<PortId> {
    if let Some(i) = ifs.iter().position(|i| i.name == name) {
        return Ok(PortId(i as u8));
    }
    let names: Vec<&str> = ifs.iter().map(|i| i.name.as_str()).collect();
    let hint = match suggest(name, names.iter().copied()) {
        Some(c) => format!(", did you mean {c}?"),
        None => format!(", expected {}", one_of(&names)),
    };
    Err(v.err(format!("{} is not an interface{hint}", quote(name))))
}

/// Where a rule list is hooked in the packet path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Hook {
    RawPrerouting,
    RawOutput,
    Input,
    Forward,
    Output,
    /// `routerctl capture --match`: frames anywhere, before and after the
    /// pipeline.
    Capture,
}

/// What an `in` or `out` match can see at a hook.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Only the ports.
    Ports,
    /// Only the host path.
    Host,
    /// Not known yet (before routing).
    Unknown,
    /// The ports and the host path.
    Any,
}

impl Hook {
    fn name(self) -> &'static str {
        match self {
            Hook::RawPrerouting => "raw.prerouting",
            Hook::RawOutput => "raw.output",
            Hook::Input => "filter.input",
            Hook::Forward => "filter.forward",
            Hook::Output => "filter.output",
            Hook::Capture => "--match",
        }
    }

    fn is_raw(self) -> bool {
        matches!(self, Hook::RawPrerouting | Hook::RawOutput)
    }

    fn sees(self) -> &'static str {
        match self {
            Hook::RawPrerouting => "packets arriving on the interfaces",
            Hook::RawOutput | Hook::Output => "packets sent by the router itself",
            Hook::Input => "packets to the router itself",
            Hook::Forward => "packets routed between interfaces",
            Hook::Capture => "every frame",
        }
    }

    fn in_side(self) -> Side {
        match self {
            Hook::RawOutput | Hook::Output => Side::Host,
            Hook::Capture => Side::Any,
            _ => Side::Ports,
        }
    }

    fn out_side(self) -> Side {
        match self {
            Hook::RawPrerouting | Hook::RawOutput => Side::Unknown,
            Hook::Input => Side::Host,
            Hook::Forward | Hook::Output => Side::Ports,
            Hook::Capture => Side::Any,
        }
    }
}

pub(super) fn decode_raw(v: &Val, ports: &Ports) -> R<(Vec<RawRule>, Vec<RawRule>)> {
    let m = v.map(&schema::RAW)?;
    let list = |key: &str, hook: Hook| -> R<Vec<RawRule>> {
        let Some(l) = m.get(key) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for r in l.seq("a list of rules")? {
            let rm = r.map(&schema::RAW_RULE)?;
            let matches = decode_match(rm.get("match"), hook, ports)?;
            let action = rm.require("action", "notrack or accept")?.word(&[
                ("notrack", RawAction::NoTrack),
                ("accept", RawAction::Accept),
            ])?;
            out.push(RawRule {
                matches,
                action,
                comment: comment(rm.get("comment"))?,
            });
        }
        Ok(out)
    };
    Ok((
        list("prerouting", Hook::RawPrerouting)?,
        list("output", Hook::RawOutput)?,
    ))
}

pub(super) fn decode_chain(v: &Val, hook: Hook, ports: &Ports) -> R<Chain> {
    let m = v.map(&schema::CHAIN)?;
    let mut chain = Chain::default();
    if let Some(p) = m.get("policy") {
        chain.policy = p.word(&[
            ("accept", FilterAction::Accept),
            ("drop", FilterAction::Drop),
        ])?;
    }
    if let Some(l) = m.get("rules") {
        for r in l.seq("a list of rules")? {
            let rm = r.map(&schema::FILTER_RULE)?;
            let matches = decode_match(rm.get("match"), hook, ports)?;
            let action = rm.require("action", "accept, drop or reject")?.word(&[
                ("accept", FilterAction::Accept),
                ("drop", FilterAction::Drop),
                ("reject", FilterAction::Reject),
            ])?;
            chain.rules.push(FilterRule {
                matches,
                action,
                comment: comment(rm.get("comment"))?,
            });
        }
    }
    Ok(chain)
}

fn comment(v: Option<Val>) -> R<Option<String>> {
    v.map(|c| c.str("a line of text").map(str::to_string))
        .transpose()
}

/// A capture's `--match`: the rule match keys but `state` (a frame is
/// matched as it is received or sent, not after connection tracking).
pub(super) fn decode_capture_match(v: &Val, ports: &Ports) -> R<Match> {
    let mut m = decode_match(Some(v.clone()), Hook::Capture, ports)?;
    m.compile();
    Ok(m)
}

fn decode_match(v: Option<Val>, hook: Hook, ports: &Ports) -> R<Match> {
    let Some(v) = v else {
        return Ok(Match::default());
    };
    let m = v.map(&schema::MATCH)?;
    let mut out = Match::default();
    if let Some(p) = m.get("protocol") {
        out.protocol = Some(protocol(&p)?);
    }
    if let Some(i) = m.get("in") {
        out.in_ports = Some(port_mask(&i, hook, hook.in_side(), ports)?);
    }
    if let Some(o) = m.get("out") {
        out.out_ports = Some(port_mask(&o, hook, hook.out_side(), ports)?);
    }
    if let Some(s) = m.get("source") {
        (out.source, out.source6) = addr_match(&s)?;
    }
    if let Some(d) = m.get("destination") {
        (out.destination, out.destination6) = addr_match(&d)?;
    }
    if let Some(f) = m.get("family") {
        out.family = Some(f.word(&[("ipv4", Family::Ipv4), ("ipv6", Family::Ipv6)])?);
    }
    let families = out.compute_families();
    if families == 0 {
        // A condition's prefixes leave no family the other allows.
        let (at, why) = match (m.get("family"), out.family) {
            (Some(f), Some(fam)) => {
                let key = if only_other_family(&out.source, &out.source6, fam) {
                    "source"
                } else {
                    "destination"
                };
                (f, format!("family: {} never matches: {key} has only {} prefixes, expected prefixes of the family or no family", fam.name(), other_name(fam)))
            }
            _ => (
                m.get("destination").unwrap_or_else(|| m.val.clone()),
                "destination and source have prefixes of different families only: the rule \
                 never matches a packet, expected prefixes of one family in both"
                    .to_string(),
            ),
        };
        return Err(at.err(why));
    }
    for (key, slot) in [
        ("source_port", &mut out.source_port),
        ("destination_port", &mut out.destination_port),
    ] {
        if let Some(p) = m.get(key) {
            let ranges = port_ranges(&p)?;
            if !matches!(out.protocol, Some(6 | 17)) {
                return Err(p.err(format!(
                    "{key} needs protocol: tcp or protocol: udp in the same match (ports exist only in TCP and UDP)"
                )));
            }
            *slot = Some(ranges);
        }
    }
    if let Some(s) = m.get("state") {
        if hook.is_raw() {
            return Err(s.err(
                "state cannot be matched in raw rules: raw runs before connection tracking, \
                 so no packet has a state yet; match state in filter chains",
            ));
        }
        if hook == Hook::Capture {
            return Err(s.err(
                "state cannot be matched in a capture: frames are matched as they are \
                 received or sent, expected in, out, source, destination, protocol, ports \
                 or icmp_type/icmp_code",
            ));
        }
        let mut mask = 0u8;
        let items = s.one_or_many();
        if items.is_empty() {
            return Err(s.err("empty list, expected states such as [established, related]"));
        }
        for it in items {
            let st = it.word(&[
                ("new", CtState::New),
                ("established", CtState::Established),
                ("related", CtState::Related),
                ("invalid", CtState::Invalid),
                ("untracked", CtState::Untracked),
            ])?;
            mask |= st.bit();
        }
        out.state = Some(mask);
    }
    for (key, is_type) in [("icmp_type", true), ("icmp_code", false)] {
        if let Some(t) = m.get(key) {
            let n = icmp_number(&t, is_type, false)?;
            if out.protocol == Some(ICMPV6) {
                return Err(t.err(format!(
                    "{key} is IPv4's ICMP, and this rule has protocol: icmpv6, expected {}",
                    key.replace("icmp_", "icmpv6_")
                )));
            }
            if out.protocol != Some(1) {
                return Err(t.err(format!("{key} needs protocol: icmp in the same match")));
            }
            if is_type {
                out.icmp_type = Some(n);
            } else {
                out.icmp_code = Some(n);
            }
        }
    }
    for (key, is_type) in [("icmpv6_type", true), ("icmpv6_code", false)] {
        if let Some(t) = m.get(key) {
            let n = icmp_number(&t, is_type, true)?;
            if let Some(k) = ["icmp_type", "icmp_code"]
                .iter()
                .find(|k| m.get(k).is_some())
            {
                return Err(t.err(format!(
                    "{key} cannot be matched with {k}: one is ICMPv6, the other IPv4's ICMP, \
                     expected one of them"
                )));
            }
            // icmpv6_type implies protocol: icmpv6, as in nftables.
            match out.protocol {
                None | Some(ICMPV6) => out.protocol = Some(ICMPV6),
                Some(p) => {
                    return Err(t.err(format!(
                        "{key} needs protocol: icmpv6 (or no protocol), not protocol: {}",
                        protocol_name(p)
                    )))
                }
            }
            if is_type {
                out.icmp_type = Some(n);
            } else {
                out.icmp_code = Some(n);
            }
        }
    }
    // ICMP of one family in a rule that can only match the other.
    let wrong = match out.protocol {
        Some(ICMPV6) if families & FAMILY_V6 == 0 => Some(("icmpv6", "IPv6", "IPv4", "icmp")),
        Some(1) if families & FAMILY_V4 == 0 => Some(("icmp", "IPv4", "IPv6", "icmpv6")),
        _ => None,
    };
    if let Some((proto, is, only, instead)) = wrong {
        let at = ["icmpv6_type", "icmpv6_code", "protocol"]
            .iter()
            .find_map(|k| m.get(k))
            .unwrap_or_else(|| m.val.clone());
        let why = match out.family {
            Some(f) if f.name() != is.to_ascii_lowercase() => format!("family: {}", f.name()),
            _ => format!("{only} prefixes only"),
        };
        return Err(at.err(format!(
            "protocol {proto} is {is} only and this rule matches {only} packets only ({why}), \
             expected protocol: {instead} or {is} prefixes"
        )));
    }
    Ok(out)
}

/// The ICMPv6 protocol number (IPv6 next header 58).
pub(super) const ICMPV6: u8 = 58;

/// A protocol as a rule writes it.
pub(super) fn protocol_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        ICMPV6 => "icmpv6".into(),
        n => n.to_string(),
    }
}

/// Whether an address condition has prefixes of the family other than
/// `fam` only.
fn only_other_family(v4: &Option<AddrMatch>, v6: &Option<Prefixes6>, fam: Family) -> bool {
    match fam {
        Family::Ipv4 => v6.is_some() && v4.is_none(),
        Family::Ipv6 => matches!(v4, Some(AddrMatch::Prefixes(_))) && v6.is_none(),
    }
}

fn other_name(fam: Family) -> &'static str {
    match fam {
        Family::Ipv4 => "IPv6",
        Family::Ipv6 => "IPv4",
    }
}

fn protocol(v: &Val) -> R<u8> {
    const EXPECTED: &str = "tcp, udp, icmp, icmpv6 or a protocol number 0-255";
    let s = v.str(EXPECTED)?;
    match s {
        "tcp" => Ok(6),
        "udp" => Ok(17),
        "icmp" => Ok(1),
        "icmpv6" | "ipv6-icmp" => Ok(ICMPV6),
        _ => s.parse::<u8>().map_err(|_| {
            v.err(format!(
                "{} is not a protocol, expected {EXPECTED}",
                quote(s)
            ))
        }),
    }
}

fn port_mask(v: &Val, hook: Hook, side: Side, ports: &Ports) -> R<u64> {
    let key = v.path.rsplit('.').next().unwrap_or("");
    if side == Side::Unknown {
        return Err(v.err(format!(
            "{key} cannot be matched in raw rules: no route decision has been made yet, so the \
             output interface is not known; match it in filter.forward or filter.output"
        )));
    }
    let items = v.one_or_many();
    if items.is_empty() {
        return Err(v.err("empty list, expected interface names or host"));
    }
    let mut mask = 0u64;
    for it in items {
        let name = it.name("an interface name or host")?;
        let port = if name == "host" {
            PortId::HOST
        } else {
            port_by_name(&it, name, ports.ifs)?
        };
        let fits = match side {
            Side::Host => port.is_host(),
            Side::Any => true,
            _ => !port.is_host(),
        };
        if !fits {
            let expected = if side == Side::Host {
                "host".to_string()
            } else {
                "an interface name".to_string()
            };
            return Err(it.err(format!(
                "{key}: {name} never matches in {}: it sees only {}, expected {expected}",
                hook.name(),
                hook.sees()
            )));
        }
        mask |= port.bit();
    }
    Ok(mask)
}

/// `local`, or prefixes of either family: the IPv4 ones and the IPv6
/// ones (a condition of `inet` rules).
fn addr_match(v: &Val) -> R<(Option<AddrMatch>, Option<Prefixes6>)> {
    if !v.is_seq() && v.str("a prefix, a list of prefixes or local")? == "local" {
        return Ok((Some(AddrMatch::Local), None));
    }
    let items = v.one_or_many();
    if items.is_empty() {
        return Err(v.err("empty list, expected prefixes or local"));
    }
    let mut v4: SmallVec<[Ipv4Prefix; 2]> = SmallVec::new();
    let mut v6 = Prefixes6::new();
    for it in items {
        let s = it.str("a prefix")?;
        if s == "local" {
            return Err(it.err(
                "local cannot be mixed with prefixes in a list, expected local alone or only prefixes",
            ));
        }
        if is_v6_text(s) {
            v6.push(parse_prefix6(&it)?);
        } else {
            v4.push(parse_prefix(&it)?);
        }
    }
    Ok((
        (!v4.is_empty()).then_some(AddrMatch::Prefixes(v4)),
        (!v6.is_empty()).then_some(v6),
    ))
}

fn port_ranges(v: &Val) -> R<PortRanges> {
    const EXPECTED: &str = "expected a number 0-65535, \"lo-hi\" or a list";
    let items = v.one_or_many();
    if items.is_empty() {
        return Err(v.err(format!("empty list, {EXPECTED}")));
    }
    let mut out = PortRanges::new();
    for it in items {
        let s = it.str("a port")?;
        let parse = |p: &str| p.trim().parse::<u16>().ok();
        let range = match s.split_once('-') {
            Some((lo, hi)) => parse(lo).zip(parse(hi)),
            None => parse(s).map(|p| (p, p)),
        };
        let Some((lo, hi)) = range else {
            return Err(it.err(format!("{} is not a port, {EXPECTED}", quote(s))));
        };
        if lo > hi {
            return Err(it.err(format!(
                "port range {} runs backwards, expected lo <= hi such as \"{hi}-{lo}\"",
                quote(s)
            )));
        }
        out.push((lo, hi));
    }
    Ok(out)
}

/// ICMP type and code names as nftables spells them.
pub(super) const ICMP_TYPES: &[(&str, u8)] = &[
    ("echo-reply", 0),
    ("destination-unreachable", 3),
    ("source-quench", 4),
    ("redirect", 5),
    ("echo-request", 8),
    ("router-advertisement", 9),
    ("router-solicitation", 10),
    ("time-exceeded", 11),
    ("parameter-problem", 12),
    ("timestamp-request", 13),
    ("timestamp-reply", 14),
    ("info-request", 15),
    ("info-reply", 16),
    ("address-mask-request", 17),
    ("address-mask-reply", 18),
];

pub(super) const ICMP_CODES: &[(&str, u8)] = &[
    ("net-unreachable", 0),
    ("host-unreachable", 1),
    ("prot-unreachable", 2),
    ("port-unreachable", 3),
    ("frag-needed", 4),
    ("net-prohibited", 9),
    ("host-prohibited", 10),
    ("admin-prohibited", 13),
];

fn icmp_number(v: &Val, is_type: bool, v6: bool) -> R<u8> {
    let (table, what) = match (is_type, v6) {
        (true, false) => (ICMP_TYPES, "an ICMP type"),
        (false, false) => (ICMP_CODES, "an ICMP code"),
        (true, true) => (ICMPV6_TYPES, "an ICMPv6 type"),
        (false, true) => (ICMPV6_CODES, "an ICMPv6 code"),
    };
    let s = v.str(what)?;
    if let Ok(n) = s.parse::<u8>() {
        return Ok(n);
    }
    if let Some((_, n)) = table.iter().find(|(name, _)| *name == s) {
        return Ok(*n);
    }
    let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
    let hint = match super::yaml::suggest(s, names.iter().copied()) {
        Some(c) => format!(" (did you mean {c}?)"),
        None => String::new(),
    };
    Err(v.err(format!(
        "{} is not {what}{hint}, expected a number 0-255 or one of {}",
        quote(s),
        names.join(", ")
    )))
}

/// ICMPv6 type names as nftables spells them (`icmpv6 type`); the first
/// of two names for one number is the one shown.
pub(super) const ICMPV6_TYPES: &[(&str, u8)] = &[
    ("destination-unreachable", 1),
    ("packet-too-big", 2),
    ("time-exceeded", 3),
    ("parameter-problem", 4),
    ("echo-request", 128),
    ("echo-reply", 129),
    ("mld-listener-query", 130),
    ("mld-listener-report", 131),
    ("mld-listener-done", 132),
    ("mld-listener-reduction", 132),
    ("nd-router-solicit", 133),
    ("nd-router-advert", 134),
    ("nd-neighbor-solicit", 135),
    ("nd-neighbor-advert", 136),
    ("nd-redirect", 137),
    ("router-renumbering", 138),
    ("ind-neighbor-solicit", 141),
    ("ind-neighbor-advert", 142),
    ("mld2-listener-report", 143),
];

/// ICMPv6 destination unreachable codes as nftables spells them.
pub(super) const ICMPV6_CODES: &[(&str, u8)] = &[
    ("no-route", 0),
    ("admin-prohibited", 1),
    ("addr-unreachable", 3),
    ("port-unreachable", 4),
    ("policy-fail", 5),
    ("reject-route", 6),
];

/// An ICMPv6 type as a rule writes it: its nftables name, or the number.
pub(super) fn icmpv6_type_name(n: u8) -> String {
    name_of(ICMPV6_TYPES, n)
}

/// An ICMPv6 code as a rule writes it.
pub(super) fn icmpv6_code_name(n: u8) -> String {
    name_of(ICMPV6_CODES, n)
}

fn name_of(table: &[(&str, u8)], n: u8) -> String {
    table
        .iter()
        .find(|(_, t)| *t == n)
        .map_or_else(|| n.to_string(), |(name, _)| (*name).to_string())
}

/// An ICMP type as a rule writes it: its nftables name, or the number.
pub(super) fn icmp_type_name(n: u8) -> String {
    ICMP_TYPES
        .iter()
        .find(|(_, t)| *t == n)
        .map_or_else(|| n.to_string(), |(name, _)| (*name).to_string())
}

/// An ICMP code as a rule writes it: its nftables name, or the number.
pub(super) fn icmp_code_name(n: u8) -> String {
    ICMP_CODES
        .iter()
        .find(|(_, c)| *c == n)
        .map_or_else(|| n.to_string(), |(name, _)| (*name).to_string())
}
