//! A SYN flood at the router through routerd (root, namespaces of its own),
//! with a connection table of 512 entries and SYN_SENT entries expiring
//! after 5 s: 5000 SYNs from changing source ports to 198.18.0.1:22 within
//! 5 s, while a UDP stream crosses the router untracked.
//!
//! Asserted: routerd keeps running; the table never holds more than 512
//! entries (read from SIGUSR1's counters right after the flood); every SYN
//! was tracked and then either handed to the host or dropped
//! `conntrack_table_full`; transit UDP is delivered during the flood; the
//! table is empty again after the half-open entries expire.
//!
//! The established session on the router (and new connections to it after
//! the flood) need the TUN host path, which does not exist yet: until then
//! SYNs for the router end as `host_unavailable`, and the session part is
//! tested in memory through the whole pipeline in
//! `dataplane/tests/conntrack_flood.rs`.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use control::lab::{self, LabError, RouterdProc, Topology};
use control::soak;

fn require_root() {
    if !lab::is_root() {
        panic!(
            "these tests need root and network namespaces: run as root, e.g. sudo -E cargo test"
        );
    }
}

const SYNS: u64 = 5000;
const MAX_ENTRIES: u64 = 512;

/// `SYNS` connection attempts to the router from the client, four threads,
/// at most 5 s. Each attempt is one SYN from a new source port.
fn syn_flood(t: &Topology) -> u64 {
    let threads: Vec<_> = (0..4)
        .map(|_| {
            lab::in_ns(&t.cli, || {
                let addr: SocketAddr = "198.18.0.1:22".parse().unwrap();
                let start = Instant::now();
                let mut n = 0;
                while n < SYNS / 4 && start.elapsed() < Duration::from_secs(5) {
                    let _ = TcpStream::connect_timeout(&addr, Duration::from_millis(1));
                    n += 1;
                }
                Ok::<u64, LabError>(n)
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|h| h.join().expect("flood thread").expect("flood"))
        .sum()
}

fn entries_in_last_counters(log: &[String]) -> Option<u64> {
    log.iter().rev().find_map(|l| {
        let (_, rest) = l.split_once("conntrack entries ")?;
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    })
}

#[test]
fn a_syn_flood_at_the_router_keeps_the_table_bounded_and_transit_flowing() {
    require_root();
    let t = Topology::build("e2eF").expect("build the lab");
    let config = soak::soak_config("flood", MAX_ENTRIES as u32).expect("config");
    let routerd = Path::new(env!("CARGO_BIN_EXE_routerd"));
    let mut r = RouterdProc::spawn(routerd, &[], &t.rtr, &config).expect("spawn");
    let ready = r.wait_ready(Duration::from_secs(20));
    let _ = std::fs::remove_file(&config);
    ready.expect("ready");

    let (sent, udp) = std::thread::scope(|s| {
        let udp = s.spawn(|| lab::udp_exchange(&t, 2000, 256, 6100));
        let sent = syn_flood(&t);
        (sent, udp.join().expect("udp thread").expect("udp"))
    });
    r.signal("USR1").expect("SIGUSR1");
    std::thread::sleep(Duration::from_millis(500));
    let during = entries_in_last_counters(&r.log());
    eprintln!("{sent} SYNs; UDP during the flood {udp:?}; entries right after: {during:?}");
    assert!(sent >= SYNS / 2, "the flood sent only {sent} SYNs");
    assert!(
        udp.received * 100 >= udp.sent * 95,
        "transit UDP suffered: {udp:?}"
    );
    let during = during.expect("SIGUSR1 logs the counters");
    assert!(
        (1..=MAX_ENTRIES).contains(&during),
        "{during} entries in a table of {MAX_ENTRIES}"
    );

    // Half-open entries expire after 5 s.
    std::thread::sleep(Duration::from_secs(7));
    let p = t.ping(lab::SERVER_IP, 2).expect("ping");
    assert_eq!(p.received, 2, "{}", p.text);
    let status = r.terminate(Duration::from_secs(10)).expect("stops");
    assert!(status.success(), "{}", r.log().join("\n"));
    let st = r.final_stats().expect("counters");
    eprintln!("{}", st.render());
    let host = st.drops.get("host_unavailable").copied().unwrap_or(0);
    let full = st.drops.get("conntrack_table_full").copied().unwrap_or(0);
    assert!(st.tracked >= sent * 9 / 10, "{st:?}");
    assert_eq!(
        st.tracked,
        host + full,
        "every tracked SYN is accounted for"
    );
    assert_eq!(st.conntrack_entries, 0, "the half-open entries expired");
    for w in &st.workers {
        assert!(w.census.balanced && w.census.held == 0, "{:?}", w.census);
    }
}
