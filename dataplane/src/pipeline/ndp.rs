//! Neighbour discovery addressed to the router (RFC 4861), IPv6's ARP:
//! validate, answer solicitations for our addresses with advertisements
//! (and router solicitations with router advertisements on ports that
//! send them), learn neighbours from solicitations and advertisements.
//! Router advertisements and redirects from others are consumed: a router
//! does not configure itself from them (RFC 4861 6.2.7, 8).

use crate::addr::Mac;
use crate::drop::DropReason;
use crate::meta::Meta;
use crate::neighbour::NeighbourState;
use crate::packet::{Pkt, PortId, Verdict, ETH_HDR_LEN};
use crate::reply6;
use crate::tables::Tables;
use crate::wire::checksum;
use crate::wire::ethernet;
use crate::wire::icmpv6;
use crate::wire::ipv6::{link_local_from_mac, multicast_mac, AddrClass, ALL_NODES, NH_ICMPV6};
use crate::wire::ndp::{self, Repr};

use super::{Outcome, State, NEIGHBOUR_TIMEOUT};

/// RFC 4861 10 `MIN_DELAY_BETWEEN_RAS`: seconds between multicast
/// answers to router solicitations on a port.
const MIN_DELAY_BETWEEN_RAS: u32 = 3;

impl State {
    /// An NDP message (ICMPv6 types 133 to 137) from a port, to one of the
    /// router's addresses or groups: see the module doc. RFC 4861 6.1 and
    /// 7.1 validity: hop limit 255 (`ndp_bad_hop_limit`), the checksum
    /// (`icmp6_bad_checksum`), code, lengths, options, target and DAD
    /// rules (`ndp_invalid`).
    pub(super) fn ndp(&mut self, t: &Tables, pkt: &mut Pkt<'_>, m: &Meta) -> Outcome {
        // RFC 4861 6.1.1, 7.1.1: hop limit 255, so it never crossed a router.
        if m.ttl != reply6::ND_HOP_LIMIT {
            return Outcome::drop(DropReason::NdpBadHopLimit);
        }
        let (off, end) = (ETH_HDR_LEN + m.ihl, ETH_HDR_LEN + m.total_len);
        if end > pkt.len || off + icmpv6::HEADER_LEN > end {
            return Outcome::drop(DropReason::NdpInvalid);
        }
        let msg = &pkt.buf[off..end];
        if !checksum::verify6(m.src6, m.dst6, NH_ICMPV6, msg) {
            return Outcome::drop(DropReason::Icmp6BadChecksum);
        }
        if t.interfaces.get(pkt.port.0 as usize).is_none() {
            return Outcome::drop(DropReason::NdpInvalid);
        }
        // RFC 4861 8.1 validity matters to hosts; a router ignores redirects.
        if msg[0] == icmpv6::REDIRECT {
            return Outcome::of(Verdict::Consumed);
        }
        let Ok(repr) = Repr::parse(m.src6, m.dst6, m.ttl, msg) else {
            return Outcome::drop(DropReason::NdpInvalid);
        };
        let peer = ethernet::Frame::new_unchecked(&pkt.buf[..ETH_HDR_LEN]).src_addr();
        match repr {
            Repr::NeighborSolicit { target, source_mac } => {
                self.neighbor_solicit(t, pkt, m, target, source_mac.unwrap_or(peer))
            }
            Repr::NeighborAdvert {
                flags,
                target,
                target_mac,
            } => self.neighbor_advert(t, pkt.port, flags, target, target_mac),
            Repr::RouterSolicit { source_mac } => self.router_solicit(t, pkt, m, source_mac, peer),
            Repr::RouterAdvert(_) => Outcome::of(Verdict::Consumed),
        }
    }

