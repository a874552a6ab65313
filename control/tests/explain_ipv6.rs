//! `routerctl explain` for IPv6 through the library: a dual-stack router
//! (the shipped transit router with IPv6 addresses, routes and rules),
//! checked as for IPv4: the router's own ssh, ping, a rejected port,
//! transit, hop limit expiry, rules with IPv6 prefixes, and the JSON shape.
//!
//! The IPv6 half of the config is built in Rust until the config decoder
//! takes IPv6 (then it moves into YAML here).

use std::collections::BTreeSet;
use std::net::Ipv6Addr;
use std::path::Path;

use control::config::Config;
use control::explain::{changed_fields, flow_view_text, Explainer};
use control::packet_spec::PacketSpec;
use dataplane::addr::Ipv6Prefix;
use dataplane::packet::PortId;
use dataplane::rules::{FilterAction, FilterRule, Match};
use dataplane::tables::TablesSpec;
use dataplane::tables6::{NextHop6, RouteSpec6};
use serde_json::{json, Value};

fn v6(s: &str) -> u128 {
    u128::from(s.parse::<Ipv6Addr>().unwrap())
}

fn prefix(s: &str) -> Ipv6Prefix {
    s.parse().unwrap()
}

/// The shipped transit router, made dual stack: wan 2001:db8::1/64 (its
/// default route via 2001:db8::2), lan 2001:db8:1::1/64 with
/// 2001:db8:5::/48 behind fe80::2 on lan; input also takes ping6 and
/// rejects ident (tcp 113); forward drops 2001:db8:5:66::/64 from wan.
fn dual_stack_spec(with_ping6: bool) -> TablesSpec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/transit-router.yaml");
    let mut spec = Config::load(&path).expect("shipped config").tables_spec();
    // The shipped config's own ping6 rule out: each test says whether it
    // wants one.
    spec.filter_input
        .rules
        .retain(|r| r.matches.protocol != Some(58));
    spec.interfaces[0].addresses6 = vec!["2001:db8::1/64".parse().unwrap()];
    spec.interfaces[1].addresses6 = vec!["2001:db8:1::1/64".parse().unwrap()];
    spec.v6.routes = vec![
        RouteSpec6::new(
            Ipv6Prefix::DEFAULT,
            NextHop6::Via {
                port: PortId(0),
                gateway: v6("2001:db8::2"),
            },
        ),
        RouteSpec6::new(
            prefix("2001:db8:5::/48"),
            NextHop6::Via {
                port: PortId(1),
                gateway: v6("fe80::2"),
            },
        ),
        RouteSpec6::new(prefix("2001:db8:dead::/48"), NextHop6::Unreachable),
    ];
    let rule = |matches: Match, action, comment: &str| FilterRule {
        matches,
        action,
        comment: Some(comment.to_string()),
    };
    if with_ping6 {
        spec.filter_input.rules.push(rule(
            Match {
                protocol: Some(58),
                icmp_type: Some(128),
                ..Default::default()
            },
            FilterAction::Accept,
            "ping6",
        ));
    }
    spec.filter_input.rules.push(rule(
        Match {
            protocol: Some(6),
            destination_port: Some([(113, 113)].into_iter().collect()),
            ..Default::default()
        },
        FilterAction::Reject,
        "ident",
    ));
    spec.filter_forward.rules.push(rule(
        Match {
            in_ports: Some(PortId(0).bit()),
            destination6: Some([prefix("2001:db8:5:66::/64")].into_iter().collect()),
            ..Default::default()
        },
        FilterAction::Drop,
        "no outside access to the v6 lab net",
    ));
    spec
}

fn dual_stack() -> Explainer {
    Explainer::new(dual_stack_spec(true))
}

fn run_full(ex: &mut Explainer, packet: &str) -> control::explain::Explanation {
    let spec = PacketSpec::parse(packet).unwrap_or_else(|e| panic!("{e}"));
    ex.explain(&spec).unwrap_or_else(|e| panic!("{e}"))
}

fn run(ex: &mut Explainer, packet: &str) -> Value {
    run_full(ex, packet).json
}

#[track_caller]
fn expect(j: &Value, fields: &[(&str, Value)]) {
    for (k, want) in fields {
        assert_eq!(&j[*k], want, "field `{k}` of {j:#}");
    }
}

/// The live flows in words, sorted.
fn flows(ex: &Explainer) -> Vec<String> {
    let p = ex.pipeline();
    let mut v: Vec<_> = p
        .conntrack()
        .flows(p.now())
        .map(|f| flow_view_text(&f))
        .collect();
    v.sort();
    v
}

const SSH6_SYN: &str = "in=wan tcp [2001:db8::2]:40000 > [2001:db8::1]:22 flags=S";

