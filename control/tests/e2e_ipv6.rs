//! IPv6 through routerd end to end (root): client - router - server
//! namespaces made dual stack ([`Topology::add_ipv6`]: cli0
//! 2001:db8::2/64, srv0 2001:db8:1::2/64), routerd in the router
//! namespace on the dual-stack configs (2001:db8::1/64 on wan,
//! 2001:db8:1::1/64 on lan); the router answers neighbour discovery for its
//! own addresses and finds next hops that have no static entry by it.
//!
//! Checks: ping6 across the router arrives one hop lower than from the
//! router itself (63 against 64); a verified 10 MB TCP transfer and UDP
//! over IPv6, untracked (no IPv6 connection entry); the NDP counters; a
//! link of MTU 1280 answered with packet too big (MTU 1280) and a TCP
//! transfer through it completing by path MTU discovery; SSH on the
//! router over IPv6 tracked while a closed port is dropped unanswered; a
//! host forming its address from the router's advertisements (SLAAC) and
//! reaching the far side with it; the webserver scenario over IPv6.
//!
//! Every test builds its own namespaces (prefix per test), removed when it
//! ends, also when it fails; every traffic loop is bounded.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lab::{
    require_root, LabError, PingOptions, RouterdProc, TempDir, Topology, CLIENT_IP6,
    ROUTER_LAN_IP6, ROUTER_WAN_IP6, SERVER_IP6,
};
use serde_json::Value;

fn traffic(msg: impl Into<String>) -> LabError {
    LabError::Traffic(msg.into())
}

/// `configs/NAME` made dual stack for the lab: the lab's IPv6 addresses
/// on wan and lan, and ping6 to the router accepted where the config only
/// accepts IPv4 ping; then `edit`.
fn dual_stack(name: &str, edit: impl FnOnce(String) -> String) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../configs/{name}"));
    let mut text = std::fs::read_to_string(&p).expect("read the config");
    if !text.contains(&format!("{ROUTER_WAN_IP6}/64")) {
        for (v4, v6) in [
            ("198.18.0.1/24", ROUTER_WAN_IP6),
            ("198.19.0.1/24", ROUTER_LAN_IP6),
        ] {
            let from = format!("addresses: [{v4}]");
            assert!(text.contains(&from), "{name} changed: no `{from}`");
            text = text.replace(&from, &format!("addresses: [{v4}, {v6}/64]"));
        }
    }
    assert!(
        text.contains(&format!("{ROUTER_LAN_IP6}/64")),
        "{name}: lan must have {ROUTER_LAN_IP6}/64, the lab's address"
    );
    if !text.contains("icmpv6") {
        let icmp = "      - match: { protocol: icmp, icmp_type: echo-request }\n";
        assert!(text.contains(icmp), "{name} changed: no ping rule");
        text = text.replacen(
            icmp,
            &format!(
                "      - match: {{ protocol: icmpv6, icmpv6_type: echo-request }}\n        \
                 action: accept\n        comment: ping6\n{icmp}"
            ),
            1,
        );
    }
    edit(text)
}

/// A routerd under test on a dual-stack lab. Fields drop in order:
/// routerd stops, then the namespaces go, then the temporary directory.
struct Live {
    r: RouterdProc,
    t: Topology,
    _dir: TempDir,
    socket: PathBuf,
}

impl Live {
    /// Builds the lab (`tag` names its namespaces), calls `prepare` on it,
    /// then starts routerd on `config`, serving its socket in the test's
    /// directory.
    fn start(tag: &str, config: &str, prepare: impl FnOnce(&Topology)) -> Live {
        let dir = TempDir::new("e2e6", tag);
        let path = dir.path("router.yaml");
        std::fs::write(&path, config).expect("write the config");
        let socket = dir.path("routerd.sock");
        let t = Topology::build(tag).expect("build the lab");
        t.add_ipv6().expect("IPv6 on the endpoints");
        prepare(&t);
        let routerd = Path::new(env!("CARGO_BIN_EXE_routerd"));
        let sock = socket.to_str().expect("utf-8 path");
        let r = RouterdProc::spawn_ready(routerd, &["--socket", sock], &t.rtr, &path);
        Live {
            r,
            t,
            _dir: dir,
            socket,
        }
    }

    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_routerctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run routerctl")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "routerctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn stats(&self) -> Value {
        serde_json::from_str(&self.ok(&["stats", "--json"])).expect("stats JSON")
    }

