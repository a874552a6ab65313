//! Two workers end to end (root): client - router - server namespaces
//! joined by veth pairs with two queues each, routerd on
//! `configs/transit-router.yaml` with `workers: [0, 1]`.
//!
//! Transit from many flows arrives on both queues and is forwarded (both
//! workers count traffic); 20 TCP connections to a service on the router
//! complete with verified bytes, and while they are open each is listed
//! ESTABLISHED (whichever queue its packets came in on: a flow has one
//! owner, the other worker hands its packets over); pings to the router
//! sent from each CPU (so from each of the client's TX queues, hence each
//! of the router's RX queues) are answered; the ICMP port unreachable about
//! the router's own UDP is RELATED for every one of several flows. (The
//! refusal of ports with fewer queues than workers is in
//! `e2e_forwarding.rs`.)
//!
//! Every traffic loop is bounded in count and time; namespaces go with the
//! topology, also when a test fails.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lab::{
    require_root, Fnv, LabError, Pattern, PingOptions, RouterdProc, TempDir, Topology, SERVER_IP,
};
use serde_json::Value;

const WAN_ADDR: &str = "198.18.0.1";
const CONNECTIONS: usize = 20;
const BYTES: usize = 256 << 10;

/// The transit router with two workers, on cores 0 and 1.
fn two_worker_config(dir: &TempDir) -> PathBuf {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/transit-router.yaml");
    let text = std::fs::read_to_string(base).expect("the transit config");
    assert!(text.contains("workers: [1]"), "the config names its worker");
    let path = dir.path("router.yaml");
    std::fs::write(&path, text.replace("workers: [1]", "workers: [0, 1]")).expect("write");
    path
}

fn traffic(msg: impl Into<String>) -> LabError {
    LabError::Traffic(msg.into())
}

