//! `routerctl` against a live routerd (root): client - router - server
//! namespaces, routerd in the router namespace with its control socket in a
//! temporary directory of each test, traffic from the client's and server's
//! kernels.
//!
//! Checks: `stats --json` counts what the test sent (interfaces, untracked
//! transit, rules, drops by reason) and `--reset` zeroes it; `conntrack`
//! lists the SSH-like connection to the router and nothing of transit, and
//! `flush` empties it; ten reloads under a continuous sequenced UDP stream
//! lose no datagram and keep the connection table; a bad reload is refused
//! with `routerd --check`'s line and the old rules keep applying; SIGHUP
//! reloads; `trace` shows a NOTRACK transit packet and a tracked packet to
//! the router; the metrics listener serves Prometheus text.
//!
//! The tests run one at a time (a lock): the reload test measures loss and
//! shares two cores with the others. Every traffic loop is bounded in count
//! and time; namespaces and temporary files go also when a test fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lab::{LabError, RouterdProc, TempDir, Topology, CLIENT_IP, SERVER_IP};
use serde_json::Value;

const WAN_ADDR: &str = "198.18.0.1";
const SOCKET_LINE: &str = "socket: /run/afxdp-router/routerd.sock";

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

use lab::require_root;

fn traffic(msg: impl Into<String>) -> LabError {
    LabError::Traffic(msg.into())
}

fn transit_text() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/transit-router.yaml");
    let text = std::fs::read_to_string(p).expect("read the transit config");
    assert!(text.contains(SOCKET_LINE), "the transit config changed");
    text
}

/// A routerd under test. Fields drop in order: routerd stops, then the
/// namespaces go, then the temporary directory.
struct Live {
    r: RouterdProc,
    t: Topology,
    dir: TempDir,
    socket: PathBuf,
}

impl Live {
    /// The transit config, written to the test's directory after `edit`;
    /// routerd serves its socket at `--socket` in that directory.
    fn start(tag: &str, edit: impl FnOnce(String) -> String) -> Live {
        let dir = TempDir::new("e2ectl", tag);
        let config = dir.path("router.yaml");
        std::fs::write(&config, edit(transit_text())).expect("write the config");
        let socket = dir.path("routerd.sock");
        let t = Topology::build(tag).expect("build the lab");
        let routerd = Path::new(env!("CARGO_BIN_EXE_routerd"));
        let sock = socket.to_str().expect("utf-8 path");
        let r = RouterdProc::spawn_ready(routerd, &["--socket", sock], &t.rtr, &config);
        Live { r, t, dir, socket }
    }

    fn ctl(&self, args: &[&str]) -> Output {
        routerctl(&self.socket, args)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "routerctl {args:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
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

    fn stop(&mut self) {
        let st = self.r.terminate(Duration::from_secs(10)).expect("stops");
        assert!(
            st.success(),
            "routerd exit: {st}\n{}",
            self.r.log().join("\n")
        );
        assert!(
            !self.socket.exists(),
            "the control socket is removed at exit"
        );
    }
}

fn routerctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_routerctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run routerctl")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// The rule with this comment in `stats --json`.
fn rule<'a>(s: &'a Value, comment: &str) -> &'a Value {
    s["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| r["comment"] == comment)
        .unwrap_or_else(|| panic!("no rule {comment:?} in {}", s["rules"]))
}

/// `count` datagrams from the client to the server's `port`, paced; how
/// many arrived.
fn udp_transit(t: &Topology, count: u32, port: u16) -> u32 {
    let r = lab::udp_exchange(t, count, 128, port).expect("UDP through routerd");
    assert_eq!(r.corrupt, 0, "{r:?}");
    r.received
}

/// A socket made inside namespace `ns` (it stays there when used elsewhere).
fn in_ns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> Result<T, LabError> + Send + 'static,
) -> T {
    lab::in_ns(ns, f)
        .join()
        .expect("namespace thread")
        .expect("socket in the namespace")
}

