//! The Prometheus exposition, scraped over HTTP as Prometheus does and
//! parsed: names, labels, values, and HELP/TYPE for every family.

mod ctl_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;

use control::ctl::metrics;
use ctl_support::*;
use dataplane::drop::DropReason;

fn get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nAccept: text/plain\r\n\r\n"
    )
    .unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    let (head, body) = r.split_once("\r\n\r\n").expect("HTTP head");
    (head.to_string(), body.to_string())
}

/// `name{labels}` -> value, and the families that have HELP and TYPE.
fn parse(body: &str) -> (BTreeMap<String, f64>, BTreeSet<String>, BTreeSet<String>) {
    let mut samples = BTreeMap::new();
    let (mut help, mut typ) = (BTreeSet::new(), BTreeSet::new());
    for l in body.lines() {
        if let Some(r) = l.strip_prefix("# HELP ") {
            help.insert(r.split(' ').next().unwrap().to_string());
        } else if let Some(r) = l.strip_prefix("# TYPE ") {
            let mut w = r.split(' ');
            let name = w.next().unwrap().to_string();
            let kind = w.next().unwrap();
            assert!(["counter", "gauge"].contains(&kind), "{l}");
            assert_eq!(name.ends_with("_total"), kind == "counter", "{l}");
            typ.insert(name);
        } else {
            let (k, v) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("sample line: {l}"));
            assert!(k.starts_with("afxdp_router_"), "{l}");
            let v: f64 = v.parse().unwrap_or_else(|_| panic!("value: {l}"));
            assert!(samples.insert(k.to_string(), v).is_none(), "duplicate {k}");
        }
    }
    (samples, help, typ)
}

