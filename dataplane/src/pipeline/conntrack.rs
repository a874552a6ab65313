//! The conntrack stage: the state of a tracked packet in its flow (NEW,
//! ESTABLISHED, RELATED, INVALID), from the worker's connection table.

use crate::conntrack::{CtResult, CtState, FlowKey, PktInfo};
use crate::drop::DropReason;
use crate::meta::Meta;
use crate::packet::Pkt;
use crate::wire::icmp;

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

impl State {
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
