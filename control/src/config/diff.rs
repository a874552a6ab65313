//! What replacing one validated config by another changes: rules added,
//! removed or moved per chain, routes, static neighbours, interfaces, and
//! settings, each sorted by what a live reload does with it (applies it,
//! refuses the whole reload for it, or applies the rest and leaves it for
//! the next start).
//!
//! `routerctl reload --dry-run` shows this against the running config, and
//! routerd's reload refuses exactly the changes listed in
//! [`ConfigDiff::restart`], so the two never disagree. Pure: reads two
//! configs, touches nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use dataplane::addr::{Ipv4Prefix, Ipv6Prefix};
use dataplane::conntrack::CtState;
use dataplane::packet::PortId;
use dataplane::rules::{AddrMatch, Chain, FilterRule, Match, PortRanges, RawAction, RawRule};
use dataplane::tables::{Interface, IpOptionsPolicy, NextHop};
use dataplane::tables6::{NextHop6, RaConfig};
use serde::{Deserialize, Serialize};

use super::{bind_name, Config};

/// A rule and its position in its chain (from 1, as stats and explain
/// number rules).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleAt {
    pub position: usize,
    /// The rule as config text: `{ match } action (comment)`.
    pub rule: String,
}

/// A rule that is in both configs but at another place in the order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleMove {
    pub from: usize,
    pub to: usize,
    pub rule: String,
}

/// What changes in one chain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainDiff {
    /// `raw.prerouting`, `raw.output`, `filter.input`, `filter.forward`,
    /// `filter.output`.
    pub chain: String,
    /// The policy, old and new, when it changes (filter chains).
    pub policy: Option<(String, String)>,
    /// In the new config only, at their new positions.
    pub added: Vec<RuleAt>,
    /// In the old config only, at their old positions.
    pub removed: Vec<RuleAt>,
    /// In both, out of their old order.
    pub moved: Vec<RuleMove>,
}

/// Something keyed (a route's prefix, a neighbour's address, an
/// interface's name) that is added (`old` none), removed (`new` none) or
/// changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemChange {
    pub key: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// A setting whose value changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingChange {
    /// The field path, e.g. `dataplane.workers`.
    pub key: String,
    pub old: String,
    pub new: String,
    /// Why it waits for a restart, where that needs saying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

impl SettingChange {
    fn new(key: impl Into<String>, old: impl Into<String>, new: impl Into<String>) -> Self {
        SettingChange {
            key: key.into(),
            old: old.into(),
            new: new.into(),
            why: None,
        }
    }

    /// The line a live reload refuses this change with.
    pub fn refusal(&self) -> String {
        if self.key == "interfaces" {
            format!(
                "interfaces: {} -> {}: ports cannot be added, removed, renamed or moved \
                 while routerd runs",
                self.old, self.new
            )
        } else {
            format!(
                "{}: {} -> {} cannot change while routerd runs",
                self.key, self.old, self.new
            )
        }
    }
}

/// Everything that differs between two configs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigDiff {
    /// Chains whose rules or policy change, in packet order.
    pub chains: Vec<ChainDiff>,
    /// Configured routes by destination.
    pub routes: Vec<ItemChange>,
    /// Static neighbours by address.
    pub neighbours: Vec<ItemChange>,
    /// Interfaces by name (any change here needs a restart: see `restart`).
    pub interfaces: Vec<ItemChange>,
    /// Changes a live reload refuses: the ports, workers, UMEM and host path
    /// are set up at start. Any of them and the reload changes nothing.
    pub restart: Vec<SettingChange>,
    /// Changes a reload accepts but that take effect only at the next
    /// start (the rest of the reload applies).
    pub next_start: Vec<SettingChange>,
    /// Other settings, applied by a reload.
    pub settings: Vec<SettingChange>,
}

impl ConfigDiff {
    /// Nothing differs.
    pub fn is_empty(&self) -> bool {
        self.chains.is_empty()
            && self.routes.is_empty()
            && self.neighbours.is_empty()
            && self.interfaces.is_empty()
            && self.restart.is_empty()
            && self.next_start.is_empty()
            && self.settings.is_empty()
    }
}

