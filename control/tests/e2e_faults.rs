//! Faults while routerd runs (root, namespaces of their own):
//!
//! - a port's link goes down for a second and up again while UDP flows
//!   through: forwarding resumes and routerd keeps running;
//! - a port's device is deleted: routerd logs `port lan (r1) is gone`,
//!   detaches from the other port, gives the kernel its addresses back and
//!   exits with status 1 and that line (see `control/src/run/watch.rs` for
//!   why it stops); a restart says `no such device r1` until the device is
//!   back, then forwards again.
//!
//! SIGKILL (nothing left attached, a restart works) is covered by
//! `e2e_forwarding.rs`:
//! `after_sigkill_no_xdp_program_is_left_and_a_new_routerd_works`.

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use lab::{LabError, RouterdProc, Topology, SERVER_IP, SERVER_MAC};

use lab::require_root;

fn routerd() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_routerd"))
}

fn transit_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/transit-router.yaml")
}

fn start(t: &Topology) -> RouterdProc {
    RouterdProc::spawn_ready(routerd(), &[], &t.rtr, &transit_config())
}

/// Whether process `pid` is alive (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(s) => s
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// What a paced UDP stream delivered: the sequence numbers that arrived.
struct Stream {
    sent: u64,
    got: BTreeSet<u64>,
}

