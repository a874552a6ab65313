//! `routerctl explain`: run described packets through the pipeline built
//! from a config file, offline, and say what every stage decided.
//!
//! Interfaces get made-up MAC addresses, and next hops are taken as already
//! resolved by ARP or NDP (the output says so): explain is about the rules,
//! not about a live network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use dataplane::addr::Mac;
use dataplane::conntrack::{FlowKey, FlowKey6, FlowRef, FlowView};
use dataplane::packet::{Pkt, PortId, Verdict};
use dataplane::pipeline::Pipeline;
use dataplane::rules::RawAction;
use dataplane::rules::RawHook;
use dataplane::tables::{NextHop, Tables, TablesSpec};
use dataplane::tables6::NextHop6;
use dataplane::trace::Event;
use serde_json::{json, Value};

use crate::packet_spec::{PacketSpec, SpecError};

/// MAC the router uses on port `i` in explain.
pub fn port_mac(i: usize) -> Mac {
    Mac([0x02, 0x00, 0x5e, 0x10, 0x00, i as u8 + 1])
}

/// MAC of the peer that sends into port `i` (and of neighbours behind it).
pub fn peer_mac(i: usize) -> Mac {
    Mac([0x02, 0x00, 0x5e, 0x20, 0x00, i as u8 + 1])
}

/// One explained packet.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// Human-readable lines, one per stage.
    pub lines: Vec<String>,
    /// The machine-readable form.
    pub json: Value,
}

/// Runs packets through one pipeline and one connection table.
pub struct Explainer {
    pipeline: Pipeline,
    tables: Arc<Tables>,
}

/// A packet that cannot be explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The description does not parse.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// `in=` names no interface.
    #[error("packet `{text}`: in={name} is not an interface of the config (interfaces: {known}, or host)")]
    UnknownInterface {
        text: String,
        name: String,
        known: String,
    },
}

fn ip(a: u32) -> Ipv4Addr {
    Ipv4Addr::from(a)
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        58 => "icmpv6".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        n => format!("proto {n}"),
    }
}

/// `tcp 198.18.0.2:40000 > 198.18.0.1:22`.
pub fn flow_text(k: &FlowKey) -> String {
    match k.proto {
        6 | 17 => format!(
            "{} {}:{} > {}:{}",
            proto_name(k.proto),
            ip(k.src),
            k.sport,
            ip(k.dst),
            k.dport
        ),
        1 => format!("icmp {} > {} id {}", ip(k.src), ip(k.dst), k.sport),
        p => format!("{} {} > {}", proto_name(p), ip(k.src), ip(k.dst)),
    }
}

/// `tcp [2001:db8::2]:40000 > [2001:db8::1]:22`.
pub fn flow_text6(k: &FlowKey6) -> String {
    let (s, d) = (Ipv6Addr::from(k.src), Ipv6Addr::from(k.dst));
    match k.proto {
        6 | 17 => format!(
            "{} [{s}]:{} > [{d}]:{}",
            proto_name(k.proto),
            k.sport,
            k.dport
        ),
        58 => format!("icmpv6 {s} > {d} id {}", k.sport),
        p => format!("{} {s} > {d}", proto_name(p)),
    }
}

/// A flow of either family in words: [`flow_text`] or [`flow_text6`].
pub fn flow_view_text(f: &FlowView) -> String {
    match &f.key6 {
        Some(k) => flow_text6(k),
        None => flow_text(&f.key),
    }
}

impl Explainer {
    /// A pipeline over the config's tables, with made-up MACs.
    pub fn new(mut spec: TablesSpec) -> Explainer {
        for (i, ifc) in spec.interfaces.iter_mut().enumerate() {
            ifc.mac = port_mac(i);
        }
        let tables = Arc::new(Tables::build(spec));
        let mut pipeline = Pipeline::new(Arc::clone(&tables));
        for nh in &tables.next_hops {
            if let NextHop::Via { port, gateway } = *nh {
                if pipeline.neighbours().get(gateway).is_none() {
                    pipeline.learn_neighbour(gateway, peer_mac(port.0 as usize), port);
                }
            }
        }
        for nh in &tables.v6.next_hops {
            if let NextHop6::Via { port, gateway } = *nh {
                if pipeline.neighbours6().get((gateway, port)).is_none() {
                    pipeline.learn_neighbour6(gateway, peer_mac(port.0 as usize), port);
                }
            }
        }
        Explainer { pipeline, tables }
    }