/// What changes from `old` to `new`. `table_capacity` is the connection
/// table size per worker that the running routerd allocated at start (a
/// reload can lower `conntrack.max_entries` but not raise it above that);
/// offline, pass `old`'s `max_entries`.
pub fn diff(old: &Config, new: &Config, table_capacity: u32) -> ConfigDiff {
    let (ofs, nfs) = (&old.spec.interfaces, &new.spec.interfaces);
    let mut d = ConfigDiff::default();
    let raw = |r: &RawRule, ifs: &[Interface]| {
        rule_text(&r.matches, raw_action(r.action), r.comment.as_deref(), ifs)
    };
    let filter = |r: &FilterRule, ifs: &[Interface]| {
        rule_text(&r.matches, r.action.name(), r.comment.as_deref(), ifs)
    };
    for (name, a, b) in [
        (
            "raw.prerouting",
            &old.spec.raw_prerouting,
            &new.spec.raw_prerouting,
        ),
        ("raw.output", &old.spec.raw_output, &new.spec.raw_output),
    ] {
        let a: Vec<String> = a.iter().map(|r| raw(r, ofs)).collect();
        let b: Vec<String> = b.iter().map(|r| raw(r, nfs)).collect();
        push_chain(&mut d, name, None, &a, &b);
    }
    for (name, a, b) in [
        (
            "filter.input",
            &old.spec.filter_input,
            &new.spec.filter_input,
        ),
        (
            "filter.forward",
            &old.spec.filter_forward,
            &new.spec.filter_forward,
        ),
        (
            "filter.output",
            &old.spec.filter_output,
            &new.spec.filter_output,
        ),
    ] {
        let texts = |c: &Chain, ifs: &[Interface]| -> Vec<String> {
            c.rules.iter().map(|r| filter(r, ifs)).collect()
        };
        let policy = (a.policy != b.policy)
            .then(|| (a.policy.name().to_string(), b.policy.name().to_string()));
        push_chain(&mut d, name, policy, &texts(a, ofs), &texts(b, nfs));
    }

    let routes = |c: &Config| -> BTreeMap<Ipv4Prefix, String> {
        (c.spec.routes.iter())
            .map(|r| (r.prefix, route_target_text(r, &c.spec.interfaces)))
            .collect()
    };
    d.routes = keyed(routes(old), routes(new), prefix_text);
    let routes6 = |c: &Config| -> BTreeMap<Ipv6Prefix, String> {
        (c.spec.v6.routes.iter())
            .map(|r| (r.prefix, next_hop6_text(r.next_hop, &c.spec.interfaces)))
            .collect()
    };
    d.routes
        .extend(keyed(routes6(old), routes6(new), |p| p.to_string()));
    let neighbours = |c: &Config| -> BTreeMap<u32, String> {
        (c.spec.neighbours.iter())
            .map(|n| (n.addr, n.mac.to_string()))
            .collect()
    };
    d.neighbours = keyed(neighbours(old), neighbours(new), |a| {
        Ipv4Addr::from(*a).to_string()
    });
    // A link-local neighbour is one per link: keyed by address and port.
    let neighbours6 = |c: &Config| -> BTreeMap<(u128, String), String> {
        (c.spec.v6.neighbours.iter())
            .map(|n| {
                let port = if Ipv6Addr::from(n.addr).is_unicast_link_local() {
                    port_name(n.port, &c.spec.interfaces)
                } else {
                    String::new()
                };
                ((n.addr, port), n.mac.to_string())
            })
            .collect()
    };
    d.neighbours.extend(keyed(
        neighbours6(old),
        neighbours6(new),
        |(a, port)| match port.as_str() {
            "" => Ipv6Addr::from(*a).to_string(),
            p => format!("{} interface {p}", Ipv6Addr::from(*a)),
        },
    ));
    let interfaces = |ifs: &[Interface]| -> BTreeMap<String, String> {
        (ifs.iter().enumerate())
            .map(|(i, f)| (f.name.clone(), interface_text(i, f)))
            .collect()
    };
    d.interfaces = keyed(interfaces(ofs), interfaces(nfs), String::clone);

    restart_changes(&mut d, old, new);
    next_start_changes(&mut d, old, new, table_capacity);
    setting_changes(&mut d, old, new);
    d
}

/// The changes a live reload refuses, in the order it checks them (its
/// refusal names the first).
fn restart_changes(d: &mut ConfigDiff, old: &Config, new: &Config) {
    let (a, b) = (&old.dataplane, &new.dataplane);
    let mut field = |key: &str, x: String, y: String| {
        if x != y {
            d.restart.push(SettingChange::new(key, x, y));
        }
    };
    field(
        "dataplane.workers",
        format!("{:?}", a.workers),
        format!("{:?}", b.workers),
    );
    field("dataplane.burst", a.burst.to_string(), b.burst.to_string());
    field(
        "dataplane.umem_frames",
        a.umem_frames.to_string(),
        b.umem_frames.to_string(),
    );
    field(
        "dataplane.xdp_mode",
        a.xdp_mode.name().into(),
        b.xdp_mode.name().into(),
    );
    field(
        "dataplane.xdp_bind",
        bind_name(a.xdp_bind).into(),
        bind_name(b.xdp_bind).into(),
    );
    field(
        "dataplane.busy_poll",
        a.busy_poll.to_string(),
        b.busy_poll.to_string(),
    );
    let (ofs, nfs) = (&old.spec.interfaces, &new.spec.interfaces);
    let ports = |v: &[Interface]| {
        let l: Vec<String> = v
            .iter()
            .map(|i| format!("{}={}", i.name, i.device))
            .collect();
        format!("[{}]", l.join(", "))
    };
    let same_ports = ofs.len() == nfs.len()
        && ofs
            .iter()
            .zip(nfs)
            .all(|(x, y)| x.name == y.name && x.device == y.device);
    field("interfaces", ports(ofs), ports(nfs));
    if same_ports {
        for (i, (x, y)) in ofs.iter().zip(nfs).enumerate() {
            field(
                &format!("interfaces[{i}].addresses ({})", x.name),
                addresses_text(x),
                addresses_text(y),
            );
            field(
                &format!("interfaces[{i}].mtu ({})", x.name),
                x.mtu.to_string(),
                y.mtu.to_string(),
            );
        }
    }
    let tun = |c: &Config| c.tun.clone().unwrap_or_else(|| "off".into());
    field("host.tun", tun(old), tun(new));
    let kernel = |c: &Config| match &c.kernel_routes {
        None => "off".to_string(),
        Some(k) => format!(
            "table {}, protocols {}",
            k.table,
            match &k.protocols {
                None => "all but kernel".to_string(),
                Some(p) => format!("{p:?}"),
            }
        ),
    };
    field("kernel_routes", kernel(old), kernel(new));
}

