//! IPv6's neighbour stage: the next hop's MAC from the NDP table, the MTU
//! (IPv6 is never fragmented on the way: too big is the caller's Packet
//! Too Big), the rewrite, and the queue of packets waiting for neighbour
//! discovery (solicitations, retries, release once resolved, address
//! unreachable after three tries, RFC 4861 7.2.2). Also the timers NDP
//! keeps: unicast probes before a learned neighbour expires (RFC 4861
//! 7.3.3) and worker 0's periodic router advertisements (RFC 4861 6.2.4).

use crate::addr::Mac;
use crate::drop::DropReason;
use crate::meta::Meta;
use crate::neighbour::{Key6, NeighbourState, Neighbours, RESOLVE_TRIES};
use crate::packet::{Pkt, PortId, Verdict, ETH_HDR_LEN};
use crate::reply::IcmpLimiter;
use crate::reply6;
use crate::rewrite::L2;
use crate::tables::Tables;
use crate::tables6::{source_address, NextHop6};
use crate::trace::{Event, Tracer};
use crate::wire::ethernet;
use crate::wire::icmpv6;
use crate::wire::ipv6::{self, link_local_from_mac, multicast_mac, ALL_NODES};

use super::icmp6::limiter_key;
use super::neighbour::queued_outcome;
use super::rewrite::l2_to;
use super::{Outcome, Pipeline, RaSched, State, NEIGHBOUR_REFRESH, REFRESH_BATCH};
use crate::counters::Counters;

/// RFC 4861 10: the first `MAX_INITIAL_RTR_ADVERTISEMENTS` unsolicited
/// advertisements of a port come at most `MAX_INITIAL_RTR_ADVERT_INTERVAL`
/// seconds apart.
const INITIAL_ADVERTS: u8 = 3;
const INITIAL_ADVERT_INTERVAL: u32 = 16;

/// Seconds from the `sent`-th unsolicited advertisement to the next.
fn advert_interval(interval: u32, sent: u8) -> u32 {
    let i = interval.max(1);
    if sent < INITIAL_ADVERTS {
        i.min(INITIAL_ADVERT_INTERVAL)
    } else {
        i
    }
}

/// The IPv6 rewrite of a frame to a neighbour: its Ethernet addresses,
/// the IPv6 ethertype (the host path's placeholder header says IPv4) and,
/// for a forwarded packet, hop limit - 1 (RFC 8200 3: no checksum in the
/// IPv6 header). The caller checked the hop limit.
#[inline]
fn rewrite6(frame: &mut [u8], l2: L2, forwarded: bool) {
    if frame.len() < ETH_HDR_LEN + ipv6::HEADER_LEN {
        return;
    }
    let Some(eth) = frame.first_chunk_mut::<ETH_HDR_LEN>() else {
        return;
    };
    l2.write(eth);
    eth[12..14].copy_from_slice(&ethernet::ETHERTYPE_IPV6.to_be_bytes());
    if forwarded {
        let hl = &mut frame[ETH_HDR_LEN + HOP_LIMIT];
        *hl = hl.saturating_sub(1);
    }
}

/// Offset of the hop limit in the IPv6 header.
const HOP_LIMIT: usize = 7;

