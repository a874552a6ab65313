//! The route stage: the longest-prefix match of the destination (looked up
//! before the raw stage, whose rules may ask whether the destination is
//! the router's), the checks that need the route, and the route's verdict:
//! to the router, out of a port, or an ICMP error.

use crate::addr::Mac;
use crate::drop::DropReason;
use crate::meta::Meta;
use crate::packet::{Pkt, PortId, ETH_HDR_LEN};
use crate::rules::ChainId;
use crate::tables::{flow_hash, NextHop, Tables};
use crate::trace::{Event, Tracer};
use crate::wire::{ethernet, icmp};

use super::{Outcome, State};

/// A packet's route: the next hop's id and the next hop (None: no route).
#[derive(Clone, Copy)]
pub(super) struct Route {
    pub(super) id: Option<u32>,
    pub(super) next_hop: Option<NextHop>,
}

impl Route {
    /// Look up `m.dst` and note whether it is the router's (`m.local_dst`).
    #[inline(always)]
    pub(super) fn lookup(t: &Tables, m: &mut Meta) -> Route {
        let id = t.routes.lookup(m.dst);
        let mut r = Route {
            id,
            next_hop: id.map(|i| t.next_hops[i as usize]),
        };
        if let (Some(i), Some(NextHop::Multipath { .. })) = (id, r.next_hop) {
            r = Route::pick_path(t, m, i);
        }
        m.local_dst = matches!(r.next_hop, Some(NextHop::Local));
        r
    }

    /// The path of a multipath route for the packet's flow (ECMP).
    #[inline(never)]
    fn pick_path(t: &Tables, m: &Meta, id: u32) -> Route {
        let (sport, dport) = if m.has_ports {
            (m.sport, m.dport)
        } else {
            (0, 0)
        };
        let (id, nh) = t.resolve(id, flow_hash(m.src, m.dst, m.proto, sport, dport));
        Route {
            id: Some(id),
            next_hop: Some(nh),
        }
    }

    /// The checks of a packet from a port that need its route: a directed
    /// broadcast of a connected network, or a packet received as a
    /// link-layer broadcast and not for the router, is not forwarded.
    #[inline(always)]
    pub(super) fn check_port(self, t: &Tables, pkt: &Pkt<'_>, m: &Meta) -> Result<(), DropReason> {
        if let Some(NextHop::Connected(p)) = self.next_hop {
            if t.interfaces[p.0 as usize].is_broadcast(m.dst) {
                return Err(DropReason::IpNotUnicast);
            }
        }
        // RFC 1812 5.3.4: a packet received as a link-layer broadcast is for
        // the router only, never forwarded.
        if !m.local_dst
            && ethernet::Frame::new_unchecked(&pkt.buf[..ETH_HDR_LEN]).dst_addr() == Mac::BROADCAST
        {
            return Err(DropReason::IpNotUnicast);
        }
        Ok(())
    }

    /// The output port of a packet from the host path (the host's for one
    /// to the router), or None: no route.
    #[inline(always)]
    pub(super) fn host_out<T: Tracer>(self, tr: &mut T) -> Option<PortId> {
        tr.event(Event::Route {
            next_hop: self.next_hop,
        });
        match self.next_hop {
            Some(NextHop::Connected(p)) | Some(NextHop::Via { port: p, .. }) => Some(p),
            Some(NextHop::Local) => Some(PortId::HOST),
            _ => None,
        }
    }
}

impl State {
    /// The route's verdict for a packet from a port: the filter chain and
    /// the output port, or what ends its path (no route, TTL expired).
    #[inline(always)]
    pub(super) fn route_port<T: Tracer>(
        &mut self,
        t: &Tables,
        pkt: &mut Pkt<'_>,
        m: &Meta,
        r: Route,
        tr: &mut T,
    ) -> Result<(ChainId, PortId), Outcome> {
        tr.event(Event::Route {
            next_hop: r.next_hop,
        });
        match r.next_hop {
            // A multipath next hop is resolved by the lookup: never here.
            None | Some(NextHop::Unreachable) | Some(NextHop::Multipath { .. }) => Err(self
                .send_icmp_error(
                    t,
                    pkt,
                    m,
                    icmp::DEST_UNREACHABLE,
                    icmp::NET_UNREACHABLE,
                    0,
                    DropReason::RouteNoRoute,
                )),
            Some(NextHop::Blackhole) => Err(Outcome::drop(DropReason::RouteNoRoute)),
            Some(NextHop::Local) => Ok((ChainId::Input, PortId::HOST)),
            Some(NextHop::Connected(p)) | Some(NextHop::Via { port: p, .. }) => {
                // RFC 1812 5.3.1: a forwarded packet whose TTL would reach 0.
                if m.ttl <= 1 {
                    return Err(self.send_icmp_error(
                        t,
                        pkt,
                        m,
                        icmp::TIME_EXCEEDED,
                        0,
                        0,
                        DropReason::IpTtlExpired,
                    ));
                }
                Ok((ChainId::Forward, p))
            }
        }
    }
}
