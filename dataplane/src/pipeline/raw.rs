//! The raw stage: before connection tracking, the raw rules of the hook
//! decide which packets are tracked; `notrack` skips conntrack.

use crate::conntrack::{CtResult, CtState};
use crate::meta::Meta;
use crate::owner;
use crate::packet::{Pkt, Verdict};
use crate::rules::{RawAction, RawHook, RuleList};
use crate::tables::Tables;
use crate::trace::{Event, Tracer};

use super::conntrack::ct_info;
use super::{Outcome, State};

impl State {
    /// The raw stage of `hook`, then conntrack for what raw leaves tracked.
    /// Sets `m.ct_state`; returns the conntrack result (None: untracked).
    #[inline(always)]
    pub(super) fn raw_and_track<T: Tracer>(
        &mut self,
        t: &Tables,
        pkt: &Pkt<'_>,
        m: &mut Meta,
        hook: RawHook,
        tr: &mut T,
    ) -> Result<Option<CtResult>, Outcome> {
        let (rule, action) = t.raw_verdict(hook, m);
        if action != RawAction::NoTrack && self.workers > 1 {
            // Before anything is counted: the owner counts the packet.
            let other = if m.v6 {
                self.other_owner6(pkt, m)
            } else {
                self.other_owner(pkt, m)
            };
            if let Some(w) = other {
                return Err(Outcome::of(Verdict::HandOff(w)));
            }
        }
        let bytes = m.total_len as u64;
        self.counters.rule_hit(RuleList::Raw(hook), rule, 1, bytes);
        tr.event(Event::Raw { hook, rule, action });
        let ct = if action == RawAction::NoTrack {
            self.counters.untracked += 1;
            None
        } else {
            let r = if m.v6 {
                self.track6(pkt, m)
            } else {
                self.track(pkt, m)
            };
            Some(r.map_err(Outcome::drop)?)
        };
        m.ct_state = ct.map_or(CtState::Untracked, |r| r.state);
        tr.event(Event::Conntrack {
            state: m.ct_state,
            flow: ct.and_then(|r| r.flow),
        });
        Ok(ct)
    }

    /// The worker that owns the packet's flow when it is not this one: by
    /// the flow's tuple, or for an ICMP error by the flow it quotes.
    #[cold]
    #[inline(never)]
    pub(super) fn other_owner(&self, pkt: &Pkt<'_>, m: &Meta) -> Option<u8> {
        let key = if m.has_icmp && crate::wire::icmp::is_error(m.icmp_type) {
            Self::quoted_flow(pkt, m).unwrap_or(ct_info(m).key)
        } else {
            ct_info(m).key
        };
        let w = owner::owner(&key, self.workers);
        (w != self.me).then_some(w as u8)
    }
}