/// Sends one datagram every `gap` for `secs` from the client to the server;
/// `seq` shows the next sequence number while it runs.
fn paced_stream(
    t: &Topology,
    port: u16,
    secs: f64,
    gap: Duration,
    seq: Arc<AtomicU64>,
) -> std::thread::JoinHandle<Result<Stream, LabError>> {
    let addr: SocketAddr = format!("{SERVER_IP}:{port}").parse().unwrap();
    let (ready_tx, ready_rx) = mpsc::channel();
    let done = Arc::new(AtomicBool::new(false));
    let done2 = done.clone();
    let server = lab::in_ns(&t.srv, move || {
        let s = UdpSocket::bind(addr).map_err(|e| LabError::Traffic(e.to_string()))?;
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let _ = ready_tx.send(());
        let mut got = BTreeSet::new();
        let mut buf = [0u8; 2048];
        let deadline = Instant::now() + Duration::from_secs_f64(secs + 10.0);
        let mut quiet_since: Option<Instant> = None;
        while Instant::now() < deadline {
            match s.recv(&mut buf) {
                Ok(n) if n >= 8 => {
                    got.insert(u64::from_le_bytes(buf[..8].try_into().unwrap()));
                    quiet_since = None;
                }
                _ => {
                    if done2.load(Ordering::Relaxed) {
                        // Late arrivals (queued while the link was down) get 1 s.
                        let q = *quiet_since.get_or_insert_with(Instant::now);
                        if q.elapsed() > Duration::from_secs(1) {
                            break;
                        }
                    }
                }
            }
        }
        Ok(got)
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("UDP server ready");
    let client = lab::in_ns(&t.cli, move || {
        let s = UdpSocket::bind("0.0.0.0:0").map_err(|e| LabError::Traffic(e.to_string()))?;
        s.connect(addr)
            .map_err(|e| LabError::Traffic(e.to_string()))?;
        let start = Instant::now();
        let mut buf = [0x42u8; 200];
        let mut n = 0u64;
        while start.elapsed().as_secs_f64() < secs {
            buf[..8].copy_from_slice(&n.to_le_bytes());
            // A send may fail while the client's own link is down: no matter.
            let _ = s.send(&buf);
            n += 1;
            seq.store(n, Ordering::Relaxed);
            std::thread::sleep(gap);
        }
        Ok(n)
    });
    std::thread::spawn(move || {
        let sent = client.join().expect("client thread");
        done.store(true, Ordering::Relaxed);
        let got = server.join().expect("server thread")?;
        Ok(Stream { sent: sent?, got })
    })
}

#[test]
fn a_port_link_down_and_up_while_udp_flows_forwarding_resumes() {
    require_root();
    let t = Topology::build("e2eL").expect("build the lab");
    let mut r = start(&t);
    let p = t.ping(SERVER_IP, 2).expect("ping");
    assert_eq!(p.received, 2, "{}", p.text);

    let seq = Arc::new(AtomicU64::new(0));
    let stream = paced_stream(&t, 6001, 5.0, Duration::from_millis(2), seq.clone());
    std::thread::sleep(Duration::from_millis(1500));
    let before_down = seq.load(Ordering::Relaxed);
    t.lab
        .exec(&t.rtr, &["ip", "link", "set", "r1", "down"])
        .expect("link down");
    std::thread::sleep(Duration::from_secs(1));
    t.lab
        .exec(&t.rtr, &["ip", "link", "set", "r1", "up"])
        .expect("link up");
    let at_up = seq.load(Ordering::Relaxed);
    let s = stream.join().expect("stream thread").expect("stream");

    // Before the flap and from half a second after it, what was sent arrives.
    let settled = at_up + 250;
    let sent_after = s.sent.saturating_sub(settled);
    let got_after = s.got.range(settled..).count() as u64;
    let got_before = s.got.range(..before_down).count() as u64;
    eprintln!(
        "sent {}, received {}; before the flap {got_before}/{before_down}; \
         from 0.5 s after link up {got_after}/{sent_after}",
        s.sent,
        s.got.len()
    );
    assert!(sent_after >= 500, "the stream ended too early: {}", s.sent);
    assert!(
        got_before * 100 >= before_down * 95,
        "lost before the flap: {got_before}/{before_down}"
    );
    assert!(
        got_after * 100 >= sent_after * 95,
        "forwarding did not resume after the link came back: {got_after}/{sent_after}\n{}",
        r.log().join("\n")
    );
    assert!(alive(r.pid()), "routerd died:\n{}", r.log().join("\n"));
    let p = t.ping(SERVER_IP, 3).expect("ping");
    assert_eq!(p.received, 3, "{}", p.text);

    let st = r.terminate(Duration::from_secs(10)).expect("stops");
    assert!(st.success(), "{st}\n{}", r.log().join("\n"));
    let stats = r.final_stats().expect("counters");
    eprintln!("{}", stats.render());
    for w in &stats.workers {
        assert!(w.census.balanced && w.census.held == 0, "{:?}", w.census);
    }
}

/// Runs routerd to completion in `ns`; (exit code, stderr).
fn run_routerd(ns: &str) -> (Option<i32>, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(routerd())
        .arg("--config")
        .arg(transit_config())
        .output()
        .expect("run routerd");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_deleted_port_device_stops_routerd_with_one_clear_line() {
    require_root();
    let t = Topology::build("e2eD").expect("build the lab");
    let mut r = start(&t);
    let p = t.ping(SERVER_IP, 2).expect("ping");
    assert_eq!(p.received, 2, "{}", p.text);

    // Deleting r1 takes its veth peer srv0 with it.
    t.lab
        .exec(&t.rtr, &["ip", "link", "del", "r1"])
        .expect("delete r1");
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(r.pid()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !alive(r.pid()),
        "routerd still runs 10 s after its port was deleted:\n{}",
        r.log().join("\n")
    );
    let status = r.terminate(Duration::from_secs(1)).expect("reaped");
    let log = r.log();
    let text = log.join("\n");
    assert_eq!(status.code(), Some(1), "{text}");
    let want = "port lan (r1) is gone: the device was deleted while routerd ran";
    assert!(
        log.iter().any(|l| l.contains("ERROR") && l.contains(want)),
        "no log line {want:?}:\n{text}"
    );
    let last = log
        .iter()
        .filter(|l| l.starts_with("routerd: "))
        .collect::<Vec<_>>();
    assert_eq!(last.len(), 1, "{text}");
    assert!(last[0].contains(want), "{text}");

    // It stopped cleanly on the port that is left: XDP off r0, its kernel
    // address back, counters written with the frame books balanced.
    assert!(
        t.router_xdp_gone_within(Duration::from_secs(2)).unwrap(),
        "XDP left on r0"
    );
    let addrs = t
        .lab
        .exec(&t.rtr, &["ip", "-4", "-o", "addr", "show", "dev", "r0"])
        .unwrap();
    assert!(addrs.contains("198.18.0.1/24"), "{addrs}");
    let st = r.final_stats().expect("counters written at exit");
    for w in &st.workers {
        assert!(w.census.balanced, "{:?}", w.census);
    }

    // A restart is refused, in one line, until the device is back.
    let (code, err) = run_routerd(&t.rtr);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("routerd: no such device r1: create it or fix interfaces[].device"),
        "{err}"
    );

    // Put r1 back (a new veth to the server) and routerd forwards again.
    let (rtr, srv) = (t.rtr.as_str(), t.srv.as_str());
    for cmd in [
        vec![
            "ip", "-n", rtr, "link", "add", "r1", "type", "veth", "peer", "name", "srv0", "netns",
            srv,
        ],
        vec![
            "ip", "-n", srv, "link", "set", "srv0", "address", SERVER_MAC,
        ],
        vec!["ip", "-n", srv, "link", "set", "srv0", "up"],
        vec!["ip", "-n", rtr, "link", "set", "r1", "up"],
        vec![
            "ip",
            "-n",
            srv,
            "addr",
            "add",
            "198.19.0.2/24",
            "dev",
            "srv0",
        ],
        vec![
            "ip",
            "-n",
            srv,
            "route",
            "add",
            "default",
            "via",
            "198.19.0.1",
        ],
    ] {
        let out = Command::new(cmd[0]).args(&cmd[1..]).output().unwrap();
        assert!(out.status.success(), "{cmd:?}: {out:?}");
    }
    t.lab
        .tx_checksum_off(srv, "srv0")
        .expect("srv0 tx offload off");
    t.kernel_router_addresses().expect("r1 addresses");
    let mut r2 = start(&t);
    let p = t.ping(SERVER_IP, 5).expect("ping");
    assert!(
        p.received >= 4,
        "no forwarding after the restart:\n{}",
        p.text
    );
    assert!(r2.terminate(Duration::from_secs(10)).unwrap().success());
}
