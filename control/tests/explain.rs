//! `routerctl explain` through the library: the shipped configs behave as
//! their comments promise, checked the way a network engineer would check a
//! firewall: handshakes, replies without state, closed ports, ICMP errors,
//! transit, and how many conntrack entries each packet leaves behind.
//!
//! Packets given to one `Explainer` share one connection table, in order.

use std::path::{Path, PathBuf};

use control::config::Config;
use control::explain::{flow_text, ExplainError, Explainer};
use control::packet_spec::PacketSpec;
use serde_json::{json, Value};

fn config_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../configs")
        .join(name)
}

fn explainer(name: &str) -> Explainer {
    let cfg = Config::load(&config_path(name)).expect("shipped config loads");
    Explainer::new(cfg.tables_spec())
}

fn transit() -> Explainer {
    explainer("transit-router.yaml")
}

fn webserver() -> Explainer {
    explainer("webserver.yaml")
}

/// Explain one packet; its JSON form.
fn run(ex: &mut Explainer, packet: &str) -> Value {
    run_full(ex, packet).json
}

fn run_full(ex: &mut Explainer, packet: &str) -> control::explain::Explanation {
    let spec = PacketSpec::parse(packet).unwrap_or_else(|e| panic!("{e}"));
    ex.explain(&spec).unwrap_or_else(|e| panic!("{e}"))
}

/// The live flows as `(flow text, tcp state name)`, sorted.
fn flows(ex: &Explainer) -> Vec<(String, Option<&'static str>)> {
    let p = ex.pipeline();
    let mut v: Vec<_> = p
        .conntrack()
        .flows(p.now())
        .map(|f| (flow_text(&f.key), f.tcp_state.map(|s| s.name())))
        .collect();
    v.sort();
    v
}

/// Assert several JSON fields at once, naming the packet on failure.
#[track_caller]
fn expect(j: &Value, fields: &[(&str, Value)]) {
    for (k, want) in fields {
        assert_eq!(&j[*k], want, "field `{k}` of {j:#}");
    }
}

const SSH_SYN: &str = "in=wan tcp 198.18.0.2:40000 > 198.18.0.1:22 flags=S";
const SSH_SYNACK: &str = "in=host tcp 198.18.0.1:22 > 198.18.0.2:40000 flags=SA";
const SSH_ACK: &str = "in=wan tcp 198.18.0.2:40000 > 198.18.0.1:22 flags=A";

// ---------------------------------------------------------------- transit

#[test]
fn ssh_handshake_to_the_router_is_tracked_with_one_entry() {
    let mut ex = transit();
    assert_eq!(ex.conntrack_entries(), 0);

    let syn = run(&mut ex, SSH_SYN);
    expect(
        &syn,
        &[
            ("raw_hook", json!("prerouting")),
            ("raw_rule", json!(1)),
            ("raw_action", json!("accept")),
            ("ct_state", json!("new")),
            ("route", json!("198.18.0.1: local")),
            ("chain", json!("input")),
            ("rule", json!(3)),
            ("rule_comment", json!("ssh")),
            ("verdict", json!("accept")),
            ("out", json!("host")),
            ("drop_reason", Value::Null),
            ("ct_confirmed", json!(true)),
            ("conntrack_entries", json!(1)),
        ],
    );
    assert_eq!(
        flows(&ex),
        [(
            "tcp 198.18.0.2:40000 > 198.18.0.1:22".to_string(),
            Some("SYN_SENT")
        )]
    );

    let synack = run(&mut ex, SSH_SYNACK);
    expect(
        &synack,
        &[
            ("raw_hook", json!("output")),
            ("raw_rule", Value::Null),
            ("ct_state", json!("established")),
            ("ct_flow", json!("tcp 198.18.0.2:40000 > 198.18.0.1:22")),
            ("chain", json!("output")),
            ("rule", Value::Null),
            ("verdict", json!("accept")),
            ("out", json!("wan")),
            ("neighbour", json!("198.18.0.2")),
            ("ct_confirmed", json!(false)),
            ("conntrack_entries", json!(1)),
        ],
    );

    let ack = run(&mut ex, SSH_ACK);
    expect(
        &ack,
        &[
            ("ct_state", json!("established")),
            ("chain", json!("input")),
            ("rule", json!(1)),
            (
                "rule_comment",
                json!("replies to the router's own connections"),
            ),
            ("verdict", json!("accept")),
            ("out", json!("host")),
            ("ct_confirmed", json!(false)),
            ("conntrack_entries", json!(1)),
        ],
    );
    assert_eq!(
        flows(&ex),
        [(
            "tcp 198.18.0.2:40000 > 198.18.0.1:22".to_string(),
            Some("ESTABLISHED")
        )]
    );
}

