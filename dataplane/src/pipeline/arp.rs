//! ARP from a port: answer requests for our addresses, learn the sender
//! (RFC 826), count replies.

use crate::drop::DropReason;
use crate::packet::{Pkt, Verdict, ETH_HDR_LEN};
use crate::reply;
use crate::tables::Tables;

use super::{Outcome, State, NEIGHBOUR_TIMEOUT};

impl State {
    pub(super) fn arp(&mut self, t: &Tables, pkt: &mut Pkt<'_>) -> Outcome {
        use crate::wire::arp;
        let end = ETH_HDR_LEN + arp::Repr::BUFFER_LEN;
        if pkt.len < end {
            return Outcome::drop(DropReason::ArpTruncated);
        }
        let Ok(req) = arp::Repr::parse(&arp::Packet::new_unchecked(&pkt.buf[ETH_HDR_LEN..end]))
        else {
            return Outcome::drop(DropReason::ArpUnsupported);
        };
        let ifc = &t.interfaces[pkt.port.0 as usize];
        let ours = ifc.addresses.iter().any(|a| a.addr == req.target_ip);
        let on_link = ifc.addresses.iter().any(|a| a.net.contains(req.sender_ip));
        if ours && on_link {
            // RFC 826: merge the sender into the table when the request is for us.
            let expires = self.now.saturating_add(NEIGHBOUR_TIMEOUT);
            let changed = self.neigh.get(req.sender_ip).map(|n| n.mac) != Some(req.sender_mac);
            self.neigh
                .learn(req.sender_ip, req.sender_mac, pkt.port, expires);
            if changed {
                self.rebuild_nh_cache(t);
            }
            // The other workers learn it too (the worker loop passes it on):
            // ARP reaches one queue, the flows to this neighbour any worker.
            if self.workers > 1 && self.learned.len() < self.learned.capacity() {
                self.learned.push((req.sender_ip, req.sender_mac, pkt.port));
            }
        }
        match req.operation {
            arp::OP_REQUEST if ours => match reply::arp_reply(pkt.buf, ifc.mac, req.target_ip) {
                Some(n) => {
                    pkt.len = n;
                    self.counters.arp_replies_sent += 1;
                    Outcome::reply(pkt.port, None)
                }
                None => Outcome::drop(DropReason::ArpTruncated),
            },
            arp::OP_REPLY if ours => {
                self.counters.arp_replies_received += 1;
                Outcome::of(Verdict::Consumed)
            }
            arp::OP_REQUEST | arp::OP_REPLY => Outcome::drop(DropReason::ArpNotForUs),
            _ => Outcome::drop(DropReason::ArpUnsupported),
        }
    }
}