/// An SSH-like session to the router: a TCP echo service on port 22 in the
/// router namespace (one connection, ends after 30 s without a line) and
/// the client's connection to it.
struct Session {
    client: BufReader<TcpStream>,
}

impl Session {
    fn open(t: &Topology) -> Session {
        let l = in_ns(&t.rtr, || {
            TcpListener::bind("0.0.0.0:22").map_err(|e| traffic(format!("bind 22: {e}")))
        });
        // Not joined: after `conntrack flush` the connection's end need not
        // reach the server (it waited out its timeout here); it ends by itself.
        std::thread::spawn(move || {
            let Ok((s, _)) = l.accept() else { return };
            s.set_read_timeout(Some(Duration::from_secs(30))).ok();
            let mut w = s.try_clone().expect("clone");
            for line in BufReader::new(s).lines() {
                let Ok(line) = line else { return };
                if w.write_all(format!("{line}\n").as_bytes()).is_err() {
                    return;
                }
            }
        });
        let dst: SocketAddr = format!("{WAN_ADDR}:22").parse().unwrap();
        let c = in_ns(&t.cli, move || {
            TcpStream::connect_timeout(&dst, Duration::from_secs(5))
                .map_err(|e| traffic(format!("connect {dst}: {e}")))
        });
        c.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let mut s = Session {
            client: BufReader::new(c),
        };
        assert_eq!(s.echo("hello"), "hello");
        s
    }

    fn echo(&mut self, line: &str) -> String {
        self.client
            .get_mut()
            .write_all(format!("{line}\n").as_bytes())
            .expect("send on the session");
        let mut got = String::new();
        self.client.read_line(&mut got).expect("echo");
        got.trim_end().to_string()
    }

    fn sport(&self) -> u16 {
        self.client.get_ref().local_addr().unwrap().port()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.client.get_ref().shutdown(std::net::Shutdown::Both);
    }
}