#[test]
fn metrics_scrape_has_conventional_names_labels_and_values() {
    let fake = Fake::transit();
    for p in [SSH_SYN, TRANSIT_UDP, TELNET] {
        fake.feed(p);
    }
    let srv = metrics::serve("127.0.0.1:0".parse().unwrap(), fake).expect("listen");
    let (head, body) = get(srv.local_addr(), "/metrics");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    let (s, help, typ) = parse(&body);
    let v = |k: &str| *s.get(k).unwrap_or_else(|| panic!("no sample {k}\n{body}"));
    assert_eq!(v(r#"afxdp_router_rx_packets_total{interface="wan"}"#), 3.0);
    assert_eq!(v(r#"afxdp_router_rx_bytes_total{interface="wan"}"#), 150.0);
    assert_eq!(v(r#"afxdp_router_tx_packets_total{interface="lan"}"#), 1.0);
    assert_eq!(
        v(r#"afxdp_router_drops_total{reason="filter_denied"}"#),
        1.0
    );
    for r in DropReason::ALL {
        v(&format!(
            r#"afxdp_router_drops_total{{reason="{}"}}"#,
            r.name()
        ));
    }
    assert_eq!(
        v(
            r#"afxdp_router_rule_packets_total{table="filter",chain="forward",position="1",action="drop",comment="no telnet from outside"}"#
        ),
        1.0
    );
    assert_eq!(
        v(
            r#"afxdp_router_rule_packets_total{table="raw",chain="prerouting",position="2",action="notrack",comment="transit is untracked"}"#
        ),
        2.0
    );
    assert_eq!(
        v(
            r#"afxdp_router_rule_packets_total{table="filter",chain="input",position="",action="drop",comment=""}"#
        ),
        0.0
    );
    assert_eq!(v("afxdp_router_conntrack_entries"), 1.0);
    assert_eq!(v(r#"afxdp_router_conntrack_flows{protocol="tcp"}"#), 1.0);
    assert_eq!(v("afxdp_router_tracked_packets_total"), 1.0);
    assert_eq!(v("afxdp_router_untracked_packets_total"), 2.0);
    assert_eq!(
        v(r#"afxdp_router_xdp_fill_ring_empty_total{interface="wan"}"#),
        7.0
    );
    assert_eq!(
        v(r#"afxdp_router_worker_busy_loops_total{worker="0",core="1"}"#),
        250.0
    );
    // The fake's runtime accounting (ctl_support::fake_runtime).
    assert_eq!(
        v(r#"afxdp_router_worker_cycles_total{worker="0",core="1",phase="pipeline"}"#),
        10_000.0
    );
    let phases = [
        "rx",
        "pipeline",
        "tx",
        "host",
        "handoff",
        "housekeeping",
        "idle",
    ];
    let cycles: f64 = (phases.iter())
        .map(|p| {
            v(&format!(
                r#"afxdp_router_worker_cycles_total{{worker="0",core="1",phase="{p}"}}"#
            ))
        })
        .sum();
    assert_eq!(cycles, 1_000_000.0, "the phases add up to the loop time");
    assert_eq!(
        v(r#"afxdp_router_worker_runtime_packets_total{worker="0",core="1"}"#),
        1000.0
    );
    assert_eq!(v("afxdp_router_tsc_hz"), 1e9);
    // Every sample's family has HELP and TYPE.
    for k in s.keys() {
        let fam = k.split('{').next().unwrap();
        assert!(
            help.contains(fam) && typ.contains(fam),
            "{fam} lacks HELP/TYPE"
        );
    }
    let (head, _) = get(srv.local_addr(), "/");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    srv.shutdown();
}

#[test]
fn label_values_are_escaped() {
    let mut snap = control::ctl::api::StatsSnapshot::default();
    snap.rules.push(control::ctl::api::RuleStats {
        table: "filter".into(),
        chain: "input".into(),
        position: Some(1),
        action: "accept".into(),
        comment: Some("say \"hi\" \\ bye\nnow".into()),
        packets: 4,
        bytes: 400,
    });
    let text = metrics::render(&snap);
    assert!(
        text.contains(r#"comment="say \"hi\" \\ bye\nnow"} 4"#),
        "{text}"
    );
}

#[test]
fn packets_are_split_by_family_and_ndp_is_counted() {
    let fake = Fake::dual_stack();
    for p in [
        SSH_SYN,
        "in=wan tcp [2001:db8::2]:40000 > [2001:db8::1]:22 flags=S",
        "in=wan tcp [2001:db8::2]:40001 > [2001:db8::1]:23 flags=S",
    ] {
        fake.feed(p);
    }
    let srv = metrics::serve("127.0.0.1:0".parse().unwrap(), fake).expect("listen");
    let (_, body) = get(srv.local_addr(), "/metrics");
    let (s, help, typ) = parse(&body);
    let v = |k: &str| *s.get(k).unwrap_or_else(|| panic!("no sample {k}\n{body}"));
    let fam = |f: &str, w: &str| {
        v(&format!(
            r#"afxdp_router_packets_total{{family="{f}",what="{w}"}}"#
        ))
    };
    assert_eq!(
        (
            fam("ipv6", "rx"),
            fam("ipv6", "to_host"),
            fam("ipv6", "dropped")
        ),
        (2.0, 1.0, 1.0),
        "ssh accepted, telnet to the router dropped by the input policy"
    );
    assert_eq!((fam("ipv4", "rx"), fam("ipv4", "to_host")), (1.0, 1.0));
    assert_eq!(
        (fam("ipv4", "forwarded"), fam("ipv6", "forwarded")),
        (0.0, 0.0)
    );
    for name in [
        "nd_solicits_received_total",
        "nd_adverts_sent_total",
        "nd_adverts_received_total",
        "nd_solicits_sent_total",
        "nd_resolution_failures_total",
        "ra_sent_total",
        "rs_received_total",
        "packets_total",
    ] {
        let full = format!("afxdp_router_{name}");
        assert!(help.contains(&full) && typ.contains(&full), "{full}");
    }
    assert_eq!(v("afxdp_router_ra_sent_total"), 0.0);
    srv.shutdown();
}
