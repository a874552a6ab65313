//! `routerctl export nft`: the config's raw and filter chains as an
//! nftables ruleset with the same semantics, so that a user can hold
//! routerd against the kernel, or fall back to it.
//!
//! The ruleset is built as a small model ([`Ruleset`]: chains of rules, each
//! a list of [`Term`]s and a [`Action`]) and printed in nft's syntax; the
//! kernel differential test loads the same model over netlink.
//!
//! - `table inet routerd`; raw hooks are chains at priority `raw` whose
//!   `notrack` rules also `accept` (routerd's raw stage stops at the first
//!   match); filter chains at priority `filter` with the config's policy.
//! - Every rule has a `counter` (one nft rule per config rule, except a
//!   `reject` with no protocol: two rules, one answering TCP with a reset
//!   and one answering the rest with port unreachable; and a rule whose
//!   address condition mixes IPv4 and IPv6 prefixes: one rule per family,
//!   `ip saddr` and `ip6 saddr`; add their counters).
//! - A rule for one family only (its prefixes, or `family:`) has `ip` /
//!   `ip6` address terms, or `meta nfproto` when it has none.
//! - `local` addresses are `fib daddr type local` (the kernel's own
//!   addresses: on a router set up from this config, its interface
//!   addresses), interfaces are their devices (`iifname "r0"`).

use std::fmt::Write as _;

use dataplane::addr::{Ipv4Prefix, Ipv6Prefix};
use dataplane::conntrack::CtState;
use dataplane::packet::PortId;
use dataplane::rules::{
    AddrMatch, Chain, Family, FilterAction, Match, RawAction, FAMILY_V4, FAMILY_V6,
};
use dataplane::tables::TablesSpec;

/// One condition of an nft rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Term {
    /// `iifname` (one of these devices).
    Iif(Vec<String>),
    /// `oifname`.
    Oif(Vec<String>),
    /// `fib saddr|daddr type local`.
    Local { dst: bool },
    /// `ip saddr|daddr` in any of these prefixes.
    Prefixes {
        dst: bool,
        prefixes: Vec<Ipv4Prefix>,
    },
    /// `ip6 saddr|daddr` in any of these prefixes.
    Prefixes6 {
        dst: bool,
        prefixes: Vec<Ipv6Prefix>,
    },
    /// `meta nfproto ipv4|ipv6`: a rule of one family with no address term.
    Family(Family),
    /// `meta l4proto`.
    Proto(u8),
    /// `meta l4proto { tcp, udp }`: a port match with no protocol.
    TcpOrUdp,
    /// `th sport|dport` in any of these inclusive ranges.
    Ports { dst: bool, ranges: Vec<(u16, u16)> },
    /// `ct state` in this mask of [`CtState::bit`]s.
    State(u8),
    /// `icmp type`.
    IcmpType(u8),
    /// `icmp code`.
    IcmpCode(u8),
    /// `icmpv6 type`.
    Icmpv6Type(u8),
    /// `icmpv6 code`.
    Icmpv6Code(u8),
}

/// What a rule does after its counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Accept,
    Drop,
    /// `notrack accept` (raw).
    NoTrack,
    /// `reject with tcp reset` (the rule matches TCP only).
    RejectTcp,
    /// `reject with icmpx type port-unreachable`.
    RejectIcmp,
}

/// One nft rule, from rule `index` (0-based) of the config's list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub index: usize,
    pub terms: Vec<Term>,
    pub action: Action,
    pub comment: Option<String>,
}

/// The netfilter hook of a base chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Prerouting,
    Input,
    Forward,
    Output,
}

impl Hook {
    pub const fn name(self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Output => "output",
        }
    }
}

/// A base chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NftChain {
    /// `raw_prerouting`, `raw_output`, `input`, `forward`, `output`.
    pub name: &'static str,
    pub hook: Hook,
    /// `raw` (-300) or `filter` (0).
    pub priority: i32,
    /// Policy: accept unless the config's is drop.
    pub accept: bool,
    pub rules: Vec<Rule>,
}

/// The whole `table inet routerd`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ruleset {
    pub chains: Vec<NftChain>,
}

/// nft's `raw` priority.
pub const PRIORITY_RAW: i32 = -300;
/// nft's `filter` priority.
pub const PRIORITY_FILTER: i32 = 0;

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

fn devices(spec: &TablesSpec, mask: u64) -> Vec<String> {
    spec.interfaces
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & PortId(*i as u8).bit() != 0)
        .map(|(_, ifc)| ifc.device.clone())
        .collect()
}

/// The nft rules' terms of one config match: one list, or one per family
/// when an address condition mixes IPv4 and IPv6 prefixes (nft has no
/// single term for either).
fn terms(spec: &TablesSpec, m: &Match) -> Vec<Vec<Term>> {
    let families = m.compute_families();
    let mixed = [(&m.source, &m.source6), (&m.destination, &m.destination6)]
        .iter()
        .any(|(a, b)| matches!(a, Some(AddrMatch::Prefixes(_))) && b.is_some());
    let fams: Vec<Option<Family>> = match families {
        f if f == FAMILY_V4 | FAMILY_V6 && mixed => vec![Some(Family::Ipv4), Some(Family::Ipv6)],
        f if f == FAMILY_V4 | FAMILY_V6 => vec![None],
        FAMILY_V4 => vec![Some(Family::Ipv4)],
        _ => vec![Some(Family::Ipv6)],
    };
    fams.into_iter().map(|f| family_terms(spec, m, f)).collect()
}

