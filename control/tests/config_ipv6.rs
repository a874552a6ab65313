//! A dual-stack config decodes into the IPv6 tables a network engineer
//! expects (on-link, local, static routes, neighbours, router
//! advertisements), and its rules are nftables' `inet` rules: one list for
//! both families, where a condition with prefixes of one family only never
//! matches a packet of the other.

use control::config::Config;
use dataplane::addr::Mac;
use dataplane::meta::Meta;
use dataplane::packet::PortId;
use dataplane::rules::{matches, ChainId, FilterAction, FAMILY_V4, FAMILY_V6};
use dataplane::tables::Tables;
use dataplane::tables6::{NextHop6, RaConfig, RaPrefix, StaticNeighbour6};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

const DUAL: &str = "
interfaces:
  - name: wan
    device: r0
    addresses: [198.18.0.1/24, 2001:db8::1/64]
  - name: lan
    device: r1
    addresses: [198.19.0.1/24, 2001:db8:1::1/64, 2001:db8:100::1/56]
    router_advertisements: true
routes:
  - { to: default, via: 198.18.0.2 }
  - { to: default, via: 2001:db8::2 }
  - { to: 2001:db8:5::/48, via: fe80::5, interface: lan }
  - { to: 2001:db8:6::/48, interface: lan }
  - { to: 2001:db8:7::/48, blackhole: true }
  - { to: 2001:db8:8::/48, unreachable: true }