    /// Stats once `pred` holds (workers publish every 100 ms), or the last
    /// ones after `limit`.
    fn stats_when(&self, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let s = self.stats();
            if pred(&s) || Instant::now() >= deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn conntrack(&self) -> Vec<Value> {
        let v: Value =
            serde_json::from_str(&self.ok(&["conntrack", "--json"])).expect("conntrack JSON");
        v.as_array().expect("a list").clone()
    }

    /// `routerctl stats` as text, for failure messages.
    fn stats_text(&self) -> String {
        String::from_utf8_lossy(&self.ctl(&["stats"]).stdout).into_owned()
    }

    fn stop(&mut self) {
        let st = self.r.terminate(Duration::from_secs(10)).expect("stops");
        assert!(
            st.success(),
            "routerd exit: {st}\n{}",
            self.r.log().join("\n")
        );
    }
}

/// The largest value of counter `key` anywhere in the stats (totals,
/// ports, workers), or `None` when the stats have no such counter.
fn counter(v: &Value, key: &str) -> Option<u64> {
    match v {
        Value::Object(m) => {
            let here = m.get(key).and_then(Value::as_u64);
            m.values().filter_map(|x| counter(x, key)).chain(here).max()
        }
        Value::Array(a) => a.iter().filter_map(|x| counter(x, key)).max(),
        _ => None,
    }
}

fn is_ipv6_entry(c: &Value) -> bool {
    ["src", "dst"]
        .iter()
        .any(|k| c[*k].as_str().is_some_and(|s| s.contains(':')))
}

fn v6(addr: &str, port: u16) -> SocketAddr {
    SocketAddr::new(addr.parse().expect("IPv6 address"), port)
}

/// A TCP server in `ns` on `addr`: answers each connection's line with
/// `<tag> <line>`, until `stop` is set or `limit` passed; returns how many
/// connections it served.
fn serve(
    ns: &str,
    addr: SocketAddr,
    tag: &'static str,
    stop: Arc<AtomicBool>,
    limit: Duration,
) -> JoinHandle<Result<usize, LabError>> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let h = lab::in_ns(ns, move || {
        let l = TcpListener::bind(addr).map_err(|e| traffic(format!("bind {addr}: {e}")))?;
        l.set_nonblocking(true)
            .map_err(|e| traffic(e.to_string()))?;
        let _ = ready_tx.send(());
        let deadline = Instant::now() + limit;
        let mut served = 0;
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            match l.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false)
                        .map_err(|e| traffic(e.to_string()))?;
                    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
                    let mut buf = [0u8; 256];
                    let n = s.read(&mut buf).unwrap_or(0);
                    let line = String::from_utf8_lossy(&buf[..n]).trim().to_string();
                    let _ = s.write_all(format!("{tag} {line}\n").as_bytes());
                    served += 1;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(traffic(format!("accept on {addr}: {e}"))),
            }
        }
        Ok(served)
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the server is listening");
    h
}

/// From `ns`, connects to `dst`, sends `line`, returns the answer; a
/// failure keeps its `io::ErrorKind`.
fn request(
    ns: &str,
    dst: SocketAddr,
    line: &str,
    timeout: Duration,
) -> Result<String, std::io::Error> {
    let line = line.to_string();
    let h = lab::in_ns(ns, move || {
        let attempt = || -> std::io::Result<String> {
            let mut s = TcpStream::connect_timeout(&dst, timeout)?;
            s.set_read_timeout(Some(timeout))?;
            s.write_all(format!("{line}\n").as_bytes())?;
            let mut answer = String::new();
            s.read_to_string(&mut answer)?;
            Ok(answer.trim().to_string())
        };
        Ok(attempt())
    });
    lab::netns::join(h).expect("client thread")
}

