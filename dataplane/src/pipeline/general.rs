//! The general path: every frame the fast paths leave, through every
//! stage with its checks named, its drops counted and its decisions traced.

use crate::addr::Mac;
use crate::drop::DropReason;
use crate::meta::Meta;
use crate::packet::{Pkt, PortId, Verdict, ETH_HDR_LEN};
use crate::rules::{ChainId, RawHook};
use crate::tables::{NextHop, Tables};
use crate::trace::{Event, Tracer};
use crate::wire::{ethernet, ipv4};

use super::route::Route;
use super::{Outcome, State};

impl State {
    #[inline]
    pub(super) fn process<T: Tracer>(
        &mut self,
        t: &Tables,
        pkt: &mut Pkt<'_>,
        tr: &mut T,
    ) -> Verdict {
        self.counters.rx[pkt.port.0 as usize & 63].add(pkt.len);
        let o = if pkt.port.is_host() {
            self.host_output(t, pkt, tr)
        } else {
            self.port_input(t, pkt, tr)
        };
        self.account(pkt, o, tr)
    }

    /// The general path, out of line so the fast path keeps its registers.
    #[inline(never)]
    pub(super) fn general(&mut self, t: &Tables, pkt: &mut Pkt<'_>) -> Verdict {
        self.process(t, pkt, &mut ())
    }

    /// Count a frame's outcome.
    #[inline(always)]
    pub(super) fn account<T: Tracer>(&mut self, pkt: &Pkt<'_>, o: Outcome, tr: &mut T) -> Verdict {
        let c = &mut self.counters;
        match o.verdict {
            Verdict::Tx(p) => {
                c.tx[p.0 as usize & 63].add(pkt.len);
                if !o.generated {
                    c.forwarded += 1;
                } else {
                    c.generated += 1;
                    if o.dropped.is_none() && !o.deferred {
                        // Answered (an ARP request for us): consumed.
                        c.consumed += 1;
                    }
                }
            }
            // A reply the router generated for its own stack (a reject's
            // RST in filter/output): the packet it answers was dropped.
            Verdict::Host if o.generated => c.generated += 1,
            Verdict::Host => c.to_host += 1,
            Verdict::Consumed if !o.deferred => c.consumed += 1,
            Verdict::Consumed | Verdict::Drop(_) => {}
            // The owner counts it, received included.
            Verdict::HandOff(_) => c.rx[pkt.port.0 as usize & 63].sub(pkt.len),
        }
        if let Some(r) = o.dropped {
            c.drops[r as usize] += 1;
        }
        tr.event(Event::Done {
            verdict: o.verdict,
            drop: o.dropped,
            generated: o.generated,
        });
        o.verdict
    }

    /// Frames from a port.
    #[inline(always)]
    fn port_input<T: Tracer>(&mut self, t: &Tables, pkt: &mut Pkt<'_>, tr: &mut T) -> Outcome {
        if pkt.len < ethernet::HEADER_LEN {
            return Outcome::drop(DropReason::EthTruncated);
        }
        let Some(ifc) = t.interfaces.get(pkt.port.0 as usize) else {
            return Outcome::drop(DropReason::EthNotForUs);
        };
        let eth = ethernet::Frame::new_unchecked(&pkt.buf[..pkt.len]);
        let dst_mac = eth.dst_addr();
        // IPv6 multicast frames (33:33:..., RFC 2464 7) are for the route
        // stage to judge: the groups the router is in are its.
        if dst_mac != ifc.mac && dst_mac != Mac::BROADCAST && dst_mac.0[..2] != [0x33, 0x33] {
            return Outcome::drop(DropReason::EthNotForUs);
        }
        match eth.ethertype() {
            ethernet::ETHERTYPE_IPV4 => self.ip(t, pkt, tr),
            ethernet::ETHERTYPE_IPV6 => self.ip6(t, pkt, tr),
            ethernet::ETHERTYPE_ARP => self.arp(t, pkt),
            ethernet::ETHERTYPE_VLAN => Outcome::drop(DropReason::EthVlanUnsupported),
            _ => Outcome::drop(DropReason::EthUnsupportedEthertype),
        }
    }

    /// IPv4 from a port.
    #[inline(always)]
    fn ip<T: Tracer>(&mut self, t: &Tables, pkt: &mut Pkt<'_>, tr: &mut T) -> Outcome {
        let mut m = Meta {
            in_port: pkt.port,
            ..Meta::default()
        };
        if let Err(r) = self.parse_ip(t, pkt, &mut m) {
            return Outcome::drop(r);
        }
        let route = Route::lookup(t, &mut m);
        if let Err(r) = route.check_port(t, pkt, &m) {
            return Outcome::drop(r);
        }
        let ct = match self.raw_and_track(t, pkt, &mut m, RawHook::Prerouting, tr) {
            Ok(ct) => ct,
            Err(o) => return o,
        };
        let (chain, out) = match self.route_port(t, pkt, &m, route, tr) {
            Ok(r) => r,
            Err(o) => return o,
        };
        m.out_port = Some(out);
        if let Some(o) = self.filter(t, pkt, &m, chain, ct, tr) {
            return o;
        }
        if chain == ChainId::Input {
            return Outcome::of(Verdict::Host);
        }
        self.output(
            t,
            pkt,
            &m,
            route.id.unwrap_or(0),
            route.next_hop.unwrap_or(NextHop::Blackhole),
            out,
            true,
            tr,
        )
    }

    /// Packets the router itself sends, from the host path.
    fn host_output<T: Tracer>(&mut self, t: &Tables, pkt: &mut Pkt<'_>, tr: &mut T) -> Outcome {
        if pkt.len > ETH_HDR_LEN && pkt.buf[ETH_HDR_LEN] >> 4 == 6 {
            return self.host_output6(t, pkt, tr);
        }
        if pkt.len < ETH_HDR_LEN + ipv4::HEADER_LEN
            || ipv4::Packet::new_unchecked(&pkt.buf[ETH_HDR_LEN..pkt.len]).version() != 4
        {
            return Outcome::drop(DropReason::HostBadPacket);
        }
        let mut m = Meta {
            in_port: PortId::HOST,
            ..Meta::default()
        };
        if let Err(r) = self.parse_ip(t, pkt, &mut m) {
            return Outcome::drop(r);
        }
        let route = Route::lookup(t, &mut m);
        let ct = match self.raw_and_track(t, pkt, &mut m, RawHook::Output, tr) {
            Ok(ct) => ct,
            Err(o) => return o,
        };
        let Some(out) = route.host_out(tr) else {
            return Outcome::drop(DropReason::RouteNoRoute);
        };
        m.out_port = Some(out);
        if let Some(o) = self.filter(t, pkt, &m, ChainId::Output, ct, tr) {
            return o;
        }
        if out.is_host() {
            return Outcome::of(Verdict::Host);
        }
        self.output(
            t,
            pkt,
            &m,
            route.id.unwrap_or(0),
            route.next_hop.unwrap_or(NextHop::Blackhole),
            out,
            false,
            tr,
        )
    }
}