/// What a reload takes but leaves for the next start.
fn next_start_changes(d: &mut ConfigDiff, old: &Config, new: &Config, capacity: u32) {
    if old.control_socket != new.control_socket {
        d.next_start.push(SettingChange {
            why: Some("routerd listens where it started until it restarts".into()),
            ..SettingChange::new(
                "control.socket",
                old.control_socket.display().to_string(),
                new.control_socket.display().to_string(),
            )
        });
    }
    if old.metrics_listen != new.metrics_listen {
        let text = |c: &Config| c.metrics_listen.map_or("off".into(), |a| a.to_string());
        d.next_start.push(SettingChange {
            why: Some("the metrics listener is set up at start".into()),
            ..SettingChange::new("metrics.listen", text(old), text(new))
        });
    }
    let (a, b) = (
        old.spec.conntrack.max_entries,
        new.spec.conntrack.max_entries,
    );
    if a != b && b > capacity {
        d.next_start.push(SettingChange {
            why: Some(format!(
                "the connection tables were sized at start for {capacity} entries per \
                 worker: a reload caps the limit there"
            )),
            ..SettingChange::new("conntrack.max_entries", a.to_string(), b.to_string())
        });
    }
}

/// Settings a reload applies.
fn setting_changes(d: &mut ConfigDiff, old: &Config, new: &Config) {
    let (a, b) = (&old.spec, &new.spec);
    let mut field = |key: &str, x: String, y: String| {
        if x != y {
            d.settings.push(SettingChange::new(key, x, y));
        }
    };
    let opts = |p: IpOptionsPolicy| match p {
        IpOptionsPolicy::Forward => "forward".to_string(),
        IpOptionsPolicy::Drop => "drop".to_string(),
    };
    field(
        "dataplane.ip_options",
        opts(a.ip_options),
        opts(b.ip_options),
    );
    let already = d
        .next_start
        .iter()
        .any(|s| s.key == "conntrack.max_entries");
    if !already {
        field(
            "conntrack.max_entries",
            a.conntrack.max_entries.to_string(),
            b.conntrack.max_entries.to_string(),
        );
    }
    field(
        "conntrack.tcp_loose",
        a.conntrack.tcp_loose.to_string(),
        b.conntrack.tcp_loose.to_string(),
    );
    let (ta, tb) = (&a.conntrack.timeouts, &b.conntrack.timeouts);
    for (key, x, y) in [
        ("tcp_syn_sent", ta.tcp_syn_sent, tb.tcp_syn_sent),
        ("tcp_syn_recv", ta.tcp_syn_recv, tb.tcp_syn_recv),
        ("tcp_established", ta.tcp_established, tb.tcp_established),
        ("tcp_fin_wait", ta.tcp_fin_wait, tb.tcp_fin_wait),
        ("tcp_close_wait", ta.tcp_close_wait, tb.tcp_close_wait),
        ("tcp_last_ack", ta.tcp_last_ack, tb.tcp_last_ack),
        ("tcp_time_wait", ta.tcp_time_wait, tb.tcp_time_wait),
        ("tcp_close", ta.tcp_close, tb.tcp_close),
        ("udp", ta.udp, tb.udp),
        ("udp_stream", ta.udp_stream, tb.udp_stream),
        ("icmp", ta.icmp, tb.icmp),
        ("generic", ta.generic, tb.generic),
    ] {
        field(
            &format!("conntrack.timeouts.{key}"),
            duration_text(x),
            duration_text(y),
        );
    }
    field(
        "icmp_errors.rate",
        a.icmp_errors.rate.to_string(),
        b.icmp_errors.rate.to_string(),
    );
    field(
        "icmp_errors.burst",
        a.icmp_errors.burst.to_string(),
        b.icmp_errors.burst.to_string(),
    );
    // Router advertisements follow the tables: a reload applies them (on
    // the same ports; other port changes are refused anyway).
    for (i, (x, y)) in a.interfaces.iter().zip(&b.interfaces).enumerate() {
        if x.name == y.name {
            field(
                &format!("interfaces[{i}].router_advertisements ({})", x.name),
                ra_text(x.ra.as_ref()),
                ra_text(y.ra.as_ref()),
            );
        }
    }
}