fn stop_server(stop: &AtomicBool, h: JoinHandle<Result<usize, LabError>>) -> usize {
    stop.store(true, Ordering::Relaxed);
    h.join().expect("server thread").expect("server")
}

#[test]
fn the_tun_carries_the_routers_ipv6_addresses_and_routes_and_the_kernel_stays_quiet() {
    require_root();
    // wan's kernel side as a Linux router's: IPv6 on, the router's address.
    let live_wan = format!("{ROUTER_WAN_IP6}/64");
    let mut live = Live::start("e6k", &dual_stack("transit-router.yaml", |t| t), |t| {
        t.lab.enable_ipv6(&t.rtr, "r0", false).unwrap();
        lab::ns::run(&[
            "ip", "-n", &t.rtr, "-6", "addr", "add", &live_wan, "dev", "r0", "nodad",
        ])
        .unwrap();
    });
    let t = &live.t;
    let sh = |args: &[&str]| {
        t.lab
            .exec(&t.rtr, args)
            .expect("ip in the router namespace")
    };

    // Each address a /128 usable at once, and no link-local address (so
    // no MLD report or router solicitation from the kernel).
    let addrs = sh(&["ip", "-6", "-o", "addr", "show", "dev", "rtr0"]);
    for a in [ROUTER_WAN_IP6, ROUTER_LAN_IP6] {
        assert!(addrs.contains(&format!("{a}/128")), "{addrs}");
    }
    assert!(
        !addrs.contains("fe80") && !addrs.contains("tentative"),
        "{addrs}"
    );
    for (key, want) in [
        ("disable_ipv6", "0"),
        ("accept_ra", "0"),
        ("autoconf", "0"),
        ("accept_dad", "0"),
        ("addr_gen_mode", "1"),
        ("forwarding", "0"),
    ] {
        let got = t
            .lab
            .sysctl(&t.rtr, &format!("net.ipv6.conf.rtr0.{key}"))
            .unwrap();
        assert_eq!(got, want, "net.ipv6.conf.rtr0.{key}");
    }
    // The ports stay without IPv6 in the kernel: the dataplane answers
    // neighbour discovery for them.
    let r0 = sh(&["ip", "-6", "addr", "show", "dev", "r0"]);
    assert!(!r0.contains("inet6"), "{r0}");
    for port in ["r0", "r1"] {
        let got = t
            .lab
            .sysctl(&t.rtr, &format!("net.ipv6.conf.{port}.disable_ipv6"))
            .unwrap();
        assert_eq!(got, "1", "IPv6 on {port} in the kernel");
    }
    // On-link prefixes and the configured routes, with the port's source,
    // in routerd's protocol.
    let routes = sh(&["ip", "-6", "route", "show", "proto", "250"]);
    for want in [
        format!("2001:db8::/64 dev rtr0 src {ROUTER_WAN_IP6} "),
        format!("2001:db8:1::/64 dev rtr0 src {ROUTER_LAN_IP6} "),
        format!("2001:db8:100::/48 dev rtr0 src {ROUTER_LAN_IP6} "),
        format!("default dev rtr0 src {ROUTER_WAN_IP6} "),
    ] {
        let found = routes.lines().any(|l| l.starts_with(&want));
        assert!(found, "no `{want}` in:\n{routes}");
    }
    // Idle for a while: nothing from the kernel came down the TUN.
    std::thread::sleep(Duration::from_secs(3));
    let st = live.stats();
    assert_eq!(
        st["interfaces"]["host"]["rx_packets"], 0,
        "the kernel sent on its own: {st:#}"
    );

    let status = live.r.terminate(Duration::from_secs(10)).expect("stops");
    assert!(status.success(), "routerd exit: {status}");
    let links = sh(&["ip", "link", "show"]);
    assert!(!links.contains("rtr0"), "{links}");
    let routes = sh(&["ip", "-6", "route", "show"]);
    assert!(!routes.contains("rtr0"), "{routes}");
    // wan's kernel IPv6 is back as it was, address included.
    let r0 = sh(&["ip", "-6", "addr", "show", "dev", "r0"]);
    assert!(r0.contains(&live_wan), "{r0}");
    assert_eq!(
        t.lab
            .sysctl(&t.rtr, "net.ipv6.conf.r0.disable_ipv6")
            .unwrap(),
        "0"
    );
}