    /// RFC 4861 7.2.3, 7.2.4: a solicitation for one of our addresses on
    /// this port (a global one, or the port's link-local one) becomes the
    /// advertisement that answers it, to the solicitor (`reply_mac`: its
    /// source link-layer option, else the frame's source) or, for duplicate
    /// address detection from `::`, to all nodes and unsolicited.
    fn neighbor_solicit(
        &mut self,
        t: &Tables,
        pkt: &mut Pkt<'_>,
        m: &Meta,
        target: u128,
        reply_mac: Mac,
    ) -> Outcome {
        self.counters.nd_solicits_received += 1;
        let port = pkt.port;
        let ifc = &t.interfaces[port.0 as usize];
        let ours =
            ifc.addresses6.iter().any(|a| a.addr == target) || t.v6.is_link_local_of(target, port);
        if !ours {
            return Outcome::drop(DropReason::NdpNotForUs);
        }
        let (dst, dst_mac, solicited) = if m.src6 == 0 {
            (ALL_NODES, multicast_mac(ALL_NODES), false)
        } else {
            // RFC 4861 7.2.3: the solicitor is learned, stale.
            self.learn_stale(t, m.src6, reply_mac, port);
            (m.src6, reply_mac, true)
        };
        match reply6::neighbor_advert(pkt.buf, ifc.mac, target, dst, dst_mac, solicited, true) {
            Some(n) => {
                pkt.len = n;
                self.counters.nd_adverts_sent += 1;
                Outcome::reply(port, None)
            }
            None => Outcome::of(Verdict::Consumed),
        }
    }

    /// RFC 4861 7.2.5: an advertisement updates the neighbour: a solicited
    /// one with its address makes it reachable (also when unknown: it
    /// answers our solicitation); an unsolicited one with a new address
    /// makes it stale, and creates it only while we resolve it; without
    /// override, a different address leaves the entry's address alone
    /// and a reachable entry stale.
    fn neighbor_advert(
        &mut self,
        t: &Tables,
        port: PortId,
        flags: u8,
        target: u128,
        target_mac: Option<Mac>,
    ) -> Outcome {
        self.counters.nd_adverts_received += 1;
        // Someone defends one of our addresses: not a neighbour to learn.
        if t.v6.is_local(target) {
            return Outcome::of(Verdict::Consumed);
        }
        let solicited = flags & ndp::NA_SOLICITED != 0;
        let overrides = flags & ndp::NA_OVERRIDE != 0;
        let key = (target, port);
        let update = match self.neigh6.get(key).copied() {
            Some(n) if n.is_static => None,
            None => {
                let waiting = self.pending6.in_progress().iter().any(|r| r.addr == key);
                target_mac.filter(|_| solicited || waiting).map(|mac| {
                    let state = if solicited {
                        NeighbourState::Reachable
                    } else {
                        NeighbourState::Stale
                    };
                    (mac, state)
                })
            }
            Some(n) => {
                let same = target_mac.is_none_or(|mac| mac == n.mac);
                if overrides || same {
                    let mac = target_mac.unwrap_or(n.mac);
                    if solicited {
                        Some((mac, NeighbourState::Reachable))
                    } else if !same {
                        Some((mac, NeighbourState::Stale))
                    } else {
                        None
                    }
                } else {
                    if n.state == NeighbourState::Reachable {
                        self.neigh6.set_state(key, NeighbourState::Stale);
                    }
                    None
                }
            }
        };
        if let Some((mac, state)) = update {
            self.learn6(t, target, mac, port, state);
        }
        Outcome::of(Verdict::Consumed)
    }