#[test]
fn a_reply_is_accepted_only_because_of_the_connection_it_belongs_to() {
    // The router opens a connection itself; the server's SYN-ACK has no
    // NEW rule to match, so only rule 1 (established,related) can accept it.
    let own_syn = "in=host tcp 198.18.0.1:40000 > 198.18.0.2:443 flags=S";
    let server_synack = "in=wan tcp 198.18.0.2:443 > 198.18.0.1:40000 flags=SA";

    let mut ex = transit();
    let s = run(&mut ex, own_syn);
    expect(
        &s,
        &[
            ("ct_state", json!("new")),
            ("chain", json!("output")),
            ("verdict", json!("accept")),
            ("out", json!("wan")),
            ("ct_confirmed", json!(true)),
            ("conntrack_entries", json!(1)),
        ],
    );
    let r = run(&mut ex, server_synack);
    expect(
        &r,
        &[
            ("ct_state", json!("established")),
            ("rule", json!(1)),
            ("verdict", json!("accept")),
            ("out", json!("host")),
            ("conntrack_entries", json!(1)),
        ],
    );

    // The same SYN-ACK with no connection behind it: INVALID, no rule
    // matches, the input policy drops it and no entry appears.
    let mut fresh = transit();
    let r = run(&mut fresh, server_synack);
    expect(
        &r,
        &[
            ("ct_state", json!("invalid")),
            ("chain", json!("input")),
            ("rule", Value::Null),
            ("verdict", json!("drop")),
            ("drop_reason", json!("filter_policy")),
            ("out", Value::Null),
            ("ct_confirmed", json!(false)),
            ("conntrack_entries", json!(0)),
        ],
    );
}

#[test]
fn a_lone_ack_is_picked_up_as_new_with_tcp_loose_and_invalid_without() {
    // tcp_loose (netfilter's nf_conntrack_tcp_loose) is on by default: an
    // ACK with no connection behind it starts a flow mid-stream as NEW. So
    // the client's ACK without the SYN is NOT accepted by rule 1: it is NEW,
    // and the ssh rule (state new, port 22) accepts it and creates an entry.
    let mut ex = transit();
    let ack = run(&mut ex, SSH_ACK);
    expect(
        &ack,
        &[
            ("ct_state", json!("new")),
            ("rule", json!(3)),
            ("rule_comment", json!("ssh")),
            ("verdict", json!("accept")),
            ("ct_confirmed", json!(true)),
            ("conntrack_entries", json!(1)),
        ],
    );
    assert_eq!(
        flows(&ex),
        [(
            "tcp 198.18.0.2:40000 > 198.18.0.1:22".to_string(),
            Some("ESTABLISHED")
        )]
    );

    // To a port with no NEW rule, the picked-up ACK is dropped by the policy
    // and leaves nothing behind.
    let other = run(
        &mut ex,
        "in=wan tcp 198.18.0.2:40001 > 198.18.0.1:8080 flags=A",
    );
    expect(
        &other,
        &[
            ("ct_state", json!("new")),
            ("rule", Value::Null),
            ("verdict", json!("drop")),
            ("drop_reason", json!("filter_policy")),
            ("ct_confirmed", json!(false)),
            ("conntrack_entries", json!(1)),
        ],
    );

    // With tcp_loose off, the lone ACK to port 22 is INVALID and the input
    // policy drops it: only the real handshake gets through rule 1.
    let path = config_path("transit-router.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let strict = text.replace(
        "conntrack:\n  max_entries: 262144\n",
        "conntrack:\n  max_entries: 262144\n  tcp_loose: false\n",
    );
    assert_ne!(strict, text, "the config's conntrack section moved");
    let cfg = Config::from_str(&strict, &path).expect("strict config loads");
    let mut ex = Explainer::new(cfg.tables_spec());
    expect(
        &run(&mut ex, SSH_ACK),
        &[
            ("ct_state", json!("invalid")),
            ("rule", Value::Null),
            ("verdict", json!("drop")),
            ("drop_reason", json!("filter_policy")),
            ("conntrack_entries", json!(0)),
        ],
    );
    run(&mut ex, SSH_SYN);
    run(&mut ex, SSH_SYNACK);
    expect(
        &run(&mut ex, SSH_ACK),
        &[
            ("ct_state", json!("established")),
            ("rule", json!(1)),
            ("verdict", json!("accept")),
            ("conntrack_entries", json!(1)),
        ],
    );
}

#[test]
fn a_syn_ack_from_wan_with_no_flow_is_invalid_and_dropped() {
    let mut ex = transit();
    let j = run(
        &mut ex,
        "in=wan tcp 198.18.0.2:40000 > 198.18.0.1:22 flags=SA",
    );
    expect(
        &j,
        &[
            ("ct_state", json!("invalid")),
            ("chain", json!("input")),
            ("rule", Value::Null),
            ("verdict", json!("drop")),
            ("drop_reason", json!("filter_policy")),
            ("ct_confirmed", json!(false)),
            ("conntrack_entries", json!(0)),
        ],
    );
}

#[test]
fn new_packets_to_closed_ports_are_dropped_and_leave_no_entry() {
    let mut ex = transit();
    run(&mut ex, SSH_SYN);
    assert_eq!(ex.conntrack_entries(), 1);
    for p in [
        "in=wan tcp 198.18.0.2:40001 > 198.18.0.1:23 flags=S",
        "in=wan udp 198.18.0.2:40002 > 198.18.0.1:53",
        "in=lan tcp 198.19.0.2:40003 > 198.19.0.1:80 flags=S",
    ] {
        let j = run(&mut ex, p);
        expect(
            &j,
            &[
                ("ct_state", json!("new")),
                ("chain", json!("input")),
                ("rule", Value::Null),
                ("verdict", json!("drop")),
                ("drop_reason", json!("filter_policy")),
                ("out", Value::Null),
                ("ct_confirmed", json!(false)),
                ("conntrack_entries", json!(1)),
            ],
        );
    }
    assert_eq!(
        flows(&ex),
        [(
            "tcp 198.18.0.2:40000 > 198.18.0.1:22".to_string(),
            Some("SYN_SENT")
        )],
        "only the SSH flow is in the table"
    );
}