impl Pipeline {
    /// IPv6's part of [`Pipeline::drain_pending`]: packets whose neighbour
    /// resolved, solicitations (multicast while resolving, unicast to
    /// probe a learned neighbour), failures after three (the packets
    /// dropped as `neighbour_unresolved`, forwarded ones answered with
    /// address unreachable), and the router advertisements found due.
    /// False when `emit` ran out of room.
    pub(super) fn drain_pending6(&mut self, emit: &mut impl FnMut(&[u8], PortId) -> bool) -> bool {
        let t = &*self.tables;
        let State {
            pending6,
            neigh6,
            counters,
            scratch,
            limiter,
            now,
            ra,
            ra_due,
            ..
        } = &mut self.st;
        let now = *now;
        let mut i = 0;
        while let Some(&r) = pending6.in_progress().get(i) {
            // A probe is done once the neighbour answered (which clears
            // `refreshing`); a resolution once the neighbour is known.
            if let Some(n) = neigh6.get(r.addr).filter(|n| !(r.refresh && n.refreshing)) {
                let l2 = l2_to(t, r.port, n.mac);
                let mut room = true;
                pending6.release(r.addr, |buf, port, forwarded| {
                    let out = &mut scratch[..buf.len()];
                    out.copy_from_slice(buf);
                    rewrite6(out, l2, forwarded);
                    if !emit(out, port) {
                        room = false;
                        return false;
                    }
                    counters.tx[port.0 as usize & 63].add(out.len());
                    counters.forwarded += 1;
                    true
                });
                if !room {
                    return false;
                }
                if pending6.in_progress().get(i) != Some(&r) {
                    continue;
                }
            } else if r.tries >= RESOLVE_TRIES && now > r.last_sent + 1 {
                // RFC 4861 7.2.2: no answer after the retransmissions, the
                // queued packets are answered with address unreachable.
                let dropped = pending6.abandon_each(r.addr, |frame, forwarded| {
                    if forwarded {
                        unreachable6(t, neigh6, limiter, counters, scratch, now, frame, emit);
                    }
                });
                counters.drops[DropReason::NeighbourUnresolved as usize] += dropped as u64;
                counters.nd_resolution_failures += 1;
                if r.refresh {
                    neigh6.set_state(r.addr, NeighbourState::Failed);
                }
                continue;
            } else if r.tries < RESOLVE_TRIES && now > r.last_sent {
                let ifc = &t.interfaces[r.port.0 as usize];
                let src = source_address(ifc, r.addr.0);
                // RFC 4861 7.3.3: a known neighbour is probed unicast.
                let unicast = if r.refresh {
                    neigh6.get(r.addr).map(|n| n.mac)
                } else {
                    None
                };
                if let Some(len) =
                    reply6::neighbor_solicit(scratch, ifc.mac, src, r.addr.0, unicast)
                {
                    if !emit(&scratch[..len], r.port) {
                        return false;
                    }
                    counters.tx[r.port.0 as usize & 63].add(len);
                    counters.nd_solicits_sent += 1;
                    counters.generated += 1;
                    if let Some(e) = pending6.resolving(r.addr, r.port) {
                        e.tries += 1;
                        e.last_sent = now;
                    }
                }
            }
            i += 1;
        }
        if *ra_due {
            for (i, s) in ra.iter_mut().enumerate() {
                let Some(ifc) = t.interfaces.get(i) else {
                    break;
                };
                let Some(cfg) = ifc.ra.as_ref().filter(|_| s.on && s.next <= now) else {
                    continue;
                };
                let port = PortId(i as u8);
                let src =
                    t.v6.link_local
                        .get(i)
                        .copied()
                        .unwrap_or_else(|| link_local_from_mac(ifc.mac));
                let group = multicast_mac(ALL_NODES);
                if let Some(len) =
                    reply6::router_advert(scratch, ifc.mac, src, ALL_NODES, group, cfg, ifc.mtu)
                {
                    if !emit(&scratch[..len], port) {
                        return false;
                    }
                    counters.tx[i & 63].add(len);
                    counters.ra_sent += 1;
                    counters.generated += 1;
                }
                s.sent = s.sent.saturating_add(1);
                s.next = now.saturating_add(advert_interval(cfg.interval, s.sent));
            }
            *ra_due = false;
        }
        true
    }
}

