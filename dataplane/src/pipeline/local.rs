//! The path to the router: packets to the router's own addresses that the
//! fast parser read, through raw prerouting, conntrack and filter input
//! to the host, decided by their dispatch entries and counted in runs.

use crate::conntrack::{self, CtResult, CtState};
use crate::dispatch::LocalRules;
use crate::drop::DropReason;
use crate::meta::Meta;
use crate::owner;
use crate::packet::{Pkt, PortId, Verdict};
use crate::rules::{ChainId, FilterAction, RawAction, RawHook, RuleList};
use crate::tables::Tables;
use crate::wire::icmp;

use super::conntrack::{ct_info, fast_ct_info};
use super::parse::L3;
use super::run::{LocalKey, RunKey};
use super::{Outcome, State};

/// What becomes of a packet to the router the input chain did not simply
/// deliver: [`State::local_fate`].
pub(super) enum Fate {
    /// Delivered to the router.
    Delivered,
    /// Answered by `reject`.
    Rejected,
    /// Dropped, for this reason.
    Dropped(DropReason),
}

impl State {
    /// Packets to the router's own addresses that `fast_l3` read: the
    /// general path's decisions (raw prerouting, conntrack, filter input,
    /// delivery to the host) without its parsing and routing again, and
    /// with rules decided by their dispatch entries. ICMP errors (RELATED
    /// lookups) take the general path. Out of line, to keep the transit
    /// loop's registers.
    #[inline(never)]
    pub(super) fn local(&mut self, t: &Tables, pkt: &mut Pkt<'_>) -> (Verdict, RunKey) {
        let m = L3::checked_before(pkt).and_then(|l3| self.fast_l4(pkt, l3));
        let Some(m) = m.filter(|m| !(m.has_icmp && icmp::is_error(m.icmp_type))) else {
            return (self.process(t, pkt, &mut ()), RunKey::NONE);
        };
        let (in_port, proto) = (m.in_port, m.proto);
        // Raw prerouting: no output port yet, untracked until conntrack.
        let lr = &t.local_rules;
        let at = lr.at(in_port, proto);
        let (raw_code, notrack) = match lr.raw(at) {
            Some(d) => d,
            None => {
                let raw = &t.raw_prerouting;
                let e = t.raw_dispatch[0].entry(in_port, None, proto, CtState::Untracked, true);
                let r = self.local_search(t, pkt, e, raw, |r| &r.matches, None, CtState::Untracked);
                let notrack = r.is_some_and(|i| raw[i].action == RawAction::NoTrack);
                match LocalRules::code(r) {
                    Some(c) => (c, notrack),
                    // Beyond what a code holds: the general path counts it.
                    None => return (self.process(t, pkt, &mut ()), RunKey::NONE),
                }
            }
        };
        let ct = if notrack {
            None
        } else {
            Some(
                match self.ct.classify_existing(&fast_ct_info(&m), self.now) {
                    Some(state) => (state, None),
                    None => {
                        let Some(r) = self.ct_classify_owned(pkt) else {
                            // Another worker's flow: the general path hands
                            // it over.
                            return (self.general(t, pkt), RunKey::NONE);
                        };
                        (r.state, r.pending)
                    }
                },
            )
        };
        let state = ct.map_or(CtState::Untracked, |r| r.0);
        // Filter input.
        let (input_code, action) = match lr.input(at, state) {
            Some(d) => d,
            None => {
                let input = &t.filter[ChainId::Input as usize];
                let e = t.filter_dispatch[ChainId::Input as usize].entry(
                    in_port,
                    Some(PortId::HOST),
                    proto,
                    state,
                    true,
                );
                let (rules, host) = (&input.rules, Some(PortId::HOST));
                let r = self.local_search(t, pkt, e, rules, |r| &r.matches, host, state);
                let action = r.map_or(input.policy, |i| input.rules[i].action);
                match LocalRules::code(r) {
                    Some(c) => (c, action),
                    // Beyond what a code holds (a chain of 65,535 rules).
                    None => {
                        let rules = (LocalRules::rule(raw_code), ct.is_some(), r);
                        return self.local_outcome(
                            t,
                            pkt,
                            rules,
                            action,
                            ct.and_then(|r| r.1),
                            state,
                        );
                    }
                }
            }
        };
        let key = LocalKey {
            in_port,
            raw: raw_code,
            tracked: ct.is_some(),
            input: input_code,
            v6: false,
        };
        if action == FilterAction::Accept && ct.and_then(|r| r.1).is_none() {
            // Delivered: the caller counts it with its run.
            return (Verdict::Host, RunKey::local(key));
        }
        self.local_outcome(t, pkt, key.rules(), action, ct.and_then(|r| r.1), state)
    }