/// Router advertisements as one line: `off`, or their settings and
/// prefixes.
pub fn ra_text(ra: Option<&RaConfig>) -> String {
    let Some(r) = ra else {
        return "off".into();
    };
    let mut s = format!(
        "interval {}, router_lifetime {}, hop_limit {}",
        r.interval, r.router_lifetime, r.hop_limit
    );
    for (on, name) in [(r.managed, "managed"), (r.other, "other")] {
        if on {
            s.push_str(&format!(", {name}"));
        }
    }
    if !r.mtu {
        s.push_str(", no mtu");
    }
    let p: Vec<String> = (r.prefixes.iter())
        .map(|p| {
            let mut t = format!(
                "{} valid {} preferred {}",
                p.prefix,
                super::decode::lifetime_text(p.valid_lifetime),
                super::decode::lifetime_text(p.preferred_lifetime)
            );
            if !p.on_link {
                t.push_str(" off-link");
            }
            if !p.autonomous {
                t.push_str(" no-slaac");
            }
            t
        })
        .collect();
    s.push_str(&format!(", prefixes [{}]", p.join(", ")));
    s
}

/// Added, removed and changed items of two keyed maps.
fn keyed<K: Ord>(
    old: BTreeMap<K, String>,
    new: BTreeMap<K, String>,
    key_text: impl Fn(&K) -> String,
) -> Vec<ItemChange> {
    let keys: BTreeSet<&K> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let (a, b) = (old.get(k), new.get(k));
            (a != b).then(|| ItemChange {
                key: key_text(k),
                old: a.cloned(),
                new: b.cloned(),
            })
        })
        .collect()
}

fn push_chain(
    d: &mut ConfigDiff,
    name: &str,
    policy: Option<(String, String)>,
    a: &[String],
    b: &[String],
) {
    let c = diff_rules(name, policy, a, b);
    if c.policy.is_some() || !c.added.is_empty() || !c.removed.is_empty() || !c.moved.is_empty() {
        d.chains.push(c);
    }
}

/// Rules kept in order are the longest common subsequence of the two
/// lists; of the others, a rule in both lists has moved, the rest were
/// added or removed. Positions count from 1.
pub fn diff_rules(
    chain: &str,
    policy: Option<(String, String)>,
    old: &[String],
    new: &[String],
) -> ChainDiff {
    let (n, m) = (old.len(), new.len());
    // lcs[i][j]: the longest common subsequence of old[i..] and new[j..].
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if old[i] == new[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut kept_old, mut kept_new) = (vec![false; n], vec![false; m]);
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        if old[i] == new[j] {
            kept_old[i] = true;
            kept_new[j] = true;
            i += 1;
            j += 1;
        } else if lcs[i + 1][j] >= lcs[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    let mut c = ChainDiff {
        chain: chain.to_string(),
        policy,
        ..Default::default()
    };
    let mut taken_new = kept_new.clone();
    for (i, rule) in old.iter().enumerate().filter(|(i, _)| !kept_old[*i]) {
        let to = (0..m).find(|&j| !taken_new[j] && new[j] == *rule);
        match to {
            Some(j) => {
                taken_new[j] = true;
                c.moved.push(RuleMove {
                    from: i + 1,
                    to: j + 1,
                    rule: rule.clone(),
                });
            }
            None => c.removed.push(RuleAt {
                position: i + 1,
                rule: rule.clone(),
            }),
        }
    }
    for (j, rule) in new.iter().enumerate().filter(|(j, _)| !taken_new[*j]) {
        c.added.push(RuleAt {
            position: j + 1,
            rule: rule.clone(),
        });
    }
    c
}

fn raw_action(a: RawAction) -> &'static str {
    match a {
        RawAction::NoTrack => "notrack",
        RawAction::Accept => "accept",
    }
}

/// A rule as config text: `{ in: wan, protocol: tcp, destination_port: 22 }
/// accept (ssh)`; a rule without conditions is `{ }`.
pub fn rule_text(m: &Match, action: &str, comment: Option<&str>, ifs: &[Interface]) -> String {
    let mut s = format!("{} {action}", match_text(m, ifs));
    if let Some(c) = comment {
        s.push_str(&format!(" ({c})"));
    }
    s
}

/// A match in the config's flow syntax, keys in the config's order.
pub fn match_text(m: &Match, ifs: &[Interface]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let ports = |mask: u64| -> String {
        let mut names: Vec<&str> = (ifs.iter().enumerate())
            .filter(|(i, _)| mask & PortId(*i as u8).bit() != 0)
            .map(|(_, f)| f.name.as_str())
            .collect();
        if mask & PortId::HOST.bit() != 0 {
            names.push("host");
        }
        list(names.iter().map(|n| n.to_string()).collect())
    };
    if let Some(p) = m.in_ports {
        parts.push(format!("in: {}", ports(p)));
    }
    if let Some(p) = m.out_ports {
        parts.push(format!("out: {}", ports(p)));
    }
    for (key, a, a6) in [
        ("source", &m.source, &m.source6),
        ("destination", &m.destination, &m.destination6),
    ] {
        let mut items: Vec<String> = match a {
            Some(AddrMatch::Local) => {
                parts.push(format!("{key}: local"));
                continue;
            }
            Some(AddrMatch::Prefixes(p)) => p.iter().map(prefix_text).collect(),
            None => Vec::new(),
        };
        items.extend(a6.iter().flatten().map(|p| p.to_string()));
        if !items.is_empty() {
            parts.push(format!("{key}: {}", list(items)));
        }
    }
    if let Some(f) = m.family {
        parts.push(format!("family: {}", f.name()));
    }
    if let Some(p) = m.protocol {
        parts.push(format!("protocol: {}", super::rules::protocol_name(p)));
    }
    for (key, r) in [
        ("source_port", &m.source_port),
        ("destination_port", &m.destination_port),
    ] {
        if let Some(r) = r {
            parts.push(format!("{key}: {}", port_ranges_text(r)));
        }
    }
    if let Some(mask) = m.state {
        let states = [
            CtState::New,
            CtState::Established,
            CtState::Related,
            CtState::Invalid,
            CtState::Untracked,
        ];
        let names: Vec<String> = (states.iter())
            .filter(|s| mask & s.bit() != 0)
            .map(|s| s.name().to_string())
            .collect();
        parts.push(format!("state: [{}]", names.join(", ")));
    }
    let v6 = m.protocol == Some(super::rules::ICMPV6);
    if let Some(t) = m.icmp_type {
        parts.push(if v6 {
            format!("icmpv6_type: {}", super::rules::icmpv6_type_name(t))
        } else {
            format!("icmp_type: {}", super::rules::icmp_type_name(t))
        });
    }
    if let Some(c) = m.icmp_code {
        parts.push(if v6 {
            format!("icmpv6_code: {}", super::rules::icmpv6_code_name(c))
        } else {
            format!("icmp_code: {}", super::rules::icmp_code_name(c))
        });
    }
    if parts.is_empty() {
        "{ }".to_string()
    } else {
        format!("{{ {} }}", parts.join(", "))
    }
}