neighbors:
  - { address: 198.19.0.2, mac: \"02:00:00:00:00:02\" }
  - { address: 2001:db8::2, mac: \"02:00:00:00:00:03\" }
  - { address: fe80::5, interface: lan, mac: \"02:00:00:00:00:05\" }
filter:
  input:
    policy: drop
    rules:
      - { match: { source: [198.18.0.0/24, 2001:db8::/64], protocol: tcp }, action: accept, comment: both }
      - { match: { source: 203.0.113.0/24 }, action: accept, comment: v4 only }
      - { match: { source: 2001:db8:1::/64, protocol: udp }, action: accept, comment: v6 only }
      - { match: { family: ipv6, protocol: tcp, destination_port: 22 }, action: accept, comment: ssh6 }
      - { match: { destination: local, icmpv6_type: echo-request }, action: accept, comment: ping6 }
      - { match: { protocol: icmp, icmp_type: echo-request }, action: accept, comment: ping }
      - { match: { source: local }, action: drop, comment: spoofed }
";

fn a6(s: &str) -> u128 {
    u128::from(s.parse::<Ipv6Addr>().unwrap())
}

fn a4(s: &str) -> u32 {
    u32::from(s.parse::<Ipv4Addr>().unwrap())
}

fn dual() -> (Config, Tables) {
    let c = Config::from_str(DUAL, Path::new("dual.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let mut spec = c.tables_spec();
    for (i, ifc) in spec.interfaces.iter_mut().enumerate() {
        ifc.mac = Mac([2, 0, 0, 0, 1, i as u8]);
    }
    (c, Tables::build(spec))
}

/// An IPv6 packet as the pipeline sees it at the input chain.
fn meta6(t: &Tables, src: &str, dst: &str, proto: u8) -> Meta {
    Meta {
        v6: true,
        src6: a6(src),
        dst6: a6(dst),
        proto,
        local_dst: t.v6.is_local(a6(dst)),
        out_port: Some(PortId::HOST),
        ..Default::default()
    }
}

fn meta4(t: &Tables, src: &str, dst: &str, proto: u8) -> Meta {
    Meta {
        src: a4(src),
        dst: a4(dst),
        proto,
        local_dst: t.is_local(a4(dst)),
        out_port: Some(PortId::HOST),
        ..Default::default()
    }
}

/// The comment of the input rule that decides, or the policy.
fn verdict(t: &Tables, m: &Meta) -> String {
    match t.filter_verdict(ChainId::Input, m) {
        (Some(i), _) => t.filter[ChainId::Input as usize].rules[i]
            .comment
            .clone()
            .unwrap_or_default(),
        (None, FilterAction::Drop) => "policy drop".into(),
        (None, a) => format!("policy {}", a.name()),
    }
}

#[test]
fn a_dual_stack_config_builds_ipv6_routes_local_addresses_and_neighbours() {
    let (c, t) = dual();
    assert_eq!(c.spec.interfaces[1].addresses6.len(), 2);
    let (wan, lan) = (PortId(0), PortId(1));
    let route = |s: &str| t.v6.route(a6(s)).map(|(_, n)| n);
    assert_eq!(
        route("2001:db8:ffff::9"),
        Some(NextHop6::Via {
            port: wan,
            gateway: a6("2001:db8::2")
        }),
        "`to: default` with an IPv6 via is IPv6's default route"
    );
    assert_eq!(
        t.route(a4("192.0.2.9")),
        Some(dataplane::tables::NextHop::Via {
            port: wan,
            gateway: a4("198.18.0.2")
        }),
        "and IPv4's stays"
    );
    assert_eq!(
        route("2001:db8:5::1"),
        Some(NextHop6::Via {
            port: lan,
            gateway: a6("fe80::5")
        })
    );
    assert_eq!(route("2001:db8:6::1"), Some(NextHop6::Connected(lan)));
    assert_eq!(route("2001:db8:7::1"), Some(NextHop6::Blackhole));
    assert_eq!(route("2001:db8:8::1"), Some(NextHop6::Unreachable));
    assert_eq!(route("2001:db8:1::7"), Some(NextHop6::Connected(lan)));
    assert_eq!(route("2001:db8:100:ff::7"), Some(NextHop6::Connected(lan)));
    assert_eq!(route("2001:db8::1"), Some(NextHop6::Local));
    assert!(t.v6.is_local(a6("2001:db8:1::1")));
    assert!(!t.v6.is_local(a6("2001:db8:1::2")));
    // lan's link-local address comes from its MAC 02:00:00:00:01:01.
    assert!(t.v6.is_local(a6("fe80::ff:fe00:101")));
    assert_eq!(
        t.v6.neighbours,
        [
            StaticNeighbour6 {
                addr: a6("2001:db8::2"),
                mac: "02:00:00:00:00:03".parse().unwrap(),
                port: wan
            },
            StaticNeighbour6 {
                addr: a6("fe80::5"),
                mac: "02:00:00:00:00:05".parse().unwrap(),
                port: lan
            },
        ]
    );
    assert_eq!(t.neighbours.len(), 1, "the IPv4 neighbour stays IPv4's");
}

#[test]
fn router_advertisements_true_announces_every_slash_64_with_the_defaults() {
    let (_, t) = dual();
    assert_eq!(t.interfaces[0].ra, None);
    assert_eq!(
        t.interfaces[1].ra,
        Some(RaConfig {
            interval: 200,
            router_lifetime: 1800,
            hop_limit: 64,
            managed: false,
            other: false,
            mtu: true,
            prefixes: vec![RaPrefix {
                prefix: "2001:db8:1::/64".parse().unwrap(),
                valid_lifetime: 2_592_000,
                preferred_lifetime: 604_800,
                on_link: true,
                autonomous: true,
            }],
        }),
        "the /56 is not announced: SLAAC needs a /64"
    );
}

#[test]
fn router_advertisements_settings_and_prefix_lifetimes() {
    let text = DUAL.replace(
        "    router_advertisements: true\n",
        "    router_advertisements:
      interval: 30
      router_lifetime: 0
      hop_limit: 0
      managed: true
      other: true
      mtu: false
      prefixes:
        - 2001:db8:1::/64
        - { prefix: 2001:db8:100::/56, autonomous: false, valid_lifetime: infinity, preferred_lifetime: 3600 }
",
    );
    let c = Config::from_str(&text, Path::new("ra.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let ra = c.spec.interfaces[1].ra.clone().expect("on");
    assert_eq!((ra.interval, ra.router_lifetime, ra.hop_limit), (30, 0, 0));
    assert!(ra.managed && ra.other && !ra.mtu);
    assert_eq!(ra.prefixes.len(), 2);
    assert_eq!(
        ra.prefixes[1],
        RaPrefix {
            prefix: "2001:db8:100::/56".parse().unwrap(),
            valid_lifetime: u32::MAX,
            preferred_lifetime: 3600,
            on_link: true,
            autonomous: false,
        }
    );
    let off = DUAL.replace(
        "router_advertisements: true",
        "router_advertisements: false",
    );
    let c = Config::from_str(&off, Path::new("ra.yaml")).unwrap();
    assert_eq!(c.spec.interfaces[1].ra, None);
}

#[test]
fn rules_with_mixed_prefixes_compile_to_the_families_they_can_match() {
    let (_, t) = dual();
    let rules = &t.filter[ChainId::Input as usize].rules;
    let fam: Vec<u8> = rules.iter().map(|r| r.matches.families).collect();
    let both = FAMILY_V4 | FAMILY_V6;
    assert_eq!(
        fam,
        [both, FAMILY_V4, FAMILY_V6, FAMILY_V6, both, both, both],
        "mixed, v4 only, v6 only, family: ipv6, local (both), icmp, local"
    );
    assert_eq!(
        rules[4].matches.protocol,
        Some(58),
        "icmpv6_type implies icmpv6"
    );
    assert_eq!(rules[4].matches.icmp_type, Some(128));
}

#[test]
fn inet_rules_answer_ipv4_and_ipv6_packets_as_nftables_does() {
    let (_, t) = dual();
    let (tcp, udp, icmp, icmp6) = (6, 17, 1, 58);
    // A mixed source list matches each family by its own prefixes.
    let m = meta6(&t, "2001:db8::9", "2001:db8::1", tcp);
    assert_eq!(verdict(&t, &m), "both");
    let m = meta4(&t, "198.18.0.9", "198.18.0.1", tcp);
    assert_eq!(verdict(&t, &m), "both");
    // IPv4 prefixes only: never an IPv6 packet, whatever its address.
    let m = meta6(&t, "2001:db8:3::9", "2001:db8::1", udp);
    assert_eq!(verdict(&t, &m), "policy drop");
    let m = meta4(&t, "203.0.113.9", "198.18.0.1", udp);
    assert_eq!(verdict(&t, &m), "v4 only");
    // IPv6 prefixes only: never an IPv4 packet.
    let m = meta6(&t, "2001:db8:1::9", "2001:db8:1::1", udp);
    assert_eq!(verdict(&t, &m), "v6 only");
    let m = meta4(&t, "198.19.0.9", "198.19.0.1", udp);
    assert_eq!(verdict(&t, &m), "policy drop");
    // family: ipv6 restricts a rule without prefixes.
    let mut m = meta6(&t, "2001:db8:9::9", "2001:db8::1", tcp);
    m.has_ports = true;
    m.dport = 22;
    assert_eq!(verdict(&t, &m), "ssh6");
    let mut m = meta4(&t, "192.0.2.9", "198.18.0.1", tcp);
    m.has_ports = true;
    m.dport = 22;
    assert_eq!(verdict(&t, &m), "policy drop");
    // destination: local holds for the router's IPv6 addresses too.
    let mut m = meta6(&t, "2001:db8:9::9", "2001:db8:1::1", icmp6);
    m.has_icmp = true;
    m.icmp_type = 128;
    assert_eq!(verdict(&t, &m), "ping6");
    let ping6 = &t.filter[ChainId::Input as usize].rules[4].matches;
    m.dst6 = a6("2001:db8:1::2");
    m.local_dst = t.v6.is_local(m.dst6);
    assert!(!matches(ping6, &m, &t), "not the router's address");
    // IPv4's echo request is not ICMPv6's.
    let mut m = meta4(&t, "192.0.2.9", "198.18.0.1", icmp);
    m.has_icmp = true;
    m.icmp_type = 8;
    assert_eq!(verdict(&t, &m), "ping");
    m.icmp_type = 128;
    assert_eq!(verdict(&t, &m), "policy drop");
    // source: local: the router's own IPv6 address, link-local included.
    let m = meta6(&t, "2001:db8::1", "2001:db8::1", udp);
    assert_eq!(verdict(&t, &m), "spoofed");
    let m = meta6(&t, "fe80::ff:fe00:100", "2001:db8::1", udp);
    assert_eq!(verdict(&t, &m), "spoofed");
    let m = meta6(&t, "fe80::ff:fe00:999", "2001:db8::1", udp);
    assert_eq!(verdict(&t, &m), "policy drop");
}

#[test]
fn rule_text_and_the_summary_show_both_families() {
    let (c, _) = dual();
    let ifs = &c.spec.interfaces;
    let text = |i: usize| {
        let r = &c.spec.filter_input.rules[i];
        control::config::diff::rule_text(&r.matches, r.action.name(), None, ifs)
    };
    assert_eq!(
        text(0),
        "{ source: [198.18.0.0/24, 2001:db8::/64], protocol: tcp } accept"
    );
    assert_eq!(
        text(3),
        "{ family: ipv6, protocol: tcp, destination_port: 22 } accept"
    );
    assert_eq!(
        text(4),
        "{ destination: local, protocol: icmpv6, icmpv6_type: echo-request } accept"
    );
    let s = c.summary();
    assert!(
        s.contains("lan (device r1, mtu 1500): 198.19.0.1/24 2001:db8:1::1/64 2001:db8:100::1/56, router advertisements"),
        "{s}"
    );
    assert!(s.contains("  ::/0 via 2001:db8::2 dev wan"), "{s}");
    assert!(s.contains("  2001:db8:5::/48 via fe80::5 dev lan"), "{s}");
    assert!(s.contains("neighbours: 3 static"), "{s}");
}

#[test]
fn the_nft_export_writes_ip6_terms_and_splits_a_mixed_rule_per_family() {
    let (c, _) = dual();
    let rs = control::nft::ruleset(&c.tables_spec());
    let input = rs.chains.iter().find(|ch| ch.name == "input").unwrap();
    let lines: Vec<String> = input.rules.iter().map(control::nft::rule_text).collect();
    for want in [
        "ip saddr 198.18.0.0/24 meta l4proto tcp counter accept comment \"both\"",
        "ip6 saddr 2001:db8::/64 meta l4proto tcp counter accept comment \"both\"",
        "ip saddr 203.0.113.0/24 counter accept comment \"v4 only\"",
        "ip6 saddr 2001:db8:1::/64 meta l4proto udp counter accept comment \"v6 only\"",
        "meta nfproto ipv6 meta l4proto tcp th dport 22 counter accept comment \"ssh6\"",
        "fib daddr type local meta l4proto ipv6-icmp icmpv6 type 128 counter accept comment \"ping6\"",
        "meta l4proto icmp icmp type 8 counter accept comment \"ping\"",
    ] {
        assert!(
            lines.iter().any(|l| l == want),
            "missing `{want}` in:\n{}",
            lines.join("\n")
        );
    }
    // The two halves of the mixed rule are config rule 0 both.
    assert_eq!(input.rules[0].index, 0);
    assert_eq!(input.rules[1].index, 0);
    assert_eq!(input.rules.len(), 8);
}
