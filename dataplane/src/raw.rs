//! The raw stage: before connection tracking, decide which packets are
//! tracked. First match wins; `notrack` marks the packet UNTRACKED, `accept`
//! stops the stage and leaves it to conntrack; no match means tracked.

use crate::dispatch::Dispatch;
use crate::pipeline::Meta;
use crate::tables::{RawAction, RawRule, Tables};

/// The deciding rule (None: no rule matched) and whether to track. `d` is
/// the dispatch table built for `rules`.
#[inline(always)]
pub fn evaluate(
    rules: &[RawRule],
    d: &Dispatch,
    meta: &Meta,
    tables: &Tables,
) -> (Option<usize>, RawAction) {
    match d.first_match(rules, |r| &r.matches, meta, tables) {
        Some(i) => (Some(i), rules[i].action),
        None => (None, RawAction::Accept),
    }
}
