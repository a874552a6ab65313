//! Connection-table exhaustion through routerd (root, namespaces of its
//! own): a table of 512 entries, half-open entries expiring after 5 s, an
//! SSH-like echo service on the router (port 22, reached through the host
//! path).
//!
//! An established session to the service is opened first; then 5000 SYNs
//! from changing source ports hit the service within 5 s (four threads of
//! connection attempts given up after 1 ms: one SYN each, from an address
//! whose answers the client drops, as if forged), while transit
//! UDP crosses the router untracked and the session echoes a message every
//! 100 ms. Asserted: the session answers every time, during and after the
//! flood; transit UDP is delivered; the table never holds more than 512
//! entries and the counters (logged at SIGUSR1) show early drops;
//! once the flood stops and its entries expire, new connections work.
//!
//! The same in memory through the whole pipeline, including a table full
//! of established flows (`conntrack_table_full`):
//! `dataplane/tests/conntrack_flood.rs`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lab::soak;
use lab::{LabError, RouterdProc, Topology};

use lab::require_root;

const SYNS: u64 = 5000;
const MAX_ENTRIES: u64 = 512;
/// The service as the flood reaches it (from 198.18.0.3).
const FLOODED: &str = "198.18.0.1:22";
/// The service as the session and new connections reach it (from
/// 198.18.0.2, through the router's default gateway address).
const SERVICE: &str = "198.19.0.1:22";

/// An echo service on port 22 in the router namespace, a thread per
/// connection, until `stop`.
fn echo_service(t: &Topology, stop: &AtomicBool) -> Result<(), LabError> {
    lab::netns::enter(&t.rtr).map_err(|e| LabError::Traffic(e.to_string()))?;
    let l = TcpListener::bind("0.0.0.0:22").map_err(|e| LabError::Traffic(e.to_string()))?;
    l.set_nonblocking(true).unwrap();
    std::thread::scope(|s| {
        while !stop.load(Ordering::Relaxed) {
            let Ok((mut c, _)) = l.accept() else {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            };
            s.spawn(move || {
                let _ = c.set_nonblocking(false);
                let _ = c.set_read_timeout(Some(Duration::from_millis(200)));
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    match c.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            if c.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => break,
                    }
                }
            });
        }
    });
    Ok(())
}

/// Sends `msg` on `c` and reads the echo back.
fn echo(c: &mut TcpStream, msg: &[u8]) -> bool {
    let mut back = vec![0u8; msg.len()];
    c.write_all(msg).is_ok() && c.read_exact(&mut back).is_ok() && back == msg
}

fn connect() -> std::io::Result<TcpStream> {
    let addr: SocketAddr = SERVICE.parse().unwrap();
    let c = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    c.set_read_timeout(Some(Duration::from_secs(3)))?;
    Ok(c)
}

/// `SYNS` connection attempts from the client, four threads, at most 5 s.
fn syn_flood(t: &Topology) -> u64 {
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    lab::netns::enter(&t.cli).expect("client namespace");
                    let addr: SocketAddr = FLOODED.parse().unwrap();
                    let start = Instant::now();
                    let mut n = 0;
                    while n < SYNS / 4 && start.elapsed() < Duration::from_secs(5) {
                        let _ = TcpStream::connect_timeout(&addr, Duration::from_millis(1));
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        threads.into_iter().map(|h| h.join().expect("flood")).sum()
    })
}

/// (entries, early drops) from the counters routerd logs at SIGUSR1.
fn ct_counters(r: &RouterdProc) -> (u64, u64) {
    let before = r.log().len();
    r.signal("USR1").expect("SIGUSR1");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let log = r.log();
        if let Some(l) = log[before.min(log.len())..]
            .iter()
            .find(|l| l.contains("conntrack entries "))
        {
            let num = |key: &str| -> u64 {
                let (_, rest) = l.split_once(key).expect("key in the line");
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("a number")
            };
            return (num("conntrack entries "), num("early drops "));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no counters logged after SIGUSR1:\n{}", r.log().join("\n"));
}

/// Sets the flag when dropped, also on a panic: the service thread ends.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn a_syn_flood_fills_the_table_but_the_established_session_and_transit_go_on() {
    flood("e2eF", 1);
}

/// The same with two workers on two-queue ports: the limit holds per
/// worker (`max_entries` is each worker's table), the flood's flows spread
/// over both tables, and the session and transit go on.
#[test]
fn with_two_workers_the_flood_spreads_and_the_session_lives() {
    flood("e2eG", 2);
}