/// One item alone, several as a flow list.
fn list(items: Vec<String>) -> String {
    if items.len() == 1 {
        items.into_iter().next().unwrap_or_default()
    } else {
        format!("[{}]", items.join(", "))
    }
}

fn port_ranges_text(r: &PortRanges) -> String {
    list(
        r.iter()
            .map(|&(lo, hi)| {
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("\"{lo}-{hi}\"")
                }
            })
            .collect(),
    )
}

fn prefix_text(p: &Ipv4Prefix) -> String {
    if *p == Ipv4Prefix::DEFAULT {
        "default".to_string()
    } else {
        p.to_string()
    }
}

/// A route's target as the config writes it: `via [A, B]` for equal-cost
/// gateways.
fn route_target_text(r: &dataplane::tables::RouteSpec, ifs: &[Interface]) -> String {
    let paths: Vec<NextHop> = r.paths().collect();
    if paths.len() > 1 {
        let gws: Vec<String> = (paths.iter())
            .map(|p| {
                next_hop_text(*p, ifs)
                    .trim_start_matches("via ")
                    .to_string()
            })
            .collect();
        return format!("via [{}]", gws.join(", "));
    }
    next_hop_text(r.next_hop, ifs)
}

/// A next hop as the config writes it.
fn next_hop_text(n: NextHop, ifs: &[Interface]) -> String {
    let name = |p: PortId| {
        ifs.get(p.0 as usize)
            .map_or("?".to_string(), |i| i.name.clone())
    };
    match n {
        NextHop::Via { gateway, .. } => format!("via {}", Ipv4Addr::from(gateway)),
        NextHop::Connected(p) => format!("interface {}", name(p)),
        NextHop::Blackhole => "blackhole".to_string(),
        NextHop::Unreachable => "unreachable".to_string(),
        NextHop::Local => "local".to_string(),
        // Only built from `paths` into the tables, never in a config's spec.
        NextHop::Multipath { count, .. } => format!("{count} equal-cost paths"),
    }
}

/// An IPv6 next hop as the config writes it.
fn next_hop6_text(n: NextHop6, ifs: &[Interface]) -> String {
    match n {
        NextHop6::Via { port, gateway } => {
            let gw = Ipv6Addr::from(gateway);
            if gw.is_unicast_link_local() {
                format!("via {gw} interface {}", port_name(port, ifs))
            } else {
                format!("via {gw}")
            }
        }
        NextHop6::Connected(p) => format!("interface {}", port_name(p, ifs)),
        NextHop6::Blackhole => "blackhole".to_string(),
        NextHop6::Unreachable => "unreachable".to_string(),
        NextHop6::Local => "local".to_string(),
    }
}

fn port_name(p: PortId, ifs: &[Interface]) -> String {
    ifs.get(p.0 as usize)
        .map_or("?".to_string(), |i| i.name.clone())
}

/// Both families' addresses, IPv4 first.
fn all_addresses(i: &Interface) -> Vec<String> {
    (i.addresses.iter().map(|a| a.to_string()))
        .chain(i.addresses6.iter().map(|a| a.to_string()))
        .collect()
}

fn addresses_text(i: &Interface) -> String {
    format!("[{}]", all_addresses(i).join(" "))
}

fn interface_text(port: usize, i: &Interface) -> String {
    let a = all_addresses(i);
    format!(
        "port {port}, device {}, mtu {}, addresses [{}]",
        i.device,
        i.mtu,
        a.join(", ")
    )
}

/// Seconds as the config writes a duration: `5d`, `2m`, `45s`.
pub fn duration_text(secs: u32) -> String {
    for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs >= n && secs % n == 0 {
            return format!("{}{unit}", secs / n);
        }
    }
    format!("{secs}s")
}

