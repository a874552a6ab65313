//! Routes from the kernel's table (root): client - router - server
//! namespaces, routerd with `kernel_routes` in the router namespace, routes
//! written into the router namespace's kernel table by `ip route` (what
//! BIRD or FRR do), traffic from the client's kernel.
//!
//! Checks: a route added by hand is forwarded by routerd (kernel
//! forwarding off) and its removal makes the sender get the ICMP
//! unreachable of the config's covering route; 100,000 routes added with
//! `ip -batch` all reach `routerctl route show`, `route verify` is clean
//! and a transit flow meanwhile loses nothing; an overrun of the netlink
//! socket ends in a counted resync and a clean verify; ECMP over two
//! gateways (a kernel multipath route, a nexthop group, a static
//! `via: [...]`) uses both and keeps each flow on one path; BIRD, and
//! FRR (zebra, bgpd: routes through kernel nexthop objects), on the router
//! learn a peer's prefix over BGP through routerd's host path, routerd
//! forwards to it and drops it when the peer stops.
//!
//! The tests run one at a time (a lock): the 100,000-route test shares the
//! two cores with the others. Every traffic loop is bounded; namespaces and
//! temporary files go also when a test fails.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lab::{in_ns, require_root, LabError, RouterdProc, TempDir, Topology, SERVER_IP};
use serde_json::Value;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn traffic(msg: impl Into<String>) -> LabError {
    LabError::Traffic(msg.into())
}

/// The transit config with its static IPv4 routes replaced by an
/// unreachable route covering 203.0.113.0/24 (so that without the kernel's
/// /24 the sender gets ICMP net unreachable), `extra` appended, and
/// kernel_routes on.
fn config_text(extra_ifs: &str, extra_routes: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/transit-router.yaml");
    let text = std::fs::read_to_string(p).expect("read the transit config");
    let routes = "routes:\n  - to: 203.0.113.0/24\n    via: 198.19.0.2\n  - to: default\n    via: 198.18.0.2\n";
    assert!(text.contains(routes), "the transit config changed");
    // The end of the interfaces (lan's last key), where extra ones go.
    let ifs = "\nhost:\n";
    assert!(text.contains(ifs), "the transit config changed");
    text.replace(
        routes,
        &format!("routes:\n  - to: 203.0.112.0/23\n    unreachable: true\n{extra_routes}"),
    )
    .replace(ifs, &format!("{extra_ifs}{ifs}"))
        + "kernel_routes:\n  table: main\n  protocols: [static, bgp, zebra, bird]\n"
}

/// A routerd under test. Fields drop in order: routerd stops, then the
/// namespaces go, then the temporary directory.
struct Live {
    r: RouterdProc,
    t: Topology,
    _dir: TempDir,
    socket: PathBuf,
}

impl Live {
    fn start(t: Topology, tag: &str, config: String, rcvbuf: Option<usize>) -> Live {
        let dir = TempDir::new("e2ekr", tag);
        let path = dir.path("router.yaml");
        std::fs::write(&path, config).expect("write the config");
        let socket = dir.path("routerd.sock");
        let routerd = Path::new(env!("CARGO_BIN_EXE_routerd"));
        let sock = socket.to_str().expect("utf-8 path").to_string();
        // The test-only receive buffer of the kernel feed; the tests run
        // one at a time, so no other routerd inherits it.
        match rcvbuf {
            Some(n) => std::env::set_var("ROUTERD_KERNEL_ROUTES_RCVBUF", n.to_string()),
            None => std::env::remove_var("ROUTERD_KERNEL_ROUTES_RCVBUF"),
        }
        let spawned = RouterdProc::spawn(routerd, &["--socket", &sock], &t.rtr, &path);
        std::env::remove_var("ROUTERD_KERNEL_ROUTES_RCVBUF");
        let mut r = spawned.expect("spawn routerd");
        if let Err(e) = r.wait_ready(Duration::from_secs(20)) {
            panic!("routerd did not start: {e}");
        }
        Live {
            r,
            t,
            _dir: dir,
            socket,
        }
    }