    /// RFC 4861 6.2.6: a router solicitation is answered on a port that
    /// sends advertisements: unicast to a solicitor with an address, to all
    /// nodes from `::` (at most once per `MIN_DELAY_BETWEEN_RAS`). The
    /// solicitor's link-layer address is learned, stale.
    fn router_solicit(
        &mut self,
        t: &Tables,
        pkt: &mut Pkt<'_>,
        m: &Meta,
        source_mac: Option<Mac>,
        peer: Mac,
    ) -> Outcome {
        self.counters.rs_received += 1;
        let port = pkt.port;
        if m.src6 != 0 {
            if let Some(mac) = source_mac {
                self.learn_stale(t, m.src6, mac, port);
            }
        }
        let ifc = &t.interfaces[port.0 as usize];
        let Some(ra) = ifc.ra.as_ref() else {
            return Outcome::of(Verdict::Consumed);
        };
        let (dst, dst_mac) = if matches!(AddrClass::of(m.src6), AddrClass::Unspecified) {
            let now = self.now;
            let Some(s) = self.ra.get_mut(port.0 as usize) else {
                return Outcome::of(Verdict::Consumed);
            };
            if s.last_solicited != 0 && now < s.last_solicited + MIN_DELAY_BETWEEN_RAS {
                return Outcome::of(Verdict::Consumed);
            }
            s.last_solicited = now;
            (ALL_NODES, multicast_mac(ALL_NODES))
        } else {
            (m.src6, source_mac.unwrap_or(peer))
        };
        let src =
            t.v6.link_local
                .get(port.0 as usize)
                .copied()
                .unwrap_or_else(|| link_local_from_mac(ifc.mac));
        match reply6::router_advert(pkt.buf, ifc.mac, src, dst, dst_mac, ra, ifc.mtu) {
            Some(n) => {
                pkt.len = n;
                self.counters.ra_sent += 1;
                Outcome::reply(port, None)
            }
            None => Outcome::of(Verdict::Consumed),
        }
    }

    /// RFC 4861 7.2.3: a solicitor's address creates a stale entry or, if
    /// it changed, updates one; the same address leaves the entry alone.
    fn learn_stale(&mut self, t: &Tables, addr: u128, mac: Mac, port: PortId) {
        match self.neigh6.get((addr, port)) {
            Some(n) if n.is_static || n.mac == mac => {}
            _ => self.learn6(t, addr, mac, port, NeighbourState::Stale),
        }
    }