    /// The tables explain runs on.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Entries in the connection table.
    pub fn conntrack_entries(&self) -> usize {
        self.pipeline.conntrack().len()
    }

    /// The pipeline (its connection table, counters).
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Run one described packet.
    pub fn explain(&mut self, spec: &PacketSpec) -> Result<Explanation, ExplainError> {
        let port = if spec.input == "host" {
            PortId::HOST
        } else {
            self.tables
                .port_by_name(&spec.input)
                .ok_or_else(|| ExplainError::UnknownInterface {
                    text: spec.text.clone(),
                    name: spec.input.clone(),
                    known: self
                        .tables
                        .interfaces
                        .iter()
                        .map(|i| i.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?
        };
        let dst = u32::from(spec.dst);
        // Explain assumes neighbours on connected networks answer ARP.
        if let (false, Some(NextHop::Connected(p))) = (spec.v6, self.tables.route(dst)) {
            if self.pipeline.neighbours().get(dst).is_none() {
                self.pipeline
                    .learn_neighbour(dst, peer_mac(p.0 as usize), p);
            }
        }
        // ... and on connected IPv6 networks answer NDP.
        let dst6 = u128::from(spec.dst6);
        if let (true, Some((_, NextHop6::Connected(p)))) = (spec.v6, self.tables.v6.route(dst6)) {
            if self.pipeline.neighbours6().get((dst6, p)).is_none() {
                self.pipeline
                    .learn_neighbour6(dst6, peer_mac(p.0 as usize), p);
            }
        }
        let mut frame = if port.is_host() {
            spec.frame(Mac::ZERO, Mac::ZERO)
        } else {
            spec.frame(port_mac(port.0 as usize), peer_mac(port.0 as usize))
        };
        let len = frame.len();
        frame.resize(2048, 0);
        let mut pkt = Pkt {
            buf: &mut frame,
            len,
            port,
        };
        let mut events: Vec<Event> = Vec::new();
        let verdict = self.pipeline.process(&mut pkt, &mut events);
        Ok(self.render(spec, &events, verdict, &frame))
    }

    fn render(
        &self,
        spec: &PacketSpec,
        events: &[Event],
        _verdict: Verdict,
        out_frame: &[u8],
    ) -> Explanation {
        let ct = self.pipeline.conntrack();
        let now = self.pipeline.now();
        let neigh = self.pipeline.neighbours();
        let neigh6 = self.pipeline.neighbours6();
        let mut e = render_events(&Rendering {
            tables: &self.tables,
            head: spec.text.clone(),
            input: spec.input.clone(),
            dst: spec.dst_ip(),
            events,
            out_frame,
            flow: &|f| ct.flow(f, now),
            is_static: &|a, port| match a {
                IpAddr::V4(a) => neigh.get(u32::from(a)).is_some_and(|n| n.is_static),
                IpAddr::V6(a) => neigh6
                    .get((u128::from(a), port))
                    .is_some_and(|n| n.is_static),
            },
            learned: "assumed resolved",
        });
        e.json["conntrack_entries"] = json!(ct.len());
        e
    }
}

fn route_text(t: &Tables, nh: Option<NextHop>, dst: u32) -> String {
    match nh {
        None => format!("{}: no route", ip(dst)),
        Some(NextHop::Local) => format!("{}: local", ip(dst)),
        Some(NextHop::Connected(p)) => {
            format!("{}: connected on {}", ip(dst), t.port_name(p))
        }
        Some(NextHop::Via { port, gateway }) => {
            format!("{}: via {} on {}", ip(dst), ip(gateway), t.port_name(port))
        }
        Some(NextHop::Blackhole) => format!("{}: blackhole", ip(dst)),
        Some(NextHop::Unreachable) => format!("{}: unreachable", ip(dst)),
        Some(NextHop::Multipath { count, .. }) => format!("{}: {count} paths", ip(dst)),
    }
}

/// An IPv6 route line, in the words of IPv4's ([`route_text`]).
fn route_text6(t: &Tables, nh: Option<NextHop6>, dst: Ipv6Addr) -> String {
    match nh {
        None => format!("{dst}: no route"),
        Some(NextHop6::Local) => format!("{dst}: local"),
        Some(NextHop6::Connected(p)) => format!("{dst}: connected on {}", t.port_name(p)),
        Some(NextHop6::Via { port, gateway }) => format!(
            "{dst}: via {} on {}",
            Ipv6Addr::from(gateway),
            t.port_name(port)
        ),
        Some(NextHop6::Blackhole) => format!("{dst}: blackhole"),
        Some(NextHop6::Unreachable) => format!("{dst}: unreachable"),
    }
}

/// Everything needed to put a packet's stage decisions into words: the
/// offline explainer and live traces (`routerctl trace`) share this.
pub struct Rendering<'a> {
    /// The tables the packet went through.
    pub tables: &'a Tables,
    /// The first line: the packet.
    pub head: String,
    /// Arrival interface name (`host` for the host path).
    pub input: String,
    /// The packet's destination (route lines name it).
    pub dst: IpAddr,
    /// Stage decisions in order.
    pub events: &'a [Event],
    /// The frame after the pipeline (at least its headers).
    pub out_frame: &'a [u8],
    /// The flow behind a reference.
    pub flow: &'a dyn Fn(FlowRef) -> Option<FlowView>,
    /// Whether a neighbour (IPv4 or IPv6) on a port is a static entry.
    pub is_static: &'a dyn Fn(IpAddr, PortId) -> bool,
    /// How a resolved, not static neighbour came to be known (`assumed
    /// resolved` offline, `resolved` live); ` by ARP` or ` by NDP` follows.
    pub learned: &'a str,
}

/// One line per stage, in `explain`'s words, and the JSON form.
pub fn render_events(r: &Rendering<'_>) -> Explanation {
    let t = r.tables;
    let spec_text = &r.head;
    let mut lines = vec![spec_text.clone()];
    let mut j = json!({
        "packet": spec_text,
        "in": r.input,
        "raw_hook": null, "raw_rule": null, "raw_comment": null, "raw_action": null,
        "ct_state": null, "ct_flow": null, "ct_confirmed": false,
        "route": null, "chain": null, "rule": null, "rule_comment": null, "rule_text": null,
        "verdict": "accept", "out": null, "drop_reason": null, "reply": null,
        "neighbour": null,
    });
    let row = |lines: &mut Vec<String>, stage: &str, text: String| {
        lines.push(format!("  {stage:<16} {text}"));
    };
    for e in r.events {
        match *e {
            Event::Raw { hook, rule, action } => {
                let (hname, rules) = match hook {
                    RawHook::Prerouting => ("prerouting", &t.raw_prerouting),
                    RawHook::Output => ("output", &t.raw_output),
                };
                let act = match action {
                    RawAction::NoTrack => "notrack",
                    RawAction::Accept => "accept",
                };
                let comment = rule.and_then(|i| rules[i].comment.clone());
                let text = match rule {
                    Some(i) => format!(
                        "rule {}{}: {} -> {}",
                        i + 1,
                        comment
                            .as_ref()
                            .map(|c| format!(" ({c})"))
                            .unwrap_or_default(),
                        act,
                        if action == RawAction::NoTrack {
                            "untracked"
                        } else {
                            "tracked"
                        }
                    ),
                    None => "no rule matched -> tracked".to_string(),
                };
                row(&mut lines, &format!("raw/{hname}"), text);
                j["raw_hook"] = json!(hname);
                j["raw_rule"] = json!(rule.map(|i| i + 1));
                j["raw_comment"] = json!(comment);
                j["raw_action"] = json!(act);
            }
            Event::Conntrack { state, flow } => {
                let mut text = state.name().to_string();
                if let Some(f) = flow.and_then(|f| (r.flow)(f)) {
                    text.push_str(&format!(
                        " (flow {}{})",
                        flow_view_text(&f),
                        f.tcp_state
                            .map(|s| format!(", {}", s.name()))
                            .unwrap_or_default()
                    ));
                    j["ct_flow"] = json!(flow_view_text(&f));
                }
                row(&mut lines, "conntrack", text);
                j["ct_state"] = json!(state.name());
            }
            Event::Route { next_hop } => {
                let dst = match r.dst {
                    IpAddr::V4(a) => u32::from(a),
                    IpAddr::V6(_) => 0,
                };
                let text = route_text(t, next_hop, dst);
                j["route"] = json!(text);
                row(&mut lines, "route", text);
            }
            Event::Route6 { next_hop } => {
                let dst = match r.dst {
                    IpAddr::V6(a) => a,
                    IpAddr::V4(_) => Ipv6Addr::UNSPECIFIED,
                };
                let text = route_text6(t, next_hop, dst);
                j["route"] = json!(text);
                row(&mut lines, "route", text);
            }
            Event::Neighbour6 {
                addr,
                port,
                resolved,
            } => {
                let a = Ipv6Addr::from(addr);
                let is_static = (r.is_static)(IpAddr::V6(a), port);
                let text = if resolved && is_static {
                    format!("{a} on {} (static)", t.port_name(port))
                } else if resolved {
                    format!("{a} on {} ({} by NDP)", t.port_name(port), r.learned)
                } else {
                    format!("{a} on {}: unresolved", t.port_name(port))
                };
                j["neighbour"] = json!(a.to_string());
                row(&mut lines, "neighbour", text);
            }
            Event::Filter {
                chain,
                rule,
                action,
            } => {
                let comment = rule.and_then(|i| t.filter[chain as usize].rules[i].comment.clone());
                j["rule_text"] = json!(rule.map(|i| {
                    let r = &t.filter[chain as usize].rules[i];
                    crate::config::diff::rule_text(
                        &r.matches,
                        r.action.name(),
                        r.comment.as_deref(),
                        &t.interfaces,
                    )
                }));
                let text = match rule {
                    Some(i) => format!(
                        "rule {}{}: {}",
                        i + 1,
                        comment
                            .as_ref()
                            .map(|c| format!(" ({c})"))
                            .unwrap_or_default(),
                        action.name()
                    ),
                    None => format!("policy: {}", action.name()),
                };
                row(&mut lines, &format!("filter/{}", chain.name()), text);
                j["chain"] = json!(chain.name());
                j["rule"] = json!(rule.map(|i| i + 1));
                j["rule_comment"] = json!(comment);
                j["verdict"] = json!(action.name());
            }
            Event::Confirmed { flow } => {
                let text = match (r.flow)(flow) {
                    Some(f) => format!(
                        "entry created: {}{}, timeout {}s",
                        flow_view_text(&f),
                        f.tcp_state
                            .map(|s| format!(" {}", s.name()))
                            .unwrap_or_default(),
                        f.timeout
                    ),
                    None => "entry created".to_string(),
                };
                row(&mut lines, "conntrack", text);
                j["ct_confirmed"] = json!(true);
            }
            Event::Neighbour {
                addr,
                port,
                resolved,
            } => {
                let is_static = (r.is_static)(IpAddr::V4(ip(addr)), port);
                let text = if resolved && is_static {
                    format!("{} on {} (static)", ip(addr), t.port_name(port))
                } else if resolved {
                    format!(
                        "{} on {} ({} by ARP)",
                        ip(addr),
                        t.port_name(port),
                        r.learned
                    )
                } else {
                    format!("{} on {}: unresolved", ip(addr), t.port_name(port))
                };
                j["neighbour"] = json!(ip(addr).to_string());
                row(&mut lines, "neighbour", text);
            }
            Event::Done {
                verdict: v,
                drop,
                generated,
            } => {
                let text = match (v, drop) {
                    (_, Some(reason)) => {
                        if j["verdict"] != json!("reject") {
                            j["verdict"] = json!("drop");
                        }
                        j["drop_reason"] = json!(reason.name());
                        if generated {
                            let what = reply_kind(r.out_frame);
                            if let Verdict::Tx(p) = v {
                                j["reply"] = json!({ "kind": what, "out": t.port_name(p) });
                                format!(
                                    "{} ({}), sent {} out of {}",
                                    j["verdict"].as_str().unwrap_or("drop"),
                                    reason.name(),
                                    what,
                                    t.port_name(p)
                                )
                            } else if v == Verdict::Host {
                                // The answer to a packet of the router's own
                                // stack goes back to that stack.
                                j["reply"] = json!({ "kind": what, "out": "host" });
                                format!(
                                    "{} ({}), sent {} to host",
                                    j["verdict"].as_str().unwrap_or("drop"),
                                    reason.name(),
                                    what
                                )
                            } else {
                                format!("drop ({})", reason.name())
                            }
                        } else {
                            format!(
                                "{} ({})",
                                j["verdict"].as_str().unwrap_or("drop"),
                                reason.name()
                            )
                        }
                    }
                    (Verdict::Tx(p), None) => {
                        j["out"] = json!(t.port_name(p));
                        let text = if is_ipv6(r.out_frame) {
                            let hl = r.out_frame.get(14 + 7).copied().unwrap_or(0);
                            format!("hop limit {hl}")
                        } else {
                            let ttl = r.out_frame.get(14 + 8).copied().unwrap_or(0);
                            format!("ttl {ttl}")
                        };
                        format!("accept -> out {} ({text})", t.port_name(p))
                    }
                    (Verdict::Host, None) => {
                        j["out"] = json!("host");
                        "accept -> host".to_string()
                    }
                    (Verdict::Consumed, None) => "consumed".to_string(),
                    (Verdict::Drop(reason), None) => format!("drop ({})", reason.name()),
                    // explain runs one worker, which owns every flow.
                    (Verdict::HandOff(w), None) => format!("handed to worker {w}"),
                };
                row(&mut lines, "result", text);
            }
        }
    }
    Explanation { lines, json: j }
}

/// Whether an (untagged) frame carries IPv6.
fn is_ipv6(f: &[u8]) -> bool {
    f.get(12..14) == Some(&[0x86, 0xdd])
}

/// What a generated reply frame is.
fn reply_kind(f: &[u8]) -> &'static str {
    if is_ipv6(f) {
        // Generated replies carry no extension headers.
        return match f.get(14 + 6) {
            Some(6) => "tcp reset",
            Some(58) => match (f.get(54), f.get(55)) {
                (Some(3), _) => "icmpv6 time-exceeded",
                (Some(2), _) => "icmpv6 packet-too-big",
                (Some(1), Some(4)) => "icmpv6 port-unreachable",
                (Some(1), Some(0)) => "icmpv6 no-route",
                (Some(1), Some(1)) => "icmpv6 admin-prohibited",
                (Some(1), _) => "icmpv6 destination-unreachable",
                (Some(4), _) => "icmpv6 parameter-problem",
                _ => "icmpv6 error",
            },
            _ => "reply",
        };
    }
    match f.get(14 + 9) {
        Some(6) => "tcp reset",
        Some(1) => match (f.get(34), f.get(35)) {
            (Some(11), _) => "icmp time-exceeded",
            (Some(3), Some(3)) => "icmp port-unreachable",
            (Some(3), Some(4)) => "icmp frag-needed",
            (Some(3), _) => "icmp destination-unreachable",
            _ => "icmp error",
        },
        _ => "reply",
    }
}

/// The parts of an answer `explain --against` compares, by the name it
/// reports a difference under, and the JSON keys that make each part. A
/// rule is the same rule when its text is (matches, action, comment), at
/// whatever position: a rule inserted above it changes no answer.
pub const ANSWER_FIELDS: &[(&str, &[&str])] = &[
    ("verdict", &["verdict", "drop_reason"]),
    ("chain", &["chain"]),
    ("rule", &["rule_text"]),
    ("out", &["out", "reply"]),
    ("next_hop", &["route"]),
    ("state", &["ct_state"]),
];

/// The parts of two answers (`explain --json` objects) that differ, in
/// [`ANSWER_FIELDS`] order; empty when the packet is treated the same.
pub fn changed_fields(old: &Value, new: &Value) -> Vec<&'static str> {
    ANSWER_FIELDS
        .iter()
        .filter(|(_, keys)| keys.iter().any(|k| old[k] != new[k]))
        .map(|(name, _)| *name)
        .collect()
}

