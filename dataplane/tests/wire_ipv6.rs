//! Property tests of the IPv6 wire views (`dataplane::wire::{ipv6, icmpv6,
//! ndp}`): arbitrary bytes never make an accessor panic after `check_len`
//! (the checks of `wire6::fuzz_one`, also the fuzz target's), and the
//! extension header walk finds the upper-layer header where a model of the
//! chain puts it.

mod wire6;

use dataplane::wire::ipv6::{self, walk, ExtError};
use proptest::prelude::*;

/// The fuzz target's seeds pass the same checks and each reaches the
/// parser it was made for.
#[test]
fn fuzz_seeds_pass_and_parse() {
    use dataplane::wire::{icmpv6, ndp};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/wire_ipv6");
    let seed = |name: &str| std::fs::read(dir.join(name)).expect("seed file");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("corpus dir") {
        wire6::fuzz_one(&std::fs::read(e.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n >= 6);
    let chain = seed("ext_chain");
    let c = ipv6::Packet::new_checked(&chain[..])
        .unwrap()
        .chain()
        .unwrap();
    assert_eq!((c.upper, c.offset, c.headers), (Some(ipv6::NH_UDP), 24, 3));
    assert!(c.hop_by_hop && c.fragment.unwrap().is_first());
    let ll = |x: u128| 0xfe80 << 112 | x;
    let udp6 = seed("udp6");
    let p = ipv6::Packet::new_checked(&udp6[..]).unwrap();
    assert!(dataplane::wire::checksum::verify_udp6(
        p.src_addr(),
        p.dst_addr(),
        p.payload()
    ));
    let echo = seed("icmpv6_echo");
    assert!(icmpv6::Packet::new_checked(&echo[..])
        .unwrap()
        .verify_checksum(ll(1), ll(2)));
    let big = seed("icmpv6_too_big");
    assert!(icmpv6::Packet::new_checked(&big[..])
        .unwrap()
        .verify_checksum(ll(1), ll(2)));
    assert!(matches!(
        ndp::Repr::parse(ll(1), ll(2), 255, &seed("ndp_ra")),
        Ok(ndp::Repr::RouterAdvert(_))
    ));
    let target = 0x2001_0db8 << 96 | 1;
    assert!(matches!(
        ndp::Repr::parse(ll(2), ipv6::solicited_node(target), 255, &seed("ndp_ns")),
        Ok(ndp::Repr::NeighborSolicit { target: t, .. }) if t == target
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// The fast paths' test for a global or unique local address says what
    /// the address class says, for any address outside ::/10, and never
    /// says yes inside it (the top 64 bits drawn often zero or with the
    /// prefixes of each class, where they differ).
    #[test]
    fn global_or_ula_agrees_with_the_class(
        top in prop_oneof![Just(0u64), Just(0xff02u64 << 48), Just(0xfe80u64 << 48),
            Just(0xfc00u64 << 48), Just(0x2001_0db8u64 << 32), Just(0xfebfu64 << 48),
            Just(0xfec0u64 << 48), any::<u64>()],
        noise in any::<u64>(),
        low in prop_oneof![Just(0u64), Just(1u64), Just(0xffff_0000_0000u64 | 0xc612_0001),
            Just(0xffff_0000_0000u64), any::<u64>()],
        bits in 0u32..64,
    ) {
        use ipv6::AddrClass;
        // Keep the class's prefix and vary the bits below it.
        let top = if top == 0 { 0 } else { top | (noise >> bits.max(10)) };
        let addr = u128::from(top) << 64 | u128::from(low);
        let sure = AddrClass::is_surely_global_or_ula(top);
        if addr >> 118 == 0 {
            prop_assert!(!sure, "{:x}", addr);
        } else {
            prop_assert_eq!(
                sure,
                matches!(AddrClass::of(addr), AddrClass::Global | AddrClass::UniqueLocal),
                "{:x}", addr
            );
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..1600)) {
        wire6::fuzz_one(&data);
    }

    #[test]
    fn ipv6_like_bytes_never_panic(
        head in proptest::collection::vec(any::<u8>(), 40..41),
        nh in prop_oneof![Just(0u8), Just(43), Just(44), Just(51), Just(59), Just(60), any::<u8>()],
        rest in proptest::collection::vec(any::<u8>(), 0..700),
    ) {
        // Version 6 and a payload length that fits: past check_len.
        let mut data = head;
        data[0] = 0x60 | (data[0] & 0x0f);
        data[6] = nh;
        data[4..6].copy_from_slice(&(rest.len() as u16).to_be_bytes());
        data.extend(rest);
        prop_assert!(ipv6::Packet::new_checked(&data[..]).is_ok());
        wire6::fuzz_one(&data);
    }

    #[test]
    fn walk_agrees_with_a_model_of_the_chain(
        hdrs in proptest::collection::vec((0usize..5, 0usize..4), 0..10),
        upper in prop_oneof![Just(6u8), Just(17), Just(58), Just(59), Just(50)],
        tail in 0usize..40,
    ) {
        // Kinds: dest opts, routing type 4, fragment (first), AH, hop-by-hop.
        const KINDS: [u8; 5] = [60, 43, 44, 51, 0];
        let mut payload = Vec::new();
        let mut offsets = Vec::new();
        for (i, &(k, units)) in hdrs.iter().enumerate() {
            let next = hdrs.get(i + 1).map_or(upper, |&(k, _)| KINDS[k]);
            offsets.push(payload.len());
            let kind = KINDS[k];
            let len = if kind == 44 { 8 } else { (units + 1) * 8 };
            let mut h = vec![0u8; len];
            h[0] = next;
            match kind {
                44 => {}
                51 => h[1] = (len / 4 - 2) as u8,
                _ => h[1] = (len / 8 - 1) as u8,
            }
            if kind == 43 {
                h[2] = 4; // segment routing: walked past
                h[3] = 1;
            }
            payload.extend(h);
        }
        let upper_at = payload.len();
        payload.extend(std::iter::repeat_n(0u8, tail));
        let first = hdrs.first().map_or(upper, |&(k, _)| KINDS[k]);
        let hbh_late = hdrs.iter().skip(1).any(|&(k, _)| KINDS[k] == 0);
        let got = walk(first, &payload);
        let expected = if hdrs.len() > ipv6::MAX_EXT_HEADERS {
            // The first error on the way: a late hop-by-hop before the 9th.
            let early_hbh = hdrs.iter().take(ipv6::MAX_EXT_HEADERS + 1).skip(1).any(|&(k, _)| KINDS[k] == 0);
            let too_long = offsets.iter().take(ipv6::MAX_EXT_HEADERS + 1).any(|&o| o > ipv6::MAX_CHAIN_BYTES);
            if too_long || early_hbh {
                prop_assert!(got.is_err());
                return Ok(());
            }
            Err(ExtError::TooMany)
        } else if offsets.iter().chain([&upper_at]).any(|&o| o > ipv6::MAX_CHAIN_BYTES) || hbh_late {
            prop_assert!(got.is_err(), "{got:?}");
            return Ok(());
        } else {
            Ok((upper_at, hdrs.len() as u8, (upper != 59).then_some(upper)))
        };
        prop_assert_eq!(got.map(|c| (c.offset, c.headers, c.upper)), expected);
    }
}
