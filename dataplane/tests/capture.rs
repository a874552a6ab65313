//! Live capture in the worker's burst call (`worker::process_burst_traced`)
//! on the test router's pipeline (`support`): what an armed capture
//! records (frames as received, as sent after the rewrite, drops with
//! their reason and rule, the reply a reject sends), that a match keeps
//! only what matches, that the count ends the capture, and that an armed
//! capture changes no decision; and, in the worker loop on the fake kernel,
//! that a packet the neighbour queue releases after ARP is captured as sent.

mod support;

use dataplane::capture::{CaptureDir, CaptureRecord, CaptureRequest, CaptureSession};
use dataplane::drop::DropReason;
use dataplane::packet::{Pkt, PortId, Verdict};
use dataplane::pipeline::Pipeline;
use dataplane::rules::{ChainId, Match};
use dataplane::trace_capture::{TraceHub, TraceTap};
use dataplane::wire::tcp;
use dataplane::worker::{process_burst_traced, TablesSlot, Worker, WorkerConfig, WorkerShared};
use dataplane::xsk::fake::{FakeKernel, FakeMode};
use dataplane::xsk::WorkerPorts;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use support::*;

/// Runs `frames` (arrival port, bytes) as one burst of each port through
/// the worker's call; the verdicts and the frames as they left.
fn burst(
    p: &mut Pipeline,
    tap: &mut TraceTap,
    hub: &TraceHub,
    frames: &[(PortId, Vec<u8>)],
) -> Vec<(Verdict, Vec<u8>)> {
    let mut bufs: Vec<Vec<u8>> = frames
        .iter()
        .map(|(_, f)| {
            let mut b = f.clone();
            b.resize(BUF_LEN, 0);
            b
        })
        .collect();
    let mut pkts: Vec<Pkt<'_>> = bufs
        .iter_mut()
        .zip(frames)
        .map(|(b, (port, f))| Pkt {
            buf: b.as_mut_slice(),
            len: f.len(),
            port: *port,
        })
        .collect();
    let mut v = vec![Verdict::Consumed; pkts.len()];
    process_burst_traced(p, tap, hub, 3, &mut pkts, &mut v);
    let lens: Vec<usize> = pkts.iter().map(|p| p.len).collect();
    v.into_iter()
        .zip(bufs.iter().zip(lens).map(|(b, l)| b[..l].to_vec()))
        .collect()
}

fn arm(hub: &TraceHub, matcher: Match, count: u32) -> Arc<CaptureSession> {
    let mut matcher = matcher;
    matcher.compile();
    let req = CaptureRequest {
        ports: u64::MAX,
        rx: true,
        tx: true,
        drops: true,
        matcher,
        snaplen: 65535,
    };
    hub.arm_capture(req, count, 1 << 30, u64::MAX, false)
        .expect("no capture running")
}

fn records(s: &CaptureSession) -> Vec<CaptureRecord> {
    std::iter::from_fn(|| s.pop()).collect()
}

/// Forwarded UDP (wan -> lan), a telnet SYN to the router (rejected with
/// a RST), a SYN to 8080 (dropped by the input policy).
fn mixed() -> Vec<(PortId, Vec<u8>)> {
    vec![
        (WAN, Packet::udp(OUTSIDE, INSIDE, 5000, 53).on(WAN).frame()),
        (
            WAN,
            Packet::tcp(OUTSIDE, WAN_ADDR, 40000, 23, tcp::SYN)
                .on(WAN)
                .frame(),
        ),
        (
            WAN,
            Packet::tcp(OUTSIDE, WAN_ADDR, 40001, 8080, tcp::SYN)
                .on(WAN)
                .frame(),
        ),
    ]
}