#[test]
fn stats_count_what_was_sent_and_reset_zeroes_them() {
    require_root();
    let _g = serial();
    let mut live = Live::start("ectls", |t| t);
    let t = &live.t;

    let p = t.ping(SERVER_IP, 5).expect("ping through");
    assert_eq!(p.received, 5, "{}", p.text);
    let p = t.ping(WAN_ADDR, 3).expect("ping the router");
    assert_eq!(p.received, 3, "{}", p.text);
    let sent = 400;
    let got = udp_transit(t, sent, 5002);
    assert!(got >= sent - 5, "UDP through routerd: {got} of {sent}");
    // A telnet attempt: dropped by the forward rule.
    let dst: SocketAddr = format!("{SERVER_IP}:23").parse().unwrap();
    let telnet = lab::in_ns(&t.cli, move || {
        Ok(TcpStream::connect_timeout(&dst, Duration::from_millis(300)).is_err())
    });
    assert!(telnet.join().unwrap().unwrap(), "telnet must not connect");

    let transit = u64::from(sent) + 5;
    let s = live.stats_when(Duration::from_secs(3), |s| {
        u(&s["interfaces"]["wan"]["rx_packets"]) >= transit + 3
            && u(&s["rules"].as_array().unwrap()[1]["packets"]) >= transit
    });
    eprintln!("{}", serde_json::to_string_pretty(&s).unwrap());
    let wan = &s["interfaces"]["wan"];
    let lan = &s["interfaces"]["lan"];
    // wan: the transit datagrams and echo requests, the pings to the router.
    assert!(u(&wan["rx_packets"]) >= transit + 3, "{wan}");
    assert!(u(&wan["rx_bytes"]) >= u64::from(sent) * (128 + 42), "{wan}");
    assert!(u(&wan["tx_packets"]) >= 5 + 3, "echo replies: {wan}");
    // lan: what went through, and the echo replies coming back.
    assert!(u(&lan["tx_packets"]) >= u64::from(got) + 5, "{lan}");
    assert!(u(&lan["rx_packets"]) >= 5, "{lan}");
    assert!(s["interfaces"]["host"]["tx_packets"].as_u64().unwrap() >= 3);
    // Transit is untracked (both directions of the ping too); the pings to
    // the router are tracked.
    let ct = &s["conntrack"];
    assert!(u(&ct["untracked_packets"]) >= transit + 5, "{ct}");
    assert!(u(&ct["tracked_packets"]) >= 3, "{ct}");
    assert!(u(&ct["entries"]) >= 1, "the ping to the router: {ct}");
    assert_eq!(ct["by_protocol"]["icmp"].as_u64(), Some(u(&ct["entries"])));
    assert!(u(&rule(&s, "transit is untracked")["packets"]) >= transit + 5);
    // The first echo request is NEW (rule `ping`), the next two ESTABLISHED.
    assert!(u(&rule(&s, "ping")["packets"]) >= 1);
    assert!(u(&rule(&s, "replies to the router's own connections")["packets"]) >= 2);
    assert!(u(&rule(&s, "no telnet from outside")["packets"]) >= 1);
    // Every drop reason by name, zeros included.
    let drops = s["drops"].as_object().expect("drops");
    for reason in [
        "ip_bad_checksum",
        "route_no_route",
        "filter_policy",
        "filter_denied",
    ] {
        assert!(drops.contains_key(reason), "{reason} missing: {drops:?}");
    }
    assert!(u(&drops["filter_denied"]) >= 1, "the telnet SYN: {drops:?}");
    let w = &s["workers"][0];
    assert!(u(&w["loops"]) > 0 && u(&w["busy_loops"]) > 0, "{w}");
    assert_eq!(w["core"], 1);
    for ifc in ["wan", "lan"] {
        let a = &s["afxdp"][ifc];
        assert!(
            a["fill_ring_empty"].is_u64() && a["tx_ring_full"].is_u64(),
            "{a}"
        );
        assert!(u(&a["tx_kicks"]) > 0, "{a}");
    }

    let txt = live.ok(&["stats"]);
    eprintln!("{txt}");
    assert!(
        txt.contains("wan") && txt.contains("transit is untracked"),
        "{txt}"
    );

    assert_eq!(live.ok(&["stats", "--reset"]).trim(), "counters reset");
    let s = live.stats();
    assert!(
        u(&s["interfaces"]["wan"]["rx_packets"]) < 10,
        "{}",
        s["interfaces"]
    );
    assert!(
        u(&s["conntrack"]["untracked_packets"]) < 10,
        "{}",
        s["conntrack"]
    );
    assert!(u(&rule(&s, "transit is untracked")["packets"]) < 10);
    assert!(u(&s["workers"][0]["loops"]) < u(&w["loops"]));
    // Counting goes on after a reset.
    let p = t.ping(SERVER_IP, 2).expect("ping");
    assert_eq!(p.received, 2);
    let s = live.stats_when(Duration::from_secs(3), |s| {
        u(&s["conntrack"]["untracked_packets"]) >= 4
    });
    assert!(
        u(&s["conntrack"]["untracked_packets"]) >= 4,
        "{}",
        s["conntrack"]
    );
    live.stop();
}