/// The terms of `m` for family `fam` (`None`: both, and `m` has no
/// prefixes).
fn family_terms(spec: &TablesSpec, m: &Match, fam: Option<Family>) -> Vec<Term> {
    let mut t = Vec::new();
    // Port masks: the config allows only what the hook can see; `host`
    // (input's output side, output's input side) always holds there.
    if let Some(mask) = m.in_ports {
        let d = devices(spec, mask);
        if !d.is_empty() {
            t.push(Term::Iif(d));
        }
    }
    if let Some(mask) = m.out_ports {
        let d = devices(spec, mask);
        if !d.is_empty() {
            t.push(Term::Oif(d));
        }
    }
    let mut addressed = false;
    for (dst, a, a6) in [
        (false, &m.source, &m.source6),
        (true, &m.destination, &m.destination6),
    ] {
        match (a, a6, fam) {
            (Some(AddrMatch::Local), _, _) => t.push(Term::Local { dst }),
            (Some(AddrMatch::Prefixes(p)), _, Some(Family::Ipv4)) => {
                addressed = true;
                t.push(Term::Prefixes {
                    dst,
                    prefixes: p.to_vec(),
                })
            }
            (_, Some(p), Some(Family::Ipv6)) => {
                addressed = true;
                t.push(Term::Prefixes6 {
                    dst,
                    prefixes: p.to_vec(),
                })
            }
            _ => {}
        }
    }
    if let (Some(f), false) = (fam, addressed) {
        // `ip saddr` implies IPv4 in an inet table; without one, say it.
        let at = t
            .iter()
            .position(|x| !matches!(x, Term::Iif(_) | Term::Oif(_)))
            .unwrap_or(t.len());
        t.insert(at, Term::Family(f));
    }
    match m.protocol {
        Some(p) => t.push(Term::Proto(p)),
        None if m.source_port.is_some() || m.destination_port.is_some() => t.push(Term::TcpOrUdp),
        None => {}
    }
    for (dst, p) in [(false, &m.source_port), (true, &m.destination_port)] {
        if let Some(r) = p {
            t.push(Term::Ports {
                dst,
                ranges: r.to_vec(),
            });
        }
    }
    if let Some(s) = m.state {
        t.push(Term::State(s));
    }
    let v6 = m.protocol == Some(ICMPV6);
    if let Some(ty) = m.icmp_type {
        if m.protocol.is_none() {
            t.push(Term::Proto(ICMP));
        }
        t.push(if v6 {
            Term::Icmpv6Type(ty)
        } else {
            Term::IcmpType(ty)
        });
    }
    if let Some(c) = m.icmp_code {
        if m.protocol.is_none() && m.icmp_type.is_none() {
            t.push(Term::Proto(ICMP));
        }
        t.push(if v6 {
            Term::Icmpv6Code(c)
        } else {
            Term::IcmpCode(c)
        });
    }
    t
}

fn filter_chain(spec: &TablesSpec, name: &'static str, hook: Hook, c: &Chain) -> NftChain {
    let mut rules = Vec::new();
    for (index, r) in c.rules.iter().enumerate() {
        for t in terms(spec, &r.matches) {
            let comment = r.comment.clone();
            let rule = |terms: Vec<Term>, action| Rule {
                index,
                terms,
                action,
                comment: comment.clone(),
            };
            match r.action {
                FilterAction::Accept => rules.push(rule(t, Action::Accept)),
                FilterAction::Drop => rules.push(rule(t, Action::Drop)),
                FilterAction::Reject => match r.matches.protocol {
                    Some(TCP) => rules.push(rule(t, Action::RejectTcp)),
                    Some(_) => rules.push(rule(t, Action::RejectIcmp)),
                    None => {
                        // routerd answers TCP with a RST, the rest with port
                        // unreachable: nft's tcp reset needs a TCP-only rule.
                        let mut tcp = vec![Term::Proto(TCP)];
                        tcp.extend(t.iter().filter(|x| **x != Term::TcpOrUdp).cloned());
                        rules.push(rule(tcp, Action::RejectTcp));
                        rules.push(rule(t, Action::RejectIcmp));
                    }
                },
            }
        }
    }
    NftChain {
        name,
        hook,
        priority: PRIORITY_FILTER,
        accept: c.policy != FilterAction::Drop,
        rules,
    }
}