#[test]
fn an_armed_capture_records_rx_tx_and_drops_and_changes_no_decision() {
    let frames = mixed();
    let hub = TraceHub::new();
    let mut tap = TraceTap::default();
    let mut plain = pipeline();
    let want = burst(&mut plain, &mut tap, &hub, &frames);

    let mut p = pipeline();
    let s = arm(&hub, Match::default(), 100);
    let got = burst(&mut p, &mut tap, &hub, &frames);
    assert_eq!(got, want, "same verdicts and bytes with the capture armed");
    assert_eq!(p.counters().drops, plain.counters().drops);
    assert_eq!(p.counters().forwarded, plain.counters().forwarded);

    let recs = records(&s);
    let kinds: Vec<(PortId, CaptureDir)> = recs.iter().map(|r| (r.port, r.dir)).collect();
    assert_eq!(
        kinds,
        vec![
            (WAN, CaptureDir::Received),
            (LAN, CaptureDir::Sent),
            (WAN, CaptureDir::Dropped),
            (WAN, CaptureDir::Sent),
            (WAN, CaptureDir::Dropped),
        ],
        "{recs:#?}"
    );
    // As received, and as sent after the rewrite.
    assert_eq!(recs[0].data, frames[0].1);
    assert_eq!(recs[1].data, want[0].1);
    assert_ne!(recs[1].data, frames[0].1, "TTL and MACs rewritten");
    // The reject: the SYN as received with its rule, then the RST.
    assert_eq!(recs[2].data, frames[1].1);
    assert_eq!(recs[2].drop, Some(DropReason::FilterRejected));
    assert_eq!(
        recs[2].filter,
        Some((ChainId::Input, Some(IN_REJECT_TELNET)))
    );
    assert!(recs[2].answered);
    assert_eq!(recs[3].data, want[1].1, "the RST as sent");
    // The policy drop.
    assert_eq!(recs[4].drop, Some(DropReason::FilterPolicy));
    assert_eq!(recs[4].filter, Some((ChainId::Input, None)));
    assert!(!recs[4].answered);
    assert!(recs.iter().all(|r| r.worker == 3 && r.ts_ns > 0));
    assert_eq!(s.remaining(), 95);
}

#[test]
fn a_match_keeps_only_what_matches() {
    let frames = mixed();
    let hub = TraceHub::new();
    let mut tap = TraceTap::default();
    let mut p = pipeline();
    let ssh_like = Match {
        protocol: Some(6),
        destination_port: Some([(8080, 8080)].into_iter().collect()),
        ..Match::default()
    };
    let s = arm(&hub, ssh_like, 100);
    burst(&mut p, &mut tap, &hub, &frames);
    let recs = records(&s);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0].dir, CaptureDir::Dropped);
    assert_eq!(recs[0].data, frames[2].1);
    hub.end_capture(&s);

    // `out` is decided by the pipeline: only what leaves on lan.
    let s = arm(
        &hub,
        Match {
            out_ports: Some(LAN.bit()),
            ..Match::default()
        },
        100,
    );
    burst(&mut p, &mut tap, &hub, &frames);
    let kinds: Vec<(PortId, CaptureDir)> = records(&s).iter().map(|r| (r.port, r.dir)).collect();
    assert_eq!(
        kinds,
        vec![(WAN, CaptureDir::Received), (LAN, CaptureDir::Sent)]
    );
}

/// `--match` on IPv6 frames: an IPv6 prefix, ports and ICMPv6 types match
/// them as the rules do, and an IPv4 prefix never does.
#[test]
fn a_match_reads_ipv6_frames() {
    use dataplane::addr::{Ipv4Prefix, Ipv6Prefix};
    use dataplane::rules::AddrMatch;
    let frames = vec![
        (
            WAN,
            Packet6::udp(OUTSIDE6, INSIDE6, 5000, 53).on(WAN).frame(),
        ),
        (
            WAN,
            Packet6::tcp(OUTSIDE6, WAN6, 40000, 22, tcp::SYN)
                .on(WAN)
                .frame(),
        ),
        (WAN, Packet6::ping(OUTSIDE6, WAN6, 7).on(WAN).frame()),
        (WAN, Packet::udp(OUTSIDE, INSIDE, 5000, 53).on(WAN).frame()),
    ];
    let hub = TraceHub::new();
    let mut tap = TraceTap::default();
    let mut p = pipeline6();
    let mut received = |m: Match| {
        let s = arm(&hub, m, 100);
        burst(&mut p, &mut tap, &hub, &frames);
        let got: Vec<Vec<u8>> = records(&s)
            .into_iter()
            .filter(|r| r.dir == CaptureDir::Received)
            .map(|r| r.data)
            .collect();
        hub.end_capture(&s);
        got
    };
    let inside6 = Match {
        destination6: Some(
            [Ipv6Prefix::new(INSIDE6, 64).unwrap()]
                .into_iter()
                .collect(),
        ),
        ..Match::default()
    };
    assert_eq!(received(inside6), vec![frames[0].1.clone()]);
    let ssh = Match {
        protocol: Some(6),
        destination_port: Some([(22, 22)].into_iter().collect()),
        ..Match::default()
    };
    assert_eq!(received(ssh), vec![frames[1].1.clone()]);
    let echo6 = Match {
        protocol: Some(58),
        icmp_type: Some(128),
        ..Match::default()
    };
    assert_eq!(received(echo6), vec![frames[2].1.clone()]);
    let inside4 = Match {
        destination: Some(AddrMatch::Prefixes(
            [Ipv4Prefix::new(INSIDE, 24).unwrap()].into_iter().collect(),
        )),
        ..Match::default()
    };
    assert_eq!(received(inside4), vec![frames[3].1.clone()]);
    let local = Match {
        destination: Some(AddrMatch::Local),
        ..Match::default()
    };
    assert_eq!(
        received(local),
        vec![frames[1].1.clone(), frames[2].1.clone()]
    );
}

