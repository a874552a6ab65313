//! ICMPv6 errors (RFC 4443): destination unreachable, packet too big, time
//! exceeded, built in place of the packet they are about, when RFC 4443
//! 2.4(e) allows one and the rate limit (2.4(f)) lets it through.

use crate::drop::DropReason;
use crate::meta::Meta;
use crate::packet::{Pkt, ETH_HDR_LEN};
use crate::tables::Tables;
use crate::tables6::source_address;
use crate::wire::{ethernet, icmpv6};

use super::{Outcome, State};
use crate::reply6;

/// The rate limiter's key for an IPv6 source (the limiter takes IPv4's 32
/// bits): the four words folded, so the interface identifier counts;
/// sources that collide share a bucket, which only makes the limit
/// stricter. One key for every ICMPv6 error the router sends.
#[inline]
pub(super) fn limiter_key(a: u128) -> u32 {
    let x = (a >> 64) as u64 ^ a as u64;
    (x ^ (x >> 32)) as u32
}

impl State {
    /// Build an ICMPv6 error about the packet in place, back out of its
    /// arrival port; `param` is the MTU of packet too big or the pointer of
    /// parameter problem. Otherwise the packet is just dropped for `reason`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_icmp6_error(
        &mut self,
        t: &Tables,
        pkt: &mut Pkt<'_>,
        m: &Meta,
        msg_type: u8,
        code: u8,
        param: u32,
        reason: DropReason,
    ) -> Outcome {
        let icmp_type = m.has_icmp.then_some(m.icmp_type);
        // RFC 4443 2.4(e): packet too big may answer a multicast packet.
        let allowed = if msg_type == icmpv6::PACKET_TOO_BIG {
            reply6::may_send_packet_too_big6(m.proto, icmp_type, m.src6)
        } else {
            reply6::may_send_error6(m.proto, icmp_type, m.dst6, m.src6)
        };
        if pkt.port.is_host() || m.nonfirst_fragment || !allowed {
            return Outcome::drop(reason);
        }
        // RFC 4443 2.4(e.3): not about a link-layer multicast or broadcast,
        // except packet too big.
        let eth = ethernet::Frame::new_unchecked(&pkt.buf[..ETH_HDR_LEN]);
        let (l2_dst, peer) = (eth.dst_addr(), eth.src_addr());
        if l2_dst.0[0] & 1 != 0 && msg_type != icmpv6::PACKET_TOO_BIG {
            return Outcome::drop(reason);
        }
        let Some(ifc) = t.interfaces.get(pkt.port.0 as usize) else {
            return Outcome::drop(reason);
        };
        if !self.limiter.allow(limiter_key(m.src6), self.now) {
            self.counters.icmp_errors_rate_limited += 1;
            return Outcome::drop(reason);
        }
        let src = source_address(ifc, m.src6);
        let frame_len = (ETH_HDR_LEN + m.total_len).min(pkt.len);
        match reply6::icmp6_error(
            pkt.buf, frame_len, src, ifc.mac, peer, msg_type, code, param,
        ) {
            Some(n) => {
                pkt.len = n;
                self.counters.icmp_errors_sent += 1;
                Outcome::reply(pkt.port, Some(reason))
            }
            None => Outcome::drop(reason),
        }
    }
}
