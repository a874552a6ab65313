//! ICMP errors: destination unreachable, time exceeded, fragmentation
//! needed, built in place of the packet they are about, as RFC 1812 4.3.2.7
//! allows and the rate limit lets through.

use crate::addr::Mac;
use crate::drop::DropReason;
use crate::meta::Meta;
use crate::packet::{Pkt, ETH_HDR_LEN};
use crate::reply;
use crate::tables::Tables;
use crate::wire::ethernet;

use super::{Outcome, State};

impl State {
    /// Build an ICMP error about the packet in place, back out of its
    /// arrival port, if RFC 1812 and the rate limit allow it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_icmp_error(
        &mut self,
        t: &Tables,
        pkt: &mut Pkt<'_>,
        m: &Meta,
        msg_type: u8,
        code: u8,
        rest: u32,
        reason: DropReason,
    ) -> Outcome {
        let icmp_type = m.has_icmp.then_some(m.icmp_type);
        if pkt.port.is_host() || !reply::may_send_error(m.proto, icmp_type, m.nonfirst_fragment) {
            return Outcome::drop(reason);
        }
        // RFC 1812 4.3.2.7: nor about a link-layer broadcast, nor to a source
        // that is not a single host (a connected network's broadcast).
        let l2_dst = ethernet::Frame::new_unchecked(&pkt.buf[..ETH_HDR_LEN]).dst_addr();
        if l2_dst == Mac::BROADCAST || t.is_directed_broadcast(m.src) {
            return Outcome::drop(reason);
        }
        let Some(src) = t.port_address(pkt.port, m.src) else {
            return Outcome::drop(reason);
        };
        if !self.limiter.allow(m.src, self.now) {
            self.counters.icmp_errors_rate_limited += 1;
            return Outcome::drop(reason);
        }
        let ifc = &t.interfaces[pkt.port.0 as usize];
        let peer = ethernet::Frame::new_unchecked(&pkt.buf[..ETH_HDR_LEN]).src_addr();
        match reply::icmp_error(
            pkt.buf,
            m.ihl,
            m.total_len,
            msg_type,
            code,
            rest,
            src,
            ifc.mac,
            peer,
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
