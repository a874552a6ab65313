//! Broken configs must be rejected with the exact line, column and field
//! path of the offending value; good configs must load and compile.

use control::config::{Config, ConfigError, XdpMode};
use dataplane::addr::Ipv4Prefix;
use dataplane::conntrack::CtState;
use dataplane::packet::PortId;
use dataplane::rules::{AddrMatch, FilterAction, RawAction};
use dataplane::tables::{NextHop, Tables};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Seven lines: two interfaces, 198.18.0.1/24 (wan) and 198.19.0.1/24 (lan).
const BASE: &str = "\
interfaces:
  - name: wan
    device: r0
    addresses: [198.18.0.1/24]
  - name: lan
    device: r1
    addresses: [198.19.0.1/24]
";

fn error_of(text: &str) -> ConfigError {
    match Config::from_str(text, Path::new("bad.yaml")) {
        Ok(_) => panic!("config was accepted:\n{text}"),
        Err(e) => e,
    }
}

/// Asserts position, path, a part of the message, and the printed form.
#[track_caller]
fn expect(text: &str, line: usize, column: usize, path: &str, message_part: &str) {
    let e = error_of(text);
    let shown = e.to_string();
    assert_eq!(
        (e.line, e.column, e.path.as_str()),
        (line, column, path),
        "wrong position or path: {shown}"
    );
    assert!(
        e.message.contains(message_part),
        "message lacks {message_part:?}: {shown}"
    );
    assert_eq!(e.file, PathBuf::from("bad.yaml"));
    let prefix = if path.is_empty() {
        format!("bad.yaml:{line}:{column}: ")
    } else {
        format!("bad.yaml:{line}:{column}: {path}: ")
    };
    assert_eq!(shown, format!("{prefix}{}", e.message));
}

fn with_base(rest: &str) -> String {
    format!("{BASE}{rest}")
}

#[test]
fn misspelt_key_suggests_the_right_one() {
    let t = with_base(
        "filter:
  input:
    rules:
      - match: { protocol: tcp, destinaton_port: 22 }
        action: accept
",
    );
    expect(
        &t,
        11,
        33,
        "filter.input.rules[0].match.destinaton_port",
        "unknown key, did you mean destination_port?",
    );
}

#[test]
fn unknown_key_far_from_any_lists_expected_keys() {
    expect(
        &with_base("colour: red\n"),
        8,
        1,
        "colour",
        "unknown key, expected one of dataplane, control, interfaces",
    );
    expect(
        &with_base("dataplane:\n  bursty: 32\n"),
        9,
        3,
        "dataplane.bursty",
        "did you mean burst?",
    );
}

#[test]
fn route_prefix_with_host_bits() {
    expect(
        &with_base("routes:\n  - to: 203.0.113.1/24\n    via: 198.19.0.2\n"),
        9,
        9,
        "routes[0].to",
        "\"203.0.113.1/24\" is not a prefix, expected a network address with no host bits set",
    );
}

#[test]
fn bad_interface_address() {
    let t = BASE.replace("198.18.0.1/24", "198.18.0.300/24");
    expect(
        &t,
        4,
        17,
        "interfaces[0].addresses[0]",
        "\"198.18.0.300/24\" is not an interface address",
    );
    let t = BASE.replace("198.18.0.1/24", "198.18.0.0/24");
    expect(
        &t,
        4,
        17,
        "interfaces[0].addresses[0]",
        "network or broadcast address",
    );
}

#[test]
fn unknown_interface_in_rule() {
    let t = with_base(
        "filter:
  forward:
    rules:
      - match: { in: wam }
        action: drop
",
    );
    expect(
        &t,
        11,
        22,
        "filter.forward.rules[0].match.in",
        "\"wam\" is not an interface, did you mean wan?",
    );
}

#[test]
fn unknown_interface_in_route() {
    let t = with_base("routes:\n  - to: 192.0.2.0/24\n    interface: dmz\n");
    expect(
        &t,
        10,
        16,
        "routes[0].interface",
        "\"dmz\" is not an interface, expected wan or lan",
    );
}

#[test]
fn duplicate_interface_name_and_device() {
    let t = BASE.replacen("name: lan", "name: wan", 1);
    expect(
        &t,
        5,
        11,
        "interfaces[1].name",
        "duplicate interface name \"wan\" (also interfaces[0] at line 2)",
    );
    let t = BASE.replacen("device: r1", "device: r0", 1);
    expect(&t, 6, 13, "interfaces[1].device", "duplicate device \"r0\"");
}

#[test]
fn too_many_interfaces() {
    let mut t = String::from("interfaces:\n");
    for i in 0..63 {
        t.push_str(&format!("  - {{ name: i{i}, device: d{i} }}\n"));
    }
    expect(
        &t,
        64,
        7,
        "interfaces[62]",
        "63 interfaces, expected at most 62",
    );
}

#[test]
fn state_in_raw_rule() {
    let t =
        with_base("raw:\n  prerouting:\n    - match: { state: [new] }\n      action: notrack\n");
    expect(
        &t,
        10,
        23,
        "raw.prerouting[0].match.state",
        "raw runs before connection tracking",
    );
}

#[test]
fn out_in_raw_prerouting() {
    let t = with_base("raw:\n  prerouting:\n    - match: { out: lan }\n      action: notrack\n");
    expect(
        &t,
        10,
        21,
        "raw.prerouting[0].match.out",
        "no route decision has been made yet",
    );
}

