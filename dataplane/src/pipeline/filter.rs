//! The filter stage: chains `input`, `forward`, `output`, first match wins,
//! then the policy; `reject` answers with a TCP RST or ICMP port
//! unreachable. A NEW flow is confirmed once its first packet is accepted.

use crate::addr::Mac;
use crate::conntrack::{CtResult, CtState};
use crate::drop::DropReason;
use crate::meta::Meta;
use crate::packet::ETH_HDR_LEN;
use crate::packet::{Pkt, Verdict};
use crate::reply;
use crate::rules::{ChainId, FilterAction, RuleList};
use crate::tables::Tables;
use crate::trace::{Event, Tracer};
use crate::wire::{ethernet, icmp, icmpv6, ipv4, ipv6, tcp};

use crate::reply6;

use super::conntrack::ct_info;
use super::{Outcome, State};

impl State {
    /// The filter stage and the confirmation of NEW flows. `Some` ends the
    /// packet's path.
    #[inline(always)]
    pub(super) fn filter<T: Tracer>(
        &mut self,
        t: &Tables,
        pkt: &mut Pkt<'_>,
        m: &Meta,
        chain: ChainId,
        ct: Option<CtResult>,
        tr: &mut T,
    ) -> Option<Outcome> {
        let (rule, action) = t.filter_verdict(chain, m);
        let bytes = m.total_len as u64;
        self.counters
            .rule_hit(RuleList::Filter(chain), rule, 1, bytes);
        tr.event(Event::Filter {
            chain,
            rule,
            action,
        });
        match action {
            FilterAction::Accept => {}
            FilterAction::Drop => {
                return Some(Outcome::drop(if rule.is_some() {
                    DropReason::FilterDenied
                } else {
                    DropReason::FilterPolicy
                }));
            }
            FilterAction::Reject => return Some(self.reject(t, pkt, m)),
        }
        if let Some(p) = ct.and_then(|r| r.pending) {
            match self.ct.confirm(p, self.now) {
                Ok(flow) => tr.event(Event::Confirmed { flow }),
                Err(_) => return Some(Outcome::drop(DropReason::ConntrackTableFull)),
            }
        }
        None
    }

    pub(super) fn reject(&mut self, t: &Tables, pkt: &mut Pkt<'_>, m: &Meta) -> Outcome {
        if m.v6 {
            return self.reject6(t, pkt, m);
        }
        let reason = DropReason::FilterRejected;
        if m.proto == ipv4::PROTO_TCP && m.has_ports {
            if m.tcp_flags & tcp::RST != 0 {
                return Outcome::drop(reason);
            }
            // A packet from the router's own stack (filter/output) is
            // answered to that stack, through the host path, as the
            // kernel's `reject with tcp reset` answers a local socket; the
            // MACs of the answer do not matter there.
            let (mac, peer) = match t.interfaces.get(pkt.port.0 as usize) {
                Some(ifc) => (
                    ifc.mac,
                    ethernet::Frame::new_unchecked(&pkt.buf[..ETH_HDR_LEN]).src_addr(),
                ),
                None => (Mac([0; 6]), Mac([0; 6])),
            };
            return match reply::tcp_reset(pkt.buf, m.ihl, m.total_len, mac, peer) {
                Some(n) => {
                    pkt.len = n;
                    self.counters.tcp_resets_sent += 1;
                    // netfilter's `nf_send_reset` moves the packet's flow to
                    // CLOSE; an INVALID packet has no flow.
                    if !matches!(m.ct_state, CtState::Untracked | CtState::Invalid) {
                        self.ct.set_closing(ct_info(m).key, self.now);
                    }
                    if pkt.port.is_host() {
                        Outcome {
                            verdict: Verdict::Host,
                            ..Outcome::reply(pkt.port, Some(reason))
                        }
                    } else {
                        Outcome::reply(pkt.port, Some(reason))
                    }
                }
                None => Outcome::drop(reason),
            };
        }
        self.send_icmp_error(
            t,
            pkt,
            m,
            icmp::DEST_UNREACHABLE,
            icmp::PORT_UNREACHABLE,
            0,
            reason,
        )
    }
}

impl State {
    /// `reject` for IPv6: a TCP RST for TCP, else ICMPv6 destination
    /// unreachable, port unreachable (code 4), as nftables' `reject` in
    /// the `inet` family answers.
    fn reject6(&mut self, t: &Tables, pkt: &mut Pkt<'_>, m: &Meta) -> Outcome {
        let reason = DropReason::FilterRejected;
        if m.proto == ipv6::NH_TCP && m.has_ports {
            if m.tcp_flags & tcp::RST != 0 {
                return Outcome::drop(reason);
            }
            let (mac, peer) = match t.interfaces.get(pkt.port.0 as usize) {
                Some(ifc) => (
                    ifc.mac,
                    ethernet::Frame::new_unchecked(&pkt.buf[..ETH_HDR_LEN]).src_addr(),
                ),
                None => (Mac([0; 6]), Mac([0; 6])),
            };
            let frame_len = (ETH_HDR_LEN + m.total_len).min(pkt.len);
            return match reply6::tcp_reset6(pkt.buf, frame_len, m.ihl, mac, peer) {
                Some(n) => {
                    pkt.len = n;
                    self.counters.tcp_resets_sent += 1;
                    if !matches!(m.ct_state, CtState::Untracked | CtState::Invalid) {
                        self.set_closing6(m);
                    }
                    if pkt.port.is_host() {
                        Outcome {
                            verdict: Verdict::Host,
                            ..Outcome::reply(pkt.port, Some(reason))
                        }
                    } else {
                        Outcome::reply(pkt.port, Some(reason))
                    }
                }
                None => Outcome::drop(reason),
            };
        }
        self.send_icmp6_error(
            t,
            pkt,
            m,
            icmpv6::DST_UNREACHABLE,
            icmpv6::PORT_UNREACHABLE,
            0,
            reason,
        )
    }
}