impl fmt::Display for ConfigDiff {
    /// The text `routerctl reload --dry-run` prints (without its first line).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(f, "no change");
        }
        for c in &self.chains {
            writeln!(f, "{}:", c.chain)?;
            if let Some((a, b)) = &c.policy {
                writeln!(f, "  ~ policy {a} -> {b}")?;
            }
            for r in &c.removed {
                writeln!(f, "  - rule {}: {}", r.position, r.rule)?;
            }
            for r in &c.added {
                writeln!(f, "  + rule {}: {}", r.position, r.rule)?;
            }
            for r in &c.moved {
                writeln!(f, "  ~ rule {} -> {}: {} (moved)", r.from, r.to, r.rule)?;
            }
        }
        for (title, items) in [
            ("routes", &self.routes),
            ("neighbors", &self.neighbours),
            ("interfaces", &self.interfaces),
        ] {
            if items.is_empty() {
                continue;
            }
            writeln!(f, "{title}:")?;
            for i in items {
                match (&i.old, &i.new) {
                    (None, Some(b)) => writeln!(f, "  + {} {b}", i.key)?,
                    (Some(a), None) => writeln!(f, "  - {} {a}", i.key)?,
                    (Some(a), Some(b)) => writeln!(f, "  ~ {} {a} -> {b}", i.key)?,
                    (None, None) => {}
                }
            }
        }
        let settings = |f: &mut fmt::Formatter<'_>, title: &str, v: &[SettingChange]| {
            if v.is_empty() {
                return Ok(());
            }
            writeln!(f, "{title}:")?;
            for s in v {
                write!(f, "  ~ {}: {} -> {}", s.key, s.old, s.new)?;
                match &s.why {
                    Some(w) => writeln!(f, " ({w})")?,
                    None => writeln!(f)?,
                }
            }
            Ok(())
        };
        settings(f, "settings", &self.settings)?;
        settings(
            f,
            "need a restart (a reload refuses them and changes nothing)",
            &self.restart,
        )?;
        settings(
            f,
            "take effect at the next start only (a reload applies the rest)",
            &self.next_start,
        )?;
        if self.restart.is_empty() {
            writeln!(f, "a reload would apply this")
        } else {
            writeln!(
                f,
                "a reload would be refused: restart routerd to apply it (the running config stays)"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg(text: &str) -> Config {
        Config::from_str(text, Path::new("t.yaml")).unwrap_or_else(|e| panic!("{e}"))
    }

    const BASE: &str = "
dataplane: { workers: [1] }
interfaces:
  - { name: wan, device: r0, addresses: [198.18.0.1/24] }
  - { name: lan, device: r1, addresses: [198.19.0.1/24] }
routes:
  - { to: 203.0.113.0/24, via: 198.19.0.2 }
  - { to: default, via: 198.18.0.2 }
filter:
  input:
    policy: drop
    rules:
      - { match: { state: [established, related] }, action: accept }
      - { match: { protocol: icmp, icmp_type: echo-request }, action: accept, comment: ping }
      - { match: { protocol: tcp, destination_port: 22 }, action: accept, comment: ssh }
";

    fn d(old: &str, new: &str) -> ConfigDiff {
        let (a, b) = (cfg(old), cfg(new));
        diff(&a, &b, a.spec.conntrack.max_entries)
    }

    #[test]
    fn the_same_config_is_no_change() {
        let x = d(BASE, BASE);
        assert!(x.is_empty(), "{x:?}");
        assert_eq!(x.to_string(), "no change\n");
    }

    #[test]
    fn rules_added_removed_and_moved_keep_their_positions() {
        let new = BASE
            .replace(
                "      - { match: { protocol: icmp, icmp_type: echo-request }, action: accept, comment: ping }\n",
                "",
            )
            .replace(
                "      - { match: { state: [established, related] }, action: accept }\n",
                "      - { match: { protocol: tcp, destination_port: 80 }, action: accept, comment: web }\n      - { match: { state: [established, related] }, action: accept }\n",
            );
        let x = d(BASE, &new);
        assert_eq!(x.chains.len(), 1, "{x:?}");
        let c = &x.chains[0];
        assert_eq!(c.chain, "filter.input");
        assert_eq!(
            c.removed,
            [RuleAt {
                position: 2,
                rule: "{ protocol: icmp, icmp_type: echo-request } accept (ping)".into()
            }]
        );
        assert_eq!(
            c.added,
            [RuleAt {
                position: 1,
                rule: "{ protocol: tcp, destination_port: 80 } accept (web)".into()
            }]
        );
        // Shifted by the insertion, not out of order: not moved.
        assert!(c.moved.is_empty(), "{c:?}");
        assert!(x.restart.is_empty() && x.settings.is_empty(), "{x:?}");
    }

    #[test]
    fn a_swap_is_one_move_and_a_policy_change_is_named() {
        let ssh = "      - { match: { protocol: tcp, destination_port: 22 }, action: accept, comment: ssh }\n";
        let new = BASE
            .replace(ssh, "")
            .replace("    rules:\n", &format!("    rules:\n{ssh}"));
        let new = new.replace("policy: drop", "policy: accept");
        let x = d(BASE, &new);
        let c = &x.chains[0];
        assert_eq!(
            c.moved,
            [RuleMove {
                from: 3,
                to: 1,
                rule: "{ protocol: tcp, destination_port: 22 } accept (ssh)".into()
            }],
            "{c:?}"
        );
        assert!(c.added.is_empty() && c.removed.is_empty(), "{c:?}");
        assert_eq!(c.policy, Some(("drop".into(), "accept".into())));
        let text = x.to_string();
        assert!(text.contains("  ~ rule 3 -> 1: "), "{text}");
        assert!(text.contains("  ~ policy drop -> accept"), "{text}");
    }

    #[test]
    fn routes_are_added_removed_and_changed_by_prefix() {
        let new = BASE
            .replace("  - { to: 203.0.113.0/24, via: 198.19.0.2 }\n", "")
            .replace(
                "to: default, via: 198.18.0.2",
                "to: default, via: 198.18.0.3",
            )
            .replace(
                "routes:\n",
                "routes:\n  - { to: 192.0.2.0/24, blackhole: true }\n",
            );
        let x = d(BASE, &new);
        let r = |k: &str, a: Option<&str>, b: Option<&str>| ItemChange {
            key: k.into(),
            old: a.map(Into::into),
            new: b.map(Into::into),
        };
        assert_eq!(
            x.routes,
            [
                r("default", Some("via 198.18.0.2"), Some("via 198.18.0.3")),
                r("192.0.2.0/24", None, Some("blackhole")),
                r("203.0.113.0/24", Some("via 198.19.0.2"), None),
            ]
        );
        assert!(x.restart.is_empty(), "{x:?}");
    }

    #[test]
    fn ports_workers_and_umem_need_a_restart_timeouts_do_not() {
        let new = BASE
            .replace("workers: [1]", "workers: [0, 1], umem_frames: 8192")
            .replace(
                "device: r1, addresses: [198.19.0.1/24]",
                "device: r1, addresses: [198.19.0.1/24], mtu: 9000",
            )
            + "conntrack: { timeouts: { udp: 1m } }\nmetrics: { listen: \"127.0.0.1:9477\" }\n";
        let x = d(BASE, &new);
        let keys: Vec<&str> = x.restart.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "dataplane.workers",
                "dataplane.umem_frames",
                "interfaces[1].mtu (lan)"
            ]
        );
        assert_eq!(
            x.restart[0].refusal(),
            "dataplane.workers: [1] -> [0, 1] cannot change while routerd runs"
        );
        assert_eq!(
            x.interfaces,
            [ItemChange {
                key: "lan".into(),
                old: Some("port 1, device r1, mtu 1500, addresses [198.19.0.1/24]".into()),
                new: Some("port 1, device r1, mtu 9000, addresses [198.19.0.1/24]".into()),
            }]
        );
        assert_eq!(
            x.settings,
            [SettingChange::new("conntrack.timeouts.udp", "30s", "1m")]
        );
        assert_eq!(x.next_start.len(), 1, "{x:?}");
        assert_eq!(x.next_start[0].key, "metrics.listen");
        assert!(x.to_string().ends_with(
            "a reload would be refused: restart routerd to apply it (the running config stays)\n"
        ));
    }

    #[test]
    fn a_renamed_port_is_one_interfaces_refusal() {
        let new = BASE.replace("device: r1", "device: r2");
        let x = d(BASE, &new);
        assert_eq!(x.restart.len(), 1, "{x:?}");
        assert!(
            x.restart[0]
                .refusal()
                .starts_with("interfaces: [wan=r0, lan=r1] -> [wan=r0, lan=r2]: ports cannot"),
            "{:?}",
            x.restart
        );
    }

    #[test]
    fn a_bigger_table_than_at_start_waits_for_a_restart() {
        let a = cfg(BASE);
        let b = cfg(&format!("{BASE}conntrack: {{ max_entries: 1000000 }}\n"));
        let x = diff(&a, &b, 262_144);
        assert_eq!(x.next_start.len(), 1, "{x:?}");
        assert_eq!(x.next_start[0].key, "conntrack.max_entries");
        assert!(x.settings.is_empty(), "{x:?}");
        // Lowering it applies.
        let c = cfg(&format!("{BASE}conntrack: {{ max_entries: 1000 }}\n"));
        let y = diff(&a, &c, 262_144);
        assert_eq!(
            y.settings,
            [SettingChange::new(
                "conntrack.max_entries",
                "262144",
                "1000"
            )]
        );
    }

    const DUAL: &str = "