    /// Learns (or renews) an IPv6 neighbour from NDP and tells the other
    /// workers.
    fn learn6(&mut self, t: &Tables, addr: u128, mac: Mac, port: PortId, state: NeighbourState) {
        let expires = self.now.saturating_add(NEIGHBOUR_TIMEOUT);
        let changed = self.neigh6.get((addr, port)).map(|n| n.mac) != Some(mac);
        if !self
            .neigh6
            .learn_as((addr, port), mac, port, expires, state)
        {
            return;
        }
        if changed {
            self.rebuild_nh6_cache(t);
        }
        self.publish6(addr, mac, port);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::addr::Mac;
    use crate::packet::PortId;
    use crate::pipeline::Pipeline;
    use crate::tables::{Interface, TablesSpec};
    use crate::tables6::{NextHop6, RaConfig, RaPrefix, RouteSpec6, Spec6, StaticNeighbour6};
    use crate::wire::ipv6::{self, solicited_node, ALL_ROUTERS};

    pub(in crate::pipeline) fn a(s: &str) -> u128 {
        u128::from(s.parse::<std::net::Ipv6Addr>().unwrap())
    }

    pub(in crate::pipeline) const LAN: PortId = PortId(0);
    pub(in crate::pipeline) const WAN: PortId = PortId(1);
    pub(in crate::pipeline) const LAN_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0x01]);
    pub(in crate::pipeline) const WAN_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0x02]);
    pub(in crate::pipeline) const HOST_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0x99]);
    pub(in crate::pipeline) const GW_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0x77]);

    /// The gateway of the default route, on wan.
    pub(in crate::pipeline) fn gw() -> u128 {
        a("fe80::9")
    }

    /// lan 2001:db8:1::1/64 (advertised), wan 2001:db8::1/64 with
    /// the default route via fe80::9; `wan_mtu`; static neighbours.
    pub(in crate::pipeline) fn pipeline_with(
        wan_mtu: u16,
        neighbours: Vec<StaticNeighbour6>,
    ) -> Pipeline {
        let prefix = RaPrefix {
            prefix: "2001:db8:1::/64".parse().unwrap(),
            valid_lifetime: 86400,
            preferred_lifetime: 14400,
            on_link: true,
            autonomous: true,
        };
        let ifc = |name: &str, mac, addr: &str, mtu, ra| Interface {
            name: name.into(),
            device: name.into(),
            mac,
            addresses: Vec::new(),
            addresses6: vec![addr.parse().unwrap()],
            mtu,
            ra,
        };
        let ra = RaConfig {
            prefixes: vec![prefix],
            ..RaConfig::default()
        };
        let t = Tables::build(TablesSpec {
            interfaces: vec![
                ifc("lan", LAN_MAC, "2001:db8:1::1/64", 1500, Some(ra)),
                ifc("wan", WAN_MAC, "2001:db8::1/64", wan_mtu, None),
            ],
            v6: Spec6 {
                routes: vec![RouteSpec6::new(
                    "::/0".parse().unwrap(),
                    NextHop6::Via {
                        port: WAN,
                        gateway: gw(),
                    },
                )],
                neighbours,
                ..Spec6::default()
            },
            ..TablesSpec::default()
        });
        Pipeline::new(Arc::new(t))
    }

    pub(in crate::pipeline) fn pipeline() -> Pipeline {
        pipeline_with(1500, Vec::new())
    }

    /// A frame of IPv6 `src` -> `dst` with `hop_limit` and `payload` (next
    /// header `nh`), from `src_mac`, in a 2048-byte buffer; and its Meta
    /// as the IPv6 parser fills it.
    #[allow(clippy::too_many_arguments)]
    pub(in crate::pipeline) fn frame6(
        src_mac: Mac,
        dst_mac: Mac,
        src: u128,
        dst: u128,
        hop_limit: u8,
        nh: u8,
        payload: &[u8],
        port: PortId,
    ) -> (Vec<u8>, usize, Meta) {
        let mut b = vec![0u8; 2048];
        let mut f = ethernet::Frame::new_unchecked(&mut b[..ETH_HDR_LEN]);
        f.set_dst_addr(dst_mac);
        f.set_src_addr(src_mac);
        f.set_ethertype(ethernet::ETHERTYPE_IPV6);
        ipv6::Repr {
            src,
            dst,
            next_header: nh,
            hop_limit,
            payload_len: payload.len() as u16,
        }
        .emit(&mut ipv6::Packet::new_unchecked(&mut b[ETH_HDR_LEN..]));
        let off = ETH_HDR_LEN + ipv6::HEADER_LEN;
        b[off..off + payload.len()].copy_from_slice(payload);
        let m = Meta {
            in_port: port,
            v6: true,
            src6: src,
            dst6: dst,
            ttl: hop_limit,
            ihl: ipv6::HEADER_LEN,
            total_len: ipv6::HEADER_LEN + payload.len(),
            proto: nh,
            has_icmp: nh == NH_ICMPV6,
            icmp_type: if nh == NH_ICMPV6 { payload[0] } else { 0 },
            icmp_code: if nh == NH_ICMPV6 { payload[1] } else { 0 },
            local_dst: true,
            ..Meta::default()
        };
        (b, off + payload.len(), m)
    }

    /// An NDP frame carrying `msg` with a correct checksum.
    pub(in crate::pipeline) fn nd_frame(
        src_mac: Mac,
        src: u128,
        dst: u128,
        hop_limit: u8,
        msg: &Repr,
        port: PortId,
    ) -> (Vec<u8>, usize, Meta) {
        let mut body = vec![0u8; msg.len()];
        msg.emit(src, dst, &mut body);
        let dst_mac = multicast_mac(dst);
        frame6(
            src_mac, dst_mac, src, dst, hop_limit, NH_ICMPV6, &body, port,
        )
    }

    /// Runs an NDP frame through the stage and the counting.
    pub(in crate::pipeline) fn run(
        p: &mut Pipeline,
        buf: &mut [u8],
        len: usize,
        m: &Meta,
    ) -> (Verdict, usize) {
        let t = p.tables.clone();
        let mut pkt = Pkt {
            buf,
            len,
            port: m.in_port,
        };
        let o = p.st.ndp(&t, &mut pkt, m);
        let v = p.st.account(&pkt, o, &mut ());
        (v, pkt.len)
    }

    /// The IPv6 header and NDP message of a frame the router built, with
    /// its hop limit 255 and checksum checked.
    pub(in crate::pipeline) fn sent(f: &[u8]) -> (Mac, ipv6::Repr, Repr) {
        let e = ethernet::Frame::new_checked(f).unwrap();
        assert_eq!(e.ethertype(), ethernet::ETHERTYPE_IPV6);
        let ip = ipv6::Repr::parse(&ipv6::Packet::new_checked(&f[ETH_HDR_LEN..]).unwrap());
        let msg = &f[ETH_HDR_LEN + ipv6::HEADER_LEN..];
        assert_eq!(msg.len(), usize::from(ip.payload_len));
        assert_eq!(ip.hop_limit, 255);
        assert!(
            icmpv6::Packet::new_checked(msg)
                .unwrap()
                .verify_checksum(ip.src, ip.dst),
            "checksum"
        );
        let r = Repr::parse(ip.src, ip.dst, ip.hop_limit, msg).expect("valid NDP");
        (e.dst_addr(), ip, r)
    }

    fn ns(target: u128, source_mac: Option<Mac>) -> Repr {
        Repr::NeighborSolicit { target, source_mac }
    }

    #[test]
    fn ns_for_our_global_address_is_answered_with_a_solicited_router_na() {
        let mut p = pipeline();
        let (us, host) = (a("2001:db8:1::1"), a("2001:db8:1::9"));
        let msg = ns(us, Some(HOST_MAC));
        let (mut b, n, m) = nd_frame(HOST_MAC, host, solicited_node(us), 255, &msg, LAN);
        let (v, len) = run(&mut p, &mut b, n, &m);
        assert_eq!(v, Verdict::Tx(LAN));
        let (dst_mac, ip, r) = sent(&b[..len]);
        assert_eq!(dst_mac, HOST_MAC);
        assert_eq!(
            ethernet::Frame::new_unchecked(&b[..len]).src_addr(),
            LAN_MAC
        );
        assert_eq!((ip.src, ip.dst), (us, host));
        assert_eq!(
            r,
            Repr::NeighborAdvert {
                flags: ndp::NA_ROUTER | ndp::NA_SOLICITED | ndp::NA_OVERRIDE,
                target: us,
                target_mac: Some(LAN_MAC),
            }
        );
        let c = p.counters();
        assert_eq!((c.nd_solicits_received, c.nd_adverts_sent), (1, 1));
        let learned = p.neighbours6().get((host, LAN)).expect("solicitor learned");
        assert_eq!(
            (learned.mac, learned.port, learned.state),
            (HOST_MAC, LAN, NeighbourState::Stale)
        );
    }

    #[test]
    fn ns_for_the_ports_link_local_address_is_answered_on_that_port_only() {
        let mut p = pipeline();
        let (ll, host) = (link_local_from_mac(LAN_MAC), a("fe80::99"));
        let msg = ns(ll, Some(HOST_MAC));
        let (mut b, n, m) = nd_frame(HOST_MAC, host, solicited_node(ll), 255, &msg, LAN);
        let (v, len) = run(&mut p, &mut b, n, &m);
        assert_eq!(v, Verdict::Tx(LAN));
        let (_, ip, r) = sent(&b[..len]);
        assert_eq!((ip.src, ip.dst), (ll, host));
        assert!(matches!(
            r,
            Repr::NeighborAdvert { target, target_mac: Some(LAN_MAC), flags }
                if target == ll && flags & ndp::NA_SOLICITED != 0
        ));
        // lan's link-local address asked for on wan.
        let (mut b, n, m) = nd_frame(HOST_MAC, host, solicited_node(ll), 255, &msg, WAN);
        assert_eq!(
            run(&mut p, &mut b, n, &m).0,
            Verdict::Drop(DropReason::NdpNotForUs)
        );
    }

    #[test]
    fn dad_ns_from_the_unspecified_address_is_answered_to_all_nodes() {
        let mut p = pipeline();
        let us = a("2001:db8:1::1");
        let (mut b, n, m) = nd_frame(HOST_MAC, 0, solicited_node(us), 255, &ns(us, None), LAN);
        let (v, len) = run(&mut p, &mut b, n, &m);
        assert_eq!(v, Verdict::Tx(LAN));
        let (dst_mac, ip, r) = sent(&b[..len]);
        assert_eq!(dst_mac, Mac([0x33, 0x33, 0, 0, 0, 1]));
        assert_eq!((ip.src, ip.dst), (us, ALL_NODES));
        assert!(matches!(
            r,
            Repr::NeighborAdvert { flags, .. } if flags == ndp::NA_ROUTER | ndp::NA_OVERRIDE
        ));
        assert_eq!(p.neighbours6().iter().count(), 0, "nothing learned");
    }

    #[test]
    fn ns_for_another_address_is_counted_not_for_us() {
        let mut p = pipeline();
        let other = a("2001:db8:1::77");
        let msg = ns(other, Some(HOST_MAC));
        let (mut b, n, m) = nd_frame(
            HOST_MAC,
            a("2001:db8:1::9"),
            solicited_node(other),
            255,
            &msg,
            LAN,
        );
        assert_eq!(
            run(&mut p, &mut b, n, &m).0,
            Verdict::Drop(DropReason::NdpNotForUs)
        );
        assert_eq!(p.counters().drops[DropReason::NdpNotForUs as usize], 1);
        assert_eq!(p.counters().nd_adverts_sent, 0);
        assert!(p.neighbours6().get((a("2001:db8:1::9"), LAN)).is_none());
    }

    #[test]
    fn hop_limit_checksum_and_validity_are_checked_before_anything() {
        let mut p = pipeline();
        let us = a("2001:db8:1::1");
        let host = a("2001:db8:1::9");
        let msg = ns(us, Some(HOST_MAC));
        let drop =
            |p: &mut Pipeline, (mut b, n, m): (Vec<u8>, usize, Meta)| run(p, &mut b, n, &m).0;
        // RFC 4861 7.1.1: it crossed a router.
        let f = nd_frame(HOST_MAC, host, solicited_node(us), 254, &msg, LAN);
        assert_eq!(drop(&mut p, f), Verdict::Drop(DropReason::NdpBadHopLimit));
        // A flipped bit in the target.
        let mut f = nd_frame(HOST_MAC, host, solicited_node(us), 255, &msg, LAN);
        f.0[ETH_HDR_LEN + 40 + 23] ^= 1;
        assert_eq!(drop(&mut p, f), Verdict::Drop(DropReason::Icmp6BadChecksum));
        // Checksummed but invalid: code 1; a multicast target; DAD with a
        // source link-layer option; an option of length 0.
        let mut body = vec![0u8; msg.len()];
        msg.emit(host, solicited_node(us), &mut body);
        body[1] = 1;
        let reck = |body: &mut Vec<u8>| {
            body[2..4].fill(0);
            let c = checksum::upper6(host, solicited_node(us), NH_ICMPV6, body);
            body[2..4].copy_from_slice(&c.to_be_bytes());
        };
        reck(&mut body);
        let f = frame6(
            HOST_MAC,
            LAN_MAC,
            host,
            solicited_node(us),
            255,
            NH_ICMPV6,
            &body,
            LAN,
        );
        assert_eq!(drop(&mut p, f), Verdict::Drop(DropReason::NdpInvalid));
        let mcast = ns(ALL_ROUTERS, Some(HOST_MAC));
        let f = nd_frame(HOST_MAC, host, solicited_node(us), 255, &mcast, LAN);
        assert_eq!(drop(&mut p, f), Verdict::Drop(DropReason::NdpInvalid));
        let f = nd_frame(HOST_MAC, 0, solicited_node(us), 255, &msg, LAN);
        assert_eq!(drop(&mut p, f), Verdict::Drop(DropReason::NdpInvalid));
        body[1] = 0;
        body[25] = 0;
        reck(&mut body);
        let f = frame6(
            HOST_MAC,
            LAN_MAC,
            host,
            solicited_node(us),
            255,
            NH_ICMPV6,
            &body,
            LAN,
        );
        assert_eq!(drop(&mut p, f), Verdict::Drop(DropReason::NdpInvalid));
        let c = p.counters();
        assert_eq!(c.drops[DropReason::NdpBadHopLimit as usize], 1);
        assert_eq!(c.drops[DropReason::Icmp6BadChecksum as usize], 1);
        assert_eq!(c.drops[DropReason::NdpInvalid as usize], 4);
        assert_eq!((c.nd_adverts_sent, c.nd_solicits_received), (0, 0));
        assert_eq!(p.neighbours6().iter().count(), 0);
    }

    #[test]
    fn rs_is_answered_with_an_ra_carrying_the_prefix() {
        let mut p = pipeline();
        let ll = link_local_from_mac(LAN_MAC);
        let host = a("fe80::99");
        let rs = Repr::RouterSolicit {
            source_mac: Some(HOST_MAC),
        };
        let (mut b, n, m) = nd_frame(HOST_MAC, host, ALL_ROUTERS, 255, &rs, LAN);
        let (v, len) = run(&mut p, &mut b, n, &m);
        assert_eq!(v, Verdict::Tx(LAN));
        let (dst_mac, ip, r) = sent(&b[..len]);
        assert_eq!((dst_mac, ip.src, ip.dst), (HOST_MAC, ll, host));
        let Repr::RouterAdvert(ra) = r else {
            panic!("not an RA: {r:?}")
        };
        assert_eq!(
            (ra.router_lifetime, ra.source_mac, ra.mtu),
            (1800, Some(LAN_MAC), Some(1500))
        );
        let pi = ra.prefixes[0].expect("prefix");
        assert_eq!(
            (pi.prefix, pi.prefix_len, pi.on_link, pi.autonomous),
            (a("2001:db8:1::"), 64, true, true)
        );
        assert_eq!(p.neighbours6().get((host, LAN)).unwrap().mac, HOST_MAC);
        // From `::`: to all nodes, and a second one within 3 s is not answered.
        let anon = Repr::RouterSolicit { source_mac: None };
        let (mut b, n, m) = nd_frame(HOST_MAC, 0, ALL_ROUTERS, 255, &anon, LAN);
        let (v, len) = run(&mut p, &mut b, n, &m);
        assert_eq!(v, Verdict::Tx(LAN));
        let (dst_mac, ip, _) = sent(&b[..len]);
        assert_eq!((dst_mac, ip.dst), (multicast_mac(ALL_NODES), ALL_NODES));
        let (mut b, n, m) = nd_frame(HOST_MAC, 0, ALL_ROUTERS, 255, &anon, LAN);
        assert_eq!(run(&mut p, &mut b, n, &m).0, Verdict::Consumed);
        // wan sends no advertisements.
        let (mut b, n, m) = nd_frame(HOST_MAC, host, ALL_ROUTERS, 255, &rs, WAN);
        assert_eq!(run(&mut p, &mut b, n, &m).0, Verdict::Consumed);
        let c = p.counters();
        assert_eq!((c.rs_received, c.ra_sent), (4, 2));
    }

    #[test]
    fn ra_and_redirect_from_others_are_consumed() {
        let mut p = pipeline();
        let other = a("fe80::5");
        let mut body = vec![0u8; 16 + 8];
        let ra = Repr::RouterAdvert(ndp::RouterAdvert {
            hop_limit: 64,
            flags: 0,
            router_lifetime: 1800,
            reachable_time: 0,
            retrans_timer: 0,
            source_mac: Some(HOST_MAC),
            mtu: None,
            prefixes: [None; ndp::MAX_PREFIXES],
            prefix_count: 0,
        });
        ra.emit(other, ALL_NODES, &mut body);
        let (mut b, n, m) = frame6(
            HOST_MAC, LAN_MAC, other, ALL_NODES, 255, NH_ICMPV6, &body, LAN,
        );
        assert_eq!(run(&mut p, &mut b, n, &m).0, Verdict::Consumed);
        // A redirect: type 137, target and destination, checksummed.
        let dst = link_local_from_mac(LAN_MAC);
        let mut body = vec![0u8; 40];
        body[0] = icmpv6::REDIRECT;
        let c = checksum::upper6(other, dst, NH_ICMPV6, &body);
        body[2..4].copy_from_slice(&c.to_be_bytes());
        let (mut b, n, m) = frame6(HOST_MAC, LAN_MAC, other, dst, 255, NH_ICMPV6, &body, LAN);
        assert_eq!(run(&mut p, &mut b, n, &m).0, Verdict::Consumed);
        assert_eq!(p.counters().consumed, 2);
        assert_eq!(p.neighbours6().iter().count(), 0);
    }

    fn na(flags: u8, target: u128, mac: Option<Mac>) -> Repr {
        Repr::NeighborAdvert {
            flags,
            target,
            target_mac: mac,
        }
    }

    #[test]
    fn na_learns_and_updates_as_rfc_4861_7_2_5_says() {
        let mut p = pipeline();
        let (host, us) = (a("2001:db8:1::9"), a("2001:db8:1::1"));
        let other_mac = Mac([2, 0, 0, 0, 0, 0x55]);
        let send = |p: &mut Pipeline, msg: Repr, dst: u128| {
            let (mut b, n, m) = nd_frame(HOST_MAC, host, dst, 255, &msg, LAN);
            assert_eq!(run(p, &mut b, n, &m).0, Verdict::Consumed);
        };
        // Unsolicited, unknown: not learned.
        send(
            &mut p,
            na(ndp::NA_OVERRIDE, host, Some(HOST_MAC)),
            ALL_NODES,
        );
        assert!(p.neighbours6().get((host, LAN)).is_none());
        // Solicited: reachable.
        send(
            &mut p,
            na(ndp::NA_SOLICITED | ndp::NA_OVERRIDE, host, Some(HOST_MAC)),
            us,
        );
        let n = *p.neighbours6().get((host, LAN)).unwrap();
        assert_eq!(
            (n.mac, n.port, n.state),
            (HOST_MAC, LAN, NeighbourState::Reachable)
        );
        assert_eq!(n.state.name(), "reachable");
        // Without override, another MAC: kept, but no longer reachable.
        send(&mut p, na(0, host, Some(other_mac)), ALL_NODES);
        let n = *p.neighbours6().get((host, LAN)).unwrap();
        assert_eq!((n.mac, n.state), (HOST_MAC, NeighbourState::Stale));
        // With override: replaced, stale.
        send(
            &mut p,
            na(ndp::NA_OVERRIDE, host, Some(other_mac)),
            ALL_NODES,
        );
        let n = *p.neighbours6().get((host, LAN)).unwrap();
        assert_eq!((n.mac, n.state), (other_mac, NeighbourState::Stale));
        // Someone answering for our own address is not learned.
        send(&mut p, na(ndp::NA_SOLICITED, us, Some(other_mac)), us);
        assert!(p.neighbours6().get((us, LAN)).is_none());
        assert_eq!(p.counters().nd_adverts_received, 5);
    }

    #[test]
    fn learned_neighbours_are_handed_to_the_other_workers() {
        let mut p = pipeline();
        p.set_worker(0, 2);
        let (host, us) = (a("2001:db8:1::9"), a("2001:db8:1::1"));
        let msg = na(ndp::NA_SOLICITED | ndp::NA_OVERRIDE, host, Some(HOST_MAC));
        let (mut b, n, m) = nd_frame(HOST_MAC, host, us, 255, &msg, LAN);
        run(&mut p, &mut b, n, &m);
        assert!(p.has_learned());
        let mut got = Vec::new();
        p.take_learned6(|a, mac, port| got.push((a, mac, port)));
        assert_eq!(got, [(host, HOST_MAC, LAN)]);
        assert!(!p.has_learned());
        let mut q = pipeline();
        q.learn_neighbour6(host, HOST_MAC, LAN);
        assert_eq!(q.neighbours6().get((host, LAN)).unwrap().mac, HOST_MAC);
    }

    #[test]
    fn a_static_neighbour_is_permanent_and_not_replaced() {
        let gw = gw();
        let mut p = pipeline_with(
            1500,
            vec![StaticNeighbour6 {
                addr: gw,
                mac: GW_MAC,
                port: WAN,
            }],
        );
        let msg = na(ndp::NA_OVERRIDE | ndp::NA_SOLICITED, gw, Some(HOST_MAC));
        let (mut b, n, m) = nd_frame(HOST_MAC, gw, link_local_from_mac(WAN_MAC), 255, &msg, WAN);
        run(&mut p, &mut b, n, &m);
        let e = p.neighbours6().get((gw, WAN)).unwrap();
        assert_eq!((e.mac, e.state.name()), (GW_MAC, "permanent"));
    }
}
