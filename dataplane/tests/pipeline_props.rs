//! Properties of the whole pipeline over generated input:
//! - arbitrary bytes on any port never panic, and every frame ends in
//!   exactly one counter (`rx = forwarded + to_host + consumed + sum(drops)`);
//! - valid transit packets leave with TTL one lower, a header checksum equal
//!   to a full recomputation, and no other byte changed but the MACs;
//! - byte flips of valid packets never panic.
//!
//! Also keeps the fuzz seed corpus (`fuzz/corpus/pipeline/`) in step with
//! the frame builder: `UPDATE_FUZZ_CORPUS=1 cargo test -p dataplane --test
//! pipeline_props` rewrites it.

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use dataplane::packet::{PortId, Verdict, ETH_HDR_LEN};
use dataplane::tables::Tables;
use dataplane::wire::{checksum, ethernet, ipv4, tcp};
use proptest::prelude::*;
use support::*;

/// Cases per property: the file stays within a few seconds in debug.
const CASES: u32 = 2048;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn any_port() -> impl Strategy<Value = PortId> {
    prop_oneof![Just(WAN), Just(LAN), Just(NO_SUCH_PORT), Just(PortId::HOST)]
}

/// Frames that get past the first checks often enough to reach deep
/// stages: a plausible Ethernet header, then anything.
fn framed_bytes() -> impl Strategy<Value = Vec<u8>> {
    let mac = prop_oneof![
        Just(WAN_MAC),
        Just(LAN_MAC),
        Just(dataplane::addr::Mac::BROADCAST),
        any::<[u8; 6]>().prop_map(dataplane::addr::Mac),
    ];
    let ethertype = prop_oneof![
        4 => Just(ethernet::ETHERTYPE_IPV4),
        1 => Just(ethernet::ETHERTYPE_ARP),
        1 => Just(ethernet::ETHERTYPE_VLAN),
        1 => Just(ethernet::ETHERTYPE_IPV6),
        1 => any::<u16>(),
    ];
    // An IPv4-looking first byte half of the time.
    let body =
        (any::<bool>(), prop::collection::vec(any::<u8>(), 0..1586)).prop_map(|(v4, mut b)| {
            if v4 && !b.is_empty() {
                b[0] = 0x45;
            }
            b
        });
    (mac, ethertype, body).prop_map(|(m, et, body)| {
        let mut f = eth_header(m, PEER_MAC, et);
        f.extend_from_slice(&body);
        f
    })
}

fn any_frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![prop::collection::vec(any::<u8>(), 0..1600), framed_bytes(),]
}

/// A destination the test router routes to a port (not local, not a
/// martian, not unreachable or blackholed, not a connected network except
/// its gateway).
fn routed_dst() -> impl Strategy<Value = u32> {
    prop_oneof![
        any::<u8>().prop_map(|h| ip(203, 0, 113, h)),
        any::<u8>().prop_map(|h| ip(198, 51, 100, h)),
        Just(WAN_GW),
        Just(LAN_GW),
        any::<u32>().prop_filter("routed via the default", |a| {
            let top = a >> 24;
            top != 0
                && top != 127
                && top < 224
                && a >> 8 != ip(198, 18, 0, 0) >> 8
                && a >> 8 != ip(198, 19, 0, 0) >> 8
                && a >> 8 != ip(192, 0, 2, 0) >> 8
        }),
    ]
}

fn l4() -> impl Strategy<Value = L4> {
    prop_oneof![
        (
            any::<u16>(),
            any::<u16>(),
            any::<u8>(),
            any::<u32>(),
            any::<u32>()
        )
            .prop_map(|(sport, dport, flags, seq, ack)| L4::Tcp {
                sport,
                // The forward chain drops tcp dport 2323.
                dport: if dport == 2323 { 2324 } else { dport },
                flags,
                seq,
                ack,
            }),
        (any::<u16>(), any::<u16>()).prop_map(|(sport, dport)| L4::Udp { sport, dport }),
        (any::<u8>(), any::<u8>(), any::<u32>()).prop_map(|(ty, code, rest)| L4::Icmp {
            ty,
            code,
            rest
        }),
        any::<u8>()
            .prop_filter("not tcp/udp/icmp", |p| ![1, 6, 17].contains(p))
            .prop_map(L4::Other),
    ]
}

