//! `routerctl stats`, `conntrack` and `trace` with IPv6 traffic, against a
//! fake dual-stack routerd (a real pipeline fed known packets).

mod ctl_support;

use std::sync::Arc;

use control::ctl::server::serve;
use ctl_support::*;
use serde_json::{json, Value};

fn json(out: &std::process::Output) -> Value {
    let s = ok_stdout(out);
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

const SSH6_SYN: &str = "in=wan tcp [2001:db8::2]:40000 > [2001:db8::1]:22 flags=S";
const TELNET6_LOCAL: &str = "in=wan tcp [2001:db8::2]:40001 > [2001:db8::1]:23 flags=S";

/// One IPv4 ssh SYN and two IPv6 SYNs to the router, one accepted and one
/// dropped by the input policy.
fn fed() -> Arc<Fake> {
    let fake = Fake::dual_stack();
    for p in [SSH_SYN, SSH6_SYN, TELNET6_LOCAL] {
        fake.feed(p);
    }
    fake
}

#[test]
fn stats_split_packets_by_family_in_json_and_text() {
    let (sock, dir) = temp_socket("stats-v6");
    let srv = serve(&sock, fed()).expect("serve");
    let j = json(&routerctl(&sock, &["stats", "--json"]));
    assert_eq!(
        j["ipv6"],
        json!({ "rx": 2, "forwarded": 0, "to_host": 1, "dropped": 1 }),
        "{j:#}"
    );
    assert_eq!(
        j["ipv4"],
        json!({ "rx": 1, "forwarded": 0, "to_host": 1, "dropped": 0 }),
        "{j:#}"
    );
    for k in [
        "solicits_received",
        "adverts_sent",
        "adverts_received",
        "solicits_sent",
        "resolution_failures",
        "ra_sent",
        "rs_received",
    ] {
        assert_eq!(j["ndp"][k], 0, "ndp.{k}: {j:#}");
    }
    // The IPv6 drop reasons are listed with the others.
    let drops = j["drops"].as_object().unwrap();
    assert_eq!(drops.len(), dataplane::drop::DropReason::COUNT);
    for r in ["ip6_hop_limit_exceeded", "icmp6_bad_checksum"] {
        assert_eq!(drops[r], 0, "{r}");
    }
    assert_eq!(drops["filter_policy"], 1);

    let out = ok_stdout(&routerctl(&sock, &["stats"]));
    let block: Vec<Vec<&str>> = out
        .split("By family")
        .nth(1)
        .expect("a By family block")
        .lines()
        .skip(2)
        .take(2)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        block,
        [["ipv4", "1", "0", "1", "0"], ["ipv6", "2", "0", "1", "1"]],
        "{out}"
    );
    assert!(out.contains("(ipv4: the total less ipv6"), "{out}");
    assert!(out.contains("\nNeighbour discovery\n"), "{out}");
    srv.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn conntrack_lists_ipv6_flows_with_their_addresses() {
    let (sock, dir) = temp_socket("ct-v6");
    let srv = serve(&sock, fed()).expect("serve");
    let j = json(&routerctl(&sock, &["conntrack", "list", "--json"]));
    let flows = j.as_array().unwrap();
    assert_eq!(flows.len(), 2, "{j:#}");
    let f6 = flows
        .iter()
        .find(|f| f["src"] == "2001:db8::2")
        .unwrap_or_else(|| panic!("an IPv6 flow: {j:#}"));
    assert_eq!(
        (&f6["dst"], &f6["dport"], &f6["protocol"]),
        (&json!("2001:db8::1"), &json!(22), &json!("tcp"))
    );
    assert_eq!(
        (
            &f6["reply"]["src"],
            &f6["reply"]["dst"],
            &f6["reply"]["sport"]
        ),
        (&json!("2001:db8::1"), &json!("2001:db8::2"), &json!(22))
    );
    let text = ok_stdout(&routerctl(&sock, &["conntrack"]));
    assert!(
        text.contains(
            "src=2001:db8::2 dst=2001:db8::1 sport=40000 dport=22 packets=1 bytes=60 [UNREPLIED] \
             src=2001:db8::1 dst=2001:db8::2 sport=22 dport=40000"
        ),
        "{text}"
    );
    assert!(
        text.contains("src=198.18.0.2 dst=198.18.0.1 sport=40000 dport=22"),
        "{text}"
    );
    srv.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn trace_shows_ipv6_packets_and_matches_ipv6_prefixes() {
    let (sock, dir) = temp_socket("trace-v6");
    let fake = Fake::dual_stack();
    let _srv = serve(&sock, fake.clone()).expect("serve");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_routerctl"))
        .arg("--socket")
        .arg(&sock)
        .args([
            "trace",
            "--count",
            "2",
            "dst",
            "2001:db8::/64",
            "dport",
            "22",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let feeder = std::thread::spawn(move || {
        let t0 = std::time::Instant::now();
        let mut i = 0u16;
        while !stop2.load(std::sync::atomic::Ordering::SeqCst) && t0.elapsed().as_secs() < 10 {
            fake.feed(SSH_SYN);
            fake.feed(&format!(
                "in=wan tcp [2001:db8::2]:{} > [2001:db8::1]:22 flags=S",
                43000 + i
            ));
            i += 1;
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    });
    let out = child.wait_with_output().unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    feeder.join().unwrap();
    let s = ok_stdout(&out);
    let blocks: Vec<&str> = s.split("\n\n").filter(|b| !b.trim().is_empty()).collect();
    assert_eq!(blocks.len(), 2, "{s}");
    for b in blocks {
        let head = b.lines().next().unwrap();
        assert!(
            head.contains(": in=wan tcp [2001:db8::2]:43")
                && head.ends_with(" > [2001:db8::1]:22 flags=S hl=64"),
            "only IPv6 packets match an IPv6 prefix: {s}"
        );
        let words = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
        let lines: Vec<String> = b.lines().skip(1).map(words).collect();
        assert!(
            lines.contains(&"route 2001:db8::1: local".to_string()),
            "{s}"
        );
        assert!(lines.contains(&"conntrack new".to_string()), "{s}");
        assert!(
            lines.contains(&"filter/input rule 3 (ssh): accept".to_string()),
            "{s}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