#[test]
fn ping6_across_the_router_arrives_one_hop_lower_than_from_the_router() {
    require_root();
    let live = Live::start("e6p", &dual_stack("transit-router.yaml", |t| t), |_| {});
    let t = &live.t;

    let direct = t.ping6(ROUTER_WAN_IP6, 3).expect("ping6 the router");
    assert_eq!(direct.received, 3, "ping6 the router:\n{}", direct.text);
    assert!(
        direct.hop_limits.iter().all(|&h| h == 64),
        "the router's own replies leave with 64:\n{}",
        direct.text
    );
    let p = t.ping6(SERVER_IP6, 5).expect("ping6 the server");
    assert_eq!(p.received, 5, "ping6 across the router:\n{}", p.text);
    assert!(
        p.hop_limits.iter().all(|&h| h == 63),
        "the server's replies (sent with 64) must arrive with 63:\n{}\n{}",
        p.text,
        live.stats_text()
    );
    // The far side answers too, from the server's side.
    let back = lab::ping6_in(&t.srv, CLIENT_IP6, &PingOptions::count(2)).expect("ping6 back");
    assert_eq!(back.received, 2, "server -> client:\n{}", back.text);
}

#[test]
fn tcp_and_udp_over_ipv6_cross_the_router_untracked() {
    require_root();
    let live = Live::start("e6t", &dual_stack("transit-router.yaml", |t| t), |_| {});
    let t = &live.t;

    let bytes = 10_000_000;
    let tcp = lab::tcp_transfer_to(t, v6(SERVER_IP6, 5001), bytes, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("TCP over IPv6: {e}\n{}", live.stats_text()));
    assert_eq!(tcp.received, bytes, "{tcp:?}");
    assert!(tcp.verified, "TCP bytes differ end to end: {tcp:?}");

    let udp = lab::udp_exchange_to(t, v6(SERVER_IP6, 5002), 1000, 512).expect("UDP over IPv6");
    assert_eq!(udp.corrupt, 0, "{udp:?}");
    assert!(udp.received >= 950, "{udp:?}\n{}", live.stats_text());

    // Transit is NOTRACK in raw: no IPv6 entry, and it counted untracked.
    let conns = live.conntrack();
    let six: Vec<&Value> = conns.iter().filter(|c| is_ipv6_entry(c)).collect();
    assert!(six.is_empty(), "transit IPv6 must be untracked: {six:#?}");
    let st = live.stats();
    assert!(
        counter(&st, "untracked").unwrap_or(0) > 2000
            || counter(&st, "untracked_packets").unwrap_or(0) > 2000,
        "{st:#}"
    );
}