/// Fragment flags: whole, first fragment, or a later one.
fn fragment() -> impl Strategy<Value = (bool, u16)> {
    prop_oneof![
        4 => Just((false, 0)),
        1 => Just((true, 0)),
        1 => (any::<bool>(), 1u16..8000).prop_map(|(mf, o)| (mf, o * 8)),
    ]
}

/// A valid transit packet from a host on the lan.
fn transit_packet() -> impl Strategy<Value = Packet> {
    (
        (2u8..=254, routed_dst(), 2u8..=255, l4()),
        (
            prop::collection::vec(any::<u8>(), 0..200),
            prop::option::of(
                (1usize..=10).prop_flat_map(|w| prop::collection::vec(any::<u8>(), w * 4)),
            ),
            any::<(bool, u8, u16)>(),
            fragment(),
            0usize..24,
        ),
    )
        .prop_map(
            |((host, dst, ttl, l4), (payload, options, (df, tos, ident), (mf, off), padding))| {
                let mut p = match l4 {
                    L4::Udp { sport, dport } => {
                        Packet::udp(ip(198, 19, 0, host), dst, sport, dport)
                    }
                    _ => Packet::other(ip(198, 19, 0, host), dst, 0),
                };
                p.l4 = l4;
                p.dst_mac = LAN_MAC;
                p.ttl = ttl;
                p.payload = payload;
                p.options = options.unwrap_or_default();
                p.df = df;
                p.tos = tos;
                p.ident = ident;
                p.mf = mf;
                p.frag_offset = off;
                p.padding = padding;
                p
            },
        )
}

/// A valid packet of any kind the router sees, as a frame.
fn valid_frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        transit_packet().prop_map(|p| p.frame()),
        Just(Packet::ping(OUTSIDE, WAN_ADDR, 1).payload_len(20).frame()),
        Just(Packet::tcp(OUTSIDE, WAN_ADDR, 40000, 22, tcp::SYN).frame()),
        Just(
            Packet::tcp(OUTSIDE, WAN_ADDR, 40000, 23, tcp::ACK)
                .payload_len(9)
                .frame()
        ),
        Just(Packet::udp(OUTSIDE, WAN_ADDR, 40000, 69).frame()),
        Just(Packet::udp(OUTSIDE, INSIDE, 40000, 69).ttl(1).frame()),
        Just(arp_frame(
            dataplane::addr::Mac::BROADCAST,
            dataplane::wire::arp::OP_REQUEST,
            PEER_MAC,
            WAN_GW,
            WAN_ADDR
        )),
        Just(Packet6::ping(OUTSIDE6, WAN6, 1).payload_len(20).frame()),
        Just(Packet6::tcp(OUTSIDE6, WAN6, 40000, 22, tcp::SYN).frame()),
        Just(
            Packet6::udp(OUTSIDE6, INSIDE6, 40000, 69)
                .hop_limit(1)
                .frame()
        ),
        Just(
            Packet6::udp(OUTSIDE6, INSIDE6, 1, 2)
                .ext(Ext::hop_by_hop())
                .ext(Ext::fragment(0, true))
                .payload_len(16)
                .frame()
        ),
    ]
}

fn shared_tables() -> Arc<Tables> {
    static T: std::sync::OnceLock<Arc<Tables>> = std::sync::OnceLock::new();
    T.get_or_init(tables).clone()
}