/// One answer on one line: `filter/input rule 3 (ssh): accept; route
/// 198.18.0.1: local; result accept -> host`.
pub fn answer_line(j: &Value) -> String {
    let s = |k: &str| j[k].as_str().unwrap_or("").to_string();
    let mut parts = Vec::new();
    if let Some(chain) = j["chain"].as_str() {
        let rule = match j["rule"].as_u64() {
            Some(n) => format!(
                "rule {n}{}",
                j["rule_comment"]
                    .as_str()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default()
            ),
            None => format!("policy: {}", s("verdict")),
        };
        parts.push(format!("filter/{chain} {rule}"));
    }
    if j["route"].is_string() {
        parts.push(format!("route {}", s("route")));
    }
    let result = match (j["out"].as_str(), j["drop_reason"].as_str()) {
        (Some("host"), _) => "accept -> host".to_string(),
        (Some(out), _) => format!("{} -> out {out}", s("verdict")),
        (None, Some(reason)) => {
            let reply = j["reply"]["kind"]
                .as_str()
                .map(|k| {
                    format!(
                        ", sent {k} {}",
                        match j["reply"]["out"].as_str() {
                            Some("host") => "to host".to_string(),
                            Some(p) => format!("out of {p}"),
                            None => String::new(),
                        }
                    )
                })
                .unwrap_or_default();
            format!("{} ({reason}){reply}", s("verdict"))
        }
        (None, None) => s("verdict"),
    };
    parts.push(format!("result {result}"));
    parts.join("; ")
}