/// Answers a queued packet whose next hop never answered with ICMPv6
/// address unreachable (RFC 4443 3.1 code 3), routed back to its source
/// when that neighbour is known (no resolution started for an error),
/// within RFC 4443 2.4 (e) and the rate limit.
#[allow(clippy::too_many_arguments)]
fn unreachable6(
    t: &Tables,
    neigh6: &Neighbours<Key6>,
    limiter: &mut IcmpLimiter,
    counters: &mut Counters,
    scratch: &mut [u8],
    now: u32,
    frame: &[u8],
    emit: &mut impl FnMut(&[u8], PortId) -> bool,
) {
    if frame.len() < ETH_HDR_LEN + ipv6::HEADER_LEN || frame.len() > scratch.len() {
        return;
    }
    let ip = ipv6::Packet::new_unchecked(&frame[ETH_HDR_LEN..]);
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let payload = &frame[ETH_HDR_LEN + ipv6::HEADER_LEN..];
    let Ok(chain) = ipv6::walk(ip.next_header(), payload) else {
        return;
    };
    let proto = chain.upper.unwrap_or(chain.last_next_header);
    let icmp_type = (chain.upper == Some(ipv6::NH_ICMPV6))
        .then(|| payload.get(chain.offset).copied())
        .flatten();
    if !reply6::may_send_error6(proto, icmp_type, dst, src) {
        return;
    }
    let (port, hop) = match t.v6.route(src) {
        Some((_, NextHop6::Connected(p))) => (p, src),
        Some((_, NextHop6::Via { port, gateway })) => (port, gateway),
        _ => return,
    };
    let Some(mac) = neigh6.get((hop, port)).map(|n| n.mac) else {
        return;
    };
    if !limiter.allow(limiter_key(src), now) {
        counters.icmp_errors_rate_limited += 1;
        return;
    }
    let Some(ifc) = t.interfaces.get(port.0 as usize) else {
        return;
    };
    scratch[..frame.len()].copy_from_slice(frame);
    let from = source_address(ifc, src);
    let Some(len) = reply6::icmp6_error(
        scratch,
        frame.len(),
        from,
        ifc.mac,
        mac,
        icmpv6::DST_UNREACHABLE,
        icmpv6::ADDR_UNREACHABLE,
        0,
    ) else {
        return;
    };
    if emit(&scratch[..len], port) {
        counters.tx[port.0 as usize & 63].add(len);
        counters.icmp_errors_sent += 1;
        counters.generated += 1;
    }
}

impl State {
    /// New tables: static IPv6 neighbours, the next-hop cache, and the
    /// advertisement schedule (a port that starts advertising does so at
    /// once).
    pub(super) fn adopt6(&mut self, t: &Tables) {
        self.neigh6.load_static(t);
        self.rebuild_nh6_cache(t);
        self.ra.resize(t.interfaces.len(), RaSched::default());
        let now = self.now;
        for (s, ifc) in self.ra.iter_mut().zip(&t.interfaces) {
            match &ifc.ra {
                Some(cfg) if s.on => {
                    s.next = s
                        .next
                        .min(now.saturating_add(advert_interval(cfg.interval, s.sent)))
                }
                Some(_) => {
                    *s = RaSched {
                        on: true,
                        ..RaSched::default()
                    }
                }
                None => s.on = false,
            }
        }
    }

    /// Housekeeping for IPv6: learned neighbours expire; at a refresh
    /// scan (`scan`), those that expire within [`NEIGHBOUR_REFRESH`]
    /// seconds are probed; worker 0 finds whether a router advertisement
    /// is due.
    pub(super) fn housekeeping6(&mut self, t: &Tables, scan: bool) {
        let now = self.now;
        if self.neigh6.expire(now) > 0 {
            self.rebuild_nh6_cache(t);
        }
        if scan {
            let mut due = [((0u128, PortId(0)), PortId(0)); REFRESH_BATCH];
            let n = self
                .neigh6
                .due_for_refresh(now, NEIGHBOUR_REFRESH, &mut due);
            for &(key, port) in &due[..n] {
                // No room among the resolutions: try again at the next scan.
                if let Some(r) = self.pending6.resolving(key, port) {
                    r.refresh = true;
                    self.neigh6.set_refreshing(key);
                }
            }
        }
        if self.me == 0 && !self.ra_due {
            self.ra_due = self.ra.iter().any(|s| s.on && s.next <= now);
        }
    }

    /// The MAC of each IPv6 gateway by next-hop id.
    pub(super) fn rebuild_nh6_cache(&mut self, t: &Tables) {
        self.nh6_mac.clear();
        self.nh6_mac
            .extend(t.v6.next_hops.iter().map(|nh| match *nh {
                NextHop6::Via { port, gateway } => self.neigh6.get((gateway, port)).map(|n| n.mac),
                _ => None,
            }));
        self.nh_fast6 = super::transit::fast_hops6(t, &self.nh6_mac);
    }