/// The ruleset of a config's tables.
pub fn ruleset(spec: &TablesSpec) -> Ruleset {
    let raw = |name, hook, list: &[dataplane::rules::RawRule]| NftChain {
        name,
        hook,
        priority: PRIORITY_RAW,
        accept: true,
        rules: list
            .iter()
            .enumerate()
            .flat_map(|(index, r)| {
                terms(spec, &r.matches).into_iter().map(move |terms| Rule {
                    index,
                    terms,
                    action: match r.action {
                        RawAction::NoTrack => Action::NoTrack,
                        RawAction::Accept => Action::Accept,
                    },
                    comment: r.comment.clone(),
                })
            })
            .collect(),
    };
    Ruleset {
        chains: vec![
            raw("raw_prerouting", Hook::Prerouting, &spec.raw_prerouting),
            raw("raw_output", Hook::Output, &spec.raw_output),
            filter_chain(spec, "input", Hook::Input, &spec.filter_input),
            filter_chain(spec, "forward", Hook::Forward, &spec.filter_forward),
            filter_chain(spec, "output", Hook::Output, &spec.filter_output),
        ],
    }
}

fn set<T>(items: &[T], f: impl Fn(&T) -> String) -> String {
    if items.len() == 1 {
        f(&items[0])
    } else {
        let v: Vec<String> = items.iter().map(f).collect();
        format!("{{ {} }}", v.join(", "))
    }
}

fn proto_name(p: u8) -> String {
    match p {
        TCP => "tcp".into(),
        UDP => "udp".into(),
        ICMP => "icmp".into(),
        ICMPV6 => "ipv6-icmp".into(),
        n => n.to_string(),
    }
}

fn state_names(mask: u8) -> Vec<&'static str> {
    [
        CtState::New,
        CtState::Established,
        CtState::Related,
        CtState::Invalid,
        CtState::Untracked,
    ]
    .into_iter()
    .filter(|s| mask & s.bit() != 0)
    .map(|s| s.name())
    .collect()
}

/// A term in nft's syntax.
pub fn term_text(t: &Term) -> String {
    let sd = |dst: bool| if dst { "daddr" } else { "saddr" };
    let port = |dst: bool| if dst { "dport" } else { "sport" };
    match t {
        Term::Iif(d) => format!("iifname {}", set(d, |n| format!("{n:?}"))),
        Term::Oif(d) => format!("oifname {}", set(d, |n| format!("{n:?}"))),
        Term::Local { dst } => format!("fib {} type local", sd(*dst)),
        Term::Prefixes { dst, prefixes } => {
            format!("ip {} {}", sd(*dst), set(prefixes, |p| p.to_string()))
        }
        Term::Prefixes6 { dst, prefixes } => {
            format!("ip6 {} {}", sd(*dst), set(prefixes, |p| p.to_string()))
        }
        Term::Family(f) => format!("meta nfproto {}", f.name()),
        Term::Proto(p) => format!("meta l4proto {}", proto_name(*p)),
        Term::TcpOrUdp => "meta l4proto { tcp, udp }".into(),
        Term::Ports { dst, ranges } => format!(
            "th {} {}",
            port(*dst),
            set(ranges, |(a, b)| if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            })
        ),
        Term::State(s) => format!("ct state {}", set(&state_names(*s), |n| n.to_string())),
        Term::IcmpType(ty) => format!("icmp type {ty}"),
        Term::IcmpCode(c) => format!("icmp code {c}"),
        Term::Icmpv6Type(ty) => format!("icmpv6 type {ty}"),
        Term::Icmpv6Code(c) => format!("icmpv6 code {c}"),
    }
}

/// A rule in nft's syntax.
pub fn rule_text(r: &Rule) -> String {
    let mut s = String::new();
    for t in &r.terms {
        s.push_str(&term_text(t));
        s.push(' ');
    }
    s.push_str(match r.action {
        Action::Accept => "counter accept",
        Action::Drop => "counter drop",
        Action::NoTrack => "counter notrack accept",
        Action::RejectTcp => "counter reject with tcp reset",
        Action::RejectIcmp => "counter reject with icmpx type port-unreachable",
    });
    if let Some(c) = &r.comment {
        let c: String = c.chars().filter(|c| *c != '"').take(128).collect();
        let _ = write!(s, " comment \"{c}\"");
    }
    s
}

/// The ruleset as `nft -f` reads it.
pub fn ruleset_text(rs: &Ruleset, source: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "#!/usr/sbin/nft -f");
    let _ = writeln!(s, "# Exported by `routerctl export nft` from {source}.");
    let _ = writeln!(
        s,
        "# Same semantics as routerd's raw and filter chains; see the README"
    );
    let _ = writeln!(s, "# (Semantics) for what the kernel does differently.");
    let _ = writeln!(s, "table inet routerd");
    let _ = writeln!(s, "delete table inet routerd");
    let _ = writeln!(s, "table inet routerd {{");
    for c in &rs.chains {
        let prio = if c.priority == PRIORITY_RAW {
            "raw"
        } else {
            "filter"
        };
        let policy = if c.accept { "accept" } else { "drop" };
        let _ = writeln!(s, "\tchain {} {{", c.name);
        let _ = writeln!(
            s,
            "\t\ttype filter hook {} priority {prio}; policy {policy};",
            c.hook.name()
        );
        for r in &c.rules {
            let _ = writeln!(s, "\t\t{}", rule_text(r));
        }
        let _ = writeln!(s, "\t}}");
    }
    let _ = writeln!(s, "}}");
    s
}