const OWN_DNS: &str = "in=host udp 198.18.0.1:40000 > 198.18.0.2:53";
const PORT_UNREACH: &str = "in=wan icmp 198.18.0.2 > 198.18.0.1 type=destination-unreachable code=port-unreachable inner udp 198.18.0.1:40000 > 198.18.0.2:53";

#[test]
fn an_icmp_error_about_the_routers_own_flow_is_related_and_accepted() {
    let mut ex = transit();
    let q = run(&mut ex, OWN_DNS);
    expect(
        &q,
        &[
            ("raw_hook", json!("output")),
            ("ct_state", json!("new")),
            ("chain", json!("output")),
            ("verdict", json!("accept")),
            ("out", json!("wan")),
            ("ct_confirmed", json!(true)),
            ("conntrack_entries", json!(1)),
        ],
    );
    let e = run(&mut ex, PORT_UNREACH);
    expect(
        &e,
        &[
            ("ct_state", json!("related")),
            ("ct_flow", json!("udp 198.18.0.1:40000 > 198.18.0.2:53")),
            ("chain", json!("input")),
            ("rule", json!(1)),
            ("verdict", json!("accept")),
            ("out", json!("host")),
            ("ct_confirmed", json!(false)),
            ("conntrack_entries", json!(1)),
        ],
    );

    // An error quoting a flow the router never sent (another source port)
    // relates to nothing, even while the DNS flow exists.
    let e = run(
        &mut ex,
        "in=wan icmp 198.18.0.2 > 198.18.0.1 type=destination-unreachable code=port-unreachable inner udp 198.18.0.1:40001 > 198.18.0.2:53",
    );
    expect(
        &e,
        &[
            ("ct_state", json!("invalid")),
            ("verdict", json!("drop")),
            ("drop_reason", json!("filter_policy")),
            ("conntrack_entries", json!(1)),
        ],
    );
}

#[test]
fn an_icmp_error_without_the_flow_is_invalid_and_dropped() {
    let mut ex = transit();
    let e = run(&mut ex, PORT_UNREACH);
    expect(
        &e,
        &[
            ("ct_state", json!("invalid")),
            ("chain", json!("input")),
            ("rule", Value::Null),
            ("verdict", json!("drop")),
            ("drop_reason", json!("filter_policy")),
            ("ct_confirmed", json!(false)),
            ("conntrack_entries", json!(0)),
        ],
    );
}

#[test]
fn transit_is_forwarded_untracked_out_the_right_interface() {
    let mut ex = transit();
    for (p, out, next_hop, route) in [
        (
            "in=wan udp 198.18.0.2:5000 > 203.0.113.9:53",
            "lan",
            "198.19.0.2",
            "203.0.113.9: via 198.19.0.2 on lan",
        ),
        (
            "in=lan tcp 198.19.0.2:5000 > 198.18.0.2:443 flags=S",
            "wan",
            "198.18.0.2",
            "198.18.0.2: connected on wan",
        ),
        (
            "in=wan icmp 198.18.0.2 > 198.19.0.2 type=echo-request",
            "lan",
            "198.19.0.2",
            "198.19.0.2: connected on lan",
        ),
        (
            "in=lan udp 198.19.0.2:5000 > 192.0.2.7:123",
            "wan",
            "198.18.0.2",
            "192.0.2.7: via 198.18.0.2 on wan",
        ),
        // Stateless: a SYN-ACK with no SYN before it is forwarded too.
        (
            "in=wan tcp 192.0.2.7:443 > 198.19.0.2:5000 flags=SA",
            "lan",
            "198.19.0.2",
            "198.19.0.2: connected on lan",
        ),
    ] {
        let x = run_full(&mut ex, p);
        expect(
            &x.json,
            &[
                ("raw_hook", json!("prerouting")),
                ("raw_rule", json!(2)),
                ("raw_comment", json!("transit is untracked")),
                ("raw_action", json!("notrack")),
                ("ct_state", json!("untracked")),
                ("ct_flow", Value::Null),
                ("route", json!(route)),
                ("chain", json!("forward")),
                ("rule", Value::Null),
                ("verdict", json!("accept")),
                ("out", json!(out)),
                ("neighbour", json!(next_hop)),
                ("drop_reason", Value::Null),
                ("ct_confirmed", json!(false)),
                ("conntrack_entries", json!(0)),
            ],
        );
        let result = x.lines.last().unwrap();
        assert!(
            result.contains(&format!("accept -> out {out} (ttl 63)")),
            "TTL 64 is decremented on the way through: {result}"
        );
    }
    assert!(flows(&ex).is_empty());
}