#[test]
fn ipv6_ssh_to_the_router_is_tracked_new_and_confirmed() {
    let mut ex = dual_stack();
    let x = run_full(&mut ex, SSH6_SYN);
    expect(
        &x.json,
        &[
            ("raw_rule", json!(1)),
            ("raw_action", json!("accept")),
            ("ct_state", json!("new")),
            ("route", json!("2001:db8::1: local")),
            ("chain", json!("input")),
            ("rule", json!(3)),
            ("rule_comment", json!("ssh")),
            ("verdict", json!("accept")),
            ("out", json!("host")),
            ("ct_confirmed", json!(true)),
            ("conntrack_entries", json!(1)),
        ],
    );
    assert_eq!(
        flows(&ex),
        ["tcp [2001:db8::2]:40000 > [2001:db8::1]:22"],
        "one IPv6 entry, with its addresses"
    );
    let text = x.lines.join("\n");
    assert!(
        text.contains("entry created: tcp [2001:db8::2]:40000 > [2001:db8::1]:22 SYN_SENT"),
        "{text}"
    );
    assert!(
        text.contains("route            2001:db8::1: local"),
        "{text}"
    );
    // The router's SYN-ACK is the same flow's reply, out of wan to the
    // on-link neighbour.
    let synack = run(
        &mut ex,
        "in=host tcp [2001:db8::1]:22 > [2001:db8::2]:40000 flags=SA",
    );
    expect(
        &synack,
        &[
            ("raw_hook", json!("output")),
            ("ct_state", json!("established")),
            ("route", json!("2001:db8::2: connected on wan")),
            ("chain", json!("output")),
            ("out", json!("wan")),
            ("neighbour", json!("2001:db8::2")),
            ("conntrack_entries", json!(1)),
        ],
    );
    // The SYN again is the same flow, no second entry.
    let again = run(&mut ex, SSH6_SYN);
    assert_eq!(
        again["ct_flow"],
        json!("tcp [2001:db8::2]:40000 > [2001:db8::1]:22")
    );
    assert_eq!(again["conntrack_entries"], json!(1));
}

#[test]
fn ipv6_ping_takes_the_icmpv6_rule_not_the_ipv4_one() {
    let mut ex = dual_stack();
    let j = run(
        &mut ex,
        "in=wan icmpv6 2001:db8::2 > 2001:db8::1 type=echo-request id=7",
    );
    expect(
        &j,
        &[
            ("ct_state", json!("new")),
            ("ct_confirmed", json!(true)),
            ("rule", json!(4)),
            ("rule_comment", json!("ping6")),
            ("out", json!("host")),
        ],
    );
    assert_eq!(flows(&ex), ["icmpv6 2001:db8::2 > 2001:db8::1 id 7"]);
    // IPv4 ping still takes rule 2, the IPv4 one.
    let j = run(
        &mut ex,
        "in=wan icmp 198.18.0.2 > 198.18.0.1 type=echo-request",
    );
    expect(&j, &[("rule", json!(2)), ("rule_comment", json!("ping"))]);
    // Without the ICMPv6 rule the input policy drops IPv6 ping: the IPv4
    // `protocol: icmp` rule never matches it.
    let mut without = Explainer::new(dual_stack_spec(false));
    let j = run(
        &mut without,
        "in=wan icmpv6 2001:db8::2 > 2001:db8::1 type=echo-request",
    );
    expect(
        &j,
        &[
            ("chain", json!("input")),
            ("rule", Value::Null),
            ("verdict", json!("drop")),
            ("drop_reason", json!("filter_policy")),
            ("conntrack_entries", json!(0)),
        ],
    );
}

#[test]
fn an_ipv6_prefix_rule_matches_ipv6_only() {
    let mut ex = dual_stack();
    let j = run(
        &mut ex,
        "in=wan udp [2001:db8::2]:5000 > [2001:db8:5:66::9]:53",
    );
    expect(
        &j,
        &[
            ("raw_rule", json!(2)),
            ("ct_state", json!("untracked")),
            ("route", json!("2001:db8:5:66::9: via fe80::2 on lan")),
            ("chain", json!("forward")),
            ("rule", json!(2)),
            ("rule_comment", json!("no outside access to the v6 lab net")),
            ("verdict", json!("drop")),
            ("drop_reason", json!("filter_denied")),
            ("conntrack_entries", json!(0)),
        ],
    );
    // Next door, and IPv4 from wan, the rule does not match.
    let j = run(
        &mut ex,
        "in=wan udp [2001:db8::2]:5000 > [2001:db8:5:67::9]:53",
    );
    assert_eq!(j["rule"], Value::Null, "{j:#}");
    let j = run(&mut ex, "in=wan udp 198.18.0.2:5000 > 198.19.0.9:53");
    expect(&j, &[("rule", Value::Null), ("out", json!("lan"))]);
}

