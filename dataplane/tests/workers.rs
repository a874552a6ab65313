//! Several workers judge tracked flows as one does.
//!
//! The same packets go through one pipeline (one worker, which owns every
//! flow) and through two pipelines that split them in any way (as RSS
//! queues would), each handing a tracked packet whose flow the other owns
//! to it (`Verdict::HandOff`), as the worker loop does: every packet ends
//! with the same verdict and the same bytes out, the two connection tables
//! together hold exactly the one table's flows, each in its owner's table,
//! and the counters add up to the same.

mod support;

use dataplane::conntrack::FlowView;
use dataplane::owner::owner;
use dataplane::packet::{Pkt, PortId, Verdict};
use dataplane::pipeline::Pipeline;
use dataplane::wire::{icmp, tcp};
use proptest::prelude::*;
use support::*;

const CLIENTS: [u32; 3] = [WAN_GW, ip(198, 18, 0, 7), ip(198, 18, 0, 9)];

/// One packet of the scenario, from a small set of flows so that flows
/// meet again: a TCP service on the router, pings, the router's own UDP
/// and the port unreachable about it, transit, a closed port.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// Client `c` to the router's port 22, source port 40000 + `p`.
    TcpIn {
        c: usize,
        p: u16,
        flags: u8,
    },
    /// The router's answer on that connection.
    TcpOut {
        c: usize,
        p: u16,
        flags: u8,
    },
    /// Client `c` pings the router with identifier `id`; and the reply.
    PingIn {
        c: usize,
        id: u16,
    },
    PingOut {
        c: usize,
        id: u16,
    },
    /// The router's UDP from port 5000 + `p` to client `c`, port 53; and
    /// the client's port unreachable quoting it.
    UdpOut {
        c: usize,
        p: u16,
    },
    Unreachable {
        c: usize,
        p: u16,
    },
    /// Transit, untracked.
    Transit {
        p: u16,
    },
    /// A SYN to a port the input policy drops.
    Closed {
        c: usize,
        p: u16,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let c = 0..CLIENTS.len();
    let p = 0..4u16;
    let flags = prop_oneof![
        Just(tcp::SYN),
        Just(tcp::SYN | tcp::ACK),
        Just(tcp::ACK),
        Just(tcp::ACK | tcp::PSH),
        Just(tcp::FIN | tcp::ACK),
        Just(tcp::RST),
    ];
    prop_oneof![
        3 => (c.clone(), p.clone(), flags.clone()).prop_map(|(c, p, flags)| Step::TcpIn { c, p, flags }),
        3 => (c.clone(), p.clone(), flags).prop_map(|(c, p, flags)| Step::TcpOut { c, p, flags }),
        1 => (c.clone(), p.clone()).prop_map(|(c, id)| Step::PingIn { c, id }),
        1 => (c.clone(), p.clone()).prop_map(|(c, id)| Step::PingOut { c, id }),
        1 => (c.clone(), p.clone()).prop_map(|(c, p)| Step::UdpOut { c, p }),
        1 => (c.clone(), p.clone()).prop_map(|(c, p)| Step::Unreachable { c, p }),
        1 => p.clone().prop_map(|p| Step::Transit { p }),
        1 => (c, p).prop_map(|(c, p)| Step::Closed { c, p }),
    ]
}

/// The port and the frame of a step.
fn frame(s: Step) -> (PortId, Vec<u8>) {
    let host = PortId::HOST;
    match s {
        Step::TcpIn { c, p, flags } => (
            WAN,
            Packet::tcp(CLIENTS[c], WAN_ADDR, 40000 + p, 22, flags)
                .on(WAN)
                .frame(),
        ),
        Step::TcpOut { c, p, flags } => (
            host,
            Packet::tcp(WAN_ADDR, CLIENTS[c], 22, 40000 + p, flags).frame(),
        ),
        Step::PingIn { c, id } => (WAN, Packet::ping(CLIENTS[c], WAN_ADDR, id).on(WAN).frame()),
        Step::PingOut { c, id } => (
            host,
            Packet::icmp(
                WAN_ADDR,
                CLIENTS[c],
                icmp::ECHO_REPLY,
                0,
                u32::from(id) << 16,
            )
            .frame(),
        ),
        Step::UdpOut { c, p } => (
            host,
            Packet::udp(WAN_ADDR, CLIENTS[c], 5000 + p, 53).frame(),
        ),
        Step::Unreachable { c, p } => {
            let quoted = Packet::udp(WAN_ADDR, CLIENTS[c], 5000 + p, 53).ip_bytes();
            let err = Packet::icmp(
                CLIENTS[c],
                WAN_ADDR,
                icmp::DEST_UNREACHABLE,
                icmp::PORT_UNREACHABLE,
                0,
            )
            .payload(&quoted[..28])
            .on(WAN);
            (WAN, err.frame())
        }
        Step::Transit { p } => (
            WAN,
            Packet::udp(OUTSIDE, INSIDE, 7000 + p, 53).on(WAN).frame(),
        ),
        Step::Closed { c, p } => (
            WAN,
            Packet::tcp(CLIENTS[c], WAN_ADDR, 41000 + p, 8080, tcp::SYN)
                .on(WAN)
                .frame(),
        ),
    }
}

