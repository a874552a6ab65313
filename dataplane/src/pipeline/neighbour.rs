//! The neighbour stage: the next hop's MAC for a routed packet, the MTU,
//! and the queue of packets waiting for ARP resolution (ARP requests,
//! retries, release once resolved).

use crate::drop::DropReason;
use crate::meta::Meta;
use crate::neighbour::RESOLVE_TRIES;
use crate::packet::{Pkt, PortId, Verdict, ETH_HDR_LEN};
use crate::reply;
use crate::tables::{NextHop, Tables};
use crate::trace::{Event, Tracer};
use crate::wire::{icmp, ipv4};

use super::parse::mac48;
use super::rewrite;
use super::{FastHop, FastHopKind, Outcome, Pipeline, State, NO_HOP};
use crate::rewrite::L2;

impl Pipeline {
    /// Send what the neighbour queue can send now: packets whose next hop
    /// resolved (rewritten as they would have been), ARP retries (one a
    /// second, three in all); and drop the packets of next hops that never
    /// answered (`neighbour_unresolved`, and `arp_resolution_failures`).
    /// IPv6's the same way, with neighbour solicitations and probes, and
    /// the router advertisements that are due (see `neighbour6`).
    /// `emit` transmits a frame on a port and returns false when it has no
    /// room (the rest waits for the next call). Slow path: the worker calls
    /// it after a burst when [`Pipeline::has_pending`] says so.
    pub fn drain_pending(&mut self, mut emit: impl FnMut(&[u8], PortId) -> bool) {
        if !self.drain_pending6(&mut emit) {
            return;
        }
        let t = &*self.tables;
        let State {
            pending,
            neigh,
            counters,
            scratch,
            now,
            ..
        } = &mut self.st;
        let now = *now;
        let mut i = 0;
        while let Some(&r) = pending.in_progress().get(i) {
            // A refresh is done once the neighbour answered (which clears
            // `refreshing`); a resolution once the neighbour is known.
            if let Some(n) = neigh
                .get(r.addr)
                .filter(|n| n.port == r.port && !(r.refresh && n.refreshing))
            {
                let l2 = rewrite::l2_to(t, r.port, n.mac);
                pending.release(r.addr, |buf, port, forwarded| {
                    let out = &mut scratch[..buf.len()];
                    out.copy_from_slice(buf);
                    rewrite::general(out, l2, forwarded);
                    if !emit(out, port) {
                        return false;
                    }
                    counters.tx[port.0 as usize & 63].add(out.len());
                    counters.forwarded += 1;
                    true
                });
                if pending.in_progress().get(i) != Some(&r) {
                    continue;
                }
            } else if r.tries >= RESOLVE_TRIES && now > r.last_sent + 1 {
                let n = pending.abandon(r.addr);
                counters.drops[DropReason::NeighbourUnresolved as usize] += n as u64;
                counters.arp_resolution_failures += 1;
                continue;
            } else if r.tries < RESOLVE_TRIES && now > r.last_sent {
                let ifc = &t.interfaces[r.port.0 as usize];
                let src = ifc
                    .addresses
                    .iter()
                    .find(|a| a.net.contains(r.addr))
                    .map(|a| a.addr);
                if let Some(len) = src.and_then(|s| reply::arp_request(scratch, ifc.mac, s, r.addr))
                {
                    if !emit(&scratch[..len], r.port) {
                        return;
                    }
                    counters.tx[r.port.0 as usize & 63].add(len);
                    counters.arp_requests_sent += 1;
                    counters.generated += 1;
                    if let Some(e) = pending.resolving(r.addr, r.port) {
                        e.tries += 1;
                        e.last_sent = now;
                    }
                }
            }
            i += 1;
        }
    }
}

impl State {
    pub(super) fn rebuild_nh_cache(&mut self, t: &Tables) {
        self.nh_mac.clear();
        self.nh_mac.extend(t.next_hops.iter().map(|nh| {
            match *nh {
                NextHop::Via { port, gateway } => self
                    .neigh
                    .get(gateway)
                    .filter(|n| n.port == port)
                    .map(|n| n.mac),
                _ => None,
            }
        }));
        self.nh_fast.clear();
        self.nh_fast
            .extend(t.next_hops.iter().zip(&self.nh_mac).map(|(nh, mac)| {
                let hop = |kind, out: PortId, l2| FastHop {
                    kind,
                    out,
                    mtu: t.interfaces[out.0 as usize].mtu,
                    rules_off: t.fast_rules.out_offset(out),
                    l2,
                };
                match (*nh, mac) {
                    (NextHop::Via { port, .. }, Some(mac)) => {
                        hop(FastHopKind::Via, port, rewrite::l2_to(t, port, *mac))
                    }
                    (NextHop::Connected(out), _) => hop(FastHopKind::Connected, out, L2::NONE),
                    (NextHop::Local, _) => FastHop {
                        kind: FastHopKind::Local,
                        ..NO_HOP
                    },
                    _ => NO_HOP,
                }
            }));
        // Slot 0: no route (see `RouteTable::lookup_slot`).
        self.nh_fast.insert(0, NO_HOP);
        self.port_mac = [u64::MAX; 64];
        for (i, ifc) in t.interfaces.iter().enumerate().take(PortId::MAX_PORTS) {
            self.port_mac[i] = mac48(&ifc.mac.0);
        }
    }