#[test]
fn ipv6_route_lines_read_as_ipv4_ones() {
    let mut ex = dual_stack();
    for (p, route) in [
        (
            "in=lan udp [2001:db8:1::9]:1 > [2001:db8:77::1]:53",
            "2001:db8:77::1: via 2001:db8::2 on wan",
        ),
        (
            "in=wan udp [2001:db8::2]:1 > [2001:db8:5::9]:53",
            "2001:db8:5::9: via fe80::2 on lan",
        ),
        (
            "in=wan udp [2001:db8::2]:1 > [2001:db8:1::9]:53",
            "2001:db8:1::9: connected on lan",
        ),
        (
            "in=wan udp [2001:db8::2]:1 > [2001:db8:1::1]:53",
            "2001:db8:1::1: local",
        ),
        (
            "in=wan udp [2001:db8::2]:1 > [2001:db8:dead::1]:53",
            "2001:db8:dead::1: unreachable",
        ),
    ] {
        let j = run(&mut ex, p);
        assert_eq!(j["route"], json!(route), "{p}: {j:#}");
    }
    // With no default route, a destination nothing covers has no route.
    let mut spec = dual_stack_spec(true);
    spec.v6.routes.remove(0);
    let mut ex = Explainer::new(spec);
    let j = run(
        &mut ex,
        "in=lan udp [2001:db8:1::9]:1 > [2001:db8:77::1]:53",
    );
    assert_eq!(j["route"], json!("2001:db8:77::1: no route"), "{j:#}");
}

#[test]
fn ipv6_answers_have_the_shape_of_ipv4_ones() {
    let mut ex = dual_stack();
    let keys = |j: &Value| -> BTreeSet<String> { j.as_object().unwrap().keys().cloned().collect() };
    let j4 = run(
        &mut ex,
        "in=wan tcp 198.18.0.2:40000 > 198.18.0.1:22 flags=S",
    );
    let j6 = run(&mut ex, SSH6_SYN);
    assert_eq!(keys(&j4), keys(&j6));
    for k in ["raw_rule", "ct_state", "chain", "rule", "verdict", "out"] {
        assert_eq!(j4[k], j6[k], "`{k}` is the same for both families' ssh");
    }
}

#[test]
fn against_compares_ipv6_answers_too() {
    let packet = "in=wan icmpv6 2001:db8::2 > 2001:db8::1 type=echo-request";
    let old = run(&mut Explainer::new(dual_stack_spec(false)), packet);
    let new = run(&mut dual_stack(), packet);
    assert_eq!(changed_fields(&old, &new), ["verdict", "rule", "out"]);
    let same = run(&mut dual_stack(), packet);
    assert!(changed_fields(&new, &same).is_empty());
}

#[test]
fn ipv6_transit_is_forwarded_untracked_with_the_hop_limit_decremented() {
    let mut ex = dual_stack();
    let x = run_full(
        &mut ex,
        "in=wan udp [2001:db8::2]:5000 > [2001:db8:5::9]:53",
    );
    expect(
        &x.json,
        &[
            ("ct_state", json!("untracked")),
            ("route", json!("2001:db8:5::9: via fe80::2 on lan")),
            ("chain", json!("forward")),
            ("verdict", json!("accept")),
            ("out", json!("lan")),
            ("neighbour", json!("fe80::2")),
            ("conntrack_entries", json!(0)),
        ],
    );
    let text = x.lines.join("\n");
    assert!(
        text.contains("fe80::2 on lan (assumed resolved by NDP)"),
        "{text}"
    );
    assert!(text.contains("accept -> out lan (hop limit 63)"), "{text}");
}

#[test]
fn ipv6_hop_limit_1_in_transit_gets_time_exceeded_back() {
    let mut ex = dual_stack();
    let j = run(
        &mut ex,
        "in=lan udp [2001:db8:1::9]:5353 > [2001:db8:77::1]:53 hl=1",
    );
    expect(
        &j,
        &[
            ("ct_state", json!("untracked")),
            ("verdict", json!("drop")),
            ("drop_reason", json!("ip6_hop_limit_exceeded")),
            (
                "reply",
                json!({ "kind": "icmpv6 time-exceeded", "out": "lan" }),
            ),
        ],
    );
}

#[test]
fn a_rejected_ipv6_tcp_port_gets_a_reset() {
    let mut ex = dual_stack();
    let j = run(
        &mut ex,
        "in=wan tcp [2001:db8::2]:40000 > [2001:db8::1]:113 flags=S",
    );
    expect(
        &j,
        &[
            ("chain", json!("input")),
            ("rule_comment", json!("ident")),
            ("verdict", json!("reject")),
            ("reply", json!({ "kind": "tcp reset", "out": "wan" })),
            ("conntrack_entries", json!(0)),
        ],
    );
}