#[test]
fn next_hops_are_found_by_neighbour_discovery_without_static_neighbours() {
    require_root();
    // The config's static IPv6 neighbour (the server) taken out.
    let config = dual_stack("transit-router.yaml", |t| {
        let server = format!("  - address: {SERVER_IP6}\n    mac: \"02:00:00:00:00:02\"\n");
        t.replace(&server, "")
    });
    assert!(
        !config.contains("- address: 2001:db8"),
        "the config must name no IPv6 neighbour:\n{config}"
    );
    let live = Live::start("e6n", &config, |_| {});
    let t = &live.t;

    let p = t.ping6(SERVER_IP6, 3).expect("ping6");
    assert_eq!(p.received, 3, "{}\n{}", p.text, live.stats_text());
    let st = live.stats_when(Duration::from_secs(3), |s| {
        counter(s, "adverts_received").unwrap_or(0) > 0
    });
    for key in [
        "solicits_sent",
        "adverts_received",
        "solicits_received",
        "adverts_sent",
    ] {
        let n = counter(&st, key).unwrap_or_else(|| panic!("stats have no {key}: {st:#}"));
        assert!(n > 0, "{key} = 0: {st:#}");
    }
    // The server learned the router's MAC for its gateway by NDP as well.
    let neigh = t
        .lab
        .exec(&t.srv, &["ip", "-6", "neigh", "show", "dev", "srv0"])
        .unwrap();
    assert!(
        neigh.contains(ROUTER_LAN_IP6) && neigh.contains("router"),
        "the server's neighbour table: {neigh}"
    );
    // `routerctl neighbours` shows the server as learned on lan, with the
    // MAC of its interface.
    let link = t
        .lab
        .exec(&t.srv, &["ip", "-o", "link", "show", "dev", "srv0"])
        .unwrap();
    let mac = link
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_else(|| panic!("no MAC in {link}"))
        .to_string();
    let listed: Value =
        serde_json::from_str(&live.ok(&["neighbours", "--json"])).expect("neighbours JSON");
    let server = listed
        .as_array()
        .expect("a list")
        .iter()
        .find(|n| n["address"] == SERVER_IP6)
        .unwrap_or_else(|| panic!("no {SERVER_IP6} in {listed}"));
    assert_eq!(server["interface"], "lan", "{server}");
    assert_eq!(server["mac"], mac.as_str(), "{server}");
    assert!(
        ["reachable", "stale", "probe"].contains(&server["state"].as_str().unwrap_or("")),
        "{server}"
    );
    assert!(
        server["expires_secs"].as_u64().is_some(),
        "learned, so it ages: {server}"
    );
    let text = live.ok(&["neighbours"]);
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("{SERVER_IP6} dev lan lladdr {mac} "))),
        "{text}"
    );
}

#[test]
fn an_oversized_packet_gets_packet_too_big_and_tcp_completes_by_path_mtu_discovery() {
    require_root();
    // The router's lan port sends at most 1280 bytes; the server's end of
    // the link keeps 1500, so its TCP MSS does not hide the limit.
    let config = dual_stack("transit-router.yaml", |t| {
        let lan = "    device: r1\n";
        assert!(t.contains(lan));
        t.replacen(lan, &format!("{lan}    mtu: 1280\n"), 1)
    });
    // The TCP transfer goes to a second server address: the ping's packet
    // too big leaves the path MTU to the first one cached in the client.
    let tcp_dst = "2001:db8:1::3";
    let live = Live::start("e6m", &config, |t| {
        lab::ns::run(&["ip", "-n", &t.rtr, "link", "set", "r1", "mtu", "1280"]).unwrap();
        lab::ns::run(&[
            "ip",
            "-n",
            &t.srv,
            "-6",
            "addr",
            "add",
            "2001:db8:1::3/64",
            "dev",
            "srv0",
            "nodad",
        ])
        .unwrap();
    });
    let t = &live.t;
    let errors_sent = |st: &Value| {
        counter(st, "icmp_errors_sent").unwrap_or(0) + counter(st, "icmp6_errors_sent").unwrap_or(0)
    };

    // 1400 bytes of IPv6 (48 of headers): too big for lan.
    let p = lab::ping6_sized_in(&t.cli, SERVER_IP6, &PingOptions::count(1), 1400 - 48)
        .expect("ping6 -s 1352");
    let ptb = p.errors.iter().find(|e| e.icmp_type == 2);
    let Some(ptb) = ptb else {
        panic!("no packet too big:\n{}\n{}", p.text, live.stats_text());
    };
    assert_eq!(ptb.mtu, 1280, "{}", p.text);
    assert!(
        [ROUTER_WAN_IP6, ROUTER_LAN_IP6].contains(&ptb.from.to_string().as_str()),
        "from the router: {}",
        p.text
    );
    // A packet that fits still goes through.
    let p = lab::ping6_sized_in(&t.cli, SERVER_IP6, &PingOptions::count(2), 1280 - 48)
        .expect("ping6 -s 1232");
    assert_eq!(p.received, 2, "{}", p.text);

    // A fresh TCP connection (the server's MSS says 1500) sends full
    // segments until the router's packet too big lowers the path MTU.
    let before = errors_sent(&live.stats());
    let bytes = 4_000_000;
    let tcp = lab::tcp_transfer_to(t, v6(tcp_dst, 5003), bytes, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("TCP through the 1280 link: {e}\n{}", live.stats_text()));
    assert!(tcp.verified && tcp.received == bytes, "{tcp:?}");
    let st = live.stats_when(Duration::from_secs(2), |s| errors_sent(s) > before);
    assert!(
        errors_sent(&st) > before,
        "the transfer's first full segments got packet too big: {st:#}"
    );
}