    /// A neighbour learned from NDP reaches the other workers (NDP comes
    /// to one queue, the flows to the neighbour to any worker).
    pub(super) fn publish6(&mut self, addr: u128, mac: Mac, port: PortId) {
        if self.workers > 1 && self.learned6.len() < self.learned6.capacity() {
            self.learned6.push((addr, mac, port));
        }
    }

    /// Neighbour, MTU and rewrite for IPv6: send the packet out of `out`
    /// to its next hop (`nh`, id `nh_id`). `Err(mtu)` when the packet is
    /// bigger than the port's MTU (the caller answers Packet Too Big; it is
    /// never queued). `forwarded`: hop limit - 1 (not for the host's own).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(super) fn output6<T: Tracer>(
        &mut self,
        t: &Tables,
        pkt: &mut Pkt<'_>,
        m: &Meta,
        nh_id: u32,
        nh: NextHop6,
        out: PortId,
        forwarded: bool,
        tr: &mut T,
    ) -> Result<Outcome, u16> {
        let ifc = &t.interfaces[out.0 as usize];
        // RFC 8200 5: routers never fragment.
        if m.total_len > ifc.mtu as usize {
            return Err(ifc.mtu);
        }
        let (addr, mac) = match nh {
            NextHop6::Via { gateway, .. } => {
                (gateway, self.nh6_mac.get(nh_id as usize).copied().flatten())
            }
            _ => (m.dst6, self.neigh6.get((m.dst6, out)).map(|n| n.mac)),
        };
        tr.event(Event::Neighbour6 {
            addr,
            port: out,
            resolved: mac.is_some(),
        });
        let Some(dst_mac) = mac else {
            return Ok(self.resolve6(t, pkt, m, out, addr, forwarded));
        };
        rewrite6(&mut pkt.buf[..pkt.len], l2_to(t, out, dst_mac), forwarded);
        // Trailing Ethernet padding is not part of the packet we send.
        pkt.len = ETH_HDR_LEN + m.total_len;
        Ok(Outcome::of(Verdict::Tx(out)))
    }

    /// The IPv6 next hop is unresolved: the packet waits in the queue (a
    /// copy) and the frame becomes a neighbour solicitation to the
    /// solicited-node address (at most one a second, three in all). A full
    /// queue drops the packet (`neighbour_queue_full`).
    #[cold]
    fn resolve6(
        &mut self,
        t: &Tables,
        pkt: &mut Pkt<'_>,
        m: &Meta,
        out: PortId,
        addr: u128,
        forwarded: bool,
    ) -> Outcome {
        let ifc = &t.interfaces[out.0 as usize];
        let src = source_address(ifc, addr);
        let frame_len = (ETH_HDR_LEN + m.total_len).min(pkt.len);
        let now = self.now;
        let send = match self.pending6.resolving((addr, out), out) {
            Some(r) if r.tries < RESOLVE_TRIES && (r.tries == 0 || now > r.last_sent) => {
                r.tries += 1;
                r.last_sent = now;
                true
            }
            Some(_) => false,
            None => return Outcome::drop(DropReason::NeighbourQueueFull),
        };
        let queued = self
            .pending6
            .enqueue((addr, out), out, forwarded, &pkt.buf[..frame_len]);
        let request = send
            .then(|| reply6::neighbor_solicit(pkt.buf, ifc.mac, src, addr, None))
            .flatten();
        if request.is_some() {
            self.counters.nd_solicits_sent += 1;
        }
        queued_outcome(pkt, out, queued, request)
    }
}

#[cfg(test)]
mod tests {
    use super::super::ndp::tests::*;
    use super::*;
    use crate::tables6::StaticNeighbour6;
    use crate::wire::ipv6::{link_local_from_mac, solicited_node, NH_UDP};
    use crate::wire::ndp::{self, Repr};

