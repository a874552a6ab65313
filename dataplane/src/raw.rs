//! The raw stage: before connection tracking, decide which packets are
//! tracked. First match wins; `notrack` marks the packet UNTRACKED, `accept`
//! stops the stage and leaves it to conntrack; no match means tracked.

use crate::filter::matches;
use crate::pipeline::Meta;
use crate::tables::{RawAction, RawRule, Tables};

/// The deciding rule (None: no rule matched) and whether to track.
#[inline(always)]
pub fn evaluate(rules: &[RawRule], meta: &Meta, tables: &Tables) -> (Option<usize>, RawAction) {
    for (i, r) in rules.iter().enumerate() {
        if matches(&r.matches, meta, tables) {
            return (Some(i), r.action);
        }
    }
    (None, RawAction::Accept)
}