#[test]
fn out_interface_in_input_chain_never_matches() {
    let t = with_base(
        "filter:\n  input:\n    rules:\n      - match: { out: wan }\n        action: drop\n",
    );
    expect(
        &t,
        11,
        23,
        "filter.input.rules[0].match.out",
        "out: wan never matches in filter.input",
    );
}

#[test]
fn route_via_unconnected_address_names_the_networks() {
    let t = with_base("routes:\n  - to: default\n    via: 10.0.0.1\n");
    expect(
        &t,
        10,
        10,
        "routes[0].via",
        "10.0.0.1 is on no connected network, expected a gateway on a connected network \
         (connected: wan 198.18.0.0/24, lan 198.19.0.0/24)",
    );
}

#[test]
fn route_targets_both_or_neither() {
    let t = with_base("routes:\n  - to: 192.0.2.0/24\n    via: 198.19.0.2\n    blackhole: true\n");
    expect(
        &t,
        11,
        16,
        "routes[0].blackhole",
        "has 2 targets, expected exactly one of via, interface",
    );
    let t = with_base("routes:\n  - to: 192.0.2.0/24\n");
    expect(&t, 9, 5, "routes[0]", "has no target");
}

#[test]
fn duplicate_route_prefix() {
    let t = with_base(
        "routes:\n  - to: default\n    via: 198.18.0.2\n  - to: 0.0.0.0/0\n    unreachable: true\n",
    );
    expect(
        &t,
        11,
        9,
        "routes[1].to",
        "duplicate route to 0.0.0.0/0 (first at line 9)",
    );
}

#[test]
fn neighbour_checks() {
    let t = with_base("neighbors:\n  - address: 198.19.0.2\n    mac: \"02:00:00:00:02\"\n");
    expect(
        &t,
        10,
        10,
        "neighbors[0].mac",
        "\"02:00:00:00:02\" is not a MAC address",
    );
    let t = with_base("neighbors:\n  - address: 10.1.1.1\n    mac: \"02:00:00:00:00:02\"\n");
    expect(
        &t,
        9,
        14,
        "neighbors[0].address",
        "10.1.1.1 is on no connected network",
    );
}

#[test]
fn overlapping_and_empty_workers() {
    expect(
        &with_base("dataplane:\n  workers: [0, 1, 0]\n"),
        9,
        19,
        "dataplane.workers",
        "overlapping cores: core 0 is listed twice",
    );
    expect(
        &with_base("dataplane:\n  workers: []\n"),
        9,
        12,
        "dataplane.workers",
        "empty list",
    );
}

#[test]
fn dataplane_ranges() {
    expect(
        &with_base("dataplane:\n  burst: 300\n"),
        9,
        10,
        "dataplane.burst",
        "expected a number from 1 to 256",
    );
    expect(
        &with_base("dataplane:\n  umem_frames: 1000\n"),
        9,
        16,
        "dataplane.umem_frames",
        "expected a power of two",
    );
    expect(
        &with_base("dataplane:\n  umem_frames: 256\n"),
        9,
        16,
        "dataplane.umem_frames",
        "expected a power of two from 512",
    );
    expect(
        &with_base("dataplane:\n  xdp_mode: nativ\n"),
        9,
        13,
        "dataplane.xdp_mode",
        "(did you mean native?), expected native or generic",
    );
}

#[test]
fn bad_and_zero_durations() {
    expect(
        &with_base("conntrack:\n  timeouts:\n    udp: 30x\n"),
        10,
        10,
        "conntrack.timeouts.udp",
        "\"30x\" is not a duration",
    );
    expect(
        &with_base("conntrack:\n  timeouts:\n    tcp_close: 0s\n"),
        10,
        16,
        "conntrack.timeouts.tcp_close",
        "expected at least 1s",
    );
    expect(
        &with_base("conntrack:\n  max_entries: 0\n"),
        9,
        16,
        "conntrack.max_entries",
        "expected a number from 1 to 16777216",
    );
}

#[test]
fn backwards_port_range_and_bad_port() {
    let t = with_base(
        "filter:\n  input:\n    rules:\n      - match: { protocol: tcp, destination_port: \"2000-1000\" }\n        action: accept\n",
    );
    expect(
        &t,
        11,
        51,
        "filter.input.rules[0].match.destination_port",
        "runs backwards",
    );
    let t = with_base(
        "filter:\n  input:\n    rules:\n      - match: { protocol: tcp, destination_port: [22, ssh] }\n        action: accept\n",
    );
    expect(
        &t,
        11,
        56,
        "filter.input.rules[0].match.destination_port[1]",
        "\"ssh\" is not a port, expected a number 0-65535, \"lo-hi\" or a list",
    );
}

#[test]
fn ports_and_icmp_type_need_their_protocol() {
    let t = with_base("filter:\n  input:\n    rules:\n      - match: { destination_port: 22 }\n        action: accept\n");
    expect(
        &t,
        11,
        36,
        "filter.input.rules[0].match.destination_port",
        "needs protocol: tcp or protocol: udp",
    );
    let t = with_base(
        "filter:\n  input:\n    rules:\n      - match: { protocol: udp, icmp_type: echo-request }\n        action: accept\n",
    );
    expect(
        &t,
        11,
        44,
        "filter.input.rules[0].match.icmp_type",
        "needs protocol: icmp",
    );
}

#[test]
fn bad_action_and_protocol() {
    let t = with_base("raw:\n  prerouting:\n    - action: drop\n");
    expect(
        &t,
        10,
        15,
        "raw.prerouting[0].action",
        "expected notrack or accept",
    );
    let t = with_base("filter:\n  input:\n    rules:\n      - match: { protocol: tcpp }\n        action: accept\n");
    expect(
        &t,
        11,
        28,
        "filter.input.rules[0].match.protocol",
        "\"tcpp\" is not a protocol",
    );
}

