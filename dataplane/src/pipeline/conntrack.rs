//! The conntrack stage: the state of a tracked packet in its flow (NEW,
//! ESTABLISHED, RELATED, INVALID), from the worker's connection table.

use crate::conntrack::{CtResult, CtState, FlowKey, FlowKey6, PktInfo, PktInfo6};
use crate::drop::DropReason;
use crate::meta::Meta;
use crate::owner;
use crate::packet::{Pkt, ETH_HDR_LEN};
use crate::wire::{icmp, icmpv6};

use super::State;

/// What conntrack needs of a packet (not an ICMP error): its tuple, with
/// the query identifier in both ports and the type and code in `icmp` for
/// ICMP, and no ports for protocols without them.
#[inline(always)]
pub(super) fn ct_info(m: &Meta) -> PktInfo {
    let (sport, dport, icmp) = if m.has_ports {
        (m.sport, m.dport, 0)
    } else if m.has_icmp {
        let tc = (m.icmp_type as u16) << 8 | m.icmp_code as u16;
        (m.icmp_ident, m.icmp_ident, tc)
    } else {
        (0, 0, 0)
    };
    PktInfo {
        key: FlowKey {
            src: m.src,
            dst: m.dst,
            sport,
            dport,
            proto: m.proto,
            icmp,
        },
        tcp_flags: m.tcp_flags,
        icmp_type: m.icmp_type,
        len: m.total_len as u16,
    }
}

/// [`ct_info`] of a `Meta` that [`State::fast_l4`] read, without its
/// choices: `fast_l4` leaves at zero the fields a protocol does not have
/// (the ports of ICMP and of protocols without ports, the ICMP fields of
/// the others), so the ports are `sport | icmp_ident`, and so on.
#[inline(always)]
pub(super) fn fast_ct_info(m: &Meta) -> PktInfo {
    let info = PktInfo {
        key: FlowKey {
            src: m.src,
            dst: m.dst,
            sport: m.sport | m.icmp_ident,
            dport: m.dport | m.icmp_ident,
            proto: m.proto,
            icmp: (m.icmp_type as u16) << 8 | m.icmp_code as u16,
        },
        tcp_flags: m.tcp_flags,
        icmp_type: m.icmp_type,
        len: m.total_len as u16,
    };
    debug_assert_eq!(info.key, ct_info(m).key);
    info
}

/// [`ct_info`] for IPv6: the same tuple with the 128-bit addresses.
#[inline]
pub(super) fn ct_info6(m: &Meta) -> PktInfo6 {
    let (sport, dport, icmp) = if m.has_ports {
        (m.sport, m.dport, 0)
    } else if m.has_icmp {
        let tc = (m.icmp_type as u16) << 8 | m.icmp_code as u16;
        (m.icmp_ident, m.icmp_ident, tc)
    } else {
        (0, 0, 0)
    };
    PktInfo6 {
        key: FlowKey6 {
            src: m.src6,
            dst: m.dst6,
            sport,
            dport,
            proto: m.proto,
            icmp,
        },
        tcp_flags: m.tcp_flags,
        icmp_type: m.icmp_type,
        len: m.total_len as u16,
    }
}

impl State {
    /// Conntrack stage for a tracked IPv6 packet: as [`State::track`], an
    /// ICMPv6 error relates to the flow it quotes.
    pub(super) fn track6(&mut self, pkt: &Pkt<'_>, m: &Meta) -> Result<CtResult, DropReason> {
        self.counters.tracked += 1;
        if m.fragment {
            return Err(DropReason::ConntrackFragment);
        }
        if m.has_icmp && icmpv6::is_error(m.icmp_type) {
            return Ok(match Self::quoted_flow6(pkt, m) {
                Some(k) => self.ct.related6(k, m.dst6, self.now),
                None => CtResult {
                    state: CtState::Invalid,
                    flow: None,
                    pending: None,
                },
            });
        }
        Ok(self.ct.classify6(ct_info6(m), self.now))
    }

    /// The tuple of the packet an ICMPv6 error quotes, as it was sent.
    pub(super) fn quoted_flow6(pkt: &Pkt<'_>, m: &Meta) -> Option<FlowKey6> {
        let start = ETH_HDR_LEN + m.ihl + icmpv6::HEADER_LEN;
        let end = (ETH_HDR_LEN + m.total_len).min(pkt.len);
        owner::quoted_flow6(pkt.buf.get(start..end)?)
    }

    /// The worker that owns an IPv6 packet's flow when it is not this one.
    #[cold]
    #[inline(never)]
    pub(super) fn other_owner6(&self, pkt: &Pkt<'_>, m: &Meta) -> Option<u8> {
        let key = if m.has_icmp && icmpv6::is_error(m.icmp_type) {
            Self::quoted_flow6(pkt, m).unwrap_or(ct_info6(m).key)
        } else {
            ct_info6(m).key
        };
        let w = owner::owner6(&key, self.workers);
        (w != self.me).then_some(w as u8)
    }

    /// netfilter's reset moves the packet's flow to CLOSE (IPv6).
    pub(super) fn set_closing6(&mut self, m: &Meta) {
        self.ct.set_closing6(ct_info6(m).key, self.now);
    }

    /// Conntrack stage for a tracked packet.
    #[inline(always)]
    pub(super) fn track(&mut self, pkt: &Pkt<'_>, m: &Meta) -> Result<CtResult, DropReason> {
        self.counters.tracked += 1;
        if m.fragment {
            return Err(DropReason::ConntrackFragment);
        }
        if m.has_icmp && icmp::is_error(m.icmp_type) {
            return Ok(match Self::quoted_flow(pkt, m) {
                Some(k) => self.ct.related(k, m.dst, self.now),
                None => CtResult {
                    state: CtState::Invalid,
                    flow: None,
                    pending: None,
                },
            });
        }
        let info = ct_info(m);
        Ok(self.ct.classify(info, self.now))
    }
}
