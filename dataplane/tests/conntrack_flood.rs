//! Connection-table exhaustion, in memory: a bounded SYN flood at the
//! router's SSH port through the whole pipeline, with a table of 512
//! entries and half-open entries expiring after 5 s.
//!
//! The router's own stack sits behind the host path: here the test plays
//! it, answering every SYN delivered to the host with a SYN-ACK through
//! `PortId::HOST` (as Linux does with SYN cookies), so the flood leaves
//! SYN_RECV entries, unassured, which is what a real flood leaves. The
//! namespace version, through routerd with a service behind the host path,
//! is `control/tests/e2e_flood.rs`.
//!
//! Asserted: the table never exceeds its limit; an established session to
//! the router keeps working during and after the flood; untracked transit
//! is unaffected; the counters show early drops (flood entries evicting
//! each other) and `conntrack_table_full` (when nothing is evictable); once
//! the flood stops and the half-open entries expire, new connections work.

mod support;

use dataplane::conntrack::CtState;
use dataplane::drop::DropReason;
use dataplane::packet::{PortId, Verdict};
use dataplane::pipeline::Pipeline;
use dataplane::wire::tcp;
use support::*;

const MAX_ENTRIES: u32 = 512;
const HALF_OPEN_SECS: u32 = 5;
const FLOOD: u32 = 5000;

/// The router with a small table and short half-open timeouts.
fn router() -> Pipeline {
    let mut p = pipeline_with(|s| {
        s.conntrack.max_entries = MAX_ENTRIES;
        s.conntrack.timeouts.tcp_syn_sent = HALF_OPEN_SECS;
        s.conntrack.timeouts.tcp_syn_recv = HALF_OPEN_SECS;
    });
    p.set_now(1);
    p
}

/// A client of the router on the wan link (the upstream gateway's address,
/// which has a static neighbour).
const CLIENT: u32 = WAN_GW;

/// Opens a tracked TCP session CLIENT:sport -> router:22 (the host
/// answers); returns whether all three packets passed.
fn handshake(p: &mut Pipeline, src: u32, sport: u16) -> bool {
    let syn = Packet::tcp(src, WAN_ADDR, sport, 22, tcp::SYN).frame();
    if run(p, WAN, &syn).verdict != Verdict::Host {
        return false;
    }
    let synack = Packet::tcp(WAN_ADDR, src, 22, sport, tcp::SYN | tcp::ACK).frame();
    if !matches!(run(p, PortId::HOST, &synack).verdict, Verdict::Tx(_)) {
        return false;
    }
    let ack = Packet::tcp(src, WAN_ADDR, sport, 22, tcp::ACK).frame();
    let r = run(p, WAN, &ack);
    r.verdict == Verdict::Host && r.ct_state() == Some(CtState::Established)
}

/// One exchange on the established session: client data in, host data out,
/// both ESTABLISHED.
fn session_works(p: &mut Pipeline, sport: u16) -> bool {
    let data_in = Packet::tcp(CLIENT, WAN_ADDR, sport, 22, tcp::ACK | tcp::PSH)
        .payload(b"ls\n")
        .frame();
    let r_in = run(p, WAN, &data_in);
    let data_out = Packet::tcp(WAN_ADDR, CLIENT, 22, sport, tcp::ACK | tcp::PSH)
        .payload(b"bin etc\n")
        .frame();
    let r_out = run(p, PortId::HOST, &data_out);
    r_in.verdict == Verdict::Host
        && r_in.ct_state() == Some(CtState::Established)
        && r_out.verdict == Verdict::Tx(WAN)
        && r_out.ct_state() == Some(CtState::Established)
}

/// Untracked transit wan -> lan.
fn transit_works(p: &mut Pipeline, n: u32) -> bool {
    let dgram = Packet::udp(OUTSIDE, INSIDE, 20_000 + (n % 1000) as u16, 53).frame();
    let r = run(p, WAN, &dgram);
    r.verdict == Verdict::Tx(LAN) && r.ct_state() == Some(CtState::Untracked)
}

/// The n-th spoofed source: spread over 198.51.100.0/24 with varying ports.
fn spoofed(n: u32) -> (u32, u16) {
    let x = n.wrapping_mul(2_654_435_761);
    (
        ip(198, 51, 100, 1 + (x % 250) as u8),
        1024 + (x >> 16) as u16 % 60_000,
    )
}

struct Flood {
    delivered: u32,
    dropped_full: u32,
    session_ok: u32,
    transit_ok: u32,
    rounds: u32,
}

