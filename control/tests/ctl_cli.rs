//! `routerctl stats`, `conntrack`, `neighbours`, `reload` and `trace` against a control
//! socket served by a fake routerd (a real pipeline fed known packets), as
//! an operator runs them; and the one-line error when no routerd answers.

mod ctl_support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::sync::Arc;

use control::ctl::server::serve;
use ctl_support::*;
use serde_json::Value;

fn json(out: &std::process::Output) -> Value {
    let s = ok_stdout(out);
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

#[test]
fn stats_json_counts_the_packets_sent() {
    let (sock, dir) = temp_socket("stats-json");
    let fake = Fake::transit();
    for p in [SSH_SYN, TRANSIT_UDP, TELNET] {
        fake.feed(p);
    }
    let srv = serve(&sock, fake).expect("serve");
    let j = json(&routerctl(&sock, &["stats", "--json"]));
    for key in ["interfaces", "drops", "conntrack", "rules"] {
        assert!(j.get(key).is_some(), "top-level key {key}: {j}");
    }
    let wan = &j["interfaces"]["wan"];
    assert_eq!(wan["rx_packets"], 3, "{wan}");
    // Frames without padding: two TCP SYNs of 54 bytes, a UDP packet of 42.
    assert_eq!(wan["rx_bytes"], 54 + 42 + 54, "{wan}");
    assert_eq!(wan["tx_packets"], 0);
    assert_eq!(
        j["interfaces"]["lan"]["tx_packets"], 1,
        "transit UDP out of lan"
    );
    assert_eq!(j["interfaces"]["host"]["tx_packets"], 0);
    // Every reason is listed, zeros included.
    let drops = j["drops"].as_object().unwrap();
    assert_eq!(drops.len(), dataplane::drop::DropReason::COUNT);
    assert_eq!(drops["filter_denied"], 1);
    assert_eq!(drops["ip_bad_checksum"], 0);
    assert_eq!(j["conntrack"]["entries"], 1);
    assert_eq!(j["conntrack"]["tracked_packets"], 1);
    assert_eq!(j["conntrack"]["untracked_packets"], 2);
    assert_eq!(j["conntrack"]["by_state"]["SYN_SENT"], 1);
    let rules = j["rules"].as_array().unwrap();
    let telnet = rules
        .iter()
        .find(|r| r["chain"] == "forward" && r["position"] == 1)
        .expect("forward rule 1");
    assert_eq!(telnet["comment"], "no telnet from outside");
    assert_eq!(telnet["packets"], 1);
    let transit = rules
        .iter()
        .find(|r| r["table"] == "raw" && r["position"] == 2)
        .expect("raw rule 2");
    assert_eq!(
        (transit["action"].as_str(), transit["packets"].as_u64()),
        (Some("notrack"), Some(2))
    );
    assert_eq!(j["afxdp"]["wan"]["fill_ring_empty"], 7);
    assert_eq!(j["afxdp"]["lan"]["tx_ring_full"], 3);
    assert_eq!(j["workers"][0]["busy_share"], 0.25);
    srv.shutdown();
    assert!(!sock.exists(), "socket removed on shutdown");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn stats_text_shows_nonzero_drops_rules_and_rings() {
    let (sock, dir) = temp_socket("stats-text");
    let fake = Fake::transit();
    for p in [SSH_SYN, TRANSIT_UDP, TELNET] {
        fake.feed(p);
    }
    let _srv = serve(&sock, fake.clone()).expect("serve");
    let out = ok_stdout(&routerctl(&sock, &["stats"]));
    let line = |needle: &str| -> Vec<String> {
        out.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle}:\n{out}"))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert_eq!(line("filter_denied"), ["1", "filter_denied"]);
    assert!(
        !out.contains("ip_bad_checksum"),
        "zero drops are hidden:\n{out}"
    );
    let wan = line("wan  ");
    assert_eq!(&wan[..3], ["wan", "r0", "3"], "{out}");
    let telnet = line("no telnet from outside");
    assert_eq!(&telnet[..5], ["filter", "forward", "1", "drop", "1"]);
    assert_eq!(line("untracked packets"), ["untracked", "packets", "2"]);
    assert_eq!(line("tracked packets")[..3], ["tracked", "packets", "1"]);
    assert!(out.contains("AF_XDP rings"), "{out}");
    assert!(out.contains("25.0%"), "busy share:\n{out}");

    // Reset, then every packet counter is zero.
    ok_stdout(&routerctl(&sock, &["stats", "--reset"]));
    let j = json(&routerctl(&sock, &["stats", "--json"]));
    assert_eq!(j["interfaces"]["wan"]["rx_packets"], 0);
    assert_eq!(j["drops"]["filter_denied"], 0);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn conntrack_lists_like_conntrack_l_and_flushes() {
    let (sock, dir) = temp_socket("ct");
    let fake = Fake::transit();
    for p in [SSH_SYN, TRANSIT_UDP] {
        fake.feed(p);
    }
    // The router's SYN-ACK answer from the host path: the flow sees a reply.
    fake.feed("in=host tcp 198.18.0.1:22 > 198.18.0.2:40000 flags=SA");
    let _srv = serve(&sock, fake.clone()).expect("serve");
    let j = json(&routerctl(&sock, &["conntrack", "list", "--json"]));
    let flows = j.as_array().unwrap();
    assert_eq!(flows.len(), 1, "transit is untracked: {j}");
    let f = &flows[0];
    assert_eq!(f["protocol"], "tcp");
    assert_eq!(f["src"], "198.18.0.2");
    assert_eq!(f["dst"], "198.18.0.1");
    assert_eq!(f["sport"], 40000);
    assert_eq!(f["dport"], 22);
    assert_eq!(f["state"], "SYN_RECV");
    assert_eq!(f["reply"]["src"], "198.18.0.1");
    assert_eq!(f["reply"]["dport"], 40000);
    assert!(f["timeout"].as_u64().unwrap() > 0);
    assert_eq!(
        (f["orig_packets"].as_u64(), f["reply_packets"].as_u64()),
        (Some(1), Some(1))
    );

    let out = routerctl(&sock, &["conntrack"]);
    let s = ok_stdout(&out);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines.len(), 1, "{s}");
    let want = format!(
        "tcp      6 {} SYN_RECV src=198.18.0.2 dst=198.18.0.1 sport=40000 dport=22 packets=1 bytes=",
        f["timeout"]
    );
    assert!(lines[0].starts_with(&want), "{}\nwant {want}", lines[0]);
    assert!(
        lines[0].contains(" src=198.18.0.1 dst=198.18.0.2 sport=22 dport=40000 packets=1 bytes="),
        "{}",
        lines[0]
    );
    assert!(!lines[0].contains("UNREPLIED"), "{}", lines[0]);
    assert_eq!(
        text(&out.stderr).trim(),
        "routerctl: 1 flow entries have been shown."
    );

    let j = json(&routerctl(&sock, &["conntrack", "flush", "--json"]));
    assert_eq!(j["flushed"], 1);
    let j = json(&routerctl(&sock, &["conntrack", "--json"]));
    assert_eq!(j, serde_json::json!([]));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn reload_applies_a_good_config_and_refuses_a_bad_one_with_the_check_line() {
    let (sock, dir) = temp_socket("reload");
    let fake = Fake::transit();
    fake.feed(SSH_SYN);
    let _srv = serve(&sock, fake.clone()).expect("serve");
    let out = ok_stdout(&routerctl(&sock, &["reload"]));
    assert!(out.starts_with("OK: reloaded "), "{out}");
    assert!(
        out.contains("2 interfaces, 2 routes, 7 rules; 1 connection entries kept"),
        "{out}"
    );
    let good = config_path("transit-router.yaml");
    let out = ok_stdout(&routerctl(&sock, &["reload", good.to_str().unwrap()]));
    assert!(out.contains("transit-router.yaml"), "{out}");

    // A config with a bad policy: refused with routerd --check's line.
    let text_cfg =
        std::fs::read_to_string(&good)
            .unwrap()
            .replacen("policy: drop", "policy: dorp", 1);
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, text_cfg).unwrap();
    let refused = one_error_line(&routerctl(&sock, &["reload", bad.to_str().unwrap()]));
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_routerd"))
        .arg("--check")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(refused, text(&check.stderr).trim_end());
    assert!(
        refused.starts_with(&format!("{}:", bad.display())),
        "{refused}"
    );
    assert!(refused.contains("filter.input.policy"), "{refused}");
    // The old config keeps running: telnet is still dropped by forward rule 1.
    fake.feed(TELNET);
    let j = json(&routerctl(&sock, &["stats", "--json"]));
    assert_eq!(j["drops"]["filter_denied"], 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn relative_reload_paths_are_taken_from_routerctl_s_directory() {
    let (sock, dir) = temp_socket("reload-rel");
    let _srv = serve(&sock, Fake::transit()).expect("serve");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_routerctl"))
        .current_dir(config_path(""))
        .arg("--socket")
        .arg(&sock)
        .args(["reload", "transit-router.yaml"])
        .output()
        .unwrap();
    assert!(
        ok_stdout(&out).starts_with("OK: reloaded /"),
        "{}",
        text(&out.stdout)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn no_router_gives_one_line_and_exit_1() {
    let (sock, dir) = temp_socket("dead");
    for args in [
        &["stats"][..],
        &["conntrack", "--json"],
        &["reload"],
        &["trace"],
    ] {
        let line = one_error_line(&routerctl(&sock, args));
        assert_eq!(
            line,
            format!(
                "routerctl: cannot reach routerd at {}: No such file or directory (is routerd running? --socket PATH)",
                sock.display()
            )
        );
    }
    // A stale socket file left by a dead routerd.
    std::fs::create_dir_all(sock.parent().unwrap()).unwrap();
    drop(UnixListener::bind(&sock).unwrap());
    let line = one_error_line(&routerctl(&sock, &["stats"]));
    assert!(
        line.ends_with(": Connection refused (is routerd running? --socket PATH)"),
        "{line}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn socket_is_private_and_stale_sockets_are_replaced() {
    let (sock, dir) = temp_socket("mode");
    std::fs::create_dir_all(sock.parent().unwrap()).unwrap();
    drop(UnixListener::bind(&sock).unwrap());
    let srv = serve(&sock, Fake::transit()).expect("stale socket replaced");
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    let second = serve(&sock, Fake::transit());
    let e = second
        .err()
        .expect("a live socket is not taken over")
        .to_string();
    assert!(e.contains("another routerd is answering on it"), "{e}");
    assert!(sock.exists(), "the live socket stays");
    ok_stdout(&routerctl(&sock, &["stats"]));
    drop(srv);
    assert!(!sock.exists());
    std::fs::write(&sock, "not a socket").unwrap();
    let e = serve(&sock, Fake::transit())
        .err()
        .expect("a plain file is left alone")
        .to_string();
    assert!(e.ends_with("exists and is not a socket"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Feed SSH SYNs (each a new flow) and transit UDP alternately until the
/// child exits or 10 s pass; its output.
fn trace_while_feeding(
    fake: Arc<Fake>,
    sock: &std::path::Path,
    base_port: u16,
    args: &[&str],
) -> std::process::Output {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_routerctl"))
        .arg("--socket")
        .arg(sock)
        .arg("trace")
        .args(args)
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
            fake.feed(&format!(
                "in=wan tcp 198.18.0.2:{} > 198.18.0.1:22 flags=S",
                base_port + i
            ));
            fake.feed(TRANSIT_UDP);
            i += 1;
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    });
    let out = child.wait_with_output().unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    feeder.join().unwrap();
    out
}

/// Split trace output into packets: (head, stage lines).
fn packets(out: &str) -> Vec<(String, Vec<String>)> {
    out.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|b| {
            let mut l = b.lines();
            let head = l.next().unwrap();
            let head = head.split_once(": ").unwrap().1.to_string();
            (head, l.map(String::from).collect())
        })
        .collect()
}

#[test]
fn trace_shows_each_stage_in_explain_s_words() {
    let (sock, dir) = temp_socket("trace");
    let fake = Fake::transit();
    let _srv = serve(&sock, fake.clone()).expect("serve");
    let out = trace_while_feeding(fake.clone(), &sock, 41000, &["--count", "2", "--in", "wan"]);
    let s = ok_stdout(&out);
    let pk = packets(&s);
    assert_eq!(pk.len(), 2, "{s}");
    let transit = pk
        .iter()
        .find(|(h, _)| h.contains(" udp "))
        .expect("a transit packet");
    let host = pk
        .iter()
        .find(|(h, _)| h.contains(" tcp "))
        .expect("a host packet");
    assert!(
        transit
            .0
            .starts_with("in=wan udp 198.18.0.2:5000 > 198.19.0.2:53 ttl="),
        "{}",
        transit.0
    );
    assert!(
        transit
            .1
            .iter()
            .any(|l| l.trim_start().starts_with("raw/prerouting")
                && l.ends_with("rule 2 (transit is untracked): notrack -> untracked")),
        "{s}"
    );
    assert!(
        host.1
            .iter()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["conntrack", "new"]),
        "{s}"
    );
    // Word for word what explain says of the same packet on the same config.
    for (head, lines) in [transit, host] {
        let ex = std::process::Command::new(env!("CARGO_BIN_EXE_routerctl"))
            .args(["explain", "--config"])
            .arg(config_path("transit-router.yaml"))
            .arg(head)
            .output()
            .unwrap();
        let ex = ok_stdout(&ex);
        let want: Vec<&str> = ex.lines().skip(1).take_while(|l| !l.is_empty()).collect();
        assert_eq!(lines, &want, "trace vs explain of {head}");
    }

    // Only matching packets: tcp dport 22, JSON.
    let out = trace_while_feeding(
        fake,
        &sock,
        42000,
        &["--count", "3", "--json", "tcp", "dport", "22"],
    );
    let s = ok_stdout(&out);
    let objs: Vec<Value> = s
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objs.len(), 3, "{s}");
    for o in &objs {
        assert_eq!(o["ct_state"], "new", "{o}");
        assert_eq!(o["out"], "host", "{o}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn trace_refuses_bad_requests_in_one_line() {
    let (sock, dir) = temp_socket("trace-bad");
    let _srv = serve(&sock, Fake::transit()).expect("serve");
    let line = one_error_line(&routerctl(&sock, &["trace", "tcp", "dport", "ssh"]));
    assert_eq!(
        line,
        "routerctl: match `dport ssh`: expected a port (0-65535)"
    );
    let line = one_error_line(&routerctl(&sock, &["trace", "--in", "dmz"]));
    assert_eq!(
        line,
        "routerctl: --in dmz: not an interface of the running config (interfaces: wan, lan, or host)"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn neighbours_lists_both_families_like_ip_neigh() {
    // The fake learned its IPv4 gateway (as ARP would) and has the
    // config's two static neighbours, one of each family.
    let (sock, dir) = temp_socket("neigh");
    let fake = Fake::dual_stack();
    let _srv = serve(&sock, fake).expect("serve");
    let out = routerctl(&sock, &["neighbours"]);
    assert_eq!(
        ok_stdout(&out).lines().collect::<Vec<_>>(),
        [
            "198.18.0.2 dev wan lladdr 02:00:5e:20:00:01 REACHABLE",
            "198.19.0.2 dev lan lladdr 02:00:00:00:00:02 PERMANENT",
            "2001:db8:1::2 dev lan lladdr 02:00:00:00:00:02 PERMANENT",
        ]
    );
    let j = json(&routerctl(&sock, &["neighbours", "--json"]));
    let n = j.as_array().unwrap();
    assert_eq!(n.len(), 3, "{j}");
    assert_eq!(n[0]["address"], "198.18.0.2");
    assert_eq!(n[0]["interface"], "wan");
    assert_eq!(n[0]["state"], "reachable");
    let left = n[0]["expires_secs"].as_u64().unwrap();
    assert!(left > 0 && left <= 300, "a learned entry ages: {j}");
    assert_eq!(n[2]["address"], "2001:db8:1::2");
    assert_eq!(n[2]["state"], "permanent");
    assert_eq!(
        n[2]["expires_secs"],
        Value::Null,
        "a static entry never expires"
    );
    let _ = std::fs::remove_dir_all(dir);
}