#[test]
fn conntrack_lists_the_router_s_own_connection_not_transit_and_flush_empties_it() {
    require_root();
    let _g = serial();
    let mut live = Live::start("ectlc", |t| t);
    let t = &live.t;
    let ssh = Session::open(t);
    let sport = ssh.sport();
    assert!(udp_transit(t, 50, 5003) >= 45);
    let p = t.ping(SERVER_IP, 2).expect("ping through");
    assert_eq!(p.received, 2, "{}", p.text);

    let flows = live.conntrack();
    eprintln!("{}", serde_json::to_string_pretty(&flows).unwrap());
    let f = flows
        .iter()
        .find(|f| f["protocol"] == "tcp" && f["dport"] == 22)
        .unwrap_or_else(|| panic!("no SSH entry: {flows:?}"));
    assert_eq!(f["src"], CLIENT_IP);
    assert_eq!(f["dst"], WAN_ADDR);
    assert_eq!(f["sport"], sport);
    assert_eq!(f["state"], "ESTABLISHED");
    // netfilter's tcp_established: 5 days.
    let timeout = u(&f["timeout"]);
    assert!(timeout > 431_000 && timeout <= 432_000, "{f}");
    assert!(
        u(&f["orig_packets"]) >= 3 && u(&f["reply_packets"]) >= 2,
        "{f}"
    );
    assert_eq!(f["reply"]["src"], WAN_ADDR);
    assert_eq!(f["reply"]["dport"], sport);
    // Transit has no entry: every flow has the router at one end.
    for f in &flows {
        let ends = [f["src"].as_str().unwrap(), f["dst"].as_str().unwrap()];
        assert!(
            ends.contains(&WAN_ADDR) || ends.contains(&"198.19.0.1"),
            "a transit entry: {f}"
        );
    }

    let txt = live.ctl(&["conntrack"]);
    let out = text(&txt.stdout);
    eprintln!("{out}{}", text(&txt.stderr));
    assert!(
        out.lines().any(|l| l.starts_with("tcp")
            && l.contains("ESTABLISHED")
            && l.contains(&format!("sport={sport}"))
            && l.contains("dport=22")),
        "{out}"
    );
    assert!(text(&txt.stderr).contains("flow entries have been shown"));

    let flushed: Value =
        serde_json::from_str(&live.ok(&["conntrack", "flush", "--json"])).expect("JSON");
    assert!(u(&flushed["flushed"]) >= 1, "{flushed}");
    assert_eq!(live.conntrack(), Vec::<Value>::new(), "the table is empty");
    let s = live.stats();
    assert_eq!(s["conntrack"]["entries"], 0, "{}", s["conntrack"]);
    drop(ssh);
    live.stop();
}

/// What a sequenced UDP stream delivered.
#[derive(Debug)]
struct Stream {
    sent: u64,
    received: u64,
    missing: Vec<u64>,
    duplicates: u64,
}

/// A UDP stream client -> server:`port`, one datagram of 64 bytes every
/// 200 us (in bursts of 10 every 2 ms), each with its sequence number,
/// until `stop` is set (or 60 s, or 200 000 datagrams).
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
    let done = Arc::new(AtomicBool::new(false));
    let done2 = done.clone();
    let receiver = std::thread::spawn(move || {
        let mut seen: Vec<bool> = Vec::new();
        let mut duplicates = 0;
        let mut buf = [0u8; 256];
        let mut quiet_since = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            match rx.recv(&mut buf) {
                Ok(n) if n >= 8 => {
                    let seq = u64::from_le_bytes(buf[..8].try_into().unwrap()) as usize;
                    if seq >= seen.len() {
                        seen.resize(seq + 1, false);
                    }
                    duplicates += u64::from(seen[seq]);
                    seen[seq] = true;
                    quiet_since = Instant::now();
                }
                _ => {
                    // A second of silence after the sender ended: all in.
                    if done2.load(Ordering::Acquire)
                        && quiet_since.elapsed() > Duration::from_secs(1)
                    {
                        break;
                    }
                }
            }
        }
        (seen, duplicates)
    });
    std::thread::spawn(move || {
        let mut buf = [0x5au8; 64];
        let start = Instant::now();
        let mut sent = 0u64;
        while !stop.load(Ordering::Relaxed)
            && sent < 200_000
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
        let (mut seen, duplicates) = receiver.join().expect("receiver");
        seen.resize(sent as usize, false);
        let missing: Vec<u64> = (0..sent).filter(|&i| !seen[i as usize]).collect();
        Stream {
            sent,
            received: sent - missing.len() as u64,
            missing,
            duplicates,
        }
    })
}

