//! The router's own traffic end to end (root): client - router - server
//! namespaces, routerd in the router namespace with its host path (TUN),
//! ordinary Rust sockets as the router's services and clients.
//!
//! transit-router.yaml: transit forwarded untracked; ping to both router
//! addresses answered; a TCP service on port 22 reachable from both sides
//! and tracked (its entry listed at exit); a service on 8080 unreachable
//! and no entry left; TTL 1 answered with time exceeded from 198.18.0.1;
//! the router's own TCP connection and ping to the server work under
//! `input: policy drop`; an ICMP port unreachable about the router's own
//! UDP flow is RELATED and reaches the socket; the TUN and its kernel
//! routes are gone at exit.
//!
//! webserver.yaml: a web server on port 80 serves 50 client connections
//! and 10 from the server side with no connection entry for port 80, while
//! a connection to port 22 is tracked.
//!
//! Every traffic loop is bounded in count and time; namespaces go with the
//! topology, also when a test fails.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use control::run::stats::RouterStats;
use lab::{LabError, PingOptions, RouterdProc, Topology, SERVER_IP};

const WAN_ADDR: &str = "198.18.0.1";
const LAN_ADDR: &str = "198.19.0.1";

use lab::require_root;

fn config(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../configs/{name}"))
}

fn start(t: &Topology, config: &Path) -> RouterdProc {
    let routerd = Path::new(env!("CARGO_BIN_EXE_routerd"));
    RouterdProc::spawn_ready(routerd, &[], &t.rtr, config)
}

fn traffic(msg: impl Into<String>) -> LabError {
    LabError::Traffic(msg.into())
}

/// A TCP server in `ns` on `addr`: answers each connection's line with
/// `<tag> <line>`, until `stop` is set or `limit` passed; returns how many
/// connections it served.
fn serve(
    ns: &str,
    addr: &str,
    tag: &'static str,
    stop: Arc<AtomicBool>,
    limit: Duration,
) -> JoinHandle<Result<usize, LabError>> {
    let addr: SocketAddr = addr.parse().expect("address");
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

/// From `ns`, connects to `dst`, sends `line`, returns the answer.
fn request(ns: &str, dst: &str, line: &str, timeout: Duration) -> Result<String, LabError> {
    let dst: SocketAddr = dst.parse().expect("address");
    let line = line.to_string();
    lab::in_ns(ns, move || {
        let mut s = TcpStream::connect_timeout(&dst, timeout)
            .map_err(|e| traffic(format!("connect {dst}: {e}")))?;
        s.set_read_timeout(Some(timeout)).ok();
        s.write_all(format!("{line}\n").as_bytes())
            .map_err(|e| traffic(format!("send to {dst}: {e}")))?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)
            .map_err(|e| traffic(format!("read from {dst}: {e}")))?;
        Ok(answer.trim().to_string())
    })
    .join()
    .unwrap_or_else(|_| Err(traffic("client thread panicked")))
}

fn stop_server(stop: &AtomicBool, h: JoinHandle<Result<usize, LabError>>) -> usize {
    stop.store(true, Ordering::Relaxed);
    h.join().expect("server thread").expect("server")
}

/// From the router namespace: a connected UDP socket to a closed port on
/// the server; true when the server's ICMP port unreachable reached it.
fn router_udp_refused(t: &Topology) -> Result<bool, LabError> {
    lab::in_ns(&t.rtr, || {
        let s = UdpSocket::bind("0.0.0.0:0").map_err(|e| traffic(e.to_string()))?;
        s.connect(format!("{SERVER_IP}:9"))
            .map_err(|e| traffic(e.to_string()))?;
        s.set_read_timeout(Some(Duration::from_millis(500))).ok();
        let mut buf = [0u8; 64];
        for _ in 0..6 {
            let _ = s.send(b"anyone?");
            match s.recv(&mut buf) {
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => return Ok(true),
                _ => continue,
            }
        }
        Ok(false)
    })
    .join()
    .unwrap_or_else(|_| Err(traffic("UDP thread panicked")))
}