/// `FLOOD` SYNs from spoofed sources over two seconds of the pipeline's
/// clock; the host answers each delivered one. Every 50 SYNs, the session
/// and a transit datagram are checked.
fn syn_flood(p: &mut Pipeline, session_port: u16, first: u32) -> Flood {
    let t0 = p.now();
    let mut f = Flood {
        delivered: 0,
        dropped_full: 0,
        session_ok: 0,
        transit_ok: 0,
        rounds: 0,
    };
    for i in 0..FLOOD {
        p.set_now(t0 + i * 2 / FLOOD);
        let (src, sport) = spoofed(first + i);
        let syn = Packet::tcp(src, WAN_ADDR, sport, 22, tcp::SYN).frame();
        match run(p, WAN, &syn).verdict {
            Verdict::Host => {
                f.delivered += 1;
                let synack = Packet::tcp(WAN_ADDR, src, 22, sport, tcp::SYN | tcp::ACK).frame();
                run(p, PortId::HOST, &synack);
            }
            Verdict::Drop(DropReason::ConntrackTableFull) => f.dropped_full += 1,
            v => panic!("flood SYN {i}: {v:?}"),
        }
        assert!(p.conntrack().len() <= MAX_ENTRIES as usize);
        if i % 50 == 0 {
            f.rounds += 1;
            f.session_ok += u32::from(session_works(p, session_port));
            f.transit_ok += u32::from(transit_works(p, i));
            p.housekeeping(64);
        }
    }
    f
}

/// Lets the half-open entries expire: the clock past their timeout, then
/// housekeeping until the collector went round the table.
fn let_half_open_expire(p: &mut Pipeline) {
    p.set_now(p.now() + HALF_OPEN_SECS + 1);
    for _ in 0..64 {
        p.housekeeping(256);
    }
}

#[test]
fn a_syn_flood_evicts_half_open_flows_and_spares_the_established_session() {
    let mut p = router();
    assert!(handshake(&mut p, CLIENT, 40_000), "the session opens");
    assert!(session_works(&mut p, 40_000));

    let f = syn_flood(&mut p, 40_000, 0);
    let ct = p.conntrack().counters();
    let c = p.counters();
    eprintln!(
        "SYN flood of {FLOOD} at a table of {MAX_ENTRIES}: {} delivered to the host, {} dropped \
         conntrack_table_full; early drops {}, inserted {}, entries {}; session {}/{} rounds, \
         transit {}/{} rounds",
        f.delivered,
        f.dropped_full,
        ct.early_dropped,
        ct.inserted,
        p.conntrack().len(),
        f.session_ok,
        f.rounds,
        f.transit_ok,
        f.rounds
    );
    assert_eq!(f.session_ok, f.rounds, "the established session suffered");
    assert_eq!(f.transit_ok, f.rounds, "untracked transit suffered");
    assert!(p.conntrack().len() <= MAX_ENTRIES as usize);
    // The flood filled the table and then its entries evicted each other.
    assert!(
        ct.early_dropped >= u64::from(FLOOD - MAX_ENTRIES),
        "early drops {}",
        ct.early_dropped
    );
    assert_eq!(
        c.drops[DropReason::ConntrackTableFull as usize],
        u64::from(f.dropped_full)
    );
    assert_counters_balance(&p);

    // After the flood: the session still works, half-open entries expire,
    // and new connections open.
    assert!(session_works(&mut p, 40_000));
    let_half_open_expire(&mut p);
    assert_eq!(p.conntrack().len(), 1, "only the session is left");
    for k in 0..10u16 {
        assert!(handshake(&mut p, CLIENT, 41_000 + k), "new connection {k}");
    }
    assert!(session_works(&mut p, 40_000));
    assert_eq!(p.conntrack().len(), 11);
}

#[test]
fn with_the_table_full_of_established_flows_new_syns_are_dropped_and_counted() {
    let mut p = router();
    assert!(handshake(&mut p, CLIENT, 40_000));
    // A connection flood that completes its handshakes: assured entries,
    // which are never evicted, fill the table.
    let mut opened = 1;
    let mut n = 0;
    while opened < MAX_ENTRIES {
        let (src, sport) = spoofed(100_000 + n);
        n += 1;
        if handshake(&mut p, src, sport) {
            opened += 1;
        }
        assert!(n < 2 * MAX_ENTRIES, "could not fill the table");
    }
    assert_eq!(p.conntrack().len(), MAX_ENTRIES as usize);

    let f = syn_flood(&mut p, 40_000, 0);
    eprintln!(
        "table full of established flows, then {FLOOD} SYNs: {} dropped conntrack_table_full, \
         {} delivered; session {}/{}, transit {}/{}",
        f.dropped_full, f.delivered, f.session_ok, f.rounds, f.transit_ok, f.rounds
    );
    assert_eq!(f.delivered, 0);
    assert_eq!(f.dropped_full, FLOOD);
    assert_eq!(
        p.counters().drops[DropReason::ConntrackTableFull as usize],
        u64::from(FLOOD)
    );
    assert_eq!(p.conntrack().counters().table_full, u64::from(FLOOD));
    assert_eq!(f.session_ok, f.rounds);
    assert_eq!(f.transit_ok, f.rounds);
    assert_counters_balance(&p);
}
