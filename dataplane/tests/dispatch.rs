//! `Tables::build` computes every rule's `need` and builds a dispatch table
//! for each of the five rule lists (raw prerouting and output, filter input,
//! forward and output): each must pick, for any packet, the rule the plain
//! first-match loop picks in that same list.

mod support;

use dataplane::addr::Ipv4Prefix;
use dataplane::conntrack::CtState;
use dataplane::meta::Meta;
use dataplane::packet::PortId;
use dataplane::rules::{
    matches, AddrMatch, Chain, ChainId, FilterAction, FilterRule, Match, PortRanges, RawAction,
    RawHook, RawRule,
};
use dataplane::tables::Tables;
use proptest::prelude::*;
use support::*;

const STATES: [CtState; 5] = [
    CtState::New,
    CtState::Established,
    CtState::Related,
    CtState::Invalid,
    CtState::Untracked,
];

fn mask() -> impl Strategy<Value = u64> {
    prop::sample::subsequence(vec![0u8, 1, 2, 63], 0..=4)
        .prop_map(|ps| ps.iter().fold(0u64, |m, p| m | 1u64 << p))
}

fn addr_match() -> impl Strategy<Value = AddrMatch> {
    let prefixes = vec![
        Ipv4Prefix::new(ip(198, 18, 0, 0), 24).expect("prefix"),
        Ipv4Prefix::new(ip(198, 51, 100, 0), 24).expect("prefix"),
        Ipv4Prefix::new(ip(203, 0, 113, 0), 24).expect("prefix"),
    ];
    prop_oneof![
        Just(AddrMatch::Local),
        prop::sample::subsequence(prefixes, 1..=2)
            .prop_map(|ps| AddrMatch::Prefixes(ps.into_iter().collect())),
    ]
}

fn ranges() -> impl Strategy<Value = PortRanges> {
    prop::sample::subsequence(vec![(22u16, 23u16), (53, 53), (1024, 65535)], 1..=2)
        .prop_map(|r| r.into_iter().collect())
}

/// A rule's conditions, `need` left at 0: `Tables::build` computes it.
fn a_match() -> impl Strategy<Value = Match> {
    let w = 0.3;
    (
        prop::option::weighted(w, mask()),
        prop::option::weighted(w, mask()),
        prop::option::weighted(w, addr_match()),
        prop::option::weighted(w, addr_match()),
        prop::option::weighted(w, prop::sample::select(vec![1u8, 6, 17])),
        prop::option::weighted(w, ranges()),
        prop::option::weighted(w, 1u8..32),
        prop::option::weighted(w, prop::sample::select(vec![0u8, 8])),
    )
        .prop_map(
            |(in_ports, out_ports, source, destination, protocol, dport, state, icmp_type)| Match {
                in_ports,
                out_ports,
                source,
                destination,
                protocol,
                destination_port: dport,
                state,
                icmp_type,
                ..Match::default()
            },
        )
}

fn raw_rules() -> impl Strategy<Value = Vec<RawRule>> {
    prop::collection::vec((a_match(), any::<bool>()), 0..10).prop_map(|v| {
        v.into_iter()
            .map(|(matches, notrack)| RawRule {
                matches,
                action: if notrack {
                    RawAction::NoTrack
                } else {
                    RawAction::Accept
                },
                comment: None,
            })
            .collect()
    })
}

fn chain() -> impl Strategy<Value = Chain> {
    (
        prop::collection::vec((a_match(), 0u8..3), 0..10),
        any::<bool>(),
    )
        .prop_map(|(v, accept)| Chain {
            policy: if accept {
                FilterAction::Accept
            } else {
                FilterAction::Drop
            },
            rules: v
                .into_iter()
                .map(|(matches, a)| FilterRule {
                    matches,
                    action: [
                        FilterAction::Accept,
                        FilterAction::Drop,
                        FilterAction::Reject,
                    ][a as usize],
                    comment: None,
                })
                .collect(),
        })
}

/// A packet's address, port and ICMP fields (the key fields are swept).
fn probe() -> impl Strategy<Value = Meta> {
    let addr = prop_oneof![
        prop::sample::select(vec![WAN_ADDR, LAN_ADDR, OUTSIDE, INSIDE, LAN_HOST]),
        any::<u32>(),
    ];
    (
        addr.clone(),
        addr,
        prop::sample::select(vec![22u16, 23, 53, 80, 1024]),
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec![0u8, 8, 3]),
    )
        .prop_map(|(src, dst, dport, has_ports, has_icmp, icmp_type)| Meta {
            src,
            dst,
            dport,
            has_ports,
            has_icmp,
            icmp_type,
            ..Meta::default()
        })
}

/// `probe` with every combination of the key fields.
fn keyed(p: Meta) -> impl Iterator<Item = Meta> {
    [0u8, 1, 2, 63].into_iter().flat_map(move |i| {
        [None, Some(0u8), Some(1), Some(63)]
            .into_iter()
            .flat_map(move |o| {
                [1u8, 6, 17, 47].into_iter().flat_map(move |proto| {
                    STATES.into_iter().flat_map(move |ct_state| {
                        [false, true].into_iter().map(move |local_dst| Meta {
                            in_port: PortId(i),
                            out_port: o.map(PortId),
                            proto,
                            ct_state,
                            local_dst,
                            ..p
                        })
                    })
                })
            })
    })
}

fn linear<'a>(conds: impl Iterator<Item = &'a Match>, m: &Meta, t: &Tables) -> Option<usize> {
    conds.into_iter().position(|c| matches(c, m, t))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn each_rule_list_dispatches_to_its_own_first_match(
        pre in raw_rules(),
        out in raw_rules(),
        input in chain(),
        fwd in chain(),
        output in chain(),
        probes in prop::collection::vec(probe(), 1..4),
    ) {
        let mut s = spec();
        // Only `is_local` reads routes here; a default route would fill the
        // whole route table in every case.
        s.routes.clear();
        s.raw_prerouting = pre;
        s.raw_output = out;
        s.filter_input = input;
        s.filter_forward = fwd;
        s.filter_output = output;
        let t = Tables::build(s);
        for r in t.raw_prerouting.iter().chain(&t.raw_output) {
            prop_assert_eq!(r.matches.need, r.matches.compute_need());
        }
        for r in t.filter.iter().flat_map(|c| &c.rules) {
            prop_assert_eq!(r.matches.need, r.matches.compute_need());
        }
        for p in probes {
            for m in keyed(p) {
                for (hook, rules) in [
                    (RawHook::Prerouting, &t.raw_prerouting),
                    (RawHook::Output, &t.raw_output),
                ] {
                    let want = linear(rules.iter().map(|r| &r.matches), &m, &t);
                    let (got, action) = t.raw_verdict(hook, &m);
                    prop_assert_eq!(got, want, "raw hook {:?} for {:?}", hook, m);
                    prop_assert_eq!(action, want.map_or(RawAction::Accept, |i| rules[i].action));
                }
                for c in [ChainId::Input, ChainId::Forward, ChainId::Output] {
                    let ch = &t.filter[c as usize];
                    let want = linear(ch.rules.iter().map(|r| &r.matches), &m, &t);
                    let (got, action) = t.filter_verdict(c, &m);
                    prop_assert_eq!(got, want, "chain {} for {:?}", c.name(), m);
                    prop_assert_eq!(action, want.map_or(ch.policy, |i| ch.rules[i].action));
                }
            }
        }
    }
}
