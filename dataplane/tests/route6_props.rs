//! Property tests of the IPv6 route table (`dataplane::route6`): the
//! Poptrie, its batch lookup and the hash baseline all give the answer of a
//! naive reference (a linear scan for the longest matching prefix, the last
//! duplicate winning) on random tables with nested prefixes of every
//! length, at every prefix's edges and at random addresses; and on sparse
//! tables of long prefixes (/64 to /128 under a common prefix of 40 to 127
//! bits: long chains of one-child nodes, buckets at every depth, more than a
//! bucket holds under one node); and on dense tables (hundreds of prefixes
//! under one subtree: wide nodes, nested).

use dataplane::addr::Ipv6Prefix;
use dataplane::route6::{HashRouteTable6, RouteTable6};
use proptest::prelude::*;

/// The reference: longest prefix containing `a`; of equal prefixes, the
/// last in input order.
fn naive(routes: &[(Ipv6Prefix, u32)], a: u128) -> Option<u32> {
    let mut best: Option<(u8, u32)> = None;
    for &(p, nh) in routes {
        if p.contains(a) && best.is_none_or(|(l, _)| p.len() >= l) {
            best = Some((p.len(), nh));
        }
    }
    best.map(|(_, nh)| nh)
}

/// Prefixes near a few bases so that they nest and collide; lengths biased
/// to where the strides change (20, 26, ..., 122; the wide nodes' 32, 44)
/// and to the real table's.
fn routes() -> impl Strategy<Value = Vec<(Ipv6Prefix, u32)>> {
    let len = prop_oneof![
        0u8..=128,
        prop::sample::select(vec![
            17u8, 18, 19, 20, 21, 25, 26, 27, 31, 32, 33, 36, 38, 43, 44, 45, 48, 56, 60, 64, 121,
            122, 123, 126, 127, 128
        ]),
    ];
    let base = prop::sample::select(vec![
        0x2001_0db8_0000_0000_0000_0000_0000_0000u128,
        0x2001_0db8_ffff_0000_0000_0000_0000_0000,
        0x2a00_1450_4001_0800_0000_0000_0000_0000,
        0,
        u128::MAX,
    ]);
    // Flip a few random bits of a base: deep shared prefixes.
    let addr = (base, any::<u128>(), 0u32..128).prop_map(|(b, r, k)| b ^ (r >> k));
    proptest::collection::vec((addr, len, 0u32..50), 0..200).prop_map(|v| {
        v.into_iter()
            .map(|(a, l, nh)| (Ipv6Prefix::new(a, l).unwrap(), nh))
            .collect()
    })
}

/// A few long prefixes sharing their first 40..128 bits (a random base),
/// optionally with a default route and a /32 above them.
fn deep_routes() -> impl Strategy<Value = Vec<(Ipv6Prefix, u32)>> {
    let len = prop::sample::select(vec![48u8, 64, 96, 100, 119, 120, 121, 125, 126, 127, 128]);
    (
        any::<u128>(),
        40u32..128,
        proptest::collection::vec((any::<u128>(), len, 0u32..50), 1..8),
        any::<bool>(),
    )
        .prop_map(|(base, shared, tails, above)| {
            let mut v: Vec<(Ipv6Prefix, u32)> = tails
                .into_iter()
                .map(|(r, l, nh)| (Ipv6Prefix::new(base ^ (r >> shared), l).unwrap(), nh))
                .collect();
            if above {
                v.push((Ipv6Prefix::DEFAULT, 60));
                v.push((Ipv6Prefix::new(base, 32).unwrap(), 61));
            }
            v
        })
}

