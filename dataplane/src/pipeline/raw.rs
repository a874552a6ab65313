//! The raw stage: before connection tracking, the raw rules of the hook
//! decide which packets are tracked; `notrack` skips conntrack.

use crate::conntrack::{CtResult, CtState};
use crate::drop::DropReason;
use crate::meta::Meta;
use crate::packet::Pkt;
use crate::rules::{RawAction, RawHook, RuleList};
use crate::tables::Tables;
use crate::trace::{Event, Tracer};

use super::State;

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
    ) -> Result<Option<CtResult>, DropReason> {
        let (rule, action) = t.raw_verdict(hook, m);
        let bytes = m.total_len as u64;
        self.counters.rule_hit(RuleList::Raw(hook), rule, 1, bytes);
        tr.event(Event::Raw { hook, rule, action });
        let ct = if action == RawAction::NoTrack {
            self.counters.untracked += 1;
            None
        } else {
            Some(self.track(pkt, m)?)
        };
        m.ct_state = ct.map_or(CtState::Untracked, |r| r.state);
        tr.event(Event::Conntrack {
            state: m.ct_state,
            flow: ct.and_then(|r| r.flow),
        });
        Ok(ct)
    }
}