#[test]
fn the_count_ends_the_capture_and_nothing_is_recorded_when_off() {
    let frames = mixed();
    let hub = TraceHub::new();
    let mut tap = TraceTap::default();
    let mut p = pipeline();
    let s = arm(&hub, Match::default(), 2);
    burst(&mut p, &mut tap, &hub, &frames);
    assert_eq!(records(&s).len(), 2);
    assert!(s.ended());
    assert!(!hub.any_armed(), "the switch is off again");
    burst(&mut p, &mut tap, &hub, &frames);
    assert!(records(&s).is_empty());
}

#[test]
fn an_expired_capture_stops_taking_packets() {
    let frames = mixed();
    let hub = TraceHub::new();
    let mut tap = TraceTap::default();
    let mut p = pipeline();
    let s = arm(&hub, Match::default(), 100);
    s.set_expiry(1);
    burst(&mut p, &mut tap, &hub, &frames);
    assert!(records(&s).is_empty());
    assert!(s.ended() && !hub.any_armed());
}

#[test]
fn a_packet_released_after_arp_is_captured_as_sent() {
    let kernel = FakeKernel::new(2, FakeMode::Copy);
    let ports = WorkerPorts::open_fake(&kernel, 4096, 2048).expect("fake ports");
    let shared = Arc::new(WorkerShared::new(
        Arc::new(AtomicBool::new(false)),
        Arc::new(TablesSlot::new(tables())),
    ));
    let cfg = WorkerConfig {
        index: 0,
        core: None,
        burst: 64,
        busy_poll: false,
    };
    let mut w = Worker::new(cfg, ports, Arc::clone(&shared)).expect("worker");
    let s = arm(&shared.trace, Match::default(), 100);
    // To a host on lan the router has no neighbour entry for: the packet
    // waits, its frame becomes an ARP request.
    let udp = Packet::udp(OUTSIDE, LAN_HOST, 5000, 53).on(WAN).frame();
    assert!(kernel.deliver(WAN.0 as usize, &udp));
    w.poll_once();
    let first: Vec<(PortId, CaptureDir)> = records(&s).iter().map(|r| (r.port, r.dir)).collect();
    assert_eq!(
        first,
        vec![(WAN, CaptureDir::Received), (LAN, CaptureDir::Sent)],
        "the packet as received, the ARP request as sent"
    );
    // The answer releases it.
    let host_mac = dataplane::addr::Mac([2, 0, 0x5e, 0x10, 0x0e, 5]);
    let reply = arp_frame(LAN_MAC, 2, host_mac, LAN_HOST, LAN_ADDR);
    assert!(kernel.deliver(LAN.0 as usize, &reply));
    w.poll_once();
    let recs = records(&s);
    let sent: Vec<&CaptureRecord> = recs
        .iter()
        .filter(|r| r.dir == CaptureDir::Sent && r.port == LAN)
        .collect();
    assert_eq!(sent.len(), 1, "{recs:#?}");
    assert_eq!(&sent[0].data[0..6], &host_mac.0, "to the host's MAC");
    assert_eq!(sent[0].data[14 + 8], 63, "rewritten: TTL 63");
    assert_eq!(&sent[0].data[14 + 16..14 + 20], &LAN_HOST.to_be_bytes());
}
