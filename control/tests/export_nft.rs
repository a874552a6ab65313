//! `routerctl export nft`: the config's raw and filter chains as an
//! nftables ruleset, one nft rule (with a counter) per config rule.

use std::path::Path;
use std::process::Command;

use control::config::Config;
use control::nft::{ruleset, ruleset_text, Action};

fn routerctl_export(config: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_routerctl"))
        .args(["export", "nft", "--config"])
        .arg(config)
        .output()
        .expect("routerctl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(|l| l.trim().to_string()).collect()
}

#[test]
fn the_transit_router_exports_as_an_inet_table_with_raw_notrack_and_stateful_input() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/transit-router.yaml");
    let text = routerctl_export(&path);
    let l = lines(&text);
    for want in [
        "table inet routerd {",
        "chain raw_prerouting {",
        "type filter hook prerouting priority raw; policy accept;",
        "fib daddr type local counter accept comment \"host traffic is tracked\"",
        "counter notrack accept comment \"transit is untracked\"",
        "type filter hook output priority raw; policy accept;",
        "type filter hook input priority filter; policy drop;",
        "ct state { established, related } counter accept comment \"replies to the router's own connections\"",
        "meta l4proto icmp icmp type 8 counter accept comment \"ping\"",
        "meta l4proto tcp th dport 22 ct state new counter accept comment \"ssh\"",
        "meta l4proto ipv6-icmp icmpv6 type 128 counter accept comment \"ping6\"",
        "type filter hook forward priority filter; policy accept;",
        "iifname \"r0\" meta l4proto tcp th dport { 23, 2323 } counter drop comment \"no telnet from outside\"",
        "type filter hook output priority filter; policy accept;",
    ] {
        assert!(l.iter().any(|x| x == want), "missing `{want}` in:\n{text}");
    }
    // Every rule line counts.
    let rules: Vec<_> = l
        .iter()
        .filter(|x| x.contains("accept") || x.contains("drop") || x.contains("reject"))
        .filter(|x| !x.starts_with("type ") && !x.starts_with('#'))
        .collect();
    assert_eq!(rules.len(), 7);
    assert!(rules.iter().all(|r| r.contains("counter")));
}

const RULES: &str = "
interfaces:
  - name: wan
    device: r0
    addresses: [198.18.0.1/24]
  - name: lan
    device: r1
    addresses: [198.19.0.1/24]
raw:
  prerouting:
    - match: { in: [wan, lan], source: [203.0.113.0/24, 198.51.100.7/32] }
      action: notrack
  output:
    - match: { source: local, protocol: udp, source_port: 1000-2000 }
      action: notrack
filter:
  input:
    policy: drop
    rules:
      - match: { state: [invalid, untracked] }
        action: drop
      - match: { in: wan, source: 198.18.0.0/16 }
        action: reject
      - match: { protocol: icmp, icmp_type: destination-unreachable, icmp_code: 4 }
        action: accept
  forward:
    policy: accept
    rules:
      - match: { in: lan, out: wan, protocol: tcp }
        action: reject
      - match: { protocol: udp }
        action: reject
  output:
    policy: accept
";

#[test]
fn sets_ranges_states_and_reject_answers_follow_the_config() {
    let cfg = Config::from_str(RULES, Path::new("rules.yaml")).unwrap();
    let rs = ruleset(&cfg.tables_spec());
    let text = ruleset_text(&rs, "rules.yaml");
    let l = lines(&text);
    for want in [
        "iifname { \"r0\", \"r1\" } ip saddr { 203.0.113.0/24, 198.51.100.7/32 } counter notrack accept",
        "fib saddr type local meta l4proto udp th sport 1000-2000 counter notrack accept",
        "ct state { invalid, untracked } counter drop",
        // A reject with no protocol: TCP gets a reset, the rest port
        // unreachable, as routerd answers.
        "meta l4proto tcp iifname \"r0\" ip saddr 198.18.0.0/16 counter reject with tcp reset",
        "iifname \"r0\" ip saddr 198.18.0.0/16 counter reject with icmpx type port-unreachable",
        "meta l4proto icmp icmp type 3 icmp code 4 counter accept",
        "iifname \"r1\" oifname \"r0\" meta l4proto tcp counter reject with tcp reset",
        "meta l4proto udp counter reject with icmpx type port-unreachable",
    ] {
        assert!(l.iter().any(|x| x == want), "missing `{want}` in:\n{text}");
    }
    // The two halves of the split reject are config rule 1 of input.
    let input = rs.chains.iter().find(|c| c.name == "input").unwrap();
    let idx: Vec<(usize, Action)> = input.rules.iter().map(|r| (r.index, r.action)).collect();
    assert_eq!(
        idx,
        [
            (0, Action::Drop),
            (1, Action::RejectTcp),
            (1, Action::RejectIcmp),
            (2, Action::Accept)
        ]
    );
}