#[test]
fn ping_to_the_router_is_accepted_and_tracked() {
    let mut ex = transit();
    let req = run(
        &mut ex,
        "in=wan icmp 198.18.0.2 > 198.18.0.1 type=echo-request id=7",
    );
    expect(
        &req,
        &[
            ("raw_rule", json!(1)),
            ("ct_state", json!("new")),
            ("chain", json!("input")),
            ("rule", json!(2)),
            ("rule_comment", json!("ping")),
            ("verdict", json!("accept")),
            ("out", json!("host")),
            ("ct_confirmed", json!(true)),
            ("conntrack_entries", json!(1)),
        ],
    );
    assert_eq!(
        flows(&ex),
        [("icmp 198.18.0.2 > 198.18.0.1 id 7".to_string(), None)]
    );
    let reply = run(
        &mut ex,
        "in=host icmp 198.18.0.1 > 198.18.0.2 type=echo-reply id=7",
    );
    expect(
        &reply,
        &[
            ("ct_state", json!("established")),
            ("ct_flow", json!("icmp 198.18.0.2 > 198.18.0.1 id 7")),
            ("chain", json!("output")),
            ("verdict", json!("accept")),
            ("out", json!("wan")),
            ("conntrack_entries", json!(1)),
        ],
    );
    // A ping with another id is another flow.
    run(
        &mut ex,
        "in=wan icmp 198.18.0.2 > 198.18.0.1 type=echo-request id=8",
    );
    assert_eq!(ex.conntrack_entries(), 2);
}

#[test]
fn telnet_from_wan_is_dropped_by_the_forward_rule_but_not_from_lan() {
    let mut ex = transit();
    for port in [23, 2323] {
        let j = run(
            &mut ex,
            &format!("in=wan tcp 198.18.0.2:5000 > 198.19.0.2:{port} flags=S"),
        );
        expect(
            &j,
            &[
                ("ct_state", json!("untracked")),
                ("chain", json!("forward")),
                ("rule", json!(1)),
                ("rule_comment", json!("no telnet from outside")),
                ("verdict", json!("drop")),
                ("drop_reason", json!("filter_denied")),
                ("out", Value::Null),
                ("reply", Value::Null),
                ("conntrack_entries", json!(0)),
            ],
        );
    }
    // The rule matches `in: wan` only.
    let j = run(
        &mut ex,
        "in=lan tcp 198.19.0.2:5000 > 198.18.0.2:23 flags=S",
    );
    expect(
        &j,
        &[
            ("chain", json!("forward")),
            ("rule", Value::Null),
            ("verdict", json!("accept")),
            ("out", json!("wan")),
        ],
    );
}

#[test]
fn transit_with_ttl_1_is_dropped_with_time_exceeded_back_to_the_sender() {
    let mut ex = transit();
    let j = run(&mut ex, "in=lan udp 198.19.0.2:5353 > 203.0.113.9:53 ttl=1");
    expect(
        &j,
        &[
            ("ct_state", json!("untracked")),
            ("verdict", json!("drop")),
            ("drop_reason", json!("ip_ttl_expired")),
            ("out", Value::Null),
            (
                "reply",
                json!({ "kind": "icmp time-exceeded", "out": "lan" }),
            ),
            ("conntrack_entries", json!(0)),
        ],
    );
    // TTL 1 is fine for the router itself: it is not forwarded.
    let j = run(&mut ex, "in=wan icmp 198.18.0.2 > 198.18.0.1 ttl=1");
    expect(
        &j,
        &[
            ("verdict", json!("accept")),
            ("out", json!("host")),
            ("drop_reason", Value::Null),
        ],
    );
}

#[test]
fn packets_share_one_table_in_order() {
    // Error before the flow: INVALID; flow, then the same error: RELATED.
    let mut ex = transit();
    assert_eq!(run(&mut ex, PORT_UNREACH)["ct_state"], json!("invalid"));
    run(&mut ex, OWN_DNS);
    assert_eq!(run(&mut ex, PORT_UNREACH)["ct_state"], json!("related"));

    // SYN-ACK from the router before the client's SYN: INVALID (the output
    // policy accepts it anyway); after the SYN it is ESTABLISHED.
    let mut ex = transit();
    let early = run(&mut ex, SSH_SYNACK);
    expect(
        &early,
        &[
            ("ct_state", json!("invalid")),
            ("conntrack_entries", json!(0)),
        ],
    );
    run(&mut ex, SSH_SYN);
    assert_eq!(run(&mut ex, SSH_SYNACK)["ct_state"], json!("established"));

    // A repeated SYN of the same flow adds no second entry; a new source
    // port does.
    run(&mut ex, SSH_SYN);
    assert_eq!(ex.conntrack_entries(), 1);
    run(
        &mut ex,
        "in=wan tcp 198.18.0.2:40001 > 198.18.0.1:22 flags=S",
    );
    assert_eq!(ex.conntrack_entries(), 2);

    // Another explainer has its own, empty table.
    assert_eq!(transit().conntrack_entries(), 0);
}