#[test]
fn ten_reloads_under_a_continuous_stream_lose_no_datagram_and_keep_the_connections() {
    require_root();
    let _g = serial();
    let mut live = Live::start("ectlr", |t| t);
    let a = live.dir.path("router.yaml");
    let b = live.dir.path("b.yaml");
    // Same forwarding, another comment and an unrelated rule.
    let b_text = std::fs::read_to_string(&a)
        .unwrap()
        .replace("comment: transit is untracked", "comment: transit is untracked (b)")
        .replace(
            "  output:\n    policy: accept",
            "  output:\n    policy: accept\n    rules:\n      - match: { protocol: tcp, destination_port: 6666 }\n        action: drop\n        comment: unrelated",
        );
    std::fs::write(&b, b_text).unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_routerd"))
        .arg("--check")
        .arg(&b)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", text(&check.stderr));

    let t = &live.t;
    let mut ssh = Session::open(t);

    // Control run: the untouched router loses nothing at this pace.
    let stop = Arc::new(AtomicBool::new(false));
    let h = udp_stream(t, 6001, stop.clone());
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let control = h.join().unwrap();
    eprintln!(
        "control run: {} sent, {} received",
        control.sent, control.received
    );
    assert!(control.sent > 1000, "{control:?}");
    assert!(control.missing.is_empty(), "control run lost: {control:?}");

    let stop = Arc::new(AtomicBool::new(false));
    let h = udp_stream(t, 6002, stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..10 {
        let (file, comment) = if i % 2 == 0 {
            (&b, "transit is untracked (b)")
        } else {
            (&a, "transit is untracked")
        };
        let out = live.ok(&["reload", file.to_str().unwrap()]);
        if i == 0 {
            eprintln!("{out}");
        }
        assert!(out.contains("reloaded"), "{out}");
        assert!(out.contains("connection entries kept"), "{out}");
        let s = live.stats();
        let raw2 = &s["rules"][1];
        assert_eq!(raw2["comment"], comment, "reload {i}: {raw2}");
        std::thread::sleep(Duration::from_millis(150));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let run = h.join().unwrap();
    eprintln!(
        "across ten reloads: {} sent, {} received",
        run.sent, run.received
    );
    assert!(run.sent > 3000, "{run:?}");
    assert!(
        run.missing.is_empty() && run.duplicates == 0,
        "datagrams lost across reloads: {} of {} (first {:?})",
        run.missing.len(),
        run.sent,
        &run.missing[..run.missing.len().min(20)]
    );

    // The connection table survived every swap: the session is listed and
    // still works.
    let flows = live.conntrack();
    assert!(
        flows
            .iter()
            .any(|f| f["dport"] == 22 && f["sport"] == ssh.sport() && f["state"] == "ESTABLISHED"),
        "{flows:?}"
    );
    assert_eq!(ssh.echo("still here"), "still here");
    let log = live.r.log();
    assert_eq!(
        log.iter().filter(|l| l.contains("reloaded ")).count(),
        10,
        "{log:?}"
    );
    drop(ssh);
    live.stop();
}

#[test]
fn a_bad_reload_is_refused_with_the_check_line_and_the_old_rules_keep_working() {
    require_root();
    let _g = serial();
    let mut live = Live::start("ectlb", |t| t);
    let bad = live.dir.path("bad.yaml");
    std::fs::write(
        &bad,
        transit_text().replace("action: notrack ", "action: notrak "),
    )
    .unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_routerd"))
        .arg("--check")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(1));
    let want = text(&check.stderr).trim_end().to_string();
    assert!(
        want.starts_with(&format!(
            "{}:57:15: raw.prerouting[1].action:",
            bad.display()
        )),
        "{want}"
    );

    let out = live.ctl(&["reload", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr).trim_end(),
        want,
        "the same line as --check"
    );

    // A valid config that cannot be applied live is refused too.
    let two = live.dir.path("two.yaml");
    std::fs::write(
        &two,
        transit_text().replace("workers: [1]", "workers: [0, 1]"),
    )
    .unwrap();
    let out = live.ctl(&["reload", two.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let line = text(&out.stderr);
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.contains("dataplane.workers: [1] -> [0, 1] cannot change while routerd runs")
            && line.contains("restart routerd"),
        "{line}"
    );

    // The old config keeps running: transit flows, telnet is still dropped
    // by its forward rule.
    let t = &live.t;
    assert!(udp_transit(t, 100, 5004) >= 95);
    let before = u(&rule(&live.stats(), "no telnet from outside")["packets"]);
    let dst: SocketAddr = format!("{SERVER_IP}:23").parse().unwrap();
    let refused = lab::in_ns(&t.cli, move || {
        Ok(TcpStream::connect_timeout(&dst, Duration::from_millis(500)).is_err())
    });
    assert!(refused.join().unwrap().unwrap());
    let s = live.stats_when(Duration::from_secs(3), |s| {
        u(&rule(s, "no telnet from outside")["packets"]) > before
    });
    assert!(u(&rule(&s, "no telnet from outside")["packets"]) > before);

    // SIGHUP reloads the file routerd was started with: change a comment
    // in it, and the running rules say so.
    let cfg = live.dir.path("router.yaml");
    let text_b = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("comment: ping", "comment: ping (after SIGHUP)");
    std::fs::write(&cfg, text_b).unwrap();
    live.r.signal("HUP").unwrap();
    let s = live.stats_when(Duration::from_secs(5), |s| {
        s["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["comment"] == "ping (after SIGHUP)")
    });
    rule(&s, "ping (after SIGHUP)");
    // A broken file at SIGHUP is logged and changes nothing.
    std::fs::write(
        &cfg,
        transit_text().replace("action: notrack ", "action: notrak "),
    )
    .unwrap();
    live.r.signal("HUP").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !live.r.log().iter().any(|l| l.contains("reload refused")) {
        assert!(Instant::now() < deadline, "{:?}", live.r.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    rule(&live.stats(), "ping (after SIGHUP)");
    let p = t.ping(SERVER_IP, 2).expect("ping");
    assert_eq!(p.received, 2, "{}", p.text);
    live.stop();
}

/// Runs `routerctl trace ARGS` while `poke` sends a packet every 100 ms;
/// the trace's output (bounded: 15 s).
fn trace_while(live: &Live, args: &[&str], poke: impl Fn()) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_routerctl"))
        .arg("--socket")
        .arg(&live.socket)
        .arg("trace")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("routerctl trace");
    let deadline = Instant::now() + Duration::from_secs(15);
    // Let the trace arm before the first packet.
    std::thread::sleep(Duration::from_millis(300));
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            break;
        }
        poke();
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("trace output");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn trace_shows_a_notrack_transit_packet_and_a_tracked_packet_to_the_router() {
    require_root();
    let _g = serial();
    let mut live = Live::start("ectlt", |t| t);
    let t = &live.t;
    let dst: SocketAddr = format!("{SERVER_IP}:5005").parse().unwrap();
    let udp = in_ns(&t.cli, move || {
        let s = UdpSocket::bind("0.0.0.0:40005").map_err(|e| traffic(e.to_string()))?;
        s.connect(dst).map_err(|e| traffic(e.to_string()))?;
        Ok(s)
    });

    let out = trace_while(
        &live,
        &["--count", "2", "--in", "wan", "udp", "dport", "5005"],
        || {
            let _ = udp.send(b"traced");
        },
    );
    eprintln!("{out}");
    let first: Vec<&str> = out.split("\n\n").next().unwrap().lines().collect();
    assert_eq!(
        first[0],
        format!("packet 1: in=wan udp {CLIENT_IP}:40005 > {SERVER_IP}:5005 ttl=64")
    );
    let has = |stage: &str, words: &str| {
        first
            .iter()
            .any(|l| l.trim_start().starts_with(stage) && l.contains(words))
    };
    assert!(has(
        "raw/prerouting",
        "rule 2 (transit is untracked): notrack -> untracked"
    ));
    assert!(has("conntrack", "untracked"));
    assert!(has("filter/forward", "policy: accept"));
    assert!(has("neighbour", "198.19.0.2 on lan (static)"));
    assert!(has("result", "accept -> out lan (ttl 63)"));
    assert!(out.contains("packet 2: in=wan udp"), "{out}");

    // A ping to the router (a new echo id each time): tracked, input
    // chain, to the host; its first request NEW, the second ESTABLISHED.
    let cli = t.cli.clone();
    let out = trace_while(
        &live,
        &["--count", "2", "--json", "icmp", "dst", WAN_ADDR],
        || {
            let opts = lab::PingOptions {
                wait: Duration::from_secs(1),
                ..lab::PingOptions::count(2)
            };
            let _ = lab::ping_in(&cli, WAN_ADDR, &opts);
        },
    );
    eprintln!("{out}");
    let pkts: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(pkts.len(), 2, "{out}");
    for p in &pkts {
        assert!(
            p["packet"].as_str().unwrap().starts_with(&format!(
                "in=wan icmp {CLIENT_IP} > {WAN_ADDR} type=echo-request"
            )),
            "{p}"
        );
        assert_eq!(p["raw_action"], "accept", "{p}");
        assert_eq!(p["raw_comment"], "host traffic is tracked", "{p}");
        assert_eq!(p["chain"], "input", "{p}");
        assert_eq!(p["verdict"], "accept", "{p}");
        assert_eq!(p["out"], "host", "{p}");
    }
    assert_eq!(pkts[0]["ct_state"], "new", "{out}");
    assert_eq!(pkts[0]["rule_comment"], "ping", "{out}");
    assert_eq!(pkts[0]["ct_confirmed"], true, "{out}");
    assert_eq!(pkts[1]["ct_state"], "established", "{out}");
    assert_eq!(
        pkts[1]["rule_comment"], "replies to the router's own connections",
        "{out}"
    );

    let bad = live.ctl(&["trace", "--in", "dmz"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("--in dmz: not an interface"));
    live.stop();
}

/// `GET /metrics` from inside the router namespace.
fn scrape(t: &Topology, port: u16) -> String {
    in_ns(&t.rtr, move || {
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .map_err(|e| traffic(format!("connect to metrics: {e}")))?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .map_err(|e| traffic(e.to_string()))?;
        let mut body = String::new();
        s.read_to_string(&mut body)
            .map_err(|e| traffic(e.to_string()))?;
        Ok(body)
    })
}

fn metric(body: &str, name: &str) -> Option<u64> {
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_are_served_in_the_router_namespace_with_prometheus_names() {
    require_root();
    let _g = serial();
    const PORT: u16 = 9477;
    let mut live = Live::start("ectlm", |t| {
        format!("{t}\nmetrics:\n  listen: \"127.0.0.1:{PORT}\"\n")
    });
    let t = &live.t;
    let p = t.ping(SERVER_IP, 3).expect("ping");
    assert_eq!(p.received, 3, "{}", p.text);
    assert!(udp_transit(t, 50, 5006) >= 45);
    std::thread::sleep(Duration::from_millis(300));

    let body = scrape(t, PORT);
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(
        body.contains("Content-Type: text/plain; version=0.0.4"),
        "{body}"
    );
    eprintln!("{body}");
    for (name, least) in [
        ("afxdp_router_rx_packets_total{interface=\"wan\"}", 53),
        ("afxdp_router_tx_packets_total{interface=\"lan\"}", 48),
        ("afxdp_router_rx_packets_total{interface=\"lan\"}", 3),
        ("afxdp_router_rx_bytes_total{interface=\"wan\"}", 53 * 60),
    ] {
        let v = metric(&body, name).unwrap_or_else(|| panic!("{name} missing"));
        assert!(v >= least, "{name} = {v}, expected at least {least}");
    }
    assert!(body.contains("# TYPE afxdp_router_rx_packets_total counter"));
    assert!(metric(&body, "afxdp_router_drops_total{reason=\"filter_policy\"}").is_some());
    assert!(body.contains("afxdp_router_rule_packets_total{table=\"raw\",chain=\"prerouting\""));
    live.stop();
}