#[test]
fn yaml_syntax_error_has_a_position() {
    let t = with_base("dataplane:\n  workers: [1\n  burst: 64\n");
    let e = error_of(&t);
    // The parser notices at the ':' of `burst`, still inside the open `[`.
    assert_eq!((e.line, e.column, e.path.as_str()), (10, 8, ""), "{e}");
    assert!(
        e.to_string()
            .starts_with("bad.yaml:10:8: YAML syntax error: "),
        "{e}"
    );
}

#[test]
fn duplicate_key_names_its_path() {
    let t = with_base("dataplane:\n  burst: 64\n  burst: 32\n");
    expect(
        &t,
        10,
        3,
        "dataplane.burst",
        "duplicate key \"burst\" (first at line 9)",
    );
}

#[test]
fn missing_interfaces() {
    expect(
        "dataplane: { burst: 64 }\n",
        1,
        1,
        "",
        "missing key interfaces",
    );
}

/// The example of the issue, verbatim.
const EXAMPLE: &str = r#"
dataplane:
  workers: [1]                # cores for poll-mode workers
  burst: 64
  umem_frames: 4096
  xdp_mode: native            # native | generic
control:
  socket: /run/afxdp-router/routerd.sock
interfaces:
  - name: wan                 # the name rules and routes use
    device: r0                # the kernel netdev routerd takes over
    addresses: [198.18.0.1/24]
  - name: lan
    device: r1
    addresses: [198.19.0.1/24]
host:
  tun: rtr0                   # the router's own traffic reaches the kernel here
routes:
  - to: 203.0.113.0/24
    via: 198.19.0.2
  - to: default
    via: 198.18.0.2
neighbors:
  - address: 198.19.0.2
    mac: "02:00:00:00:00:02"
conntrack:
  max_entries: 262144
  timeouts: { tcp_established: 5d, tcp_syn_sent: 2m, udp: 30s, udp_stream: 2m, icmp: 30s }
raw:
  prerouting:
    - match: { destination: local }
      action: accept          # to the router itself: tracked
      comment: host traffic is tracked
    - action: notrack         # everything else: forwarded untracked
  output: []
filter:
  input:
    policy: drop
    rules:
      - match: { state: [established, related] }
        action: accept
      - match: { protocol: icmp, icmp_type: echo-request }
        action: accept
      - match: { protocol: tcp, destination_port: 22, state: [new] }
        action: accept
  forward:
    policy: accept
    rules:
      - match: { in: wan, protocol: tcp, destination_port: [23, 2323] }
        action: drop
  output:
    policy: accept
"#;

fn ip(s: &str) -> u32 {
    u32::from(s.parse::<Ipv4Addr>().unwrap())
}

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
}

/// Counts of (raw prerouting, raw output, input, forward, output) rules.
fn counts(t: &Tables) -> [usize; 5] {
    [
        t.raw_prerouting.len(),
        t.raw_output.len(),
        t.filter[0].rules.len(),
        t.filter[1].rules.len(),
        t.filter[2].rules.len(),
    ]
}

/// What the example and transit-router.yaml share.
fn check_transit_tables(t: &Tables) {
    assert_eq!(t.interfaces.len(), 2);
    assert_eq!(t.port_by_name("lan"), Some(PortId(1)));
    assert!(t.is_local(ip("198.18.0.1")));
    assert_eq!(
        t.route(ip("203.0.113.9")),
        Some(NextHop::Via {
            port: PortId(1),
            gateway: ip("198.19.0.2")
        })
    );
    assert_eq!(
        t.route(ip("8.8.8.8")),
        Some(NextHop::Via {
            port: PortId(0),
            gateway: ip("198.18.0.2")
        })
    );
    assert_eq!(
        t.route(ip("198.19.0.77")),
        Some(NextHop::Connected(PortId(1)))
    );
    assert_eq!(t.neighbours.len(), 1);
    assert_eq!(t.neighbours[0].port, PortId(1));
    assert_eq!(
        t.raw_prerouting[0].matches.destination,
        Some(AddrMatch::Local)
    );
    assert_eq!(t.raw_prerouting[0].action, RawAction::Accept);
    assert_eq!(t.raw_prerouting[1].action, RawAction::NoTrack);
    assert_eq!(t.filter[0].policy, FilterAction::Drop);
    let est = &t.filter[0].rules[0].matches;
    assert_eq!(
        est.state,
        Some(CtState::Established.bit() | CtState::Related.bit())
    );
    let ping = &t.filter[0].rules[1].matches;
    assert_eq!((ping.protocol, ping.icmp_type), (Some(1), Some(8)));
    let telnet = &t.filter[1].rules[0];
    assert_eq!(telnet.matches.in_ports, Some(PortId(0).bit()));
    assert_eq!(
        telnet.matches.destination_port.as_deref(),
        Some(&[(23, 23), (2323, 2323)][..])
    );
    assert_eq!(telnet.action, FilterAction::Drop);
    assert_eq!(t.conntrack.timeouts.tcp_established, 5 * 86_400);
    assert_eq!(t.conntrack.timeouts.tcp_syn_sent, 120);
}

#[test]
fn issue_example_loads_and_compiles() {
    let cfg = Config::from_str(EXAMPLE, Path::new("example.yaml")).unwrap();
    assert_eq!(cfg.dataplane.workers, vec![1]);
    assert_eq!(cfg.tun.as_deref(), Some("rtr0"));
    let t = Tables::build(cfg.tables_spec());
    assert_eq!(counts(&t), [2, 0, 3, 1, 0]);
    check_transit_tables(&t);
}