#[test]
fn ssh_on_the_router_over_ipv6_is_tracked_and_a_closed_port_is_dropped() {
    require_root();
    let mut live = Live::start("e6s", &dual_stack("transit-router.yaml", |t| t), |_| {});
    let t = &live.t;
    let stop = Arc::new(AtomicBool::new(false));
    let ssh = serve(
        &t.rtr,
        v6(ROUTER_WAN_IP6, 22),
        "ssh",
        stop.clone(),
        Duration::from_secs(60),
    );
    let got = request(
        &t.cli,
        v6(ROUTER_WAN_IP6, 22),
        "from-client",
        Duration::from_secs(5),
    );
    assert_eq!(
        got.unwrap_or_else(|e| panic!("ssh over IPv6: {e}\n{}", live.stats_text())),
        "ssh from-client"
    );
    let policy_before = counter(&live.stats(), "filter_policy").unwrap_or(0);
    // No listener on 8080, and input drops it before the kernel could
    // answer with a reset: the connection times out.
    let closed = request(
        &t.cli,
        v6(ROUTER_WAN_IP6, 8080),
        "x",
        Duration::from_secs(2),
    );
    match &closed {
        Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {}
        other => panic!("8080 must be dropped unanswered, got {other:?}"),
    }

    let conns = live.conntrack();
    assert!(
        conns.iter().any(|c| c["protocol"] == "tcp"
            && c["src"] == CLIENT_IP6
            && c["dst"] == ROUTER_WAN_IP6
            && c["dport"] == 22
            && c["seen_reply"] == true),
        "ssh over IPv6 is tracked: {conns:#?}"
    );
    assert!(
        !conns.iter().any(|c| c["dport"] == 8080),
        "a dropped NEW leaves no entry: {conns:#?}"
    );
    let st = live.stats_when(Duration::from_secs(2), |s| {
        counter(s, "filter_policy").unwrap_or(0) + counter(s, "filter_denied").unwrap_or(0)
            > policy_before
    });
    let dropped =
        counter(&st, "filter_policy").unwrap_or(0) + counter(&st, "filter_denied").unwrap_or(0);
    assert!(dropped > policy_before, "the SYNs to 8080 counted: {st:#}");
    assert_eq!(stop_server(&stop, ssh), 1);
    live.stop();
}

