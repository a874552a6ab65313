//! The filter stage: chains `input`, `forward`, `output`, each an ordered
//! list of rules and a policy. First match wins. Also the rule matcher the
//! raw stage shares.

use crate::pipeline::Meta;
use crate::tables::{AddrMatch, Chain, FilterAction, Match, Tables};

/// Whether every condition of `m` holds for the packet.
#[inline]
pub fn matches(m: &Match, meta: &Meta, tables: &Tables) -> bool {
    if let Some(mask) = m.in_ports {
        if mask & meta.in_port.bit() == 0 {
            return false;
        }
    }
    if let Some(p) = m.protocol {
        if p != meta.proto {
            return false;
        }
    }
    if let Some(mask) = m.out_ports {
        match meta.out_port {
            Some(p) if mask & p.bit() != 0 => {}
            _ => return false,
        }
    }
    if let Some(d) = &m.destination {
        let ok = match d {
            AddrMatch::Local => meta.local_dst,
            AddrMatch::Prefixes(ps) => ps.iter().any(|p| p.contains(meta.dst)),
        };
        if !ok {
            return false;
        }
    }
    if let Some(s) = &m.source {
        let ok = match s {
            AddrMatch::Local => tables.is_local(meta.src),
            AddrMatch::Prefixes(ps) => ps.iter().any(|p| p.contains(meta.src)),
        };
        if !ok {
            return false;
        }
    }
    // RFC-less but essential: a port match never matches a packet whose
    // ports we cannot see (non-first fragments, protocols without ports).
    if let Some(r) = &m.destination_port {
        if !meta.has_ports || !r.iter().any(|(lo, hi)| (*lo..=*hi).contains(&meta.dport)) {
            return false;
        }
    }
    if let Some(r) = &m.source_port {
        if !meta.has_ports || !r.iter().any(|(lo, hi)| (*lo..=*hi).contains(&meta.sport)) {
            return false;
        }
    }
    if let Some(t) = m.icmp_type {
        if !meta.has_icmp || meta.icmp_type != t {
            return false;
        }
    }
    if let Some(c) = m.icmp_code {
        if !meta.has_icmp || meta.icmp_code != c {
            return false;
        }
    }
    if let Some(mask) = m.state {
        if mask & meta.ct_state.bit() == 0 {
            return false;
        }
    }
    true
}

/// Run a chain: the index of the rule that decided (None: the policy) and
/// the action.
#[inline]
pub fn evaluate(chain: &Chain, meta: &Meta, tables: &Tables) -> (Option<usize>, FilterAction) {
    for (i, r) in chain.rules.iter().enumerate() {
        if matches(&r.matches, meta, tables) {
            return (Some(i), r.action);
        }
    }
    (None, chain.policy)
}