fn flood(tag: &str, workers: u64) {
    require_root();
    let lab = Topology::build_with_queues(tag, workers as u32).expect("build the lab");
    let t = &lab;
    let config = soak::soak_config(tag, MAX_ENTRIES as u32).expect("config");
    if workers == 2 {
        let text = std::fs::read_to_string(&config).expect("config");
        assert!(text.contains("workers: [1]"));
        std::fs::write(&config, text.replace("workers: [1]", "workers: [0, 1]")).expect("config");
    }
    // Each worker's table holds MAX_ENTRIES.
    let capacity = MAX_ENTRIES * workers;
    let routerd = Path::new(env!("CARGO_BIN_EXE_routerd"));
    let mut r = RouterdProc::spawn(routerd, &[], &t.rtr, &config).expect("spawn");
    let ready = r.wait_ready(Duration::from_secs(20));
    let _ = std::fs::remove_file(&config);
    ready.expect("ready");

    // Spoofed sources: the flood leaves from 198.18.0.3, whose incoming
    // TCP the client drops, so the service's SYN-ACKs go unanswered and
    // every SYN leaves a half-open (SYN_RECV) flow, as a real flood from
    // forged addresses does. The drop is a policy rule ahead of the local
    // table (moved from preference 0 to 1); `ipproto tcp` keeps ARP for
    // 198.18.0.3 answered (its route lookup carries no protocol).
    for cmd in [
        &["ip", "addr", "add", "198.18.0.3/24", "dev", "cli0"][..],
        &[
            "ip",
            "route",
            "add",
            "198.18.0.1/32",
            "dev",
            "cli0",
            "src",
            "198.18.0.3",
        ],
        &["ip", "rule", "add", "pref", "1", "lookup", "local"],
        &["ip", "rule", "del", "pref", "0", "lookup", "local"],
        &[
            "ip",
            "rule",
            "add",
            "pref",
            "0",
            "to",
            "198.18.0.3",
            "ipproto",
            "tcp",
            "blackhole",
        ],
    ] {
        t.lab.exec(&t.cli, cmd).expect("client set-up");
    }

    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let service = s.spawn(|| echo_service(t, &stop));
        let _stop = StopOnDrop(&stop);
        std::thread::sleep(Duration::from_millis(300));
        let result = std::thread::scope(|inner| {
            // The established session, from the client namespace.
            let (to_session, session_rx) = std::sync::mpsc::channel::<bool>();
            let (session_tx, from_session) = std::sync::mpsc::channel::<(u32, u32)>();
            let session = inner.spawn(move || {
                lab::netns::enter(&t.cli).expect("client namespace");
                let mut c = connect().expect("the session opens");
                assert!(echo(&mut c, b"hello before the flood"));
                session_tx.send((0, 0)).unwrap();
                // Echo every 100 ms until told to stop; report (ok, failed).
                let (mut ok, mut bad) = (0u32, 0u32);
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    session_rx.recv_timeout(Duration::from_millis(100))
                {
                    if echo(&mut c, b"still there?") {
                        ok += 1;
                    } else {
                        bad += 1;
                    }
                }
                session_tx.send((ok, bad)).unwrap();
                // And once more when the flood is over.
                let after = echo(&mut c, b"after the flood");
                session_tx
                    .send((u32::from(after), u32::from(!after)))
                    .unwrap();
            });
            from_session
                .recv_timeout(Duration::from_secs(10))
                .expect("session up");

            let udp = inner.spawn(|| lab::udp_exchange(t, 2000, 256, 6100));
            let sent = syn_flood(t);
            let udp = udp.join().expect("udp thread").expect("udp");
            let (entries, early) = ct_counters(&r);
            to_session.send(true).unwrap();
            let during = from_session.recv_timeout(Duration::from_secs(10)).unwrap();
            let after = from_session.recv_timeout(Duration::from_secs(10)).unwrap();
            session.join().expect("session thread");
            (sent, udp, entries, early, during, after)
        });
        let (sent, udp, entries, early, during, after) = result;
        eprintln!(
            "{sent} SYNs; transit UDP during the flood {udp:?}; right after: {entries} entries, \
             {early} early drops; session echoes during the flood {} ok, {} \
             failed; after {after:?}",
            during.0, during.1
        );
        assert!(sent >= SYNS / 2, "the flood sent only {sent} SYNs");
        assert!(
            during.0 >= 10 && during.1 == 0,
            "the session suffered: {during:?}"
        );
        assert_eq!(after, (1, 0), "the session after the flood");
        assert!(
            udp.received * 100 >= udp.sent * 95,
            "transit suffered: {udp:?}"
        );
        assert!(entries <= capacity, "{entries} entries");
        // Each flood SYN made an entry; beyond the limit almost every one
        // evicted a half-open one (a few evictions find an expired entry).
        assert!(
            early >= (sent - capacity) * 9 / 10,
            "{early} early drops after {sent} SYNs at tables of {capacity}"
        );

        // Half-open entries expire after 5 s, closed ones after 10 s.
        std::thread::sleep(Duration::from_secs(11));
        let (entries, _) = ct_counters(&r);
        assert!(entries < 50, "{entries} entries left after the flood");
        let opened = lab::in_ns(&t.cli, || {
            let mut ok = 0;
            for i in 0..10 {
                let mut c = connect().map_err(|e| LabError::Traffic(e.to_string()))?;
                ok += u32::from(echo(&mut c, format!("new {i}").as_bytes()));
            }
            Ok(ok)
        })
        .join()
        .expect("thread")
        .expect("new connections");
        assert_eq!(opened, 10, "new connections after the flood");
        stop.store(true, Ordering::Relaxed);
        service.join().expect("service thread").expect("service");
    });

    let status = r.terminate(Duration::from_secs(10)).expect("stops");
    assert!(status.success(), "{}", r.log().join("\n"));
    let st = r.final_stats().expect("counters");
    eprintln!("{}", st.render());
    assert_eq!(st.workers.len() as u64, workers);
    for w in &st.workers {
        assert!(w.census.balanced && w.census.held == 0, "{:?}", w.census);
    }
}