    fn ctl(&self, args: &[&str]) -> Output {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_routerctl"));
        cmd.arg("--socket").arg(&self.socket).args(args);
        cmd.output().expect("run routerctl")
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.ctl(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "routerctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("routerctl JSON")
    }

    fn ip(&self, args: &[&str]) {
        let mut cmd = vec!["ip"];
        cmd.extend_from_slice(args);
        self.t
            .lab
            .exec(&self.t.rtr, &cmd)
            .expect("ip in the router");
    }

    /// `routerctl route verify` finds no difference (exit status 0).
    fn assert_verify_clean(&self) {
        let out = self.ctl(&["route", "verify"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    /// The dataplane's route for `addr` (`route lookup --json`).
    fn lookup(&self, addr: &str) -> Value {
        let out = self.ctl(&["route", "lookup", "--json", addr]);
        serde_json::from_slice(&out.stdout).expect("route lookup JSON")
    }

    /// Polls `route lookup` until `pred` holds; the time it took, or None.
    fn lookup_until(
        &self,
        addr: &str,
        limit: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if pred(&self.lookup(addr)["route"]) {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    fn stop(&mut self) {
        let st = self.r.terminate(Duration::from_secs(20)).expect("stops");
        assert!(
            st.success(),
            "routerd exit: {st}\n{}",
            self.r.log().join("\n")
        );
    }
}

fn is_kernel_via(route: &Value, gw: &str) -> bool {
    route["source"] == "kernel" && route["paths"][0]["gateway"] == gw
}

#[test]
fn a_route_added_with_ip_route_is_forwarded_and_its_removal_answers_unreachable() {
    require_root();
    let _g = serial();
    let t = Topology::build("ekra").expect("build the lab");
    // The server answers for 203.0.113.2 (reached only through the route).
    t.lab
        .exec(
            &t.srv,
            &["ip", "addr", "add", "203.0.113.2/32", "dev", "srv0"],
        )
        .unwrap();
    let mut live = Live::start(t, "ekra", config_text("", ""), None);

    // No kernel route yet: the config's unreachable /23 answers.
    let p = live.t.ping("203.0.113.2", 2).expect("ping");
    assert_eq!(p.received, 0, "{}", p.text);
    assert!(
        p.errors
            .iter()
            .any(|e| e.icmp_type == 3 && e.code == 0 && e.from.to_string() == "198.18.0.1"),
        "net unreachable from the router expected:\n{}",
        p.text
    );

    live.ip(&[
        "route",
        "add",
        "203.0.113.0/24",
        "via",
        SERVER_IP,
        "proto",
        "static",
    ]);
    let took = live
        .lookup_until("203.0.113.2", Duration::from_secs(5), |r| {
            is_kernel_via(r, SERVER_IP)
        })
        .expect("the kernel route reaches the dataplane");
    eprintln!("one added route in the dataplane after {took:?}");
    let show = live.json(&["route", "show", "--json", "203.0.113.0/24"]);
    let r = &show["routes"][0];
    assert_eq!(r["prefix"], "203.0.113.0/24", "{show}");
    assert_eq!(
        (r["source"].as_str(), r["protocol"].as_str()),
        (Some("kernel"), Some("static")),
        "{show}"
    );
    assert_eq!(
        r["paths"][0]["interface"], "lan",
        "the gateway's port, not the kernel's device rtr0: {show}"
    );

    let p = live.t.ping("203.0.113.2", 3).expect("ping");
    assert_eq!(p.received, 3, "forwarded by routerd:\n{}", p.text);
    assert!(p.ttls.iter().all(|&t| t == 63), "{}", p.text);
    assert_eq!(
        live.t
            .lab
            .sysctl(&live.t.rtr, "net.ipv4.ip_forward")
            .unwrap(),
        "0"
    );
    live.assert_verify_clean();

    // A route whose gateway is on no connected network is skipped, counted
    // and explained.
    live.ip(&[
        "route",
        "add",
        "198.51.100.0/24",
        "via",
        "198.18.0.200",
        "proto",
        "bird",
    ]);
    live.ip(&[
        "route",
        "add",
        "192.0.2.0/24",
        "dev",
        "rtr0",
        "proto",
        "bird",
    ]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let skipped = loop {
        let s = live.json(&["route", "show", "--json"]);
        let k = s["kernel"].clone();
        if k["skipped"].as_array().is_some_and(|a| a.len() == 1) || Instant::now() > deadline {
            break k;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // 198.18.0.200 is on wan's network: that one maps (to wan).
    assert_eq!(skipped["skipped"][0]["prefix"], "192.0.2.0/24", "{skipped}");
    assert_eq!(skipped["skipped"][0]["reason"], "no_gateway", "{skipped}");
    assert_eq!(skipped["skipped_by_reason"]["no_gateway"], 1, "{skipped}");
    live.ip(&["route", "del", "198.51.100.0/24", "proto", "bird"]);
    live.ip(&[
        "route",
        "add",
        "198.51.100.0/24",
        "via",
        "10.1.2.3",
        "dev",
        "rtr0",
        "onlink",
        "proto",
        "bird",
    ]);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = live.json(&["route", "show", "--json"]);
        let reasons: BTreeSet<String> = s["kernel"]["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                format!(
                    "{} {}",
                    x["prefix"].as_str().unwrap(),
                    x["reason"].as_str().unwrap()
                )
            })
            .collect();
        let want: BTreeSet<String> = [
            "192.0.2.0/24 no_gateway",
            "198.51.100.0/24 gateway_not_connected",
        ]
        .map(String::from)
        .into();
        if reasons == want {
            break;
        }
        assert!(Instant::now() < deadline, "skipped: {reasons:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = String::from_utf8_lossy(&live.ctl(&["route", "show"]).stdout).into_owned();
    eprintln!("$ routerctl route show\n{text}");
    eprintln!(
        "$ routerctl route lookup 203.0.113.2\n{}",
        String::from_utf8_lossy(&live.ctl(&["route", "lookup", "203.0.113.2"]).stdout)
    );
    eprintln!(
        "$ routerctl route verify\n{}",
        String::from_utf8_lossy(&live.ctl(&["route", "verify"]).stdout)
    );
    assert!(
        text.contains("skipped 198.51.100.0/24 proto bird: gateway_not_connected (gateway 10.1.2.3 is on no connected network)"),
        "{text}"
    );
    let stats = live.json(&["stats", "--json"]);
    assert_eq!(
        stats["routes"]["kernel_skipped"]["gateway_not_connected"], 1,
        "{}",
        stats["routes"]
    );
    assert_eq!(
        stats["routes"]["by_source"]["kernel"], 1,
        "{}",
        stats["routes"]
    );

    live.ip(&[
        "route",
        "del",
        "203.0.113.0/24",
        "via",
        SERVER_IP,
        "proto",
        "static",
    ]);
    let took = live
        .lookup_until("203.0.113.2", Duration::from_secs(5), |r| {
            r["source"] == "static"
        })
        .expect("the removal reaches the dataplane");
    eprintln!("one removed route out of the dataplane after {took:?}");
    let p = live.t.ping("203.0.113.2", 2).expect("ping");
    assert_eq!(p.received, 0, "{}", p.text);
    assert!(
        p.errors.iter().any(|e| e.icmp_type == 3 && e.code == 0),
        "net unreachable after the removal:\n{}",
        p.text
    );
    live.stop();
}

/// What a sequenced UDP stream delivered.
#[derive(Debug)]
struct Stream {
    sent: u64,
    received: u64,
}

/// A UDP stream client -> server:`port`, 64-byte datagrams with sequence
/// numbers, 10 every 2 ms, until `stop` (or 60 s, or 100 000 datagrams).
fn udp_stream(t: &Topology, port: u16, stop: Arc<AtomicBool>) -> JoinHandle<Stream> {
    let addr: SocketAddr = format!("{SERVER_IP}:{port}").parse().unwrap();
    let rx = in_ns(&t.srv, move || {
        let s = UdpSocket::bind(addr).map_err(|e| traffic(format!("bind {addr}: {e}")))?;
        s.set_read_timeout(Some(Duration::from_millis(100))).ok();
        Ok(s)
    });
    let tx = in_ns(&t.cli, move || {
        let s = UdpSocket::bind("0.0.0.0:0").map_err(|e| traffic(e.to_string()))?;
        s.connect(addr).map_err(|e| traffic(e.to_string()))?;
        Ok(s)
    });
    let rx = lab::netns::join(rx).expect("receiver socket");
    let tx = lab::netns::join(tx).expect("sender socket");
    let done = Arc::new(AtomicBool::new(false));
    let done2 = done.clone();
    let receiver = std::thread::spawn(move || {
        let mut seen: BTreeSet<u64> = BTreeSet::new();
        let mut buf = [0u8; 256];
        let mut quiet_since = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            match rx.recv(&mut buf) {
                Ok(n) if n >= 8 => {
                    seen.insert(u64::from_le_bytes(buf[..8].try_into().unwrap()));
                    quiet_since = Instant::now();
                }
                _ => {
                    if done2.load(Ordering::Acquire)
                        && quiet_since.elapsed() > Duration::from_secs(1)
                    {
                        break;
                    }
                }
            }
        }
        seen
    });
    std::thread::spawn(move || {
        let mut buf = [0x5au8; 64];
        let start = Instant::now();
        let mut sent = 0u64;
        while !stop.load(Ordering::Relaxed)
            && sent < 100_000
            && start.elapsed() < Duration::from_secs(60)
        {
            buf[..8].copy_from_slice(&sent.to_le_bytes());
            tx.send(&buf).expect("send");
            sent += 1;
            if sent % 10 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        done.store(true, Ordering::Release);
        let seen = receiver.join().expect("receiver");
        Stream {
            sent,
            received: seen.range(..sent).count() as u64,
        }
    })
}

/// The `n` host routes of the bulk tests: /32s from 198.18.1.0 on, past
/// the two connected /24s, all via the server.
fn bulk_prefixes(n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    let mut a = u32::from(std::net::Ipv4Addr::new(198, 18, 1, 0));
    while out.len() < n {
        let ip = std::net::Ipv4Addr::from(a);
        a += 1;
        if ip.octets()[1] == 19 && ip.octets()[2] == 0 {
            continue;
        }
        out.push(format!("{ip}/32"));
    }
    out
}

/// Writes an `ip -batch` file adding (or deleting) the bulk routes.
fn batch_file(dir: &Path, name: &str, verb: &str, prefixes: &[String]) -> PathBuf {
    let text: String = prefixes
        .iter()
        .map(|p| format!("route {verb} {p} via {SERVER_IP} proto bgp\n"))
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the batch");
    path
}

/// Polls `route show --summary` until the dataplane holds `n` kernel
/// routes; the time it took.
fn wait_kernel_routes(live: &Live, n: u64, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        let s = live.json(&["route", "show", "--summary", "--json"]);
        if s["counts"]["kernel"].as_u64().unwrap_or(0) == n {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn a_hundred_thousand_routes_reach_the_dataplane_verify_clean_while_transit_loses_nothing() {
    require_root();
    let _g = serial();
    let t = Topology::build("ekrb").expect("build the lab");
    let mut live = Live::start(t, "ekrb", config_text("", ""), None);
    let dir = TempDir::new("e2ekr-batch", "ekrb");
    let prefixes = bulk_prefixes(100_000);
    let add = batch_file(&dir.path(""), "add.batch", "add", &prefixes);
    let del = batch_file(&dir.path(""), "del.batch", "del", &prefixes);

    let stop = Arc::new(AtomicBool::new(false));
    let stream = udp_stream(&live.t, 7001, stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    live.ip(&["-batch", add.to_str().unwrap()]);
    let batch = start.elapsed();
    let took = wait_kernel_routes(&live, 100_000, Duration::from_secs(60));
    let total = start.elapsed();
    eprintln!("100000 routes: ip -batch took {batch:?}, all in the dataplane after {total:?} ({took:?} after the batch ended)");
    assert!(
        took.is_some(),
        "not all 100000 routes reached the dataplane"
    );

    let show = live.json(&["route", "show", "--json", "198.18.0.0/15"]);
    let kernel: BTreeSet<&str> = show["routes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["source"] == "kernel" && r["protocol"] == "bgp")
        .map(|r| r["prefix"].as_str().unwrap())
        .collect();
    assert_eq!(kernel.len(), 100_000);
    assert!(prefixes.iter().all(|p| kernel.contains(p.as_str())));
    let v = live.ctl(&["route", "verify", "--json"]);
    let vj: Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(v.status.code(), Some(0), "{}", vj["differences"]);
    assert_eq!(vj["kernel_routes"], 100_000);
    assert!(is_kernel_via(
        &live.lookup("198.18.200.1")["route"],
        SERVER_IP
    ));

    let start = Instant::now();
    live.ip(&["-batch", del.to_str().unwrap()]);
    let took = wait_kernel_routes(&live, 0, Duration::from_secs(60));
    eprintln!(
        "100000 routes removed from the dataplane after {:?}",
        start.elapsed()
    );
    assert!(
        took.is_some(),
        "the removals did not all reach the dataplane"
    );
    stop.store(true, Ordering::Relaxed);
    let s = stream.join().expect("stream");
    eprintln!("transit stream meanwhile: {s:?}");
    assert!(s.sent > 1000, "{s:?}");
    assert_eq!(
        s.received, s.sent,
        "transit lost datagrams while the routes changed: {s:?}"
    );
    let st = live.json(&["stats", "--json"]);
    eprintln!(
        "kernel feed: {}",
        live.json(&["route", "show", "--summary", "--json"])["kernel"]
    );
    assert_eq!(st["routes"]["by_source"]["kernel"], 0);
    live.stop();
}

#[test]
fn a_netlink_overrun_ends_in_a_counted_resync_and_a_clean_verify() {
    require_root();
    let _g = serial();
    let t = Topology::build("ekrc").expect("build the lab");
    // A receive buffer far too small for a 20 000-route burst.
    let mut live = Live::start(t, "ekrc", config_text("", ""), Some(4096));
    let dir = TempDir::new("e2ekr-batch", "ekrc");
    let prefixes = bulk_prefixes(20_000);
    let add = batch_file(&dir.path(""), "add.batch", "add", &prefixes);
    live.ip(&["-batch", add.to_str().unwrap()]);
    let took = wait_kernel_routes(&live, 20_000, Duration::from_secs(60));
    assert!(
        took.is_some(),
        "the routes did not all arrive after the overrun: {}\n{}",
        live.json(&["route", "show", "--summary", "--json"]),
        live.r.log().join("\n")
    );
    let k = live.json(&["route", "show", "--summary", "--json"])["kernel"].clone();
    eprintln!("kernel feed after the burst: {k}");
    assert!(
        k["resyncs"].as_u64().unwrap() >= 1,
        "no resync counted: {k}"
    );
    let text =
        String::from_utf8_lossy(&live.ctl(&["route", "show", "--summary"]).stdout).into_owned();
    assert!(
        text.contains(&format!("{} resync(s)", k["resyncs"])),
        "{text}"
    );
    let metrics_resyncs = live.json(&["stats", "--json"])["routes"]["kernel_resyncs"].clone();
    assert!(metrics_resyncs.as_u64().unwrap() >= 1);
    live.assert_verify_clean();
    // And a deletion after the resync is followed.
    live.ip(&["route", "del", &prefixes[0], "proto", "bgp"]);
    assert!(wait_kernel_routes(&live, 19_999, Duration::from_secs(10)).is_some());
    live.stop();
}

/// Per-flow arrivals of UDP datagrams at two servers: source port ->
/// (datagrams at server a, at server b).
type Arrivals = BTreeMap<u16, (u32, u32)>;

/// `flows` UDP flows (source ports 20000..) of `each` datagrams from the
/// client to `dst`:9000, counted at both servers by source port.
fn ecmp_traffic(t: &Topology, other: &str, dst: &str, flows: u16, each: u32) -> Arrivals {
    let addr: SocketAddr = format!("{dst}:9000").parse().unwrap();
    let recv = |ns: &str| {
        let h = in_ns(ns, move || {
            let s = UdpSocket::bind(addr).map_err(|e| traffic(format!("bind {addr}: {e}")))?;
            s.set_read_timeout(Some(Duration::from_millis(200))).ok();
            Ok(s)
        });
        lab::netns::join(h).expect("receiver")
    };
    let (ra, rb) = (recv(&t.srv), recv(other));
    let count = |s: UdpSocket| {
        std::thread::spawn(move || {
            let mut by_port: BTreeMap<u16, u32> = BTreeMap::new();
            let mut buf = [0u8; 64];
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut quiet = 0;
            while Instant::now() < deadline && quiet < 10 {
                match s.recv_from(&mut buf) {
                    Ok((_, from)) => {
                        quiet = 0;
                        *by_port.entry(from.port()).or_default() += 1;
                    }
                    Err(_) => quiet += 1,
                }
            }
            by_port
        })
    };
    let (ha, hb) = (count(ra), count(rb));
    let sender = in_ns(&t.cli, move || {
        let socks: Vec<UdpSocket> = (0..flows)
            .map(|i| {
                let s =
                    UdpSocket::bind(("0.0.0.0", 20000 + i)).map_err(|e| traffic(e.to_string()))?;
                s.connect(addr).map_err(|e| traffic(e.to_string()))?;
                Ok(s)
            })
            .collect::<Result<_, LabError>>()?;
        for _ in 0..each {
            for s in &socks {
                let _ = s.send(&[0x5a; 32]);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    });
    lab::netns::join(sender).expect("sender");
    let (a, b) = (ha.join().unwrap(), hb.join().unwrap());
    let mut out = Arrivals::new();
    for (p, n) in a {
        out.entry(p).or_default().0 += n;
    }
    for (p, n) in b {
        out.entry(p).or_default().1 += n;
    }
    out
}

fn check_ecmp(what: &str, arrivals: &Arrivals, flows: u16, each: u32) {
    eprintln!("{what}: {arrivals:?}");
    let on_a = arrivals.values().filter(|(a, _)| *a > 0).count();
    let on_b = arrivals.values().filter(|(_, b)| *b > 0).count();
    assert_eq!(
        arrivals.len(),
        flows as usize,
        "{what}: every flow arrives: {arrivals:?}"
    );
    assert!(
        on_a > 0 && on_b > 0,
        "{what}: both paths used ({on_a} flows on a, {on_b} on b)"
    );
    for (port, (a, b)) in arrivals {
        assert!(
            *a == 0 || *b == 0,
            "{what}: flow from port {port} split over both paths ({a} and {b})"
        );
        assert!(
            a + b >= each * 9 / 10,
            "{what}: flow {port} lost much: {a}+{b} of {each}"
        );
    }
}

#[test]
fn ecmp_over_two_gateways_uses_both_and_keeps_each_flow_on_one_path() {
    require_root();
    let _g = serial();
    let mut t = Topology::build("ekrd").expect("build the lab");
    // A second server on a third port: lan2 r2 198.19.1.1/24 - srv2 198.19.1.2.
    let srv2 = t.lab.add_ns("sr2").expect("namespace");
    t.lab.veth(&t.rtr, "r2", &srv2, "srv2").expect("veth");
    t.lab
        .exec(
            &srv2,
            &["ip", "addr", "add", "198.19.1.2/24", "dev", "srv2"],
        )
        .unwrap();
    for (ns, dev) in [(t.srv.clone(), "srv0"), (srv2.clone(), "srv2")] {
        // Both servers own the destinations: which one gets a flow shows its path.
        for a in ["203.0.113.5/32", "203.0.113.130/32", "203.0.113.70/32"] {
            t.lab
                .exec(&ns, &["ip", "addr", "add", a, "dev", dev])
                .unwrap();
        }
    }
    let extra_if = "  - name: lan2\n    device: r2\n    addresses: [198.19.1.1/24]\n";
    let static_ecmp = "  - to: 203.0.113.128/25\n    via: [198.19.0.2, 198.19.1.2]\n";
    let mut live = Live::start(t, "ekrd", config_text(extra_if, static_ecmp), None);
    let (flows, each) = (48u16, 20u32);

    // A static route with two gateways.
    let a = ecmp_traffic(&live.t, &srv2, "203.0.113.130", flows, each);
    check_ecmp("static via list", &a, flows, each);

    // A kernel multipath route.
    live.ip(&[
        "route",
        "add",
        "203.0.113.0/26",
        "proto",
        "bgp",
        "nexthop",
        "via",
        "198.19.0.2",
        "nexthop",
        "via",
        "198.19.1.2",
    ]);
    live.lookup_until("203.0.113.5", Duration::from_secs(5), |r| {
        r["source"] == "kernel" && r["paths"].as_array().is_some_and(|p| p.len() == 2)
    })
    .expect("the multipath route reaches the dataplane");
    let k = ecmp_traffic(&live.t, &srv2, "203.0.113.5", flows, each);
    check_ecmp("kernel multipath", &k, flows, each);

    // Kernel nexthop objects (FRR's way): a group of two.
    live.ip(&[
        "nexthop",
        "add",
        "id",
        "101",
        "via",
        "198.19.0.2",
        "dev",
        "rtr0",
    ]);
    live.ip(&[
        "nexthop",
        "add",
        "id",
        "102",
        "via",
        "198.19.1.2",
        "dev",
        "rtr0",
    ]);
    live.ip(&["nexthop", "add", "id", "110", "group", "101/102"]);
    live.ip(&[
        "route",
        "add",
        "203.0.113.64/26",
        "nhid",
        "110",
        "proto",
        "zebra",
    ]);
    live.lookup_until("203.0.113.70", Duration::from_secs(5), |r| {
        r["protocol"] == "zebra" && r["paths"].as_array().is_some_and(|p| p.len() == 2)
    })
    .expect("the nexthop-group route reaches the dataplane");
    let g = ecmp_traffic(&live.t, &srv2, "203.0.113.70", flows, each);
    check_ecmp("nexthop group", &g, flows, each);
    live.assert_verify_clean();
    live.stop();
}

/// The lab of the BGP tests: the server (the BGP peer) also holds
/// 203.0.113.2, in the prefix it announces.
fn bgp_lab(tag: &str) -> Topology {
    let t = Topology::build(tag).expect("build the lab");
    t.lab
        .exec(
            &t.srv,
            &["ip", "addr", "add", "203.0.113.2/32", "dev", "srv0"],
        )
        .unwrap();
    t
}

/// The BGP peer (BIRD on the server): announces 203.0.113.0/24 and waits
/// for the router to connect.
const BIRD_PEER_CONF: &str = "router id 198.19.0.2;
protocol device {}
protocol static { ipv4; route 203.0.113.0/24 blackhole; }
protocol bgp to_router {
  local 198.19.0.2 as 65002;
  neighbor 198.19.0.1 as 65001;
  passive on;
  ipv4 { import none; export where source = RTS_STATIC; };
}
";

/// The peer's prefix is forwarded to it, and the dataplane agrees with the
/// kernel's table.
fn assert_forwarded_to_peer(live: &Live) {
    let p = live.t.ping("203.0.113.2", 3).expect("ping");
    assert_eq!(p.received, 3, "forwarded to the BGP peer:\n{}", p.text);
    live.assert_verify_clean();
}

/// After the peer stopped: the prefix leaves the dataplane (the config's
/// static unreachable route is what is left), and the sender gets ICMP
/// unreachable; `state` says what the router's daemon saw, on failure.
fn assert_withdrawn(live: &Live, state: impl Fn() -> String) {
    let took = live.lookup_until("203.0.113.2", Duration::from_secs(60), |r| {
        r["source"] == "static"
    });
    assert!(took.is_some(), "the withdrawn prefix stayed:\n{}", state());
    eprintln!("withdrawn from the dataplane {took:?} after the peer stopped");
    let p = live.t.ping("203.0.113.2", 2).expect("ping");
    assert_eq!(p.received, 0, "{}", p.text);
    assert!(p.errors.iter().any(|e| e.icmp_type == 3), "{}", p.text);
}

/// A BIRD daemon run in a namespace (foreground, its own config and
/// control socket in a temporary directory); killed by pid on drop.
struct Bird {
    child: std::process::Child,
    socket: PathBuf,
    ns: String,
}

impl Bird {
    fn start(ns: &str, dir: &TempDir, name: &str, conf: &str) -> Bird {
        let conf_path = dir.path(&format!("{name}.conf"));
        std::fs::write(&conf_path, conf).expect("write bird.conf");
        let socket = dir.path(&format!("{name}.ctl"));
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", ns, "bird", "-f", "-c"])
            .arg(&conf_path)
            .arg("-s")
            .arg(&socket)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start bird (Debian package bird2)");
        let mut b = Bird {
            child,
            socket,
            ns: ns.to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !b.socket.exists() {
            assert!(Instant::now() < deadline, "bird in {ns} did not come up");
            if let Ok(Some(st)) = b.child.try_wait() {
                panic!("bird in {ns} exited: {st} (its error is above)");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        b
    }

    /// `birdc show protocols` in its namespace, for failure messages.
    fn protocols(&self) -> String {
        std::process::Command::new("ip")
            .args(["netns", "exec", &self.ns, "birdc", "-s"])
            .arg(&self.socket)
            .args(["show", "protocols", "all"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn bird_on_the_router_learns_a_peer_s_prefix_over_bgp_through_the_host_path() {
    require_root();
    let _g = serial();
    // A fresh machine (Rust and iproute2) has no BIRD: the test says so in
    // one line and leaves the BGP session out; CI installs bird2 and runs it.
    if !lab::optional_tool("bird", "bird2", "the BGP session between two BIRDs") {
        return;
    }
    let t = bgp_lab("ekre");
    let mut live = Live::start(t, "ekre", config_text("", ""), None);
    let dir = TempDir::new("e2ekr-bird", "ekre");
    // The router: BGP to the peer through routerd's host path (the TUN
    // holds only /32s, so the session is multihop and the peer's next hop
    // resolves over a device route; the kernel export makes the peer the
    // on-link gateway), BGP routes into the kernel's table.
    let router_conf = "router id 198.19.0.1;
protocol device {}
protocol static { ipv4; route 198.19.0.0/24 via \"rtr0\"; }
protocol kernel {
  ipv4 {
    export filter {
      if source != RTS_BGP then reject;
      # The TUN has only /32s: the BGP next hop is on-link through it.
      onlink = true;
      gw = bgp_next_hop;
      accept;
    };
  };
}
protocol bgp to_peer {
  local 198.19.0.1 as 65001;
  neighbor 198.19.0.2 as 65002;
  multihop 2;
  connect delay time 1;
  connect retry time 2;
  ipv4 { import all; export none; };
}
";
    let mut peer = Bird::start(&live.t.srv, &dir, "peer", BIRD_PEER_CONF);
    let router = Bird::start(&live.t.rtr, &dir, "router", router_conf);
    let took = live.lookup_until("203.0.113.2", Duration::from_secs(60), |r| {
        r["source"] == "kernel" && r["protocol"] == "bird" && r["paths"][0]["gateway"] == SERVER_IP
    });
    assert!(
        took.is_some(),
        "the peer's prefix did not reach the dataplane:\nrouter:\n{}\npeer:\n{}\nroutes: {}",
        router.protocols(),
        peer.protocols(),
        live.t
            .lab
            .exec(&live.t.rtr, &["ip", "route"])
            .unwrap_or_default()
    );
    eprintln!("BGP prefix in the dataplane {took:?} after BIRD started");
    assert_forwarded_to_peer(&live);

    // The peer's BIRD stops: the session ends, BIRD withdraws the route
    // from the kernel, routerd from the dataplane.
    peer.stop();
    assert_withdrawn(&live, || router.protocols());
    drop(router);
    live.stop();
}

/// Where Debian's `frr` puts its daemons (not on PATH).
const FRR_SBIN: &str = "/usr/lib/frr";

/// The router's FRR configuration, as the README shows it in
/// `/etc/frr/frr.conf` (the test gives it to bgpd with `-f`).
const FRR_CONF: &str = "frr defaults traditional
hostname router
router bgp 65001
 bgp router-id 198.19.0.1
 no bgp ebgp-requires-policy
 neighbor 198.19.0.2 remote-as 65002
 neighbor 198.19.0.2 update-source 198.19.0.1
 neighbor 198.19.0.2 ebgp-multihop 2
 neighbor 198.19.0.2 timers connect 1
 address-family ipv4 unicast
  neighbor 198.19.0.2 activate
 exit-address-family
";

/// FRR's zebra and bgpd run in a namespace in the foreground, with their
/// config, pid files, zserv and vty sockets and logs in a temporary
/// directory (nothing under /etc/frr or /var/run/frr); killed by pid on
/// drop.
struct Frr {
    daemons: Vec<std::process::Child>,
    dir: PathBuf,
    ns: String,
}

impl Frr {
    fn start(ns: &str, dir: &TempDir, conf: &str) -> Frr {
        let base = dir.path("");
        // The daemons drop to Debian's `frr` user: it writes sockets, pid
        // files and logs here.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o777))
            .expect("chmod the FRR directory");
        std::fs::write(dir.path("zebra.conf"), "").expect("write zebra.conf");
        std::fs::write(dir.path("frr.conf"), conf).expect("write frr.conf");
        let zsock = dir.path("zserv.api");
        let mut frr = Frr {
            daemons: Vec::new(),
            dir: base.clone(),
            ns: ns.to_string(),
        };
        for (daemon, conf) in [("zebra", "zebra.conf"), ("bgpd", "frr.conf")] {
            let child = std::process::Command::new("ip")
                .args(["netns", "exec", ns])
                .arg(Path::new(FRR_SBIN).join(daemon))
                .arg("-f")
                .arg(dir.path(conf))
                .arg("-i")
                .arg(dir.path(&format!("{daemon}.pid")))
                .arg("-z")
                .arg(&zsock)
                .arg("--vty_socket")
                .arg(&base)
                // No vty on TCP: vtysh reaches it over the socket.
                .args(["-P", "0", "--log"])
                .arg(format!(
                    "file:{}",
                    dir.path(&format!("{daemon}.log")).display()
                ))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::inherit())
                .spawn()
                .expect("start an FRR daemon (Debian package frr)");
            frr.daemons.push(child);
            // bgpd talks to zebra over its socket: zebra first.
            let ready = dir.path(&format!("{daemon}.vty"));
            let deadline = Instant::now() + Duration::from_secs(10);
            while !ready.exists() {
                assert!(
                    Instant::now() < deadline,
                    "{daemon} in {ns} did not come up:\n{}",
                    frr.logs()
                );
                if let Ok(Some(st)) = frr.daemons.last_mut().expect("started").try_wait() {
                    panic!("{daemon} in {ns} exited: {st}\n{}", frr.logs());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        frr
    }

    /// `vtysh -c CMD` against this FRR's vty sockets, for failure messages.
    fn vtysh(&self, cmd: &str) -> String {
        std::process::Command::new("ip")
            .args(["netns", "exec", &self.ns, "vtysh", "--vty_socket"])
            .arg(&self.dir)
            .args(["-c", cmd])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    fn logs(&self) -> String {
        ["zebra.log", "bgpd.log"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn state(&self) -> String {
        format!(
            "{}\n{}\n{}",
            self.vtysh("show bgp summary"),
            self.vtysh("show ip route"),
            self.logs()
        )
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        // bgpd before zebra; SIGTERM, so that each removes its state
        // directory under /var/tmp/frr (SIGKILL after 5 s).
        for d in self.daemons.iter_mut().rev() {
            let _ = lab::send_signal(d.id(), "TERM", "an FRR daemon");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(d.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

#[test]
fn frr_on_the_router_learns_a_peer_s_prefix_over_bgp_and_installs_it_as_a_nexthop_object() {
    require_root();
    let _g = serial();
    // As with BIRD: without FRR the test says so in one line; CI installs
    // frr and runs it.
    let zebra = format!("{FRR_SBIN}/zebra");
    if !lab::optional_tool(&zebra, "frr", "the BGP session with FRR") {
        return;
    }
    if !lab::optional_tool(
        "bird",
        "bird2",
        "the BGP session with FRR (BIRD is its peer)",
    ) {
        return;
    }
    let t = bgp_lab("ekrf");
    // The README's FRR protocols: bgpd writes `proto bgp` (186).
    let config = config_text("", "").replace(
        "protocols: [static, bgp, zebra, bird]",
        "protocols: [bgp, ospf, 196]",
    );
    assert!(config.contains("protocols: [bgp, ospf, 196]"));
    let mut live = Live::start(t, "ekrf", config, None);
    let dir = TempDir::new("e2ekr-frr", "ekrf");
    let mut peer = Bird::start(&live.t.srv, &dir, "peer", BIRD_PEER_CONF);
    let router = Frr::start(&live.t.rtr, &dir, FRR_CONF);
    let took = live.lookup_until("203.0.113.2", Duration::from_secs(60), |r| {
        r["source"] == "kernel" && r["protocol"] == "bgp" && r["paths"][0]["gateway"] == SERVER_IP
    });
    let kernel = |live: &Live| {
        live.t
            .lab
            .exec(&live.t.rtr, &["ip", "route", "show", "203.0.113.0/24"])
            .unwrap_or_default()
    };
    assert!(
        took.is_some(),
        "the peer's prefix did not reach the dataplane:\nrouter:\n{}\npeer:\n{}\nkernel: {}\nrouterd: {}",
        router.state(),
        peer.protocols(),
        kernel(&live),
        live.lookup("203.0.113.2")
    );
    eprintln!("BGP prefix in the dataplane {took:?} after FRR started");
    // zebra wrote it as a route through a nexthop object (`nhid`, RTA_NH_ID).
    let k = kernel(&live);
    assert!(
        k.contains("nhid ") && k.contains("proto bgp"),
        "zebra's route: {k}"
    );
    let nh = live
        .t
        .lab
        .exec(&live.t.rtr, &["ip", "nexthop", "show"])
        .unwrap_or_default();
    eprintln!("zebra's route: {}zebra's nexthops:\n{nh}", k);
    // What `routerctl route show` says of it (the README quotes it).
    let show = live.ctl(&["route", "show", "203.0.113.0/24"]);
    let show = String::from_utf8_lossy(&show.stdout).into_owned();
    assert!(
        show.contains("203.0.113.0/24 via 198.19.0.2 dev lan kernel proto bgp"),
        "route show: {show}"
    );
    assert_forwarded_to_peer(&live);

    // The peer stops: the session ends, zebra withdraws the route from
    // the kernel, routerd from the dataplane.
    peer.stop();
    assert_withdrawn(&live, || {
        format!("{}\nkernel: {}", router.state(), kernel(&live))
    });
    drop(router);
    live.stop();
}