#[test]
fn a_lan_host_forms_an_address_from_the_routers_advertisements_and_reaches_the_far_side() {
    require_root();
    let config = dual_stack("transit-router.yaml", |t| {
        if t.contains("router_advertisements") {
            return t;
        }
        let lan = "    device: r1\n";
        t.replacen(
            lan,
            &format!(
                "{lan}    router_advertisements:\n      interval: 4\n      \
                 prefixes: [2001:db8:1::/64]\n"
            ),
            1,
        )
    });
    let live = Live::start("e6a", &config, |t| {
        // The server as a plain SLAAC host: no static address or route.
        lab::ns::run(&[
            "ip", "-n", &t.srv, "-6", "addr", "flush", "dev", "srv0", "scope", "global",
        ])
        .unwrap();
        t.lab.enable_ipv6(&t.srv, "srv0", true).unwrap();
    });
    let t = &live.t;
    // IPv6 off and on again once routerd runs, as a host plugged in: a
    // fresh link-local address and a router solicitation to the router.
    t.lab
        .set_sysctl(&t.srv, "net.ipv6.conf.srv0.disable_ipv6", "1")
        .unwrap();
    t.lab
        .set_sysctl(&t.srv, "net.ipv6.conf.srv0.disable_ipv6", "0")
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    let addr = loop {
        let text = t
            .lab
            .exec(
                &t.srv,
                &[
                    "ip", "-6", "-o", "addr", "show", "dev", "srv0", "scope", "global",
                ],
            )
            .unwrap();
        let found = text.split_whitespace().find_map(|w| {
            let a = w.strip_suffix("/64")?.parse::<std::net::Ipv6Addr>().ok()?;
            (a.segments()[..4] == [0x2001, 0xdb8, 1, 0]).then_some(a)
        });
        if let Some(a) = found {
            break a;
        }
        assert!(
            Instant::now() < deadline,
            "no SLAAC address in 2001:db8:1::/64 within 10 s: {text}\n{}",
            live.stats_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let routes = t
        .lab
        .exec(&t.srv, &["ip", "-6", "route", "show", "default"])
        .unwrap();
    assert!(
        routes.contains("via fe80:") && routes.contains("proto ra"),
        "the default route from the advertisement, via the router's link-local: {routes}"
    );
    // From the SLAAC address to the client and back across the router.
    let p = lab::ping6_in(&t.srv, CLIENT_IP6, &PingOptions::count(3)).expect("ping6");
    assert_eq!(
        p.received,
        3,
        "from {addr}:\n{}\n{}",
        p.text,
        live.stats_text()
    );
    let p = t.ping6(&addr.to_string(), 2).expect("ping6 the SLAAC host");
    assert_eq!(p.received, 2, "to {addr}:\n{}", p.text);
    assert!(p.hop_limits.iter().all(|&h| h == 63), "{}", p.text);
}

#[test]
fn webserver_over_ipv6_serves_clients_untracked_while_ssh_is_tracked() {
    require_root();
    let mut live = Live::start("e6w", &dual_stack("webserver.yaml", |t| t), |_| {});
    let t = &live.t;
    let stop = Arc::new(AtomicBool::new(false));
    let any = "::".parse().expect("address");
    let web = serve(
        &t.rtr,
        SocketAddr::new(any, 80),
        "web",
        stop.clone(),
        Duration::from_secs(120),
    );
    let ssh = serve(
        &t.rtr,
        SocketAddr::new(any, 22),
        "ssh",
        stop.clone(),
        Duration::from_secs(120),
    );
    for i in 0..30 {
        let got = request(
            &t.cli,
            v6(ROUTER_WAN_IP6, 80),
            &format!("GET /{i}"),
            Duration::from_secs(5),
        );
        assert_eq!(
            got.unwrap_or_else(|e| panic!("web over IPv6 #{i}: {e}\n{}", live.stats_text())),
            format!("web GET /{i}")
        );
    }
    for i in 0..5 {
        let got = request(
            &t.srv,
            v6(ROUTER_LAN_IP6, 80),
            &format!("GET /s{i}"),
            Duration::from_secs(5),
        );
        assert_eq!(
            got.expect("web from the server side"),
            format!("web GET /s{i}")
        );
    }
    let got = request(
        &t.cli,
        v6(ROUTER_WAN_IP6, 22),
        "ssh",
        Duration::from_secs(5),
    );
    assert_eq!(got.expect("ssh over IPv6"), "ssh ssh");

    let conns = live.conntrack();
    assert!(
        !conns.iter().any(|c| c["sport"] == 80 || c["dport"] == 80),
        "port 80 is untracked: {conns:#?}"
    );
    assert!(
        conns.iter().any(|c| c["protocol"] == "tcp"
            && c["dport"] == 22
            && c["dst"] == ROUTER_WAN_IP6
            && c["seen_reply"] == true),
        "ssh over IPv6 is tracked: {conns:#?}"
    );
    let st = live.stats();
    assert_eq!(
        counter(&st, "filter_policy").unwrap_or(0),
        0,
        "nothing of it was dropped: {st:#}"
    );
    assert_eq!(stop_server(&stop, web), 35);
    assert_eq!(stop_server(&stop, ssh), 1);
    live.stop();
}