#[test]
fn transit_router_config_loads_and_compiles() {
    let cfg = Config::load(&configs_dir().join("transit-router.yaml")).unwrap();
    let t = Tables::build(cfg.tables_spec());
    // The input chain's fourth rule is ping's ICMPv6 twin.
    assert_eq!(counts(&t), [2, 0, 4, 1, 0]);
    check_transit_tables(&t);
    check_dual_stack(&t);
}

/// The shipped configs' IPv6 plan: wan 2001:db8::1/64 with the default
/// route via 2001:db8::2, lan 2001:db8:1::1/64 with 2001:db8:100::/48
/// behind 2001:db8:1::2, and ping6 accepted at the end of input.
fn check_dual_stack(t: &Tables) {
    use dataplane::tables6::NextHop6;
    let a6 = |s: &str| u128::from(s.parse::<std::net::Ipv6Addr>().unwrap());
    assert_eq!(
        t.v6.route(a6("2001:db8:ffff::1")).map(|(_, n)| n),
        Some(NextHop6::Via {
            port: PortId(0),
            gateway: a6("2001:db8::2")
        })
    );
    assert_eq!(
        t.v6.route(a6("2001:db8:100::1")).map(|(_, n)| n),
        Some(NextHop6::Via {
            port: PortId(1),
            gateway: a6("2001:db8:1::2")
        })
    );
    assert!(t.v6.is_local(a6("2001:db8:1::1")));
    assert_eq!(t.v6.neighbours.len(), 1);
    let ping6 = &t.filter[0].rules.last().unwrap().matches;
    assert_eq!((ping6.protocol, ping6.icmp_type), (Some(58), Some(128)));
}

#[test]
fn webserver_config_untracks_port_80_both_ways() {
    let cfg = Config::load(&configs_dir().join("webserver.yaml")).unwrap();
    let t = Tables::build(cfg.tables_spec());
    assert_eq!(counts(&t), [3, 1, 5, 1, 0]);
    check_dual_stack(&t);
    assert!(t.interfaces[1].ra.is_some(), "router advertisements on lan");
    let web_in = &t.raw_prerouting[0];
    assert_eq!(web_in.action, RawAction::NoTrack);
    assert_eq!(web_in.matches.destination, Some(AddrMatch::Local));
    assert_eq!(web_in.matches.protocol, Some(6));
    assert_eq!(
        web_in.matches.destination_port.as_deref(),
        Some(&[(80, 80)][..])
    );
    assert_eq!(t.raw_prerouting[1].action, RawAction::Accept);
    let web_out = &t.raw_output[0];
    assert_eq!(web_out.action, RawAction::NoTrack);
    assert_eq!(web_out.matches.source, Some(AddrMatch::Local));
    assert_eq!(
        web_out.matches.source_port.as_deref(),
        Some(&[(80, 80)][..])
    );
    let accept_web = &t.filter[0].rules[0].matches;
    assert_eq!(accept_web.state, Some(CtState::Untracked.bit()));
    assert_eq!(
        accept_web.destination_port.as_deref(),
        Some(&[(80, 80)][..])
    );
    assert_eq!(t.filter[0].policy, FilterAction::Drop);
}

