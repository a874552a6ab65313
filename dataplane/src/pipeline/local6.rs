//! The IPv6 path to the router: TCP and UDP with no extension header to
//! the router's own global addresses, that the IPv6 fast parser read,
//! through raw prerouting, conntrack and filter input to the host,
//! decided by their dispatch entries and counted in runs, as `local` does
//! for IPv4. Whatever it does not decide takes the general path.

use crate::conntrack::{self, CtResult, CtState, FlowKey6, PktInfo6};
use crate::dispatch::LocalRules;
use crate::drop::DropReason;
use crate::meta::Meta;
use crate::owner;
use crate::packet::{Pkt, PortId, Verdict, ETH_HDR_LEN};
use crate::rules::{ChainId, FilterAction, RawAction};
use crate::tables::Tables;
use crate::wire::{ipv6, tcp};

use super::local::Fate;
use super::run::{LocalKey, RunKey};
use super::{Outcome, State};

/// What the IPv6 path to the router reads of a frame: [`L4v6::read`].
#[derive(Clone, Copy)]
struct L4v6 {
    in_port: PortId,
    /// 40 plus the payload length.
    total_len: usize,
    src: u128,
    dst: u128,
    proto: u8,
    hop_limit: u8,
    sport: u16,
    dport: u16,
    /// TCP flags (0 for UDP).
    tcp_flags: u8,
}

impl L4v6 {
    /// The fields of a frame whose header `State::fast_l3_6` checked (to
    /// our MAC, IPv6, TCP with its fixed header or UDP right after the
    /// fixed header, within the frame, global or unique local addresses),
    /// read again; `None` for a buffer shorter than 74 bytes.
    #[inline(always)]
    fn read(pkt: &Pkt<'_>) -> Option<L4v6> {
        // `fast_l3_6` saw the fixed header and at least 8 bytes (20 for
        // TCP) of upper layer within the payload length: fixed-size reads,
        // one bounds check (of the buffer: a UDP frame may end sooner).
        let h: &[u8; 60] = pkt
            .buf
            .get(ETH_HDR_LEN..ETH_HDR_LEN + 60)?
            .try_into()
            .ok()?;
        let ip = ipv6::Packet::new_unchecked(&h[..40]);
        let proto = ip.next_header();
        let tcp_flags = if proto == ipv6::NH_TCP {
            tcp::Packet::new_unchecked(&h[40..]).flags()
        } else {
            0
        };
        // TCP and UDP ports sit at the same offsets.
        Some(L4v6 {
            in_port: pkt.port,
            total_len: ipv6::HEADER_LEN + usize::from(ip.payload_len()),
            src: ip.src_addr(),
            dst: ip.dst_addr(),
            proto,
            hop_limit: ip.hop_limit(),
            sport: u16::from_be_bytes([h[40], h[41]]),
            dport: u16::from_be_bytes([h[42], h[43]]),
            tcp_flags,
        })
    }

    /// Conntrack's view of the packet, as `ct_info6` of the general
    /// parser's `Meta`.
    #[inline(always)]
    fn info(&self) -> PktInfo6 {
        PktInfo6 {
            key: FlowKey6 {
                src: self.src,
                dst: self.dst,
                sport: self.sport,
                dport: self.dport,
                proto: self.proto,
                icmp: 0,
            },
            tcp_flags: self.tcp_flags,
            icmp_type: 0,
            len: self.total_len as u16,
        }
    }

    /// The `Meta` the general path holds for the packet at a stage whose
    /// output port and state are `out` and `state`.
    fn meta(&self, out: Option<PortId>, state: CtState) -> Meta {
        Meta {
            in_port: self.in_port,
            out_port: out,
            ihl: ipv6::HEADER_LEN,
            total_len: self.total_len,
            src: 0,
            dst: 0,
            v6: true,
            src6: self.src,
            dst6: self.dst,
            proto: self.proto,
            ttl: self.hop_limit,
            fragment: false,
            nonfirst_fragment: false,
            has_ports: true,
            sport: self.sport,
            dport: self.dport,
            tcp_flags: self.tcp_flags,
            has_icmp: false,
            icmp_type: 0,
            icmp_code: 0,
            icmp_ident: 0,
            local_dst: true,
            ct_state: state,
        }
    }
}