    /// Neighbour, MTU and rewrite: send the packet out of `out`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn output<T: Tracer>(
        &mut self,
        t: &Tables,
        pkt: &mut Pkt<'_>,
        m: &Meta,
        nh_id: u32,
        nh: NextHop,
        out: PortId,
        forwarded: bool,
        tr: &mut T,
    ) -> Outcome {
        let (addr, mac) = match nh {
            NextHop::Via { gateway, .. } => (gateway, self.nh_mac[nh_id as usize]),
            _ => (
                m.dst,
                self.neigh
                    .get(m.dst)
                    .filter(|n| n.port == out)
                    .map(|n| n.mac),
            ),
        };
        tr.event(Event::Neighbour {
            addr,
            port: out,
            resolved: mac.is_some(),
        });
        let ifc = &t.interfaces[out.0 as usize];
        // The MTU first: a packet too big is never queued for ARP.
        if m.total_len > ifc.mtu as usize {
            let df = ipv4::Packet::new_unchecked(&pkt.buf[ETH_HDR_LEN..pkt.len]).dont_frag();
            if df && forwarded {
                return self.send_icmp_error(
                    t,
                    pkt,
                    m,
                    icmp::DEST_UNREACHABLE,
                    icmp::FRAG_NEEDED,
                    ifc.mtu as u32,
                    DropReason::IpMtuExceeded,
                );
            }
            return Outcome::drop(DropReason::IpMtuExceeded);
        }
        let Some(dst_mac) = mac else {
            return self.resolve(t, pkt, m, out, addr, forwarded);
        };
        rewrite::general(pkt.buf, rewrite::l2_to(t, out, dst_mac), forwarded);
        // Trailing Ethernet padding is not part of the packet we send.
        pkt.len = ETH_HDR_LEN + m.total_len;
        Outcome::of(Verdict::Tx(out))
    }

    /// The next hop is unresolved: the packet waits in the neighbour queue
    /// (a copy; its frame is free at once) and the frame becomes an ARP
    /// request for the next hop (at most one a second per address, three in
    /// all). A full queue drops the packet (`neighbour_queue_full`).
    #[cold]
    #[allow(clippy::too_many_arguments)]
    fn resolve(
        &mut self,
        t: &Tables,
        pkt: &mut Pkt<'_>,
        m: &Meta,
        out: PortId,
        addr: u32,
        forwarded: bool,
    ) -> Outcome {
        let ifc = &t.interfaces[out.0 as usize];
        let Some(src) = ifc
            .addresses
            .iter()
            .find(|a| a.net.contains(addr))
            .map(|a| a.addr)
        else {
            return Outcome::drop(DropReason::NeighbourUnresolved);
        };
        let frame_len = (ETH_HDR_LEN + m.total_len).min(pkt.len);
        let now = self.now;
        let send = match self.pending.resolving(addr, out) {
            Some(r) if r.tries < RESOLVE_TRIES && (r.tries == 0 || now > r.last_sent) => {
                r.tries += 1;
                r.last_sent = now;
                true
            }
            Some(_) => false,
            None => return Outcome::drop(DropReason::NeighbourQueueFull),
        };
        let queued = self
            .pending
            .enqueue(addr, out, forwarded, &pkt.buf[..frame_len]);
        let request = send
            .then(|| reply::arp_request(pkt.buf, ifc.mac, src, addr))
            .flatten();
        if request.is_some() {
            self.counters.arp_requests_sent += 1;
        }
        queued_outcome(pkt, out, queued, request)
    }
}

/// The outcome of a packet for an unresolved next hop, put in the
/// neighbour queue (`queued`; else dropped, the queue full), its frame
/// now the ARP request or neighbour solicitation built in it (`request`,
/// its length) when one goes out of `out`. For IPv4 and IPv6 alike.
pub(super) fn queued_outcome(
    pkt: &mut Pkt<'_>,
    out: PortId,
    queued: bool,
    request: Option<usize>,
) -> Outcome {
    let dropped = (!queued).then_some(DropReason::NeighbourQueueFull);
    if let Some(n) = request {
        pkt.len = n;
        let mut o = Outcome::reply(out, dropped);
        o.deferred = queued;
        return o;
    }
    match dropped {
        Some(r) => Outcome::drop(r),
        None => Outcome {
            deferred: true,
            ..Outcome::of(Verdict::Consumed)
        },
    }
}
