//! The route stage for IPv6: the destination's route (the Poptrie of
//! [`crate::route6`]), what is the router's own (its global addresses,
//! the arrival port's link-local address, the all-nodes, all-routers and
//! its solicited-node multicast groups), the scope rules a router applies
//! before forwarding (RFC 4291 2.5.6: link-local is never forwarded), and
//! the route's verdict: to the router, out of a port, or an ICMPv6 error.

use crate::drop::DropReason;
use crate::meta::Meta;
use crate::packet::{Pkt, PortId};
use crate::rules::ChainId;
use crate::tables::Tables;
use crate::tables6::NextHop6;
use crate::trace::{Event, Tracer};
use crate::wire::icmpv6;
use crate::wire::ipv6::{solicited_node, AddrClass, ALL_NODES, ALL_ROUTERS};

use super::{Outcome, State};

/// A packet's IPv6 route: the next hop's id and the next hop (None: no
/// route).
#[derive(Clone, Copy)]
pub(super) struct Route6 {
    pub(super) id: u32,
    pub(super) next_hop: Option<NextHop6>,
}

impl Route6 {
    const LOCAL: Route6 = Route6 {
        id: 0,
        next_hop: Some(NextHop6::Local),
    };

    /// The route of `m.dst6` for a packet that arrived on `m.in_port` (the
    /// host path for the router's own), noting in `m.local_dst` whether it
    /// is for the router. `Err` for a multicast group the router is not in.
    pub(super) fn lookup(t: &Tables, m: &mut Meta) -> Result<Route6, DropReason> {
        let r = match AddrClass::of(m.dst6) {
            AddrClass::Multicast(_) => {
                if m.in_port.is_host() || !Self::our_group(t, m.dst6, m.in_port) {
                    return Err(DropReason::Ip6MulticastNotRouted);
                }
                Self::LOCAL
            }
            AddrClass::LinkLocal => {
                if !m.in_port.is_host() && t.v6.is_link_local_of(m.dst6, m.in_port) {
                    Self::LOCAL
                } else {
                    // Another node's link-local address: never routed.
                    return Err(DropReason::Ip6LinkLocal);
                }
            }
            // The router's own addresses first: their /128s are the
            // trie's deepest leaves.
            _ if t.v6.is_local_global(m.dst6) => Self::LOCAL,
            _ => match t.v6.route(m.dst6) {
                Some((id, nh)) => Route6 {
                    id,
                    next_hop: Some(nh),
                },
                None => Route6 {
                    id: 0,
                    next_hop: None,
                },
            },
        };
        m.local_dst = matches!(r.next_hop, Some(NextHop6::Local));
        Ok(r)
    }

    /// Whether `group` is one the router listens to on `port`: all nodes,
    /// all routers, or the solicited-node group of one of its addresses
    /// there (RFC 4861 7.2.1, RFC 4291 2.8).
    fn our_group(t: &Tables, group: u128, port: PortId) -> bool {
        if group == ALL_NODES || group == ALL_ROUTERS {
            return true;
        }
        let Some(ifc) = t.interfaces.get(port.0 as usize) else {
            return false;
        };
        t.v6.link_local
            .get(port.0 as usize)
            .is_some_and(|&ll| solicited_node(ll) == group)
            || ifc
                .addresses6
                .iter()
                .any(|a| solicited_node(a.addr) == group)
    }

    /// The output port of a packet from the host path (the host's for one
    /// to the router), or None: no route.
    pub(super) fn host_out<T: Tracer>(self, tr: &mut T) -> Option<PortId> {
        tr.event(Event::Route6 {
            next_hop: self.next_hop,
        });
        match self.next_hop {
            Some(NextHop6::Connected(p)) | Some(NextHop6::Via { port: p, .. }) => Some(p),
            Some(NextHop6::Local) => Some(PortId::HOST),
            _ => None,
        }
    }
}

impl State {
    /// The route's verdict for an IPv6 packet from a port: the filter chain
    /// and the output port, or what ends its path (no route, a link-local
    /// source, hop limit exceeded).
    pub(super) fn route_port6<T: Tracer>(
        &mut self,
        t: &Tables,
        pkt: &mut Pkt<'_>,
        m: &Meta,
        r: Route6,
        tr: &mut T,
    ) -> Result<(ChainId, PortId), Outcome> {
        tr.event(Event::Route6 {
            next_hop: r.next_hop,
        });
        match r.next_hop {
            // RFC 4443 3.1: code 0, no route to destination.
            None | Some(NextHop6::Unreachable) => Err(self.send_icmp6_error(
                t,
                pkt,
                m,
                icmpv6::DST_UNREACHABLE,
                icmpv6::NO_ROUTE,
                0,
                DropReason::RouteNoRoute,
            )),
            Some(NextHop6::Blackhole) => Err(Outcome::drop(DropReason::RouteNoRoute)),
            Some(NextHop6::Local) => Ok((ChainId::Input, PortId::HOST)),
            Some(NextHop6::Connected(p)) | Some(NextHop6::Via { port: p, .. }) => {
                // RFC 4291 2.5.6: a link-local source is never forwarded;
                // RFC 4443 3.1 code 2 tells the sender it is beyond scope.
                if matches!(AddrClass::of(m.src6), AddrClass::LinkLocal) {
                    return Err(self.send_icmp6_error(
                        t,
                        pkt,
                        m,
                        icmpv6::DST_UNREACHABLE,
                        icmpv6::BEYOND_SCOPE,
                        0,
                        DropReason::Ip6LinkLocal,
                    ));
                }
                if m.src6 == 0 {
                    return Err(Outcome::drop(DropReason::Ip6SrcUnspecified));
                }
                // RFC 8200 3 and RFC 4443 3.3: a forwarded packet whose hop
                // limit would reach 0.
                if m.ttl <= 1 {
                    return Err(self.send_icmp6_error(
                        t,
                        pkt,
                        m,
                        icmpv6::TIME_EXCEEDED,
                        icmpv6::HOP_LIMIT_EXCEEDED,
                        0,
                        DropReason::Ip6HopLimitExceeded,
                    ));
                }
                Ok((ChainId::Forward, p))
            }
        }
    }
}