fn stop_routerd(r: &mut RouterdProc) -> RouterStats {
    let status = r.terminate(Duration::from_secs(10)).expect("routerd stops");
    assert!(
        status.success(),
        "routerd exit: {status}\n{}",
        r.log().join("\n")
    );
    let st = r.final_stats().expect("routerd's counters");
    eprintln!("{}", st.render());
    // Frames taken for the kernel's packets all went back or out.
    for w in &st.workers {
        assert!(
            w.census.balanced && w.census.held == 0 && w.census.tx == 0,
            "frames lost from the books: {:?}",
            w.census
        );
    }
    st
}

#[test]
fn transit_router_serves_its_own_traffic_statefully_and_forwards_transit_untracked() {
    require_root();
    let t = Topology::build("e2eh").expect("build the lab");
    let mut r = start(&t, &config("transit-router.yaml"));

    // The kernel has the router's addresses on the TUN, its routes via it.
    let addrs = t
        .lab
        .exec(&t.rtr, &["ip", "-4", "-o", "addr", "show", "dev", "rtr0"])
        .unwrap();
    assert!(
        addrs.contains("198.18.0.1/32") && addrs.contains("198.19.0.1/32"),
        "{addrs}"
    );
    let routes = t.lab.exec(&t.rtr, &["ip", "-4", "route"]).unwrap();
    assert!(routes.contains("default dev rtr0"), "{routes}");
    assert!(routes.contains("198.19.0.0/24 dev rtr0"), "{routes}");

    // Ping to the router, on the near and the far address, is answered by
    // the kernel through the host path.
    for dst in [WAN_ADDR, LAN_ADDR] {
        let p = t.ping(dst, 3).expect("ping");
        assert_eq!(p.received, 3, "ping {dst}:\n{}", p.text);
        assert!(p.ttls.iter().all(|&ttl| ttl == 64), "{}", p.text);
    }

    // Services: 22 is open in filter.input, 8080 is not.
    let stop = Arc::new(AtomicBool::new(false));
    let ssh = serve(
        &t.rtr,
        "0.0.0.0:22",
        "ssh",
        stop.clone(),
        Duration::from_secs(60),
    );
    let other = serve(
        &t.rtr,
        "0.0.0.0:8080",
        "web",
        stop.clone(),
        Duration::from_secs(60),
    );
    let got = request(
        &t.cli,
        "198.18.0.1:22",
        "from-client",
        Duration::from_secs(5),
    );
    assert_eq!(got.expect("ssh from the client"), "ssh from-client");
    let got = request(
        &t.srv,
        "198.19.0.1:22",
        "from-server",
        Duration::from_secs(5),
    );
    assert_eq!(got.expect("ssh from the server side"), "ssh from-server");
    let refused = request(&t.cli, "198.18.0.1:8080", "x", Duration::from_secs(2));
    assert!(refused.is_err(), "8080 must be unreachable: {refused:?}");

    // Transit: ping through (TTL one lower), TCP and UDP.
    let p = t.ping(SERVER_IP, 3).expect("ping");
    assert_eq!(p.received, 3, "{}", p.text);
    assert!(p.ttls.iter().all(|&ttl| ttl == 63), "{}", p.text);
    let tcp = lab::tcp_transfer(&t, 1 << 20, 5001, Duration::from_secs(30)).expect("TCP");
    assert!(tcp.verified && tcp.received == 1 << 20, "{tcp:?}");
    let udp = lab::udp_exchange(&t, 200, 256, 5002).expect("UDP");
    assert!(udp.received >= 190 && udp.corrupt == 0, "{udp:?}");

    // TTL 1 towards the server: time exceeded from the router's wan address.
    let p = lab::ping_in(
        &t.cli,
        SERVER_IP,
        &PingOptions {
            ttl: Some(1),
            ..PingOptions::count(1)
        },
    )
    .unwrap();
    assert!(
        p.errors
            .iter()
            .any(|e| e.from.to_string() == WAN_ADDR && e.describe() == "Time to live exceeded"),
        "{}",
        p.text
    );

    // The router's own connections under input policy drop: TCP to a
    // server, ping, and a RELATED port unreachable for its UDP.
    let srv_stop = Arc::new(AtomicBool::new(false));
    let srv = serve(
        &t.srv,
        "0.0.0.0:7000",
        "srv",
        srv_stop.clone(),
        Duration::from_secs(60),
    );
    let got = request(
        &t.rtr,
        "198.19.0.2:7000",
        "from-router",
        Duration::from_secs(5),
    );
    assert_eq!(got.expect("the router's TCP client"), "srv from-router");
    assert_eq!(stop_server(&srv_stop, srv), 1);
    let p = lab::ping_in(&t.rtr, SERVER_IP, &PingOptions::count(2)).unwrap();
    assert_eq!(p.received, 2, "router pings server:\n{}", p.text);
    assert!(
        router_udp_refused(&t).expect("UDP from the router"),
        "the server's port unreachable must reach the router's socket (RELATED)"
    );

    // SIGUSR1 logs the counters, ARP and host path included.
    r.signal("USR1").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !r.log().iter().any(|l| l.contains("host path (rtr0)")) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        r.log().iter().any(|l| l.contains("arp: replies sent")),
        "{:?}",
        r.log()
    );

    assert_eq!(stop_server(&stop, ssh), 2);
    assert_eq!(stop_server(&stop, other), 0);
    let st = stop_routerd(&mut r);

    // Tracked: exactly the router's own flows.
    let conns = &st.connections;
    let to_ssh = |src: &str, dst: &str| {
        conns.iter().any(|c| {
            c.protocol == "tcp" && c.src == src && c.dst == dst && c.dport == 22 && c.seen_reply
        })
    };
    assert!(
        to_ssh("198.18.0.2", WAN_ADDR),
        "client -> 22 tracked: {conns:#?}"
    );
    assert!(
        to_ssh(SERVER_IP, LAN_ADDR),
        "server -> 22 tracked: {conns:#?}"
    );
    assert!(
        conns
            .iter()
            .any(|c| c.src == LAN_ADDR && c.dport == 7000 && c.seen_reply),
        "the router's own connection tracked: {conns:#?}"
    );
    assert!(
        conns
            .iter()
            .any(|c| c.protocol == "udp" && c.src == LAN_ADDR && c.dport == 9),
        "the router's UDP flow tracked: {conns:#?}"
    );
    assert!(
        !conns.iter().any(|c| c.has_port(8080)),
        "a dropped NEW leaves no entry: {conns:#?}"
    );
    assert!(
        !conns.iter().any(|c| c.has_port(5001)
            || c.has_port(5002)
            || c.src == "198.18.0.2" && c.dst == SERVER_IP),
        "transit is untracked: {conns:#?}"
    );
    assert_eq!(st.conntrack_entries as usize, conns.len());
    assert!(st.untracked > 0 && st.tracked > 0, "{st:?}");
    assert!(
        st.drops.get("filter_policy").copied().unwrap_or(0) >= 1,
        "8080 SYNs: {st:?}"
    );
    assert!(st.icmp_errors_sent >= 1, "time exceeded: {st:?}");
    assert!(st.arp_replies_sent >= 1, "{st:?}");
    let host = st.host.as_ref().expect("host path stats");
    assert!(
        host.to_kernel_packets > 0 && host.from_kernel_packets > 0,
        "{host:?}"
    );
    assert!(host.drops.values().all(|&v| v == 0), "{host:?}");
    assert_eq!(st.drops.get("host_unavailable"), None, "{st:?}");

    // At exit the TUN is gone and the ports have their addresses back.
    let links = t.lab.exec(&t.rtr, &["ip", "link", "show"]).unwrap();
    assert!(!links.contains("rtr0"), "{links}");
    let routes = t.lab.exec(&t.rtr, &["ip", "-4", "route"]).unwrap();
    assert!(
        !routes.contains("rtr0") && routes.contains("198.18.0.0/24 dev r0"),
        "{routes}"
    );
}