fn routerctl(socket: &Path, args: &[&str]) -> Value {
    let out: Output = std::process::Command::new(env!("CARGO_BIN_EXE_routerctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run routerctl");
    assert!(
        out.status.success(),
        "routerctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// Sends every IPv4 packet a thread on CPU `i` sends through `dev` out of
/// TX queue `i` (XPS), so the far end of the veth receives it on queue `i`.
fn steer_by_cpu(t: &Topology, ns: &str, dev: &str) {
    for q in 0..2 {
        let cmd = format!(
            "echo {} > /sys/class/net/{dev}/queues/tx-{q}/xps_cpus",
            1 << q
        );
        t.lab
            .exec(ns, &["sh", "-c", &cmd])
            .expect("set XPS for the queue");
    }
}

/// A TCP service on the router's port 22: for each of `n` connections it
/// reads `BYTES` bytes and answers their hash, then waits for the client
/// to close.
fn service(t: &Topology, n: usize) -> std::thread::JoinHandle<Result<usize, LabError>> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let h = lab::in_ns(&t.rtr, move || {
        let l = TcpListener::bind("0.0.0.0:22").map_err(|e| traffic(format!("bind 22: {e}")))?;
        l.set_nonblocking(true)
            .map_err(|e| traffic(e.to_string()))?;
        let _ = ready_tx.send(());
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut handlers = Vec::new();
        while handlers.len() < n && Instant::now() < deadline {
            match l.accept() {
                Ok((mut s, _)) => handlers.push(std::thread::spawn(move || -> bool {
                    s.set_nonblocking(false).ok();
                    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
                    let mut h = Fnv::default();
                    let mut buf = vec![0u8; 16 << 10];
                    let mut got = 0;
                    while got < BYTES {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => return false,
                            Ok(k) => {
                                h.update(&buf[..k]);
                                got += k;
                            }
                        }
                    }
                    if s.write_all(&h.value().to_le_bytes()).is_err() {
                        return false;
                    }
                    // Until the client closes.
                    let _ = s.read(&mut buf);
                    true
                })),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(traffic(format!("accept: {e}"))),
            }
        }
        Ok(handlers
            .into_iter()
            .map(|h| h.join().unwrap_or(false))
            .filter(|&ok| ok)
            .count())
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the service listens");
    h
}

/// `n` clients: each sends `BYTES` patterned bytes to the router's port
/// 22, checks the hash it gets back, then holds the connection open until
/// `release` is set. Returns the clients' handles; `verified` counts the
/// good ones.
fn clients(
    t: &Topology,
    n: usize,
    verified: Arc<AtomicUsize>,
    release: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Result<(), LabError>>> {
    (0..n)
        .map(|i| {
            let (verified, release) = (verified.clone(), release.clone());
            lab::in_ns(&t.cli, move || {
                let dst: SocketAddr = format!("{WAN_ADDR}:22").parse().expect("address");
                let mut s = TcpStream::connect_timeout(&dst, Duration::from_secs(10))
                    .map_err(|e| traffic(format!("connection {i}: {e}")))?;
                s.set_read_timeout(Some(Duration::from_secs(20))).ok();
                let mut data = vec![0u8; BYTES];
                Pattern::new(i as u64).fill(&mut data);
                let mut h = Fnv::default();
                h.update(&data);
                s.write_all(&data)
                    .map_err(|e| traffic(format!("connection {i}: send: {e}")))?;
                let mut answer = [0u8; 8];
                s.read_exact(&mut answer)
                    .map_err(|e| traffic(format!("connection {i}: read: {e}")))?;
                if u64::from_le_bytes(answer) != h.value() {
                    return Err(traffic(format!("connection {i}: bytes differ")));
                }
                verified.fetch_add(1, Ordering::Relaxed);
                let deadline = Instant::now() + Duration::from_secs(60);
                while !release.load(Ordering::Relaxed) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(())
            })
        })
        .collect()
}

/// From the router: UDP to a closed port of the server from `n` sockets;
/// how many got the server's port unreachable (RELATED to their flow).
fn refused_flows(t: &Topology, n: usize) -> usize {
    lab::in_ns(&t.rtr, move || {
        let mut refused = 0;
        for _ in 0..n {
            let s = UdpSocket::bind("0.0.0.0:0").map_err(|e| traffic(e.to_string()))?;
            s.connect(format!("{SERVER_IP}:9"))
                .map_err(|e| traffic(e.to_string()))?;
            s.set_read_timeout(Some(Duration::from_millis(300))).ok();
            let mut buf = [0u8; 16];
            for _ in 0..5 {
                let _ = s.send(b"anyone?");
                if let Err(e) = s.recv(&mut buf) {
                    if e.kind() == std::io::ErrorKind::ConnectionRefused {
                        refused += 1;
                        break;
                    }
                }
            }
        }
        Ok(refused)
    })
    .join()
    .expect("UDP thread")
    .expect("UDP from the router")
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

const PHASES: [&str; 7] = [
    "rx",
    "pipeline",
    "tx",
    "host",
    "handoff",
    "housekeeping",
    "idle",
];

/// `routerctl stats runtime`: both workers, each phase's cycles adding up
/// to the loop time, the packets those of the counters in the same
/// snapshots (`stats`' own copy, read with `stats`), and `--clear`
/// zeroing it.
fn runtime_matches_the_counters(socket: &Path, stats: &Value) {
    let rt = &stats["runtime"];
    let workers = stats["workers"].as_array().expect("workers");
    let per_worker = rt["workers"].as_array().expect("runtime workers");
    assert_eq!(per_worker.len(), 2, "{rt:#}");
    for (w, r) in workers.iter().zip(per_worker) {
        // A packet handed to its flow's owner costs, and counts at, both.
        assert_eq!(
            u(&r["packets"]),
            u(&w["rx_packets"]) + u(&w["handed_off"]),
            "worker {}: runtime {r} against counters {w}",
            w["worker"]
        );
    }
    let now = routerctl(socket, &["stats", "runtime", "--json"]);
    assert!(u(&now["tsc_hz"]) > 0, "{now}");
    let ws = now["workers"].as_array().expect("workers");
    assert_eq!(ws.len(), 2, "{now:#}");
    let mut sum = 0;
    for (i, w) in ws.iter().enumerate() {
        assert_eq!(u(&w["worker"]), i as u64);
        assert_eq!(u(&w["core"]), i as u64, "workers: [0, 1]");
        let cycles: u64 = PHASES.iter().map(|p| u(&w["cycles"][p])).sum();
        assert_eq!(cycles, u(&w["total_cycles"]), "phases add up: {w}");
        assert!(u(&w["loops"]) >= u(&w["busy_loops"]), "{w}");
        assert!(u(&w["busy_loops"]) > 0, "{w}");
        // Counted on: at least what the earlier snapshot had.
        assert!(u(&w["packets"]) >= u(&per_worker[i]["packets"]), "{w}");
        for p in ["rx", "pipeline", "tx", "housekeeping", "idle"] {
            assert!(u(&w["cycles"][p]) > 0, "worker {i} {p}: {w}");
        }
        sum += u(&w["packets"]);
    }
    assert_eq!(u(&now["total"]["packets"]), sum, "{now:#}");
    assert!(u(&now["total"]["cycles"]["handoff"]) > 0, "{now:#}");

    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_routerctl"))
            .arg("--socket")
            .arg(socket)
            .args(args)
            .output()
            .expect("run routerctl");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let table = run(&["stats", "runtime"]);
    eprintln!("{table}");
    for head in [
        "worker 0 (core 0): ",
        "worker 1 (core 1): ",
        "all 2 workers: ",
    ] {
        assert!(table.contains(head), "{table}");
    }
    run(&["stats", "runtime", "--clear"]);
    let cleared = routerctl(socket, &["stats", "runtime", "--json"]);
    for (w, before) in cleared["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .zip(ws)
    {
        // No traffic is sent now; the kernels' stray ARP may count a few.
        assert!(u(&w["packets"]) <= 10, "cleared: {w}");
        assert!(
            u(&w["total_cycles"]) < u(&before["total_cycles"]) / 2,
            "cleared: {w}, before: {before}"
        );
        let cycles: u64 = PHASES.iter().map(|p| u(&w["cycles"][p])).sum();
        assert_eq!(cycles, u(&w["total_cycles"]), "{w}");
    }
    // Only the runtime: the other counters stay.
    let after = routerctl(socket, &["stats", "--json"]);
    assert!(u(&after["path"]["forwarded"]) >= u(&stats["path"]["forwarded"]));
}

#[test]
fn two_workers_forward_and_track_whatever_queue_packets_arrive_on() {
    require_root();
    let dir = TempDir::new("e2ew", "both");
    let config = two_worker_config(&dir);
    let t = Topology::build_with_queues("e2ew", 2).expect("build the lab");
    steer_by_cpu(&t, &t.cli, "cli0");
    let socket = dir.path("routerd.sock");
    let sock = socket.to_str().expect("utf-8");
    let routerd = Path::new(env!("CARGO_BIN_EXE_routerd"));
    let mut r = RouterdProc::spawn_ready(routerd, &["--socket", sock], &t.rtr, &config);

    // Pings to the router from each CPU: out of each client TX queue, into
    // each router queue, answered through the owner of their flow.
    for cpu in 0..2 {
        let ns = t.cli.clone();
        let p = std::thread::spawn(move || {
            dataplane::worker::pin_current_thread(cpu).expect("pin");
            lab::ping_in(&ns, WAN_ADDR, &PingOptions::count(3))
        })
        .join()
        .expect("ping thread")
        .expect("ping");
        assert_eq!(p.received, 3, "ping from CPU {cpu}:\n{}", p.text);
    }

    // Transit from many flows, from both CPUs.
    for (i, cpu) in [0, 1, 0, 1].into_iter().enumerate() {
        // The sender's threads inherit the pinned thread's CPU.
        let got = std::thread::scope(|s| {
            s.spawn(|| {
                dataplane::worker::pin_current_thread(cpu).expect("pin");
                lab::udp_exchange(&t, 300, 256, 6000 + i as u16)
            })
            .join()
        })
        .expect("UDP thread")
        .expect("UDP through routerd");
        assert!(got.received >= 290 && got.corrupt == 0, "flow {i}: {got:?}");
    }

    // 20 TCP connections to the router, open at once.
    let verified = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(AtomicBool::new(false));
    let svc = service(&t, CONNECTIONS);
    let cl = clients(&t, CONNECTIONS, verified.clone(), release.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    while verified.load(Ordering::Relaxed) < CONNECTIONS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let flows = routerctl(&socket, &["conntrack", "--json"]);
    release.store(true, Ordering::Relaxed);
    let results: Vec<_> = cl.into_iter().map(|h| h.join().expect("client")).collect();
    for r in &results {
        assert!(r.is_ok(), "{r:?}");
    }
    assert_eq!(verified.load(Ordering::Relaxed), CONNECTIONS);
    assert_eq!(svc.join().expect("service").expect("service"), CONNECTIONS);
    let ssh: Vec<&Value> = flows
        .as_array()
        .expect("a list")
        .iter()
        .filter(|f| f["dport"] == 22 && f["protocol"] == "tcp")
        .collect();
    let established = ssh.iter().filter(|f| f["state"] == "ESTABLISHED").count();
    assert_eq!(established, CONNECTIONS, "{flows:#}");
    // Each listed in the table of its owner, and both tables hold some.
    for f in &ssh {
        let key = dataplane::conntrack::FlowKey {
            src: u32::from(
                f["src"]
                    .as_str()
                    .unwrap()
                    .parse::<std::net::Ipv4Addr>()
                    .unwrap(),
            ),
            dst: u32::from(
                f["dst"]
                    .as_str()
                    .unwrap()
                    .parse::<std::net::Ipv4Addr>()
                    .unwrap(),
            ),
            sport: u(&f["sport"]) as u16,
            dport: 22,
            proto: 6,
            icmp: 0,
        };
        assert_eq!(
            u(&f["worker"]) as usize,
            dataplane::owner::owner(&key, 2),
            "{f}"
        );
    }
    for w in 0..2u64 {
        assert!(
            ssh.iter().any(|f| u(&f["worker"]) == w),
            "worker {w} owns none"
        );
    }

    // The router's own UDP: the port unreachable is RELATED for each flow.
    assert_eq!(refused_flows(&t, 6), 6, "RELATED ICMP errors");

    // Workers publish their counters every 100 ms, each on its own clock:
    // wait until the hand-offs counted by the senders have all been
    // counted by their owners too.
    let handoffs = |s: &Value, k: &str| -> u64 {
        (s["workers"].as_array().into_iter().flatten())
            .map(|w| u(&w[k]))
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let stats = loop {
        let s = routerctl(&socket, &["stats", "--json"]);
        if handoffs(&s, "handed_off") == handoffs(&s, "handed_in") || Instant::now() >= deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let workers = stats["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 2, "{stats:#}");
    for w in workers {
        assert!(u(&w["rx_packets"]) > 0, "both workers take traffic: {w}");
        assert!(u(&w["forwarded"]) > 0, "both workers forward: {w}");
    }
    let handed: u64 = workers.iter().map(|w| u(&w["handed_off"])).sum();
    let taken: u64 = workers.iter().map(|w| u(&w["handed_in"])).sum();
    assert!(handed > 0, "some tracked packets reached the other worker");
    assert_eq!(handed, taken, "every hand-off arrived");
    assert_eq!(u(&stats["drops"]["handoff_queue_full"]), 0);
    eprintln!(
        "hand-offs: {handed} of {} tracked packets",
        u(&stats["conntrack"]["tracked_packets"])
    );
    runtime_matches_the_counters(&socket, &stats);

    // At start, how the kernel bound each socket.
    for q in 0..2 {
        assert!(
            r.log()
                .iter()
                .any(|l| l.contains(&format!("AF_XDP socket r0 queue {q}: bound copy"))),
            "{:?}",
            r.log()
        );
    }
    let status = r.terminate(Duration::from_secs(10)).expect("routerd stops");
    assert!(
        status.success(),
        "routerd exit: {status}\n{}",
        r.log().join("\n")
    );
    let st = r.final_stats().expect("routerd's counters");
    for w in &st.workers {
        assert!(w.census.balanced, "frame census: {:?}", w.census);
    }
}