proptest! {
    #![proptest_config(config())]

    /// (a) Arbitrary bytes, several frames through one pipeline so state
    /// (learned neighbours, flows) carries over.
    #[test]
    fn arbitrary_frames_never_panic_and_are_counted_once(
        frames in prop::collection::vec((any_port(), any_frame()), 1..6)
    ) {
        let mut p = dataplane::pipeline::Pipeline::new(shared_tables());
        for (port, f) in &frames {
            check_frame(&mut p, *port, f);
        }
        let c = p.counters();
        let rx: u64 = c.rx.iter().map(|r| r.packets).sum();
        prop_assert_eq!(rx, frames.len() as u64);
    }

    /// (b) Valid transit packets are forwarded with TTL - 1 and nothing else
    /// changed but the checksum and the MACs.
    #[test]
    fn transit_changes_only_ttl_checksum_and_macs(pkt in transit_packet()) {
        let mut p = dataplane::pipeline::Pipeline::new(shared_tables());
        let frame = pkt.frame();
        let (out_port, gw_mac) = if pkt.dst >> 8 == ip(203, 0, 113, 0) >> 8 || pkt.dst == LAN_GW {
            (LAN, LAN_GW_MAC)
        } else {
            (WAN, WAN_GW_MAC)
        };
        let r = run(&mut p, LAN, &frame);
        prop_assert_eq!(r.verdict, Verdict::Tx(out_port), "trace {:?}", r.trace);
        check_frame(&mut p, LAN, &frame);

        let ip_in = &frame[ETH_HDR_LEN..frame.len() - pkt.padding];
        let out = &r.out;
        prop_assert_eq!(out.len(), ETH_HDR_LEN + ip_in.len(), "padding stripped");
        prop_assert_eq!(&out[0..6], &gw_mac.0[..]);
        prop_assert_eq!(&out[6..12], &(if out_port == LAN { LAN_MAC } else { WAN_MAC }).0[..]);
        prop_assert_eq!(&out[12..14], &frame[12..14]);
        let ip_out = &out[ETH_HDR_LEN..];
        prop_assert_eq!(ip_out[8], ip_in[8] - 1, "TTL");
        for (i, (a, b)) in ip_in.iter().zip(ip_out).enumerate() {
            if i != 8 && i != 10 && i != 11 {
                prop_assert_eq!(a, b, "byte {} of the IP packet changed", i);
            }
        }
        let ihl = pkt.ihl();
        let mut h = ip_out[..ihl].to_vec();
        h[10..12].copy_from_slice(&[0, 0]);
        let full = checksum::data(&h);
        prop_assert_eq!(
            u16::from_be_bytes([ip_out[10], ip_out[11]]),
            full,
            "incremental update = full recomputation"
        );
        prop_assert!(ipv4::Packet::new_checked(ip_out).unwrap().verify_checksum());
    }

    /// (c) Random byte flips (and cuts) of valid packets never panic, on
    /// any port.
    #[test]
    fn mutated_valid_frames_never_panic(
        frame in valid_frame(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..8),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let mut f = frame;
        for (i, x) in flips {
            let at = i.index(f.len());
            f[at] ^= x;
        }
        if let Some(c) = cut {
            f.truncate(c.index(f.len() + 1));
        }
        fuzz_one(&shared_tables(), &f);
    }
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/pipeline")
}

/// The committed seeds are what the builder makes today, and each runs
/// through the fuzz target's checks.
#[test]
fn fuzz_seed_corpus_is_up_to_date() {
    let dir = corpus_dir();
    let seeds = seed_corpus();
    if std::env::var_os("UPDATE_FUZZ_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_FUZZ_CORPUS=1 writes it)", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    let mut names: Vec<String> = seeds.iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    assert_eq!(
        on_disk, names,
        "seed files (UPDATE_FUZZ_CORPUS=1 rewrites them)"
    );
    for (name, bytes) in &seeds {
        let disk = std::fs::read(dir.join(name)).unwrap();
        assert!(
            &disk == bytes,
            "{name} differs (UPDATE_FUZZ_CORPUS=1 rewrites it)"
        );
        fuzz_one(&shared_tables(), bytes);
    }
    // Each seed is a valid frame: none dies in parsing on its intended port.
    let mut p = dataplane::pipeline::Pipeline::new(shared_tables());
    for (name, bytes) in &seeds {
        let port = if bytes[..6] == LAN_MAC.0 {
            LAN
        } else if bytes[..6] == [0; 6] {
            PortId::HOST
        } else {
            WAN
        };
        let v = check_frame(&mut p, port, bytes);
        if let Verdict::Drop(r) = v {
            let name_of = r.name();
            assert!(
                !name_of.starts_with("eth_")
                    && !name_of.starts_with("ip_bad")
                    && !name_of.starts_with("ip_trunc")
                    && !name_of.starts_with("l4_"),
                "seed {name} is malformed: {r}"
            );
        }
    }
}