    /// The end of [`State::local`] for a packet not simply delivered: a NEW
    /// flow to confirm, a drop or a reject. Counts it, as the general path
    /// would, with `rules` (raw rule, tracked, input rule).
    #[inline(never)]
    fn local_outcome(
        &mut self,
        t: &Tables,
        pkt: &mut Pkt<'_>,
        rules: (Option<usize>, bool, Option<usize>),
        action: FilterAction,
        pending: Option<conntrack::Pending>,
        state: CtState,
    ) -> (Verdict, RunKey) {
        // `local` read the header: the IP total length is there.
        let total = L3::checked_before(pkt).map_or(0, |l3| l3.total_len as u64);
        self.count_local(pkt.port, rules, 1, pkt.len as u64, total);
        let v = match self.local_fate(action, pending, rules.2.is_some()) {
            Fate::Delivered => {
                self.counters.to_host += 1;
                Verdict::Host
            }
            Fate::Rejected => self.local_reject(t, pkt, state),
            Fate::Dropped(reason) => {
                self.counters.drops[reason as usize] += 1;
                Verdict::Drop(reason)
            }
        };
        (v, RunKey::NONE)
    }

    /// What the input chain's `action` makes of a packet to the router
    /// that is not simply delivered, for `local_outcome` and
    /// `local6_outcome`: accepted, it is delivered once its NEW flow
    /// (`pending`) is confirmed; dropped by a rule (`by_rule`) or by the
    /// policy, each with its reason; or rejected (the caller answers).
    pub(super) fn local_fate(
        &mut self,
        action: FilterAction,
        pending: Option<conntrack::Pending>,
        by_rule: bool,
    ) -> Fate {
        match action {
            FilterAction::Accept => match pending {
                Some(p) if self.ct.confirm(p, self.now).is_err() => {
                    Fate::Dropped(DropReason::ConntrackTableFull)
                }
                _ => Fate::Delivered,
            },
            FilterAction::Drop if by_rule => Fate::Dropped(DropReason::FilterDenied),
            FilterAction::Drop => Fate::Dropped(DropReason::FilterPolicy),
            FilterAction::Reject => Fate::Rejected,
        }
    }

    /// `Conntrack::classify`, out of line: new flows for [`State::local`].
    /// It reads the packet's `Meta` again, as [`State::local_meta`]: the
    /// live-flow case keeps no packet info in memory for this one. `None`
    /// when another worker owns the flow (several workers): a worker's
    /// table holds only its own flows, so a flow with no entry here is
    /// asked for its owner, a live one never.
    #[inline(never)]
    fn ct_classify_owned(&mut self, pkt: &Pkt<'_>) -> Option<CtResult> {
        let Some(m) = L3::checked_before(pkt).and_then(|l3| self.fast_l4(pkt, l3)) else {
            // `local` read these bytes a moment ago: cannot happen.
            return Some(CtResult {
                state: CtState::Invalid,
                flow: None,
                pending: None,
            });
        };
        let info = ct_info(&m);
        if self.workers > 1 && owner::owner(&info.key, self.workers) != self.me {
            return None;
        }
        Some(self.ct.classify(info, self.now))
    }

    /// Count `pkts` packets to the router that took the same rules (raw
    /// rule, tracked, input rule), as the general path does each: received,
    /// raw rule, tracked or untracked, input rule or policy (their fate,
    /// delivery or drop, is the caller's).
    pub(super) fn count_local(
        &mut self,
        in_port: PortId,
        (raw, tracked, rule): (Option<usize>, bool, Option<usize>),
        pkts: u64,
        rx_bytes: u64,
        ip_bytes: u64,
    ) {
        let c = &mut self.counters;
        c.rx[in_port.0 as usize & 63].add_n(pkts, rx_bytes);
        c.rule_hit(RuleList::Raw(RawHook::Prerouting), raw, pkts, ip_bytes);
        if tracked {
            c.tracked += pkts;
        } else {
            c.untracked += pkts;
        }
        c.rule_hit(RuleList::Filter(ChainId::Input), rule, pkts, ip_bytes);
    }

    /// The first match of `rules` from dispatch entry `e` for
    /// [`State::local`], at a stage whose output port and state are `out`
    /// and `state`. Out of line, and it reads the packet's `Meta` again:
    /// the decided case never keeps one in memory.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn local_search<R>(
        &self,
        t: &Tables,
        pkt: &Pkt<'_>,
        e: crate::dispatch::Entry,
        rules: &[R],
        cond: impl Fn(&R) -> &crate::rules::Match,
        out: Option<PortId>,
        state: CtState,
    ) -> Option<usize> {
        let m = self.local_meta(pkt, out, state)?;
        e.search(rules, cond, &m, t)
    }

    /// The `Meta` of a packet [`State::local`] read, again, at a stage whose
    /// output port and state are `out` and `state`. `local` read these bytes
    /// a moment ago: they read the same again.
    fn local_meta(&self, pkt: &Pkt<'_>, out: Option<PortId>, state: CtState) -> Option<Meta> {
        let mut m = L3::checked_before(pkt).and_then(|l3| self.fast_l4(pkt, l3))?;
        m.local_dst = true;
        m.out_port = out;
        m.ct_state = state;
        Some(m)
    }

    /// `reject` for [`State::local`], out of line like `local_search`.
    #[inline(never)]
    fn local_reject(&mut self, t: &Tables, pkt: &mut Pkt<'_>, state: CtState) -> Verdict {
        let o = match self.local_meta(pkt, Some(PortId::HOST), state) {
            Some(m) => self.reject(t, pkt, &m),
            // `local` read these bytes a moment ago: cannot happen.
            None => Outcome::drop(DropReason::FilterRejected),
        };
        self.account(pkt, o, &mut ())
    }
}