impl State {
    /// IPv6 packets to the router's global addresses that `fast6` read:
    /// the general path's decisions (raw prerouting, conntrack, filter
    /// input, delivery to the host) without its parsing and routing, and
    /// with rules decided by their dispatch entries. The verdict and the
    /// run key ([`RunKey::NONE`]: counted alone). Inlined into `not_fast4`
    /// (itself out of line): a call of its own cost 28 instructions a
    /// packet here, the IPv6 transit path pays about 6 for it.
    #[inline(always)]
    pub(super) fn local6(&mut self, t: &Tables, pkt: &mut Pkt<'_>) -> (Verdict, RunKey) {
        let Some(m) = L4v6::read(pkt) else {
            return (self.general(t, pkt), RunKey::NONE);
        };
        let (in_port, proto) = (m.in_port, m.proto);
        // Raw prerouting: no output port yet, untracked until conntrack.
        let lr = &t.local_rules6;
        let at = lr.at(in_port, proto);
        let (raw_code, notrack) = match lr.raw(at) {
            Some(d) => d,
            None => {
                let raw = &t.raw_prerouting;
                let e = t.raw_dispatch6[0].entry(in_port, None, proto, CtState::Untracked, true);
                let r =
                    self.local6_search(t, pkt, e, raw, |r| &r.matches, None, CtState::Untracked);
                let notrack = r.is_some_and(|i| raw[i].action == RawAction::NoTrack);
                match LocalRules::code(r) {
                    Some(c) => (c, notrack),
                    // Beyond what a code holds: the general path counts it.
                    None => return (self.general(t, pkt), RunKey::NONE),
                }
            }
        };
        let ct = if notrack {
            None
        } else {
            Some(match self.ct.classify_existing6(&m.info(), self.now) {
                Some(state) => (state, None),
                None => {
                    let Some(r) = self.ct_classify_owned6(pkt) else {
                        // Another worker's flow: the general path hands
                        // it over.
                        return (self.general(t, pkt), RunKey::NONE);
                    };
                    (r.state, r.pending)
                }
            })
        };
        let state = ct.map_or(CtState::Untracked, |r| r.0);
        // Filter input.
        let (input_code, action) = match lr.input(at, state) {
            Some(d) => d,
            None => {
                let input = &t.filter[ChainId::Input as usize];
                let e = t.filter_dispatch6[ChainId::Input as usize].entry(
                    in_port,
                    Some(PortId::HOST),
                    proto,
                    state,
                    true,
                );
                let (rules, host) = (&input.rules, Some(PortId::HOST));
                let r = self.local6_search(t, pkt, e, rules, |r| &r.matches, host, state);
                let action = r.map_or(input.policy, |i| input.rules[i].action);
                match LocalRules::code(r) {
                    Some(c) => (c, action),
                    // Beyond what a code holds (a chain of 65,535 rules).
                    None => {
                        let rules = (LocalRules::rule(raw_code), ct.is_some(), r);
                        let pending = ct.and_then(|r| r.1);
                        let v = self.local6_outcome(t, pkt, rules, action, pending, state);
                        return (v, RunKey::NONE);
                    }
                }
            }
        };
        let key = LocalKey {
            in_port,
            raw: raw_code,
            tracked: ct.is_some(),
            input: input_code,
            v6: true,
        };
        if action == FilterAction::Accept && ct.and_then(|r| r.1).is_none() {
            // Delivered: the caller counts it with its run.
            return (Verdict::Host, RunKey::local(key));
        }
        let pending = ct.and_then(|r| r.1);
        let v = self.local6_outcome(t, pkt, key.rules(), action, pending, state);
        (v, RunKey::NONE)
    }

    /// The end of [`State::local6`] for a packet not simply delivered: a
    /// NEW flow to confirm, a drop or a reject. Counts it, as the general
    /// path would, with `rules` (raw rule, tracked, input rule).
    #[inline(never)]
    fn local6_outcome(
        &mut self,
        t: &Tables,
        pkt: &mut Pkt<'_>,
        rules: (Option<usize>, bool, Option<usize>),
        action: FilterAction,
        pending: Option<conntrack::Pending>,
        state: CtState,
    ) -> Verdict {
        // `local6` read the header: the payload length is there.
        let total = L4v6::read(pkt).map_or(0, |m| m.total_len as u64);
        self.count_local(pkt.port, rules, 1, pkt.len as u64, total);
        match self.local_fate(action, pending, rules.2.is_some()) {
            Fate::Delivered => {
                let c = &mut self.counters;
                c.to_host += 1;
                c.ipv6_rx += 1;
                c.ipv6_to_host += 1;
                Verdict::Host
            }
            Fate::Rejected => self.local6_reject(t, pkt, state),
            Fate::Dropped(reason) => {
                let c = &mut self.counters;
                c.drops[reason as usize] += 1;
                c.ipv6_rx += 1;
                c.ipv6_dropped += 1;
                Verdict::Drop(reason)
            }
        }
    }

    /// `Conntrack::classify6`, out of line: new flows for [`State::local6`],
    /// reading the packet again as [`State::local6_search`]. `None` when
    /// another worker owns the flow (several workers): a worker's table
    /// holds only its own flows, so a flow with no entry here is asked for
    /// its owner, a live one never.
    #[inline(never)]
    fn ct_classify_owned6(&mut self, pkt: &Pkt<'_>) -> Option<CtResult> {
        let Some(m) = L4v6::read(pkt) else {
            // `local6` read these bytes a moment ago: cannot happen.
            return Some(CtResult {
                state: CtState::Invalid,
                flow: None,
                pending: None,
            });
        };
        let info = m.info();
        if self.workers > 1 && owner::owner6(&info.key, self.workers) != self.me {
            return None;
        }
        Some(self.ct.classify6(info, self.now))
    }

    /// The first match of `rules` from dispatch entry `e` for
    /// [`State::local6`], at a stage whose output port and state are `out`
    /// and `state`. Out of line, and it reads the packet again: the
    /// decided case never builds a `Meta`.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn local6_search<R>(
        &self,
        t: &Tables,
        pkt: &Pkt<'_>,
        e: crate::dispatch::Entry,
        rules: &[R],
        cond: impl Fn(&R) -> &crate::rules::Match,
        out: Option<PortId>,
        state: CtState,
    ) -> Option<usize> {
        let m = L4v6::read(pkt)?.meta(out, state);
        e.search(rules, cond, &m, t)
    }

    /// `reject` for [`State::local6`], counted as the general path counts
    /// it (the per-family counters included).
    #[inline(never)]
    fn local6_reject(&mut self, t: &Tables, pkt: &mut Pkt<'_>, state: CtState) -> Verdict {
        let o = match L4v6::read(pkt) {
            Some(m) => self.reject(t, pkt, &m.meta(Some(PortId::HOST), state)),
            // `local6` read these bytes a moment ago: cannot happen.
            None => Outcome::drop(DropReason::FilterRejected),
        };
        self.count6(&o);
        self.account(pkt, o, &mut ())
    }
}