#[test]
fn defaults_and_extensions() {
    let cfg = Config::from_str(BASE, Path::new("min.yaml")).unwrap();
    assert_eq!(cfg.dataplane.workers, vec![0]);
    assert_eq!(
        (cfg.dataplane.burst, cfg.dataplane.umem_frames),
        (64, 16384)
    );
    assert_eq!(cfg.dataplane.xdp_mode, XdpMode::Native);
    assert!(!cfg.dataplane.busy_poll);
    assert_eq!(
        cfg.control_socket,
        PathBuf::from("/run/afxdp-router/routerd.sock")
    );
    assert_eq!(cfg.tun.as_deref(), Some("rtr0"));
    assert_eq!(cfg.metrics_listen, None);
    assert_eq!(cfg.spec.conntrack, Default::default());
    assert_eq!(cfg.spec.interfaces[0].mtu, 1500);
    let t = Tables::build(cfg.tables_spec());
    assert_eq!(counts(&t), [0, 0, 0, 0, 0]);
    assert!(t.filter.iter().all(|c| c.policy == FilterAction::Accept));

    let t = with_base(
        "dataplane: { busy_poll: true, ip_options: drop, xdp_mode: generic }
host: { enabled: false }
metrics: { listen: \"127.0.0.1:9477\" }
icmp_errors: { rate: 5, burst: 7 }
conntrack:
  tcp_loose: false
  timeouts: { generic: 1h, udp: 45, tcp_close: 10s }
routes:
  - { to: 192.0.2.0/24, interface: lan }
  - { to: 198.51.100.0/24, blackhole: true }
  - { to: 203.0.113.0/24, unreachable: true }
",
    );
    let cfg = Config::from_str(&t, Path::new("ext.yaml")).unwrap();
    assert!(cfg.dataplane.busy_poll);
    assert_eq!(cfg.dataplane.xdp_mode, XdpMode::Generic);
    assert_eq!(cfg.tun, None);
    assert_eq!(cfg.metrics_listen, Some("127.0.0.1:9477".parse().unwrap()));
    assert_eq!(
        (cfg.spec.icmp_errors.rate, cfg.spec.icmp_errors.burst),
        (5, 7)
    );
    assert!(!cfg.spec.conntrack.tcp_loose);
    assert_eq!(cfg.spec.conntrack.timeouts.generic, 3600);
    assert_eq!(cfg.spec.conntrack.timeouts.udp, 45);
    let t = Tables::build(cfg.tables_spec());
    assert_eq!(t.ip_options, dataplane::tables::IpOptionsPolicy::Drop);
    assert_eq!(
        t.route(ip("192.0.2.1")),
        Some(NextHop::Connected(PortId(1)))
    );
    assert_eq!(t.route(ip("198.51.100.1")), Some(NextHop::Blackhole));
    assert_eq!(t.route(ip("203.0.113.1")), Some(NextHop::Unreachable));
    assert_eq!(t.route(ip("8.8.8.8")), None);
    let p: Ipv4Prefix = "192.0.2.0/24".parse().unwrap();
    assert!(cfg.summary().contains(&format!("{p} dev lan")));
}

/// A long secret-looking run of text: no error may show more than 40
/// characters of it.
const LONG: &str =
    "s3cr3t-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789";

/// The longest piece of `LONG` that `shown` contains.
fn longest_piece(shown: &str) -> usize {
    let chars: Vec<char> = LONG.chars().collect();
    (1..=chars.len())
        .rev()
        .find(|&n| {
            (0..=chars.len() - n)
                .any(|i| shown.contains(&chars[i..i + n].iter().collect::<String>()))
        })
        .unwrap_or(0)
}

#[test]
fn errors_on_long_lines_quote_only_a_cut_piece() {
    let cases = [
        // Unknown keys (the key is the text), at the top and nested.
        format!("{LONG}: 1\n{BASE}"),
        with_base(&format!("dataplane:\n  {LONG}: 1\n")),
        // Values of every kind of check.
        with_base(&format!("dataplane:\n  burst: {LONG}\n")),
        with_base(&format!("dataplane:\n  xdp_mode: {LONG}\n")),
        with_base(&format!("dataplane:\n  busy_poll: {LONG}\n")),
        with_base(&format!("routes:\n  - {{ to: {LONG}, via: 198.18.0.2 }}\n")),
        with_base(&format!("neighbors:\n  - {{ address: 198.18.0.2, mac: {LONG} }}\n")),
        with_base(&format!("conntrack:\n  timeouts: {{ udp: {LONG} }}\n")),
        with_base(&format!(
            "filter:\n  input:\n    rules:\n      - {{ match: {{ in: {LONG} }}, action: accept }}\n"
        )),
        with_base(&format!(
            "filter:\n  input:\n    rules:\n      - {{ match: {{ protocol: {LONG} }}, action: accept }}\n"
        )),
        with_base(&format!("host:\n  tun: {LONG}\n")),
        with_base(&format!("control:\n  socket: {LONG}\n")),
        // A scalar where a mapping belongs.
        with_base(&format!("metrics: {LONG}\n")),
        // A duplicate key.
        format!("{BASE}{LONG}: 1\n{LONG}: 2\n"),
    ];
    for text in &cases {
        let shown = error_of(text).to_string();
        let piece = longest_piece(&shown);
        assert!(piece > 0, "the error names the value: {shown}");
        assert!(piece < 40, "{piece} characters of the file in: {shown}");
        assert!(shown.contains('…'), "the cut is marked: {shown}");
    }
    // Short values are quoted whole, unmarked.
    let shown = error_of(&with_base("dataplane:\n  xdp_mode: nativ\n")).to_string();
    assert!(shown.contains("\"nativ\" is not allowed here"), "{shown}");
    assert!(!shown.contains('…'), "{shown}");
}

#[test]
fn kernel_routes_errors_name_the_line_and_the_field() {
    expect(
        &with_base("kernel_routes:\n  table: 255\n"),
        9,
        10,
        "kernel_routes.table",
        "the kernel's local table",
    );
    expect(
        &with_base("kernel_routes:\n  table: mian\n"),
        9,
        10,
        "kernel_routes.table",
        "not a number",
    );
    expect(
        &with_base("kernel_routes:\n  protocols: [bgp, brid]\n"),
        9,
        20,
        "kernel_routes.protocols[1]",
        "\"brid\" is not a route protocol (did you mean bird?)",
    );
    expect(
        &with_base("kernel_routes:\n  protocols: [bgp, 186]\n"),
        9,
        20,
        "kernel_routes.protocols[1]",
        "listed twice",
    );
    expect(
        &with_base("kernel_routes:\n  protocols: [250]\n"),
        9,
        15,
        "kernel_routes.protocols[0]",
        "routerd's own host-path routes",
    );
    expect(
        &with_base("kernel_routes:\n  tabel: main\n"),
        9,
        3,
        "kernel_routes.tabel",
        "unknown key, did you mean table?",
    );
}

#[test]
fn kernel_routes_and_via_lists_load() {
    let c = Config::from_str(
        &with_base(
            "kernel_routes:\n  table: 100\n  protocols: [bird, 186, zebra]\n\
             routes:\n  - to: 203.0.113.0/24\n    via: [198.19.0.2, 198.18.0.2]\n",
        ),
        Path::new("ok.yaml"),
    )
    .expect("valid");
    let k = c.kernel_routes.as_ref().unwrap();
    assert_eq!(
        (k.table, k.protocols.clone()),
        (100, Some(vec![12, 186, 11]))
    );
    assert!(k.takes(12) && !k.takes(4) && !k.takes(250));
    let r = &c.spec.routes[0];
    let lan = NextHop::Via {
        port: PortId(1),
        gateway: u32::from(Ipv4Addr::new(198, 19, 0, 2)),
    };
    let wan = NextHop::Via {
        port: PortId(0),
        gateway: u32::from(Ipv4Addr::new(198, 18, 0, 2)),
    };
    assert_eq!(r.paths().collect::<Vec<_>>(), [lan, wan]);
    let t = Tables::build(c.tables_spec());
    let a = u32::from(Ipv4Addr::new(203, 0, 113, 9));
    let seen: std::collections::HashSet<u32> = (0..64)
        .map(|h| t.route_flow(a, h << 26).unwrap().0)
        .collect();
    assert_eq!(seen.len(), 2);
    let defaults =
        Config::from_str(&with_base("kernel_routes: {}\n"), Path::new("ok.yaml")).expect("valid");
    let k = defaults.kernel_routes.unwrap();
    assert!(k.takes(186) && !k.takes(2), "all but kernel");
    assert_eq!((k.table, k.protocols), (254, None));
    expect(
        &with_base("routes:\n  - to: 203.0.113.0/24\n    via: [198.19.0.2, 192.0.2.1]\n"),
        10,
        23,
        "routes[0].via[1]",
        "192.0.2.1 is on no connected network",
    );
    expect(
        &with_base("routes:\n  - to: 203.0.113.0/24\n    via: [198.19.0.2, 198.19.0.2]\n"),
        10,
        23,
        "routes[0].via[1]",
        "listed twice",
    );
    expect(
        &with_base("routes:\n  - to: 203.0.113.0/24\n    via: []\n"),
        10,
        10,
        "routes[0].via",
        "at least one gateway",
    );
}

/// Seven lines: two dual-stack interfaces, wan 198.18.0.1/24 and
/// 2001:db8::1/64, lan 198.19.0.1/24 and 2001:db8:1::1/64.
const BASE6: &str = "\
interfaces:
  - name: wan
    device: r0
    addresses: [198.18.0.1/24, 2001:db8::1/64]
  - name: lan
    device: r1
    addresses: [198.19.0.1/24, 2001:db8:1::1/64]
";

fn with_base6(rest: &str) -> String {
    format!("{BASE6}{rest}")
}

#[test]
fn ipv6_interface_addresses_that_are_not_a_router_s_own() {
    expect(
        &BASE6.replacen("2001:db8::1/64", "fe80::1/64", 1),
        4,
        32,
        "interfaces[0].addresses[1]",
        "link-local: each port's link-local address comes from its MAC",
    );
    expect(
        &BASE6.replacen("2001:db8::1/64", "ff02::1/64", 1),
        4,
        32,
        "interfaces[0].addresses[1]",
        "is a multicast address, expected a global or unique local address",
    );
    expect(
        &BASE6.replacen("2001:db8::1/64", "::/64", 1),
        4,
        32,
        "interfaces[0].addresses[1]",
        "is the unspecified address",
    );
    expect(
        &BASE6.replacen("2001:db8::1/64", "::1/128", 1),
        4,
        32,
        "interfaces[0].addresses[1]",
        "is the loopback address",
    );
    expect(
        &BASE6.replacen("2001:db8::1/64", "::ffff:198.18.0.9/128", 1),
        4,
        32,
        "interfaces[0].addresses[1]",
        "is an IPv4-mapped address",
    );
    expect(
        &BASE6.replacen("2001:db8::1/64", "2001:db8::/64", 1),
        4,
        32,
        "interfaces[0].addresses[1]",
        "is the Subnet-Router anycast address of 2001:db8::/64",
    );
    expect(
        &BASE6.replacen("2001:db8::1/64", "2001:db8::1/129", 1),
        4,
        32,
        "interfaces[0].addresses[1]",
        "\"2001:db8::1/129\" is not an interface address, expected a prefix length from 0 to 128",
    );
}

#[test]
fn ipv6_addresses_twice_or_overlapping_on_two_interfaces() {
    expect(
        &BASE6.replacen("2001:db8:1::1/64", "2001:db8::1/64", 1),
        7,
        32,
        "interfaces[1].addresses[1]",
        "address 2001:db8::1 is already on interface wan (line 4), expected each address once",
    );
    expect(
        &BASE6.replacen("2001:db8:1::1/64", "2001:db8::5/48", 1),
        7,
        32,
        "interfaces[1].addresses[1]",
        "on-link prefix 2001:db8::/48 overlaps 2001:db8::/64 of interface wan (line 4)",
    );
}

#[test]
fn ipv6_route_gateways() {
    expect(
        &with_base6("routes:\n  - to: 2001:db8:5::/48\n    via: fe80::5\n"),
        10,
        10,
        "routes[0].via",
        "a link-local gateway needs `interface`",
    );
    expect(
        &with_base6("routes:\n  - to: 2001:db8:5::/48\n    via: 2001:db8:9::5\n"),
        10,
        10,
        "routes[0].via",
        "2001:db8:9::5 is on no on-link prefix, expected a gateway on an on-link prefix (on-link: wan 2001:db8::/64, lan 2001:db8:1::/64)",
    );
    expect(
        &with_base6("routes:\n  - to: 2001:db8:5::/48\n    via: 2001:db8::1\n"),
        10,
        10,
        "routes[0].via",
        "2001:db8::1 is the router's own address on wan",
    );
    expect(
        &with_base6("routes:\n  - to: 2001:db8:5::/48\n    via: 2001:db8::2\n    interface: lan\n"),
        11,
        16,
        "routes[0].interface",
        "2001:db8::2 is on-link on interface wan, not on lan",
    );
    expect(
        &with_base6("routes:\n  - to: 2001:db8:5::/48\n    via: ff02::2\n    interface: lan\n"),
        10,
        10,
        "routes[0].via",
        "ff02::2 is not a unicast address",
    );
    expect(
        &with_base6("routes:\n  - to: 2001:db8:5::/48\n    via: [2001:db8::2, 2001:db8::3]\n"),
        10,
        24,
        "routes[0].via[1]",
        "equal-cost paths (several gateways) are not supported for IPv6 yet",
    );
}

#[test]
fn ipv6_routes_of_one_family_and_one_target() {
    expect(
        &with_base6("routes:\n  - to: 203.0.113.0/24\n    via: 2001:db8::2\n"),
        10,
        10,
        "routes[0].via",
        "\"2001:db8::2\" is an IPv6 gateway for the IPv4 prefix 203.0.113.0/24, expected an IPv4 gateway",
    );
    expect(
        &with_base6("routes:\n  - to: 2001:db8:5::/48\n    via: 198.18.0.2\n"),
        10,
        10,
        "routes[0].via",
        "\"198.18.0.2\" is an IPv4 gateway for the IPv6 prefix 2001:db8:5::/48, expected an IPv6 gateway",
    );
    expect(
        &with_base6("routes:\n  - { to: default, via: 2001:db8::2 }\n  - { to: \"::/0\", blackhole: true }\n"),
        10,
        11,
        "routes[1].to",
        "duplicate route to ::/0 (first at line 9)",
    );
    expect(
        &with_base6("routes:\n  - { to: 2001:db8:1::/64, via: 2001:db8::2 }\n"),
        9,
        11,
        "routes[0].to",
        "2001:db8:1::/64 is the on-link prefix of interface lan",
    );
    expect(
        &with_base6("routes:\n  - { to: 2001:db8:5::/48, via: 2001:db8::2, blackhole: true }\n"),
        9,
        57,
        "routes[0].blackhole",
        "route to 2001:db8:5::/48 has 2 targets",
    );
    expect(
        &with_base6("routes:\n  - { to: 2001:db8:4::/47 }\n"),
        9,
        7,
        "routes[0]",
        "route to 2001:db8:4::/47 has no target",
    );
}

#[test]
fn ipv6_neighbours() {
    expect(
        &with_base6("neighbors:\n  - { address: fe80::2, mac: \"02:00:00:00:00:02\" }\n"),
        9,
        16,
        "neighbors[0].address",
        "a link-local neighbour needs `interface`",
    );
    expect(
        &with_base6("neighbors:\n  - { address: 2001:db8:7::2, mac: \"02:00:00:00:00:02\" }\n"),
        9,
        16,
        "neighbors[0].address",
        "2001:db8:7::2 is on no on-link prefix, expected a neighbour on an on-link prefix",
    );
    expect(
        &with_base6("neighbors:\n  - { address: fe80::2, interface: wan, mac: \"02:00:00:00:00:02\" }\n  - { address: fe80::2, interface: wan, mac: \"02:00:00:00:00:03\" }\n"),
        10,
        16,
        "neighbors[1].address",
        "duplicate neighbour fe80::2 (first at line 9)",
    );
    expect(
        &with_base6(
            "neighbors:\n  - { address: 198.18.0.2, interface: wan, mac: \"02:00:00:00:00:02\" }\n",
        ),
        9,
        39,
        "neighbors[0].interface",
        "interface is for link-local IPv6 neighbours",
    );
    expect(
        &with_base6("neighbors:\n  - { address: 2001:db8::2, mac: \"ff:ff:ff:ff:ff:ff\" }\n"),
        9,
        34,
        "neighbors[0].mac",
        "a zero, broadcast or multicast MAC",
    );
}

#[test]
fn router_advertisement_settings_out_of_range() {
    expect(
        &BASE6.replacen(
            "2001:db8:1::1/64]\n",
            "2001:db8:1::1/64]\n    router_advertisements: { interval: 2 }\n",
            1,
        ),
        8,
        40,
        "interfaces[1].router_advertisements.interval",
        "2 is out of range, expected a number from 4 to 1800",
    );
    expect(
        &BASE6.replacen(
            "2001:db8:1::1/64]\n",
            "2001:db8:1::1/64]\n    router_advertisements: { router_lifetime: 100 }\n",
            1,
        ),
        8,
        47,
        "interfaces[1].router_advertisements.router_lifetime",
        "a router lifetime of 100 s is shorter than the interval (200 s)",
    );
    expect(
        &BASE6.replacen(
            "2001:db8:1::1/64]\n",
            "2001:db8:1::1/64]\n    router_advertisements: { router_lifetime: 9001 }\n",
            1,
        ),
        8,
        47,
        "interfaces[1].router_advertisements.router_lifetime",
        "expected a number from 0 to 9000",
    );
    expect(
        &BASE6.replacen(
            "2001:db8:1::1/64]\n",
            "2001:db8:1::1/64]\n    router_advertisements: { intervall: 30 }\n",
            1,
        ),
        8,
        30,
        "interfaces[1].router_advertisements.intervall",
        "unknown key, did you mean interval?",
    );
    expect(
        &BASE6.replacen(
            "198.19.0.1/24, 2001:db8:1::1/64]\n",
            "198.19.0.1/24]\n    router_advertisements: true\n",
            1,
        ),
        8,
        28,
        "interfaces[1].router_advertisements",
        "this interface has no IPv6 address",
    );
}

#[test]
fn router_advertisement_prefixes() {
    expect(
        &BASE6.replacen(
            "2001:db8:1::1/64]\n",
            "2001:db8:1::1/64]\n    router_advertisements: { prefixes: [2001:db8::/64] }\n",
            1,
        ),
        8,
        41,
        "interfaces[1].router_advertisements.prefixes[0]",
        "2001:db8::/64 is not an on-link prefix of this interface, expected one of 2001:db8:1::/64",
    );
    expect(
        &BASE6.replacen("2001:db8:1::1/64]\n", "2001:db8:1::1/64, 2001:db8:2::1/48]\n    router_advertisements: { prefixes: [2001:db8:2::/48] }\n", 1),
        8,
        41,
        "interfaces[1].router_advertisements.prefixes[0]",
        "2001:db8:2::/48 is not a /64: hosts cannot form addresses in it (SLAAC needs 64-bit interface ids), expected a /64 or autonomous: false",
    );
    expect(
        &BASE6.replacen("2001:db8:1::1/64]\n", "2001:db8:1::1/64]\n    router_advertisements: { prefixes: [2001:db8:1::/64, 2001:db8:1::/64] }\n", 1),
        8,
        58,
        "interfaces[1].router_advertisements.prefixes[1]",
        "prefix 2001:db8:1::/64 is listed twice",
    );
    expect(
        &BASE6.replacen("2001:db8:1::1/64]\n", "2001:db8:1::1/64]\n    router_advertisements:\n      prefixes:\n        - { prefix: 2001:db8:1::/64, valid_lifetime: 600, preferred_lifetime: 3600 }\n", 1),
        10,
        79,
        "interfaces[1].router_advertisements.prefixes[0].preferred_lifetime",
        "preferred lifetime 3600 s is longer than the valid lifetime 600 s",
    );
    expect(
        &BASE6.replacen("2001:db8:1::1/64]\n", "2001:db8:1::1/64]\n    router_advertisements:\n      prefixes:\n        - { prefix: 2001:db8:1::/64, valid_lifetime: forever }\n", 1),
        10,
        54,
        "interfaces[1].router_advertisements.prefixes[0].valid_lifetime",
        "\"forever\" is not a number",
    );
}

#[test]
fn inet_rules_that_no_family_can_match() {
    expect(
        &with_base6("filter:\n  input:\n    rules:\n      - match: { source: 2001:db8::/32, family: ipv4 }\n        action: accept\n"),
        11,
        49,
        "filter.input.rules[0].match.family",
        "family: ipv4 never matches: source has only IPv6 prefixes",
    );
    expect(
        &with_base6("filter:\n  input:\n    rules:\n      - match: { source: 198.18.0.0/24, destination: 2001:db8::/32 }\n        action: accept\n"),
        11,
        54,
        "filter.input.rules[0].match.destination",
        "destination and source have prefixes of different families only",
    );
    expect(
        &with_base6("filter:\n  input:\n    rules:\n      - match: { family: ipv4, icmpv6_type: echo-request }\n        action: accept\n"),
        11,
        45,
        "filter.input.rules[0].match.icmpv6_type",
        "protocol icmpv6 is IPv6 only and this rule matches IPv4 packets only (family: ipv4)",
    );
    expect(
        &with_base6("filter:\n  input:\n    rules:\n      - match: { destination: 198.18.0.0/24, protocol: icmpv6 }\n        action: accept\n"),
        11,
        56,
        "filter.input.rules[0].match.protocol",
        "protocol icmpv6 is IPv6 only and this rule matches IPv4 packets only (IPv4 prefixes only)",
    );
    expect(
        &with_base6("filter:\n  input:\n    rules:\n      - match: { destination: 2001:db8::/32, protocol: icmp }\n        action: accept\n"),
        11,
        56,
        "filter.input.rules[0].match.protocol",
        "protocol icmp is IPv4 only and this rule matches IPv6 packets only (IPv6 prefixes only), expected protocol: icmpv6",
    );
}

#[test]
fn icmpv6_type_and_its_protocol() {
    expect(
        &with_base6("filter:\n  input:\n    rules:\n      - match: { protocol: tcp, icmpv6_type: echo-request }\n        action: accept\n"),
        11,
        46,
        "filter.input.rules[0].match.icmpv6_type",
        "icmpv6_type needs protocol: icmpv6 (or no protocol), not protocol: tcp",
    );
    expect(
        &with_base6("filter:\n  input:\n    rules:\n      - match: { protocol: icmpv6, icmp_type: echo-request }\n        action: accept\n"),
        11,
        47,
        "filter.input.rules[0].match.icmp_type",
        "icmp_type is IPv4's ICMP, and this rule has protocol: icmpv6, expected icmpv6_type",
    );
    expect(
        &with_base6("filter:\n  input:\n    rules:\n      - match: { icmpv6_type: echo-requets }\n        action: accept\n"),
        11,
        31,
        "filter.input.rules[0].match.icmpv6_type",
        "\"echo-requets\" is not an ICMPv6 type (did you mean echo-request?)",
    );
    expect(
        &with_base6("filter:\n  input:\n    rules:\n      - match: { icmpv6_type: 1, icmpv6_code: no-rout }\n        action: accept\n"),
        11,
        47,
        "filter.input.rules[0].match.icmpv6_code",
        "\"no-rout\" is not an ICMPv6 code (did you mean no-route?)",
    );
    expect(
        &with_base6("filter:\n  input:\n    rules:\n      - match: { family: ipv5 }\n        action: accept\n"),
        11,
        26,
        "filter.input.rules[0].match.family",
        "\"ipv5\" is not allowed here (did you mean ipv4?), expected ipv4 or ipv6",
    );
}
