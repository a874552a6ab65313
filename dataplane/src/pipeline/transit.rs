//! The transit fast path: untracked packets through the router, decided
//! from a route slot and one rule lookup, with no `Meta`. It makes exactly
//! the decisions of the general path and changes nothing; what it does not
//! handle takes the general path.

use crate::dispatch::FastCode;
use crate::packet::{Pkt, PortId};
use crate::rules::{ChainId, FilterAction, RawAction, RawHook};
use crate::tables::Tables;

use super::parse::L3;
use super::rewrite;
use super::run::RunKey;
use super::{FastHop, FastHopKind, State};
use crate::rewrite::L2;

/// The fast path's decision for a packet: where it goes, with which
/// addresses, and the key of its counters.
#[derive(Clone, Copy)]
pub(super) struct Fast {
    pub(super) out: PortId,
    pub(super) l2: L2,
    pub(super) key: RunKey,
}

/// The fast path's decision for a packet to the router: [`State::local`].
const LOCAL: Fast = Fast {
    out: PortId::HOST,
    l2: L2::NONE,
    key: RunKey::NONE,
};

impl State {
    /// The transit fast path's decision for a packet `fast_l3` read:
    /// untracked, TTL > 1, accepted by the forward chain, to a resolved next
    /// hop within the MTU. It makes exactly the decisions of the general
    /// path (a differential test holds them equal) and changes nothing:
    /// `None` leaves the packet to the general path.
    #[inline(always)]
    pub(super) fn fast_decide(&self, t: &Tables, pkt: &Pkt<'_>, pm: L3) -> Option<Fast> {
        let hop = self.nh_fast.get(t.routes.lookup_slot(pm.dst) as usize)?;
        let out = hop.out;
        // Gateways first: the common case costs one test.
        let l2 = if hop.kind == FastHopKind::Via {
            hop.l2
        } else if hop.kind == FastHopKind::Local {
            return Some(LOCAL);
        } else {
            self.connected_l2(t, hop, pm.dst)?
        };
        if pm.ttl <= 1 || pm.total_len > hop.mtu as usize {
            return None;
        }
        let code = match t.fast_rules.get_at(pm.in_port, hop.rules_off, pm.proto) {
            FastCode::Fast { code } => code,
            FastCode::Slow => return None,
            FastCode::Search => self.fast_search(t, pkt, out)?,
        };
        let key = RunKey::transit(pm.in_port, out, code);
        Some(Fast { out, l2, key })
    }

    /// [`State::fast_decide`] for a next hop other than a resolved gateway
    /// or the router: the MACs for a connected destination whose neighbour
    /// is known, else None (the general path).
    #[inline(never)]
    fn connected_l2(&self, t: &Tables, hop: &FastHop, dst: u32) -> Option<L2> {
        if hop.kind != FastHopKind::Connected {
            return None;
        }
        let ifc = &t.interfaces[hop.out.0 as usize];
        // Directed broadcast: the general path names the drop.
        if ifc.is_broadcast(dst) {
            return None;
        }
        let n = self.neigh.get(dst).filter(|n| n.port == hop.out)?;
        Some(rewrite::l2_to(t, hop.out, n.mac))
    }

    /// The fast path's rule decisions when [`FastRules`] leaves rules with
    /// address or port conditions to try: the raw and forward dispatch
    /// tables with their searches, as the general path evaluates them. A
    /// fast code, or None for the general path. Out of line, and it parses
    /// the packet again: the fast path never keeps a `Meta` in memory, which
    /// costs more than parsing twice in this rarer case.
    #[inline(never)]
    fn fast_search(&self, t: &Tables, pkt: &Pkt<'_>, out: PortId) -> Option<u32> {
        let mut m = self.fast_parse(pkt)?;
        let (raw_rule, raw_action) = t.raw_verdict(RawHook::Prerouting, &m);
        if raw_action != RawAction::NoTrack {
            return None;
        }
        let raw_rule = raw_rule?;
        m.out_port = Some(out);
        let (rule, action) = t.filter_verdict(ChainId::Forward, &m);
        if action != FilterAction::Accept {
            return None;
        }
        FastCode::pack(raw_rule, rule)
    }
}