/// Runs one frame through `p`: its verdict and the bytes it leaves with.
fn run_one(p: &mut Pipeline, port: PortId, frame: &[u8]) -> (Verdict, Vec<u8>) {
    let mut buf = frame.to_vec();
    buf.resize(BUF_LEN, 0);
    let mut pkts = [Pkt {
        len: frame.len(),
        buf: &mut buf,
        port,
    }];
    let mut v = [Verdict::Consumed];
    p.process_burst(&mut pkts, &mut v);
    let len = pkts[0].len;
    (v[0], buf[..len].to_vec())
}

fn flows(p: &Pipeline) -> Vec<FlowView> {
    let mut f: Vec<FlowView> = p.conntrack().flows(p.now()).collect();
    f.sort_by_key(|v| format!("{v:?}"));
    f
}

/// The test router with every client a static neighbour: neighbour
/// resolution (ARP) is each worker's own and is shared between workers by
/// the worker loop, not here.
fn router() -> Pipeline {
    pipeline_with(|s| {
        for (i, &addr) in CLIENTS.iter().enumerate().skip(1) {
            s.neighbours.push(dataplane::tables::StaticNeighbour {
                addr,
                mac: dataplane::addr::Mac([2, 0, 0, 0, 0x77, i as u8]),
                port: WAN,
            });
        }
    })
}

/// Runs the steps both ways and compares; returns how many packets were
/// handed over.
fn check(steps: &[(Step, usize)]) -> usize {
    let mut one = router();
    let mut two = [router(), router()];
    for (i, w) in two.iter_mut().enumerate() {
        w.set_worker(i, 2);
    }
    let mut handed = 0;
    for (n, &(s, first)) in steps.iter().enumerate() {
        let now = 1 + n as u32 / 8;
        one.set_now(now);
        two.iter_mut().for_each(|w| w.set_now(now));
        let (port, f) = frame(s);
        let want = run_one(&mut one, port, &f);
        let mut got = run_one(&mut two[first], port, &f);
        if let Verdict::HandOff(to) = got.0 {
            let to = to as usize;
            assert_ne!(to, first, "handed to itself");
            handed += 1;
            // The owner takes it as the worker loop gives it: the frame
            // as received.
            got = run_one(&mut two[to], port, &f);
            assert!(
                !matches!(got.0, Verdict::HandOff(_)),
                "the owner handed on {s:?}"
            );
        }
        assert_eq!(got, want, "packet {n}: {s:?} on worker {first}");
    }
    // Each flow lives in its owner's table, and together they are the one
    // worker's table.
    let mut both = Vec::new();
    for (i, w) in two.iter().enumerate() {
        for f in flows(w) {
            assert_eq!(owner(&f.key, 2), i, "{f:?} in the wrong table");
            both.push(f);
        }
    }
    both.sort_by_key(|v| format!("{v:?}"));
    assert_eq!(both, flows(&one));
    // The counters add up (a handed packet is counted by its owner only).
    let mut sum = two[0].counters().clone();
    sum.merge(two[1].counters());
    let c = one.counters();
    let key = |c: &dataplane::counters::Counters| {
        (
            c.rx[WAN.0 as usize],
            c.rx[PortId::HOST.0 as usize],
            c.forwarded,
            c.to_host,
            c.consumed,
            c.tracked,
            c.untracked,
            c.drops.to_vec(),
            c.raw_rules.clone(),
            c.filter_rules.clone(),
            c.filter_policy,
        )
    };
    assert_eq!(key(&sum), key(c), "counters differ ({handed} handed over)");
    handed
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn two_workers_in_any_split_decide_as_one(
        steps in prop::collection::vec((step(), 0..2usize), 1..80)
    ) {
        check(&steps);
    }
}

#[test]
fn a_handshake_split_across_workers_is_tracked_by_its_owner() {
    // Every packet of the connection lands on the worker that does not own
    // it, in both directions.
    let flow = Packet::tcp(CLIENTS[0], WAN_ADDR, 40000, 22, tcp::SYN);
    let key = dataplane::conntrack::FlowKey {
        src: flow.src,
        dst: flow.dst,
        sport: 40000,
        dport: 22,
        proto: 6,
        icmp: 0,
    };
    let other = 1 - owner(&key, 2);
    let steps = [
        (
            Step::TcpIn {
                c: 0,
                p: 0,
                flags: tcp::SYN,
            },
            other,
        ),
        (
            Step::TcpOut {
                c: 0,
                p: 0,
                flags: tcp::SYN | tcp::ACK,
            },
            other,
        ),
        (
            Step::TcpIn {
                c: 0,
                p: 0,
                flags: tcp::ACK,
            },
            other,
        ),
        (
            Step::TcpIn {
                c: 0,
                p: 0,
                flags: tcp::ACK | tcp::PSH,
            },
            other,
        ),
        (Step::UdpOut { c: 0, p: 1 }, other),
        (Step::Unreachable { c: 0, p: 1 }, 1 - other),
        (Step::Unreachable { c: 0, p: 1 }, other),
        (Step::PingIn { c: 1, id: 3 }, 0),
        (Step::PingIn { c: 1, id: 3 }, 1),
    ];
    assert!(
        check(&steps) >= 6,
        "the split must make the workers hand over"
    );
}