#[test]
fn webserver_serves_many_clients_untracked_while_ssh_is_tracked() {
    require_root();
    let t = Topology::build("e2ew").expect("build the lab");
    let mut r = start(&t, &config("webserver.yaml"));

    let stop = Arc::new(AtomicBool::new(false));
    let web = serve(
        &t.rtr,
        "0.0.0.0:80",
        "web",
        stop.clone(),
        Duration::from_secs(120),
    );
    let ssh = serve(
        &t.rtr,
        "0.0.0.0:22",
        "ssh",
        stop.clone(),
        Duration::from_secs(120),
    );
    for i in 0..50 {
        let got = request(
            &t.cli,
            "198.18.0.1:80",
            &format!("GET /{i}"),
            Duration::from_secs(5),
        );
        assert_eq!(got.expect("web from the client"), format!("web GET /{i}"));
    }
    for i in 0..10 {
        let got = request(
            &t.srv,
            "198.19.0.1:80",
            &format!("GET /s{i}"),
            Duration::from_secs(5),
        );
        assert_eq!(
            got.expect("web from the server side"),
            format!("web GET /s{i}")
        );
    }
    let got = request(&t.cli, "198.18.0.1:22", "ssh", Duration::from_secs(5));
    assert_eq!(got.expect("ssh"), "ssh ssh");
    assert_eq!(stop_server(&stop, web), 60);
    assert_eq!(stop_server(&stop, ssh), 1);

    let st = stop_routerd(&mut r);
    let conns = &st.connections;
    assert!(
        !conns.iter().any(|c| c.has_port(80)),
        "port 80 is untracked: {conns:#?}"
    );
    assert!(
        conns
            .iter()
            .any(|c| c.protocol == "tcp" && c.dport == 22 && c.dst == WAN_ADDR && c.seen_reply),
        "ssh is tracked: {conns:#?}"
    );
    // 60 connections of at least 3 packets each way (SYN, data, ACK), none
    // tracked.
    assert!(st.untracked >= 360, "{st:?}");
    let web_in = st.drops.get("filter_policy").copied().unwrap_or(0);
    assert_eq!(web_in, 0, "nothing of it was dropped: {st:?}");
    let host = st.host.as_ref().expect("host path stats");
    assert!(
        host.to_kernel_packets >= 180 && host.from_kernel_packets >= 180,
        "{host:?}"
    );
}

#[test]
fn a_tun_name_taken_by_another_device_is_one_line_and_changes_nothing() {
    require_root();
    let t = Topology::build("e2et").expect("build the lab");
    t.lab
        .exec(
            &t.rtr,
            &[
                "ip", "link", "add", "rtr0", "type", "veth", "peer", "name", "rtr0p",
            ],
        )
        .expect("a veth device named rtr0");
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &t.rtr])
        .arg(env!("CARGO_BIN_EXE_routerd"))
        .arg("--config")
        .arg(config("transit-router.yaml"))
        .output()
        .expect("run routerd");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("routerd: ")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("cannot create TUN device rtr0") && lines[0].contains("host.tun"),
        "{}",
        lines[0]
    );
    // Nothing was taken: the ports keep their addresses, no XDP is left.
    let addrs = t
        .lab
        .exec(&t.rtr, &["ip", "-4", "-o", "addr", "show", "dev", "r0"])
        .unwrap();
    assert!(addrs.contains("198.18.0.1/24"), "{addrs}");
    assert!(t.router_xdp_gone_within(Duration::from_secs(2)).unwrap());
}