#[test]
fn text_lines_name_every_stage() {
    let mut ex = transit();
    let x = run_full(&mut ex, SSH_SYN);
    assert_eq!(x.lines[0], SSH_SYN);
    let body = x.lines[1..].join("\n");
    for want in [
        "raw/prerouting   rule 1 (host traffic is tracked): accept -> tracked",
        "conntrack        new",
        "route            198.18.0.1: local",
        "filter/input     rule 3 (ssh): accept",
        "conntrack        entry created: tcp 198.18.0.2:40000 > 198.18.0.1:22 SYN_SENT, timeout 120s",
        "result           accept -> host",
    ] {
        assert!(body.contains(want), "missing `{want}` in\n{body}");
    }
}

#[test]
fn an_unknown_interface_is_a_clear_error() {
    let mut ex = transit();
    let spec = PacketSpec::parse("in=dmz tcp 198.18.0.2:1 > 198.18.0.1:22").unwrap();
    let e = ex.explain(&spec).unwrap_err();
    assert!(matches!(e, ExplainError::UnknownInterface { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("in=dmz is not an interface"), "{msg}");
    assert!(msg.contains("wan, lan"), "{msg}");
    assert_eq!(ex.conntrack_entries(), 0);
}

// -------------------------------------------------------------- webserver

const HTTP_SYN: &str = "in=wan tcp 198.18.0.2:40000 > 198.18.0.1:80 flags=S";
const HTTP_SYNACK: &str = "in=host tcp 198.18.0.1:80 > 198.18.0.2:40000 flags=SA";

#[test]
fn web_requests_and_replies_are_untracked_and_leave_no_entry() {
    let mut ex = webserver();
    let syn = run(&mut ex, HTTP_SYN);
    expect(
        &syn,
        &[
            ("raw_hook", json!("prerouting")),
            ("raw_rule", json!(1)),
            ("raw_action", json!("notrack")),
            ("raw_comment", json!("web requests are untracked")),
            ("ct_state", json!("untracked")),
            ("chain", json!("input")),
            ("rule", json!(1)),
            ("verdict", json!("accept")),
            ("out", json!("host")),
            ("ct_confirmed", json!(false)),
            ("conntrack_entries", json!(0)),
        ],
    );
    let synack = run(&mut ex, HTTP_SYNACK);
    expect(
        &synack,
        &[
            ("raw_hook", json!("output")),
            ("raw_rule", json!(1)),
            ("raw_action", json!("notrack")),
            ("raw_comment", json!("web replies are untracked")),
            ("ct_state", json!("untracked")),
            ("chain", json!("output")),
            ("verdict", json!("accept")),
            ("out", json!("wan")),
            ("ct_confirmed", json!(false)),
            ("conntrack_entries", json!(0)),
        ],
    );
    // Mid-stream segments of the web flow are accepted by the web rule too.
    let ack = run(
        &mut ex,
        "in=wan tcp 198.18.0.2:40000 > 198.18.0.1:80 flags=PA len=300",
    );
    expect(
        &ack,
        &[
            ("ct_state", json!("untracked")),
            ("rule", json!(1)),
            ("verdict", json!("accept")),
            ("conntrack_entries", json!(0)),
        ],
    );
    assert!(flows(&ex).is_empty());
}

#[test]
fn ssh_next_to_web_is_still_tracked() {
    let mut ex = webserver();
    run(&mut ex, HTTP_SYN);
    run(&mut ex, HTTP_SYNACK);
    let ssh = run(
        &mut ex,
        "in=wan tcp 198.18.0.2:40001 > 198.18.0.1:22 flags=S",
    );
    expect(
        &ssh,
        &[
            ("raw_rule", json!(2)),
            ("raw_action", json!("accept")),
            ("ct_state", json!("new")),
            ("rule", json!(4)),
            ("rule_comment", json!("ssh")),
            ("verdict", json!("accept")),
            ("ct_confirmed", json!(true)),
            ("conntrack_entries", json!(1)),
        ],
    );
    let reply = run(
        &mut ex,
        "in=host tcp 198.18.0.1:22 > 198.18.0.2:40001 flags=SA",
    );
    expect(
        &reply,
        &[
            ("raw_rule", Value::Null),
            ("ct_state", json!("established")),
            ("out", json!("wan")),
            ("conntrack_entries", json!(1)),
        ],
    );
    assert_eq!(
        flows(&ex),
        [(
            "tcp 198.18.0.2:40001 > 198.18.0.1:22".to_string(),
            Some("SYN_RECV")
        )]
    );
}

#[test]
fn fifty_web_clients_leave_zero_entries() {
    let mut ex = webserver();
    for i in 0..50u16 {
        let sport = 40000 + i;
        let req = run(
            &mut ex,
            &format!("in=wan tcp 198.18.0.2:{sport} > 198.18.0.1:80 flags=S"),
        );
        expect(
            &req,
            &[
                ("ct_state", json!("untracked")),
                ("verdict", json!("accept")),
                ("out", json!("host")),
            ],
        );
        let rep = run(
            &mut ex,
            &format!("in=host tcp 198.18.0.1:80 > 198.18.0.2:{sport} flags=SA"),
        );
        expect(
            &rep,
            &[
                ("ct_state", json!("untracked")),
                ("verdict", json!("accept")),
                ("out", json!("wan")),
            ],
        );
    }
    assert_eq!(ex.conntrack_entries(), 0);
    // The same fifty clients on the transit router (no web rule) would each
    // be a NEW packet to a closed port: dropped, still no entries.
    let mut tr = transit();
    for i in 0..50u16 {
        let j = run(
            &mut tr,
            &format!(
                "in=wan tcp 198.18.0.2:{} > 198.18.0.1:80 flags=S",
                40000 + i
            ),
        );
        assert_eq!(j["drop_reason"], json!("filter_policy"), "{j}");
    }
    assert_eq!(tr.conntrack_entries(), 0);
}

#[test]
fn icmp_errors_about_web_flows_relate_to_nothing() {
    // The NOTRACK caveat the webserver config documents: an error about an
    // untracked web reply finds no flow, is INVALID and the policy drops it.
    let mut ex = webserver();
    run(&mut ex, HTTP_SYN);
    run(&mut ex, HTTP_SYNACK);
    let e = run(
        &mut ex,
        "in=wan icmp 198.18.0.2 > 198.18.0.1 type=destination-unreachable code=frag-needed inner tcp 198.18.0.1:80 > 198.18.0.2:40000 flags=SA",
    );
    expect(
        &e,
        &[
            ("ct_state", json!("invalid")),
            ("verdict", json!("drop")),
            ("drop_reason", json!("filter_policy")),
            ("conntrack_entries", json!(0)),
        ],
    );
}

// ------------------------------------------- netfilter's conntrack rules
//
// Each test below is one rule of the kernel's conntrack (issue 18), with
// the function of `net/netfilter/nf_conntrack_proto_*.c` it comes from.

/// A router that tracks its transit: forward is stateful with a drop
/// policy, new flows only from lan, and TCP to port 81 rejected once
/// established (to see what a reject's RST does to the flow).
const TRACKED: &str = "
interfaces:
  - name: wan
    device: r0
    addresses: [198.18.0.1/24]
  - name: lan
    device: r1
    addresses: [198.19.0.1/24]
routes:
  - to: default
    via: 198.18.0.2
raw:
  prerouting: []
  output: []
filter:
  input:
    policy: drop
    rules:
      - match: { state: [established, related] }
        action: accept
      - match: { protocol: icmp, icmp_type: echo-request }
        action: accept
  forward:
    policy: drop
    rules:
      - match: { in: lan, protocol: tcp, destination_port: 81, state: [established] }
        action: reject
      - match: { state: [established, related] }
        action: accept
      - match: { in: lan, state: [new] }
        action: accept
  output:
    policy: accept
";

fn tracked() -> Explainer {
    let cfg = Config::from_str(TRACKED, Path::new("tracked.yaml")).expect("test config loads");
    Explainer::new(cfg.tables_spec())
}

const C80: &str = "tcp 198.19.0.2:40700 > 198.18.0.2:80";
const S80: &str = "tcp 198.18.0.2:80 > 198.19.0.2:40700";

fn lan(flags: &str) -> String {
    format!("in=lan {C80} flags={flags}")
}

fn wan(flags: &str) -> String {
    format!("in=wan {S80} flags={flags}")
}

/// Handshake, then `close` (packets as (from lan, flags)).
fn tcp_flow(ex: &mut Explainer, close: &[(bool, &str)]) {
    let mut pkts = vec![lan("S"), wan("SA"), lan("A")];
    for (from_lan, f) in close {
        pkts.push(if *from_lan { lan(f) } else { wan(f) });
    }
    for p in &pkts {
        let j = run(ex, p);
        assert_eq!(j["verdict"], json!("accept"), "{p}: {j:#}");
    }
}

#[test]
fn tcp_a_server_syn_on_a_flow_in_time_wait_deletes_it_and_is_new() {
    // nf_conntrack_proto_tcp.c `tcp_packet`: a SYN (either way) that the
    // table sends to SYN_SENT from TIME_WAIT, on a flow a side began to
    // close (CLOSE_INIT, set with FIN_WAIT), kills the entry; the packet
    // is looked up again and is NEW.
    let mut ex = tracked();
    tcp_flow(
        &mut ex,
        &[(true, "FA"), (false, "A"), (false, "FA"), (true, "A")],
    );
    assert_eq!(flows(&ex), [(C80.to_string(), Some("TIME_WAIT"))]);
    let j = run(&mut ex, &wan("S"));
    expect(
        &j,
        &[
            ("ct_state", json!("new")),
            ("chain", json!("forward")),
            ("rule", Value::Null),
            ("verdict", json!("drop")),
            ("drop_reason", json!("filter_policy")),
            ("conntrack_entries", json!(0)),
        ],
    );
    // The client's SYN after a FIN close reopens too.
    let mut ex = tracked();
    tcp_flow(
        &mut ex,
        &[(true, "FA"), (false, "A"), (false, "FA"), (true, "A")],
    );
    let j = run(&mut ex, &lan("S"));
    expect(
        &j,
        &[
            ("ct_state", json!("new")),
            ("rule", json!(3)),
            ("verdict", json!("accept")),
            ("ct_confirmed", json!(true)),
            ("conntrack_entries", json!(1)),
        ],
    );
    assert_eq!(flows(&ex), [(C80.to_string(), Some("SYN_SENT"))]);
}

#[test]
fn tcp_a_syn_after_the_same_sides_rst_reopens_the_flow() {
    // `tcp_packet`: CLOSE, and the last segment was a RST from the side
    // that now sends the SYN (`last_dir == dir && last_index == RST`).
    let mut ex = tracked();
    tcp_flow(&mut ex, &[(true, "R")]);
    assert_eq!(flows(&ex), [(C80.to_string(), Some("CLOSE"))]);
    let j = run(&mut ex, &lan("S"));
    expect(
        &j,
        &[
            ("ct_state", json!("new")),
            ("rule", json!(3)),
            ("ct_confirmed", json!(true)),
            ("conntrack_entries", json!(1)),
        ],
    );
    assert_eq!(flows(&ex), [(C80.to_string(), Some("SYN_SENT"))]);
}

#[test]
fn tcp_a_syn_after_the_other_sides_rst_is_ignored_and_established() {
    // `tcp_packet`: no FIN was seen and the last RST came from the server:
    // the client's SYN is ignored (accepted, the flow left in CLOSE), its
    // state ESTABLISHED, as the flow has seen a reply. The server's SYN+ACK
    // answering that ignored SYN resynchronises the flow (SYN_RECV).
    let mut ex = tracked();
    tcp_flow(&mut ex, &[(false, "R")]);
    let j = run(&mut ex, &lan("S"));
    expect(
        &j,
        &[
            ("ct_state", json!("established")),
            ("rule", json!(2)),
            ("verdict", json!("accept")),
            ("ct_confirmed", json!(false)),
            ("conntrack_entries", json!(1)),
        ],
    );
    assert_eq!(flows(&ex), [(C80.to_string(), Some("CLOSE"))]);
    let j = run(&mut ex, &wan("SA"));
    expect(
        &j,
        &[("ct_state", json!("established")), ("rule", json!(2))],
    );
    assert_eq!(flows(&ex), [(C80.to_string(), Some("SYN_RECV"))]);
    run(&mut ex, &lan("A"));
    assert_eq!(flows(&ex), [(C80.to_string(), Some("ESTABLISHED"))]);

    // The same after the router's RST: a reject answers the client's
    // established segment (issue 18's "router's RST answering the client"
    // is a RST in the reply direction as far as conntrack is concerned).
    let mut ex = tracked();
    let c81 = "tcp 198.19.0.2:40800 > 198.18.0.2:81";
    let s81 = "tcp 198.18.0.2:81 > 198.19.0.2:40800";
    run(&mut ex, &format!("in=lan {c81} flags=S"));
    run(&mut ex, &format!("in=wan {s81} flags=SA"));
    let j = run(&mut ex, &format!("in=lan {c81} flags=A"));
    expect(&j, &[("rule", json!(1)), ("verdict", json!("reject"))]);
    let j = run(&mut ex, &format!("in=lan {c81} flags=S"));
    expect(
        &j,
        &[
            ("ct_state", json!("established")),
            ("conntrack_entries", json!(1)),
        ],
    );
}

#[test]
fn tcp_a_rst_before_any_reply_removes_the_entry_at_once() {
    // `tcp_packet`: "If only reply is a RST, we can consider ourselves not
    // to have an established connection ... delete the conntrack
    // immediately" (a RST either way while no reply was seen), even when
    // the filter then drops the RST.
    let mut ex = tracked();
    let c = "tcp 198.19.0.2:40600 > 198.18.0.2:80";
    let s = "tcp 198.18.0.2:80 > 198.19.0.2:40600";
    let j = run(&mut ex, &format!("in=lan {c} flags=S"));
    expect(
        &j,
        &[
            ("ct_confirmed", json!(true)),
            ("conntrack_entries", json!(1)),
        ],
    );
    let j = run(&mut ex, &format!("in=wan {s} flags=RA"));
    expect(
        &j,
        &[
            ("ct_state", json!("established")),
            ("verdict", json!("accept")),
            ("conntrack_entries", json!(0)),
        ],
    );
    // Nothing left to relate an error to.
    let j = run(
        &mut ex,
        &format!("in=wan icmp 198.18.0.2 > 198.19.0.2 type=destination-unreachable code=port-unreachable inner {c}"),
    );
    expect(
        &j,
        &[("ct_state", json!("invalid")), ("verdict", json!("drop"))],
    );
    // The client's own RST before a reply ends the flow the same way.
    run(&mut ex, &format!("in=lan {c} flags=S"));
    let j = run(&mut ex, &format!("in=lan {c} flags=R"));
    expect(
        &j,
        &[("ct_state", json!("new")), ("conntrack_entries", json!(0))],
    );
    // Once a reply was seen, a RST leaves a CLOSE entry (10 s).
    tcp_flow(&mut ex, &[(false, "R")]);
    assert_eq!(flows(&ex), [(C80.to_string(), Some("CLOSE"))]);
}

#[test]
fn icmp_an_error_not_sent_to_the_quoted_packets_source_is_invalid() {
    // nf_conntrack_proto_icmp.c `nf_conntrack_inet_error`: "outer daddr
    // != inner" is INVALID, so nobody can have the router accept errors
    // about someone else's flow.
    let mut ex = tracked();
    let flow = "tcp 198.19.0.2:40500 > 198.18.5.5:80";
    let j = run(&mut ex, &format!("in=lan {flow} flags=S"));
    expect(&j, &[("ct_confirmed", json!(true))]);
    let to_router = format!(
        "in=wan icmp 198.18.0.2 > 198.18.0.1 type=destination-unreachable code=host-unreachable inner {flow}"
    );
    let j = run(&mut ex, &to_router);
    expect(
        &j,
        &[
            ("ct_state", json!("invalid")),
            ("chain", json!("input")),
            ("rule", Value::Null),
            ("verdict", json!("drop")),
            ("drop_reason", json!("filter_policy")),
        ],
    );
    // Sent to the quoted packet's source, the same error is RELATED.
    let to_source = format!(
        "in=wan icmp 198.18.0.2 > 198.19.0.2 type=destination-unreachable code=host-unreachable inner {flow}"
    );
    let j = run(&mut ex, &to_source);
    expect(
        &j,
        &[
            ("ct_state", json!("related")),
            ("chain", json!("forward")),
            ("rule", json!(2)),
            ("verdict", json!("accept")),
        ],
    );
    // The packet, on the shipped transit router (whose transit is
    // untracked: the quoted flow exists only if the router tracked it).
    let mut ex = transit();
    let j = run(&mut ex, &to_router);
    expect(
        &j,
        &[("ct_state", json!("invalid")), ("verdict", json!("drop"))],
    );
}

#[test]
fn icmp_queries_are_keyed_by_type_so_each_direction_is_its_own_flow() {
    // nf_conntrack_proto_icmp.c: the tuple holds the type (and code), and
    // `nf_conntrack_invert_icmp_tuple` maps a request to its reply. An
    // echo request from the router with the id of one it received is a
    // second flow, whose reply is ESTABLISHED.
    let mut ex = transit();
    let j = run(
        &mut ex,
        "in=wan icmp 198.18.0.2 > 198.18.0.1 type=echo-request id=5",
    );
    expect(
        &j,
        &[("ct_state", json!("new")), ("ct_confirmed", json!(true))],
    );
    let j = run(
        &mut ex,
        "in=host icmp 198.18.0.1 > 198.18.0.2 type=echo-request id=5",
    );
    expect(
        &j,
        &[
            ("ct_state", json!("new")),
            ("verdict", json!("accept")),
            ("ct_confirmed", json!(true)),
            ("conntrack_entries", json!(2)),
        ],
    );
    let j = run(
        &mut ex,
        "in=wan icmp 198.18.0.2 > 198.18.0.1 type=echo-reply id=5",
    );
    expect(
        &j,
        &[
            ("ct_state", json!("established")),
            ("rule", json!(1)),
            ("verdict", json!("accept")),
        ],
    );
    let j = run(
        &mut ex,
        "in=host icmp 198.18.0.1 > 198.18.0.2 type=echo-reply id=5",
    );
    expect(&j, &[("ct_state", json!("established"))]);

    // An error quoting a query of the other direction relates to nothing;
    // quoting the flow's own packet it is RELATED.
    let mut ex = transit();
    run(
        &mut ex,
        "in=wan icmp 198.18.0.2 > 198.18.0.1 type=echo-request id=9",
    );
    let other_way = "in=wan icmp 198.18.0.2 > 198.18.0.1 type=destination-unreachable code=host-unreachable inner icmp 198.18.0.1 > 198.18.0.2 type=echo-request id=9";
    let j = run(&mut ex, other_way);
    expect(
        &j,
        &[("ct_state", json!("invalid")), ("verdict", json!("drop"))],
    );
    let own_reply = "in=wan icmp 198.18.0.2 > 198.18.0.1 type=destination-unreachable code=host-unreachable inner icmp 198.18.0.1 > 198.18.0.2 type=echo-reply id=9";
    let j = run(&mut ex, own_reply);
    expect(
        &j,
        &[("ct_state", json!("related")), ("verdict", json!("accept"))],
    );
}

#[test]
fn tcp_a_rejects_reset_moves_the_flow_to_close() {
    // nf_reject_ipv4.c `nf_send_reset` calls `nf_ct_set_closing`: the
    // tracked flow moves to CLOSE (timeout 10 s), so a later FIN finds
    // CLOSE, not ESTABLISHED.
    let mut ex = tracked();
    let c = "tcp 198.19.0.2:40900 > 198.18.0.2:81";
    let s = "tcp 198.18.0.2:81 > 198.19.0.2:40900";
    run(&mut ex, &format!("in=lan {c} flags=S"));
    run(&mut ex, &format!("in=wan {s} flags=SA"));
    let j = run(&mut ex, &format!("in=lan {c} flags=A"));
    expect(
        &j,
        &[
            ("ct_state", json!("established")),
            ("rule", json!(1)),
            ("verdict", json!("reject")),
        ],
    );
    let p = ex.pipeline();
    let f: Vec<_> = p.conntrack().flows(p.now()).collect();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].tcp_state.map(|s| s.name()), Some("CLOSE"));
    assert_eq!(f[0].timeout, 10);
    run(&mut ex, &format!("in=wan {s} flags=FA"));
    assert_eq!(
        flows(&ex),
        [(c.to_string(), Some("CLOSE"))],
        "a FIN after the reset finds CLOSE"
    );
}