interfaces:
  - { name: wan, device: r0, addresses: [198.18.0.1/24, 2001:db8::1/64] }
  - { name: lan, device: r1, addresses: [198.19.0.1/24, 2001:db8:1::1/64], router_advertisements: true }
routes:
  - { to: default, via: 198.18.0.2 }
  - { to: default, via: 2001:db8::2 }
  - { to: 2001:db8:5::/48, via: fe80::5, interface: lan }
neighbors:
  - { address: 2001:db8::2, mac: \"02:00:00:00:00:02\" }
  - { address: fe80::5, interface: lan, mac: \"02:00:00:00:00:05\" }
filter:
  input:
    rules:
      - { match: { icmpv6_type: echo-request }, action: accept, comment: ping6 }
";

    #[test]
    fn ipv6_routes_and_neighbours_are_applied_by_a_reload() {
        let new = DUAL
            .replace(
                "to: default, via: 2001:db8::2",
                "to: default, via: 2001:db8::3",
            )
            .replace(
                "  - { to: 2001:db8:5::/48, via: fe80::5, interface: lan }\n",
                "  - { to: 2001:db8:6::/48, unreachable: true }\n",
            )
            .replace(
                "fe80::5, interface: lan, mac",
                "fe80::5, interface: wan, mac",
            )
            .replace("\"02:00:00:00:00:02\"", "\"02:00:00:00:00:12\"");
        let x = d(DUAL, &new);
        let r = |k: &str, a: Option<&str>, b: Option<&str>| ItemChange {
            key: k.into(),
            old: a.map(Into::into),
            new: b.map(Into::into),
        };
        assert_eq!(
            x.routes,
            [
                r("::/0", Some("via 2001:db8::2"), Some("via 2001:db8::3")),
                r("2001:db8:5::/48", Some("via fe80::5 interface lan"), None),
                r("2001:db8:6::/48", None, Some("unreachable")),
            ]
        );
        assert_eq!(
            x.neighbours,
            [
                r(
                    "2001:db8::2",
                    Some("02:00:00:00:00:02"),
                    Some("02:00:00:00:00:12")
                ),
                r("fe80::5 interface lan", Some("02:00:00:00:00:05"), None),
                r("fe80::5 interface wan", None, Some("02:00:00:00:00:05")),
            ]
        );
        assert!(x.restart.is_empty(), "{x:?}");
        let text = x.to_string();
        assert!(
            text.contains("  ~ ::/0 via 2001:db8::2 -> via 2001:db8::3"),
            "{text}"
        );
        assert!(text.ends_with("a reload would apply this\n"), "{text}");
    }

    #[test]
    fn ipv6_addresses_need_a_restart_as_ipv4_ones_do_and_ras_are_applied() {
        let new = DUAL.replace("2001:db8::1/64]", "2001:db8::1/64, 2001:db8:7::1/64]");
        let x = d(DUAL, &new);
        assert_eq!(
            x.restart,
            [SettingChange::new(
                "interfaces[0].addresses (wan)",
                "[198.18.0.1/24 2001:db8::1/64]",
                "[198.18.0.1/24 2001:db8::1/64 2001:db8:7::1/64]"
            )]
        );
        assert_eq!(x.interfaces.len(), 1, "{x:?}");
        let new = DUAL.replace(
            "router_advertisements: true",
            "router_advertisements: { interval: 30, managed: true }",
        );
        let x = d(DUAL, &new);
        assert!(x.restart.is_empty() && x.interfaces.is_empty(), "{x:?}");
        assert_eq!(
            x.settings,
            [SettingChange::new(
                "interfaces[1].router_advertisements (lan)",
                "interval 200, router_lifetime 1800, hop_limit 64, prefixes [2001:db8:1::/64 valid 2592000 s preferred 604800 s]",
                "interval 30, router_lifetime 1800, hop_limit 64, managed, prefixes [2001:db8:1::/64 valid 2592000 s preferred 604800 s]"
            )]
        );
        let off = DUAL.replace(", router_advertisements: true", "");
        let x = d(DUAL, &off);
        assert_eq!(x.settings.len(), 1, "{x:?}");
        assert!(x.settings[0].new == "off", "{x:?}");
        assert!(x.restart.is_empty(), "{x:?}");
    }

    #[test]
    fn inet_rules_show_both_families_and_icmpv6() {
        let new = DUAL.replace(
            "{ icmpv6_type: echo-request }",
            "{ source: [2001:db8::/32, 198.18.0.0/15], family: ipv6, icmpv6_type: 1, icmpv6_code: no-route }",
        );
        let x = d(DUAL, &new);
        let c = &x.chains[0];
        assert_eq!(
            c.removed[0].rule,
            "{ protocol: icmpv6, icmpv6_type: echo-request } accept (ping6)"
        );
        assert_eq!(
            c.added[0].rule,
            "{ source: [198.18.0.0/15, 2001:db8::/32], family: ipv6, protocol: icmpv6, icmpv6_type: destination-unreachable, icmpv6_code: no-route } accept (ping6)"
        );
    }

    #[test]
    fn match_text_reads_like_the_config() {
        let c = cfg(&format!(
            "{BASE}raw:\n  prerouting:\n    - {{ match: {{ in: [wan, lan], source: [198.18.0.0/24, 203.0.113.0/24], protocol: udp, source_port: [53, \"1000-2000\"] }}, action: notrack }}\n    - action: accept\n"
        ));
        let t = |r: &RawRule| rule_text(&r.matches, raw_action(r.action), None, &c.spec.interfaces);
        assert_eq!(
            t(&c.spec.raw_prerouting[0]),
            "{ in: [wan, lan], source: [198.18.0.0/24, 203.0.113.0/24], protocol: udp, source_port: [53, \"1000-2000\"] } notrack"
        );
        assert_eq!(t(&c.spec.raw_prerouting[1]), "{ } accept");
        assert_eq!(duration_text(432_000), "5d");
        assert_eq!(duration_text(90), "90s");
    }
}