    /// A UDP datagram from the lan host to `dst`, hop limit 64, and its
    /// route.
    fn datagram(p: &Pipeline, dst: u128, data: usize) -> (Vec<u8>, usize, Meta, u32, NextHop6) {
        let payload = vec![0xabu8; 8 + data];
        let (b, n, mut m) = frame6(
            HOST_MAC,
            LAN_MAC,
            a("2001:db8:1::9"),
            dst,
            64,
            NH_UDP,
            &payload,
            LAN,
        );
        m.local_dst = false;
        let (id, nh) = p.tables().v6.route(dst).expect("routed");
        (b, n, m, id, nh)
    }

    /// `output6` of the datagram out of `out`, counted.
    fn output(
        p: &mut Pipeline,
        b: &mut [u8],
        n: usize,
        m: &Meta,
        id: u32,
        nh: NextHop6,
        out: PortId,
    ) -> Result<(Verdict, usize), u16> {
        let t = p.tables.clone();
        let mut pkt = Pkt {
            buf: b,
            len: n,
            port: m.in_port,
        };
        let mut tr = Vec::new();
        let o = p.st.output6(&t, &mut pkt, m, id, nh, out, true, &mut tr)?;
        assert!(matches!(tr[..], [Event::Neighbour6 { port, .. }] if port == out));
        Ok((p.st.account(&pkt, o, &mut ()), pkt.len))
    }

    /// What `drain_pending` sends, frame and port.
    fn drain(p: &mut Pipeline) -> Vec<(Vec<u8>, PortId)> {
        let mut out = Vec::new();
        p.drain_pending(|f, port| {
            out.push((f.to_vec(), port));
            true
        });
        out
    }

    fn wan_ll() -> u128 {
        link_local_from_mac(WAN_MAC)
    }