/// Dense tables: 1,000 to 2,000 prefixes of the real table's lengths (and a
/// few longer and shorter) below one /18 to /37, enough under one subtree
/// for the wide nodes, nested down to /42 or further; half of the tables
/// with two next hops only.
fn dense_routes() -> impl Strategy<Value = Vec<(Ipv6Prefix, u32)>> {
    let len = prop::sample::select(vec![
        24u8, 30, 32, 36, 40, 42, 44, 46, 47, 48, 48, 48, 48, 54, 56, 64, 128,
    ]);
    (
        any::<u128>(),
        18u32..30,
        proptest::collection::vec((any::<u128>(), 0u32..8, len, 0u32..5000), 1000..2000),
        any::<bool>(),
    )
        .prop_map(|(base, shared, tails, few)| {
            tails
                .into_iter()
                .map(|(r, k, l, nh)| {
                    // Two next hops only: whole nodes of one next hop, which
                    // the table stores as a leaf.
                    let nh = if few { nh % 2 } else { nh };
                    (Ipv6Prefix::new(base ^ (r >> (shared + k)), l).unwrap(), nh)
                })
                .collect()
        })
}

/// Lookups of the prefixes' edges, just outside them and `randoms`, every
/// one checked against [`naive`] with `lookup` and `lookup_batch`.
fn check(routes: &[(Ipv6Prefix, u32)], randoms: Vec<u128>) -> Result<(), TestCaseError> {
    check_with(routes, randoms, |a| naive(routes, a))
}

/// [`check`] against `reference`.
fn check_with(
    routes: &[(Ipv6Prefix, u32)],
    randoms: Vec<u128>,
    reference: impl Fn(u128) -> Option<u32>,
) -> Result<(), TestCaseError> {
    let t = RouteTable6::build(routes);
    let mut probes = randoms;
    for &(p, _) in routes {
        probes.extend([
            p.addr(),
            p.last(),
            p.addr().wrapping_sub(1),
            p.last().wrapping_add(1),
        ]);
        probes.push(p.addr() | (0x5555_5555_5555_5555_5555_5555_5555_5555 & !p.mask()));
    }
    let mut batch = vec![0u32; probes.len()];
    t.lookup_batch(&probes, &mut batch);
    for (i, &a) in probes.iter().enumerate() {
        let want = reference(a);
        prop_assert_eq!(t.lookup(a), want, "poptrie at {:#034x}", a);
        prop_assert_eq!(batch[i].checked_sub(1), want, "batch at {:#034x}", a);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// With wide nodes (the subtrees of at least 512 prefixes); the hash
    /// table, itself held to the naive scan below, is the reference (the
    /// scan would take minutes on 1,500 prefixes times 7,500 probes).
    #[test]
    fn dense_tables_with_wide_nodes_match_the_reference(
        routes in dense_routes(),
        randoms in proptest::collection::vec(any::<u128>(), 0..100),
    ) {
        let t = RouteTable6::build(&routes);
        prop_assert!(t.wide_nodes() > 0, "{:?}", t);
        let h = HashRouteTable6::build(&routes);
        check_with(&routes, randoms, |a| h.lookup(a))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn sparse_deep_tables_match_the_naive_reference(
        routes in deep_routes(),
        randoms in proptest::collection::vec(any::<u128>(), 0..20),
    ) {
        check(&routes, randoms)?;
    }

    #[test]
    fn poptrie_and_hash_match_the_naive_reference(
        routes in routes(),
        randoms in proptest::collection::vec(any::<u128>(), 0..100),
    ) {
        let t = RouteTable6::build(&routes);
        let h = HashRouteTable6::build(&routes);
        for &a in &randoms {
            prop_assert_eq!(h.lookup(a), naive(&routes, a), "hash at {:#034x}", a);
        }
        for &(p, _) in &routes {
            for a in [p.addr(), p.last(), p.addr().wrapping_sub(1), p.last().wrapping_add(1)] {
                prop_assert_eq!(h.lookup(a), naive(&routes, a), "hash at {:#034x}", a);
            }
        }
        check(&routes, randoms)?;
        let distinct: std::collections::HashSet<_> = routes.iter().map(|r| r.0).collect();
        prop_assert_eq!(t.len(), distinct.len());
        prop_assert_eq!(h.len(), distinct.len());
    }
}
