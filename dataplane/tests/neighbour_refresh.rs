//! Learned neighbours: refreshed with ARP requests shortly before they
//! expire, kept when they answer, gone when they do not; static entries
//! are never asked for nor replaced.

mod support;

use dataplane::packet::{PortId, Verdict, ETH_HDR_LEN};
use dataplane::pipeline::{Pipeline, NEIGHBOUR_REFRESH, NEIGHBOUR_TIMEOUT};
use dataplane::wire::arp;
use support::*;

fn drain(p: &mut Pipeline) -> Vec<(Vec<u8>, PortId)> {
    let mut out = Vec::new();
    p.drain_pending(|f, port| {
        out.push((f.to_vec(), port));
        true
    });
    out
}

fn arp_requests_for(sent: &[(Vec<u8>, PortId)], target: u32) -> usize {
    sent.iter()
        .filter(|(f, port)| {
            *port == LAN
                && f[12..14] == [0x08, 0x06]
                && arp::Packet::new_checked(&f[ETH_HDR_LEN..]).is_ok_and(|a| {
                    a.operation() == arp::OP_REQUEST && a.target_proto_addr() == target
                })
        })
        .count()
}

/// Learns LAN_HOST at second `now` from its ARP request for us.
fn learn_lan_host(p: &mut Pipeline, now: u32) {
    p.set_now(now);
    let who_has = arp_frame(
        dataplane::addr::Mac::BROADCAST,
        arp::OP_REQUEST,
        PEER_MAC,
        LAN_HOST,
        LAN_ADDR,
    );
    let r = run(p, LAN, &who_has);
    assert_eq!(
        r.verdict,
        Verdict::Tx(LAN),
        "an ARP request for us is answered"
    );
    let n = p.neighbours().get(LAN_HOST).expect("learned");
    assert_eq!(n.expires, now + NEIGHBOUR_TIMEOUT);
}

/// One second at a time from `from` to `to`: housekeeping, then the queue.
fn tick(p: &mut Pipeline, from: u32, to: u32) -> Vec<(Vec<u8>, PortId)> {
    let mut sent = Vec::new();
    for now in from..=to {
        p.set_now(now);
        p.housekeeping(64);
        sent.extend(drain(p));
    }
    sent
}

#[test]
fn a_learned_neighbour_that_answers_is_refreshed_before_it_expires() {
    let mut p = pipeline();
    learn_lan_host(&mut p, 100);
    let expires = 100 + NEIGHBOUR_TIMEOUT;
    // Nothing is asked while the entry is fresh.
    assert_eq!(
        arp_requests_for(
            &tick(&mut p, 101, expires - NEIGHBOUR_REFRESH - 1),
            LAN_HOST
        ),
        0
    );
    // Within the refresh window: one request ...
    let sent = tick(
        &mut p,
        expires - NEIGHBOUR_REFRESH,
        expires - NEIGHBOUR_REFRESH,
    );
    assert_eq!(arp_requests_for(&sent, LAN_HOST), 1, "refresh request");
    // ... the neighbour answers, the entry lives another timeout.
    let now = expires - NEIGHBOUR_REFRESH;
    let is_at = arp_frame(LAN_MAC, arp::OP_REPLY, PEER_MAC, LAN_HOST, LAN_ADDR);
    assert_eq!(run(&mut p, LAN, &is_at).verdict, Verdict::Consumed);
    assert_eq!(
        p.neighbours().get(LAN_HOST).unwrap().expires,
        now + NEIGHBOUR_TIMEOUT
    );
    // No more requests until the next window, and the entry outlives its
    // first expiry.
    let sent = tick(&mut p, now + 1, expires + 10);
    assert_eq!(arp_requests_for(&sent, LAN_HOST), 0);
    assert!(p.neighbours().get(LAN_HOST).is_some());
    assert!(!p.has_pending());
    assert_eq!(p.counters().arp_resolution_failures, 0);
    assert_eq!(p.counters().arp_requests_sent, 1);
    assert_eq!(p.counters().arp_replies_received, 1);
}

#[test]
fn a_learned_neighbour_that_stays_silent_ages_out() {
    let mut p = pipeline();
    learn_lan_host(&mut p, 100);
    let expires = 100 + NEIGHBOUR_TIMEOUT;
    let sent = tick(&mut p, 101, expires - 1);
    // Three requests a second apart, then the refresh gives up (counted) ...
    assert_eq!(arp_requests_for(&sent, LAN_HOST), 3);
    assert_eq!(p.counters().arp_resolution_failures, 1);
    assert!(!p.has_pending());
    // ... packets still use the entry until it expires ...
    let f = Packet::udp(OUTSIDE, LAN_HOST, 1, 2).frame();
    let r = run(&mut p, WAN, &f);
    assert_eq!(r.verdict, Verdict::Tx(LAN));
    assert_eq!(&r.out[..6], &PEER_MAC.0);
    // ... and then it is gone: the next packet waits for ARP again.
    tick(&mut p, expires, expires);
    assert!(p.neighbours().get(LAN_HOST).is_none(), "aged out");
    let r = run(&mut p, WAN, &f);
    assert_eq!(r.verdict, Verdict::Tx(LAN));
    assert_eq!(&r.out[12..14], &[0x08, 0x06], "an ARP request in the frame");
    assert_eq!(p.pending_packets(), 1);
}

#[test]
fn static_neighbours_are_never_refreshed_nor_replaced() {
    let mut p = pipeline();
    p.set_now(100);
    // LAN_GW is static; an ARP request from it with another MAC changes nothing.
    let who_has = arp_frame(
        dataplane::addr::Mac::BROADCAST,
        arp::OP_REQUEST,
        PEER_MAC,
        LAN_GW,
        LAN_ADDR,
    );
    assert_eq!(run(&mut p, LAN, &who_has).verdict, Verdict::Tx(LAN));
    let n = *p.neighbours().get(LAN_GW).unwrap();
    assert!(n.is_static);
    assert_eq!(n.mac, LAN_GW_MAC);
    let sent = tick(&mut p, 101, 100 + 2 * NEIGHBOUR_TIMEOUT);
    assert_eq!(arp_requests_for(&sent, LAN_GW), 0);
    assert_eq!(p.neighbours().get(LAN_GW).unwrap().mac, LAN_GW_MAC);
}
