//! The filter stage: chains `input`, `forward`, `output`, each an ordered
//! list of rules and a policy. First match wins. Also the rule matcher the
//! raw stage shares.

use crate::dispatch::Dispatch;
use crate::pipeline::Meta;
use crate::tables::{AddrMatch, Chain, FilterAction, Match, Tables};

/// Whether every condition of `m` holds for the packet. Conditions absent
/// from the rule cost one test of `m.need`; the cheap ones come first.
#[inline(always)]
pub fn matches(m: &Match, meta: &Meta, tables: &Tables) -> bool {
    let need = m.need;
    if need == 0 {
        return true;
    }
    if !key_matches(m, meta) {
        return false;
    }
    if need & Match::NEED_DST != 0 {
        if let Some(AddrMatch::Prefixes(ps)) = &m.destination {
            if !ps.iter().any(|p| p.contains(meta.dst)) {
                return false;
            }
        }
    }
    if need & Match::NEED_SRC != 0 {
        let ok = match &m.source {
            Some(AddrMatch::Local) => tables.is_local(meta.src),
            Some(AddrMatch::Prefixes(ps)) => ps.iter().any(|p| p.contains(meta.src)),
            None => true,
        };
        if !ok {
            return false;
        }
    }
    // A port match never matches a packet whose ports we cannot see
    // (non-first fragments, protocols without ports).
    if need & Match::NEED_DPORT != 0 {
        let hit = meta.has_ports
            && m.destination_port
                .as_ref()
                .is_some_and(|r| r.iter().any(|(lo, hi)| (*lo..=*hi).contains(&meta.dport)));
        if !hit {
            return false;
        }
    }
    if need & Match::NEED_SPORT != 0 {
        let hit = meta.has_ports
            && m.source_port
                .as_ref()
                .is_some_and(|r| r.iter().any(|(lo, hi)| (*lo..=*hi).contains(&meta.sport)));
        if !hit {
            return false;
        }
    }
    if need & Match::NEED_ICMP_TYPE != 0 && !(meta.has_icmp && m.icmp_type == Some(meta.icmp_type))
    {
        return false;
    }
    if need & Match::NEED_ICMP_CODE != 0 && !(meta.has_icmp && m.icmp_code == Some(meta.icmp_code))
    {
        return false;
    }
    true
}

/// Whether the conditions of `m` on the fields every packet has hold: input
/// port, protocol, output port, conntrack state and `destination: local`
/// (the key of [`crate::dispatch`]'s tables, which build on this test).
#[inline(always)]
pub fn key_matches(m: &Match, meta: &Meta) -> bool {
    let need = m.need;
    if need & Match::NEED_IN != 0 && m.in_ports.unwrap_or(0) & meta.in_port.bit() == 0 {
        return false;
    }
    if need & Match::NEED_PROTO != 0 && m.protocol != Some(meta.proto) {
        return false;
    }
    if need & Match::NEED_OUT != 0 {
        match meta.out_port {
            Some(p) if m.out_ports.unwrap_or(0) & p.bit() != 0 => {}
            _ => return false,
        }
    }
    if need & Match::NEED_STATE != 0 && m.state.unwrap_or(0) & meta.ct_state.bit() == 0 {
        return false;
    }
    if need & Match::NEED_DST != 0 && matches!(m.destination, Some(AddrMatch::Local)) {
        return meta.local_dst;
    }
    true
}

/// Run a chain: the index of the rule that decided (None: the policy) and
/// the action. `d` is the dispatch table built for the chain.
#[inline(always)]
pub fn evaluate(
    chain: &Chain,
    d: &Dispatch,
    meta: &Meta,
    tables: &Tables,
) -> (Option<usize>, FilterAction) {
    match d.first_match(&chain.rules, |r| &r.matches, meta, tables) {
        Some(i) => (Some(i), chain.rules[i].action),
        None => (None, chain.policy),
    }
}
