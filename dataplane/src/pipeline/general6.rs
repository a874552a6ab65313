//! The IPv6 path: the same stages as IPv4's general path, in the same
//! order (parse -> raw -> conntrack -> route -> filter -> neighbour ->
//! rewrite), with NDP taken by the neighbour stage before the raw stage,
//! unfiltered, as ARP is.
//!
//! ```text
//! port:  parse6 -> route6 -> NDP? ndp
//!        -> raw/prerouting -> conntrack -> route6 verdict
//!        -> local: filter/input -> host
//!        -> else:  hop limit -> filter/forward -> neighbour6 -> rewrite -> port
//! host:  parse6 -> raw/output -> conntrack -> route6 -> filter/output
//!        -> neighbour6 -> rewrite -> port
//! ```

use crate::drop::DropReason;
use crate::meta::Meta;
use crate::packet::{Pkt, PortId, Verdict, ETH_HDR_LEN};
use crate::rules::{ChainId, RawHook};
use crate::tables::Tables;
use crate::tables6::NextHop6;
use crate::trace::Tracer;
use crate::wire::{ethernet, icmpv6};

use super::route6::Route6;
use super::{Outcome, State};

/// Whether an ICMPv6 type is neighbour discovery (RS, RA, NS, NA,
/// redirect): the neighbour stage's, never filtered.
#[inline]
const fn is_ndp(t: u8) -> bool {
    matches!(t, icmpv6::ROUTER_SOLICIT..=icmpv6::REDIRECT)
}

impl State {
    /// IPv6 from a port.
    pub(super) fn ip6<T: Tracer>(&mut self, t: &Tables, pkt: &mut Pkt<'_>, tr: &mut T) -> Outcome {
        let o = self.port_input6(t, pkt, tr);
        self.count6(&o);
        o
    }

    /// IPv6 from the host path.
    pub(super) fn host_output6<T: Tracer>(
        &mut self,
        t: &Tables,
        pkt: &mut Pkt<'_>,
        tr: &mut T,
    ) -> Outcome {
        let o = self.host_input6(t, pkt, tr);
        self.count6(&o);
        o
    }

    /// The per-family counters of an IPv6 packet's outcome.
    pub(super) fn count6(&mut self, o: &Outcome) {
        let c = &mut self.counters;
        match o.verdict {
            // The owner counts it.
            Verdict::HandOff(_) => return,
            Verdict::Tx(_) if !o.generated => c.ipv6_forwarded += 1,
            Verdict::Host if !o.generated => c.ipv6_to_host += 1,
            _ => {}
        }
        c.ipv6_rx += 1;
        if o.dropped.is_some() {
            c.ipv6_dropped += 1;
        }
    }

    fn port_input6<T: Tracer>(&mut self, t: &Tables, pkt: &mut Pkt<'_>, tr: &mut T) -> Outcome {
        let mut m = Meta {
            in_port: pkt.port,
            ..Meta::default()
        };
        if let Err(r) = self.parse_ip6(pkt, &mut m) {
            return Outcome::drop(r);
        }
        let route = match Route6::lookup(t, &mut m) {
            Ok(r) => r,
            Err(r) => return Outcome::drop(r),
        };
        if m.has_icmp && m.local_dst && is_ndp(m.icmp_type) {
            return self.ndp(t, pkt, &m);
        }
        // RFC 1812 5.3.4's rule holds for IPv6 too: a frame sent to the
        // link-layer broadcast address and not for the router is not
        // forwarded.
        if !m.local_dst
            && ethernet::Frame::new_unchecked(&pkt.buf[..ETH_HDR_LEN])
                .dst_addr()
                .0[0]
                & 1
                != 0
        {
            return Outcome::drop(DropReason::Ip6MulticastNotRouted);
        }
        let ct = match self.raw_and_track(t, pkt, &mut m, RawHook::Prerouting, tr) {
            Ok(ct) => ct,
            Err(o) => return o,
        };
        let (chain, out) = match self.route_port6(t, pkt, &m, route, tr) {
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
        let nh = route.next_hop.unwrap_or(NextHop6::Blackhole);
        self.send6(t, pkt, &m, route.id, nh, out, true, tr)
    }

    /// Packets the router itself sends, from the host path.
    fn host_input6<T: Tracer>(&mut self, t: &Tables, pkt: &mut Pkt<'_>, tr: &mut T) -> Outcome {
        // The host path's placeholder header may say IPv4: this is IPv6.
        pkt.buf[12..ETH_HDR_LEN].copy_from_slice(&ethernet::ETHERTYPE_IPV6.to_be_bytes());
        let mut m = Meta {
            in_port: PortId::HOST,
            ..Meta::default()
        };
        if let Err(r) = self.parse_ip6(pkt, &mut m) {
            return Outcome::drop(r);
        }
        let route = match Route6::lookup(t, &mut m) {
            Ok(r) => r,
            Err(_) => return Outcome::drop(DropReason::RouteNoRoute),
        };
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
        let nh = route.next_hop.unwrap_or(NextHop6::Blackhole);
        self.send6(t, pkt, &m, route.id, nh, out, false, tr)
    }

    /// The neighbour stage and the rewrite; a packet over the next hop's
    /// MTU gets packet too big with that MTU (RFC 8200 5: a router never
    /// fragments IPv6).
    #[allow(clippy::too_many_arguments)]
    fn send6<T: Tracer>(
        &mut self,
        t: &Tables,
        pkt: &mut Pkt<'_>,
        m: &Meta,
        nh_id: u32,
        nh: NextHop6,
        out: PortId,
        forwarded: bool,
        tr: &mut T,
    ) -> Outcome {
        match self.output6(t, pkt, m, nh_id, nh, out, forwarded, tr) {
            Ok(o) => o,
            Err(mtu) if forwarded => self.send_icmp6_error(
                t,
                pkt,
                m,
                icmpv6::PACKET_TOO_BIG,
                0,
                u32::from(mtu),
                DropReason::Ip6MtuExceeded,
            ),
            Err(_) => Outcome::drop(DropReason::Ip6MtuExceeded),
        }
    }
}