    /// `fe80::9` on wan and `fe80::9` on lan are two routers (gateways are
    /// often numbered alike): each is learned by NDP on its own port, and
    /// each route's packets go to its own MAC.
    #[test]
    fn one_link_local_address_on_two_ports_is_two_neighbours() {
        use crate::tables::{Interface, TablesSpec};
        use crate::tables6::{RouteSpec6, Spec6};
        let ifc = |name: &str, mac, addr: &str| Interface {
            name: name.into(),
            device: name.into(),
            mac,
            addresses: Vec::new(),
            addresses6: vec![addr.parse().unwrap()],
            mtu: 1500,
            ra: None,
        };
        let via = |port| NextHop6::Via {
            port,
            gateway: gw(),
        };
        let t = Tables::build(TablesSpec {
            interfaces: vec![
                ifc("lan", LAN_MAC, "2001:db8:1::1/64"),
                ifc("wan", WAN_MAC, "2001:db8::1/64"),
            ],
            v6: Spec6 {
                routes: vec![
                    RouteSpec6::new("::/0".parse().unwrap(), via(WAN)),
                    RouteSpec6::new("2001:db8:5::/48".parse().unwrap(), via(LAN)),
                ],
                ..Spec6::default()
            },
            ..TablesSpec::default()
        });
        let mut p = Pipeline::new(std::sync::Arc::new(t));
        const LAN_GW_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0x55]);
        for (port, mac, us) in [(WAN, GW_MAC, WAN_MAC), (LAN, LAN_GW_MAC, LAN_MAC)] {
            let na = Repr::NeighborAdvert {
                flags: ndp::NA_ROUTER | ndp::NA_SOLICITED | ndp::NA_OVERRIDE,
                target: gw(),
                target_mac: Some(mac),
            };
            let (mut b, n, m) = nd_frame(mac, gw(), link_local_from_mac(us), 255, &na, port);
            assert_eq!(run(&mut p, &mut b, n, &m).0, Verdict::Consumed);
        }
        assert_eq!(p.neighbours6().get((gw(), WAN)).unwrap().mac, GW_MAC);
        assert_eq!(p.neighbours6().get((gw(), LAN)).unwrap().mac, LAN_GW_MAC);
        for (dst, port, mac) in [
            (a("2001:db8:9::1"), WAN, GW_MAC),
            (a("2001:db8:5::7"), LAN, LAN_GW_MAC),
        ] {
            let (mut b, n, m, id, nh) = datagram(&p, dst, 20);
            assert_eq!(nh, via(port));
            let (v, _) = output(&mut p, &mut b, n, &m, id, nh, port).unwrap();
            assert_eq!(v, Verdict::Tx(port));
            assert_eq!(b[..6], mac.0, "to the gateway on {port:?}");
        }
        assert_eq!(p.neighbours6().iter().count(), 2, "an entry each");
    }

    #[test]
    fn unresolved_gateway_is_solicited_and_its_na_releases_the_packet() {
        let mut p = pipeline();
        let dst = a("2001:db8:5::7");
        let (mut b, n, m, id, nh) = datagram(&p, dst, 20);
        let orig = b[..n].to_vec();
        let (v, len) = output(&mut p, &mut b, n, &m, id, nh, WAN).unwrap();
        assert_eq!(v, Verdict::Tx(WAN));
        // RFC 4861 7.2.2: to the solicited-node group, with our MAC.
        let (dst_mac, ip, r) = sent(&b[..len]);
        assert_eq!(dst_mac, Mac([0x33, 0x33, 0xff, 0, 0, 0x09]));
        assert_eq!((ip.src, ip.dst), (wan_ll(), solicited_node(gw())));
        assert_eq!(
            r,
            Repr::NeighborSolicit {
                target: gw(),
                source_mac: Some(WAN_MAC)
            }
        );
        assert_eq!((p.pending_packets(), p.counters().nd_solicits_sent), (1, 1));
        assert!(p.has_pending());
        // The gateway answers.
        let na = Repr::NeighborAdvert {
            flags: ndp::NA_ROUTER | ndp::NA_SOLICITED | ndp::NA_OVERRIDE,
            target: gw(),
            target_mac: Some(GW_MAC),
        };
        let (mut nb, nn, nm) = nd_frame(GW_MAC, gw(), wan_ll(), 255, &na, WAN);
        assert_eq!(run(&mut p, &mut nb, nn, &nm).0, Verdict::Consumed);
        let e = p.neighbours6().get((gw(), WAN)).unwrap();
        assert_eq!((e.mac, e.state.name()), (GW_MAC, "reachable"));
        let out = drain(&mut p);
        assert_eq!(out.len(), 1);
        let (f, port) = &out[0];
        assert_eq!(*port, WAN);
        let mut want = orig.clone();
        want[..6].copy_from_slice(&GW_MAC.0);
        want[6..12].copy_from_slice(&WAN_MAC.0);
        want[ETH_HDR_LEN + 7] = 63;
        assert_eq!(f, &want, "rewritten, hop limit one lower");
        assert_eq!(p.pending_packets(), 0);
        assert!(!p.has_pending());
        assert_eq!(p.counters().forwarded, 1);
        // Now resolved: straight out.
        let (mut b, n, m, id, nh) = datagram(&p, dst, 20);
        let (v, len) = output(&mut p, &mut b, n, &m, id, nh, WAN).unwrap();
        assert_eq!((v, &b[..len]), (Verdict::Tx(WAN), &want[..]));
    }

    #[test]
    fn three_solicitations_then_unresolved_and_address_unreachable() {
        let mut p = pipeline();
        p.learn_neighbour6(a("2001:db8:1::9"), HOST_MAC, LAN);
        let dst = a("2001:db8::77");
        let (mut b, n, m, id, nh) = datagram(&p, dst, 20);
        assert_eq!(nh, NextHop6::Connected(WAN));
        let orig = b[ETH_HDR_LEN..n].to_vec();
        output(&mut p, &mut b, n, &m, id, nh, WAN).unwrap();
        let mut now = p.now();
        for attempt in 2..=3 {
            assert!(drain(&mut p).is_empty(), "at most one a second");
            now += 1;
            p.set_now(now);
            let out = drain(&mut p);
            assert_eq!(out.len(), 1, "try {attempt}");
            let (dst_mac, ip, _) = sent(&out[0].0);
            assert_eq!(
                (dst_mac, ip.dst, ip.src),
                (
                    multicast_mac(solicited_node(dst)),
                    solicited_node(dst),
                    a("2001:db8::1")
                )
            );
        }
        now += 2;
        p.set_now(now);
        let out = drain(&mut p);
        assert_eq!(out.len(), 1, "the error");
        let (f, port) = &out[0];
        assert_eq!(*port, LAN);
        let e = ethernet::Frame::new_unchecked(&f[..]);
        assert_eq!((e.dst_addr(), e.src_addr()), (HOST_MAC, LAN_MAC));
        let ip = ipv6::Repr::parse(&ipv6::Packet::new_checked(&f[ETH_HDR_LEN..]).unwrap());
        assert_eq!(
            (ip.src, ip.dst, ip.next_header),
            (a("2001:db8:1::1"), a("2001:db8:1::9"), 58)
        );
        let msg = icmpv6::Packet::new_checked(&f[ETH_HDR_LEN + 40..]).unwrap();
        assert!(msg.verify_checksum(ip.src, ip.dst));
        assert_eq!((msg.msg_type(), msg.code()), (1, 3));
        assert_eq!(msg.payload(), &orig[..]);
        let c = p.counters();
        assert_eq!(c.drops[DropReason::NeighbourUnresolved as usize], 1);
        assert_eq!(
            (
                c.nd_resolution_failures,
                c.nd_solicits_sent,
                c.icmp_errors_sent
            ),
            (1, 3, 1)
        );
        assert_eq!(p.pending_packets(), 0);
        assert!(!p.has_pending());
    }

    #[test]
    fn a_static_neighbour_is_used_with_no_solicitation() {
        let mut p = pipeline_with(
            1500,
            vec![StaticNeighbour6 {
                addr: gw(),
                mac: GW_MAC,
                port: WAN,
            }],
        );
        let (mut b, n, m, id, nh) = datagram(&p, a("2001:db8:5::7"), 20);
        // Ethernet padding after the packet does not leave.
        let (v, len) = output(&mut p, &mut b, n + 6, &m, id, nh, WAN).unwrap();
        assert_eq!((v, len), (Verdict::Tx(WAN), n));
        let e = ethernet::Frame::new_unchecked(&b[..len]);
        assert_eq!((e.dst_addr(), e.src_addr()), (GW_MAC, WAN_MAC));
        assert_eq!(e.ethertype(), ethernet::ETHERTYPE_IPV6);
        assert_eq!(b[ETH_HDR_LEN + 7], 63);
        assert_eq!(p.counters().nd_solicits_sent, 0);
        assert!(!p.has_pending());
    }

    #[test]
    fn a_packet_bigger_than_the_mtu_is_refused_not_queued() {
        let mut p = pipeline_with(1280, Vec::new());
        let (mut b, n, m, id, nh) = datagram(&p, a("2001:db8:5::7"), 1300);
        assert_eq!(output(&mut p, &mut b, n, &m, id, nh, WAN), Err(1280));
        assert_eq!(p.pending_packets(), 0);
        let (mut b, n, m, id, nh) = datagram(&p, a("2001:db8:5::7"), 1280 - 48);
        assert!(
            output(&mut p, &mut b, n, &m, id, nh, WAN).is_ok(),
            "1280 fits"
        );
    }

    #[test]
    fn periodic_router_advertisements_come_from_worker_0_only() {
        let mut w0 = pipeline();
        let mut w1 = pipeline();
        w0.set_worker(0, 2);
        w1.set_worker(1, 2);
        w1.housekeeping(0);
        assert!(!w1.has_pending());
        assert!(drain(&mut w1).is_empty());
        let mut times = Vec::new();
        for now in 1..=300 {
            w0.set_now(now);
            w0.housekeeping(0);
            if !w0.has_pending() {
                continue;
            }
            let out = drain(&mut w0);
            assert_eq!(out.len(), 1, "second {now}");
            let (f, port) = &out[0];
            assert_eq!(*port, LAN, "wan does not advertise");
            let (dst_mac, ip, r) = sent(f);
            assert_eq!(
                (dst_mac, ip.src, ip.dst),
                (
                    multicast_mac(ALL_NODES),
                    link_local_from_mac(LAN_MAC),
                    ALL_NODES
                )
            );
            let Repr::RouterAdvert(ra) = r else {
                panic!("not an RA")
            };
            assert_eq!(ra.prefixes[0].unwrap().prefix, a("2001:db8:1::"));
            assert!(!w0.has_pending());
            times.push(now);
        }
        // RFC 4861 6.2.4: the first three at most 16 s apart, then every 200 s.
        assert_eq!(times, [1, 17, 33, 233]);
        assert_eq!(w0.counters().ra_sent, 4);
    }

    #[test]
    fn a_learned_neighbour_is_probed_unicast_before_it_expires() {
        let mut p = pipeline();
        // Not worker 0: no router advertisements among what it sends.
        p.set_worker(1, 2);
        let host = a("2001:db8:1::9");
        p.learn_neighbour6(host, HOST_MAC, LAN);
        let expires = p.neighbours6().get((host, LAN)).unwrap().expires;
        let now = expires - super::super::NEIGHBOUR_REFRESH;
        p.set_now(now);
        p.housekeeping(0);
        assert_eq!(
            p.neighbours6().get((host, LAN)).unwrap().state.name(),
            "probe"
        );
        p.set_now(now + 1);
        let out = drain(&mut p);
        assert_eq!(out.len(), 1);
        let (dst_mac, ip, r) = sent(&out[0].0);
        assert_eq!(
            (dst_mac, ip.dst, ip.src),
            (HOST_MAC, host, a("2001:db8:1::1"))
        );
        assert!(matches!(r, Repr::NeighborSolicit { target, .. } if target == host));
        // The answer renews the entry and ends the probe.
        let na = Repr::NeighborAdvert {
            flags: ndp::NA_SOLICITED | ndp::NA_OVERRIDE,
            target: host,
            target_mac: Some(HOST_MAC),
        };
        let (mut b, n, m) = nd_frame(HOST_MAC, host, a("2001:db8:1::1"), 255, &na, LAN);
        run(&mut p, &mut b, n, &m);
        let e = *p.neighbours6().get((host, LAN)).unwrap();
        assert_eq!(e.state.name(), "reachable");
        assert!(e.expires > expires);
        assert!(drain(&mut p).is_empty());
        assert!(!p.has_pending());
    }

    #[test]
    fn an_unanswered_probe_leaves_the_neighbour_failed() {
        let mut p = pipeline();
        p.set_worker(1, 2);
        let host = a("2001:db8:1::9");
        p.learn_neighbour6(host, HOST_MAC, LAN);
        let mut now =
            p.neighbours6().get((host, LAN)).unwrap().expires - super::super::NEIGHBOUR_REFRESH;
        p.set_now(now);
        p.housekeeping(0);
        let mut probes = 0;
        for _ in 0..5 {
            now += 1;
            p.set_now(now);
            probes += drain(&mut p).len();
        }
        assert_eq!(probes, 3);
        let e = p.neighbours6().get((host, LAN)).unwrap();
        assert_eq!(e.state.name(), "failed");
        let c = p.counters();
        assert_eq!((c.nd_resolution_failures, c.icmp_errors_sent), (1, 0));
        assert_eq!(c.drops[DropReason::NeighbourUnresolved as usize], 0);
        assert!(!p.has_pending());
    }

    #[test]
    fn a_neighbour_holds_three_packets_and_drops_the_fourth() {
        let mut p = pipeline();
        let dst = a("2001:db8:5::7");
        let mut verdicts = Vec::new();
        for _ in 0..4 {
            let (mut b, n, m, id, nh) = datagram(&p, dst, 20);
            verdicts.push(output(&mut p, &mut b, n, &m, id, nh, WAN).unwrap().0);
        }
        assert_eq!(
            verdicts,
            [
                Verdict::Tx(WAN),
                Verdict::Consumed,
                Verdict::Consumed,
                Verdict::Drop(DropReason::NeighbourQueueFull)
            ]
        );
        assert_eq!(p.pending_packets(), 3);
        assert_eq!(p.counters().nd_solicits_sent, 1, "one a second");
    }
}
