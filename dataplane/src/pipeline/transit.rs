//! The transit fast paths, IPv4 and IPv6: untracked packets through the
//! router, decided from a route slot and one rule lookup, with no `Meta`. It makes exactly
//! the decisions of the general path and changes nothing; what it does not
//! handle takes the general path.

use crate::dispatch::FastCode;
use crate::packet::ETH_HDR_LEN;
use crate::packet::{Pkt, PortId};
use crate::route6::Reader;
use crate::rules::{ChainId, FilterAction, RawAction, RawHook};
use crate::tables::Tables;
use crate::tables6::NextHop6;
use crate::wire::ipv6::{self, AddrClass};
use crate::wire::{tcp, udp};

use super::parse::L3;
use super::rewrite;
use super::run::RunKey;
use super::{FastHop, FastHopKind, State};
use crate::rewrite::L2;

/// The fast path's decision for a packet: where it goes, with which
/// addresses, and the key of its counters.
#[derive(Clone, Copy)]
pub(super) struct Fast {
    pub(super) out: PortId,
    pub(super) l2: L2,
    pub(super) key: RunKey,
}

/// The fast path's decision for a packet to the router: [`State::local`].
const LOCAL: Fast = Fast {
    out: PortId::HOST,
    l2: L2::NONE,
    key: RunKey::NONE,
};

impl State {
    /// The transit fast path's decision for a packet `fast_l3` read:
    /// untracked, TTL > 1, accepted by the forward chain, to a resolved next
    /// hop within the MTU. It makes exactly the decisions of the general
    /// path (a differential test holds them equal) and changes nothing:
    /// `None` leaves the packet to the general path.
    #[inline(always)]
    pub(super) fn fast_decide(&self, t: &Tables, pkt: &Pkt<'_>, pm: L3) -> Option<Fast> {
        let hop = self.nh_fast.get(t.routes.lookup_slot(pm.dst) as usize)?;
        let out = hop.out;
        // Gateways first: the common case costs one test.
        let l2 = if hop.kind == FastHopKind::Via {
            hop.l2
        } else if hop.kind == FastHopKind::Local {
            return Some(LOCAL);
        } else {
            self.connected_l2(t, hop, pm.dst)?
        };
        if pm.ttl <= 1 || pm.total_len > hop.mtu as usize {
            return None;
        }
        let code = match t.fast_rules.get_at(pm.in_port, hop.rules_off, pm.proto) {
            FastCode::Fast { code } => code,
            FastCode::Slow => return None,
            FastCode::Search => self.fast_search(t, pkt, out)?,
        };
        let key = RunKey::transit(pm.in_port, out, code);
        Some(Fast { out, l2, key })
    }

    /// [`State::fast_decide`] for a next hop other than a resolved gateway
    /// or the router: the MACs for a connected destination whose neighbour
    /// is known, else None (the general path).
    #[inline(never)]
    fn connected_l2(&self, t: &Tables, hop: &FastHop, dst: u32) -> Option<L2> {
        if hop.kind != FastHopKind::Connected {
            return None;
        }
        let ifc = &t.interfaces[hop.out.0 as usize];
        // Directed broadcast: the general path names the drop.
        if ifc.is_broadcast(dst) {
            return None;
        }
        let n = self.neigh.get(dst).filter(|n| n.port == hop.out)?;
        Some(rewrite::l2_to(t, hop.out, n.mac))
    }

    /// The fast path's rule decisions when [`FastRules`] leaves rules with
    /// address or port conditions to try: the raw and forward dispatch
    /// tables with their searches, as the general path evaluates them. A
    /// fast code, or None for the general path. Out of line, and it parses
    /// the packet again: the fast path never keeps a `Meta` in memory, which
    /// costs more than parsing twice in this rarer case.
    #[inline(never)]
    fn fast_search(&self, t: &Tables, pkt: &Pkt<'_>, out: PortId) -> Option<u32> {
        let mut m = self.fast_parse(pkt)?;
        let (raw_rule, raw_action) = t.raw_verdict(RawHook::Prerouting, &m);
        if raw_action != RawAction::NoTrack {
            return None;
        }
        let raw_rule = raw_rule?;
        m.out_port = Some(out);
        let (rule, action) = t.filter_verdict(ChainId::Forward, &m);
        if action != FilterAction::Accept {
            return None;
        }
        FastCode::pack(raw_rule, rule)
    }
}

/// What the IPv6 transit fast path reads of a frame: [`State::fast_l3_6`].
#[derive(Clone, Copy)]
pub(super) struct L3v6 {
    pub(super) in_port: PortId,
    /// 40 plus the payload length.
    pub(super) total_len: usize,
    pub(super) proto: u8,
    pub(super) hop_limit: u8,
}

/// By next header, the least length of a packet the IPv6 fast path takes
/// (40 plus the L4 header: TCP, UDP), and more than any length for the
/// other protocols: one load and compare for the protocol and the length.
const FAST6_MIN_TOTAL: [u32; 256] = {
    let mut t = [u32::MAX; 256];
    t[ipv6::NH_TCP as usize] = (ipv6::HEADER_LEN + tcp::HEADER_LEN) as u32;
    t[ipv6::NH_UDP as usize] = (ipv6::HEADER_LEN + udp::HEADER_LEN) as u32;
    t
};

/// The fast path's next hops for IPv6, by route slot (slot 0: no route),
/// from the table's next hops and the resolved MACs of its gateways
/// (`gateway_mac[id]`): a gateway whose MAC is known, the router itself,
/// or the general path.
pub(super) fn fast_hops6(t: &Tables, gateway_mac: &[Option<crate::addr::Mac>]) -> Vec<FastHop> {
    let mut v = vec![super::NO_HOP];
    v.extend(t.v6.next_hops.iter().enumerate().map(|(id, nh)| match *nh {
        NextHop6::Via { port, .. } => match gateway_mac.get(id).copied().flatten() {
            Some(mac) => FastHop {
                kind: FastHopKind::Via,
                out: port,
                mtu: t.interfaces[port.0 as usize].mtu,
                rules_off: t.fast_rules6.out_offset(port),
                l2: rewrite::l2_to(t, port, mac),
            },
            None => super::NO_HOP,
        },
        NextHop6::Local => FastHop {
            kind: FastHopKind::Local,
            ..super::NO_HOP
        },
        _ => super::NO_HOP,
    }));
    v
}

impl State {
    /// The IPv6 transit fast path: an untracked TCP or UDP packet with no
    /// extension header, between global (or unique local) addresses, hop
    /// limit above 1, to a gateway whose MAC is known, within the MTU,
    /// accepted by the forward chain. The same decisions as the general
    /// path (a differential test holds them equal); `None` leaves the
    /// packet to it, [`LOCAL`] to `State::local6` (to one of the router's
    /// global addresses). Returns the packet's length (40 plus its payload).
    #[inline(always)]
    pub(super) fn fast6(
        &self,
        t: &Tables,
        r6: &Reader<'_>,
        pkt: &Pkt<'_>,
    ) -> Option<(usize, Fast)> {
        let h = self.fast_frame6(pkt)?;
        let dst = ipv6::Packet::new_unchecked(h).dst_addr();
        // To the router: `local6` (and no deep trie walk to the /128 of
        // its own address).
        if t.v6.is_local_global(dst) {
            let pm = Self::fast_l3_6(pkt, h, dst)?;
            return Some((pm.total_len, LOCAL));
        }
        // The route first: what the checks below read is not yet in
        // registers to be saved around the call.
        let slot = r6.lookup_slot(dst);
        let pm = Self::fast_l3_6(pkt, h, dst)?;
        let hop = self.nh_fast6.get(slot as usize)?;
        if hop.kind != FastHopKind::Via || pm.hop_limit <= 1 || pm.total_len > hop.mtu as usize {
            return None;
        }
        let code = match t.fast_rules6.get_at(pm.in_port, hop.rules_off, pm.proto) {
            FastCode::Fast { code } => code,
            FastCode::Slow | FastCode::Search => return None,
        };
        let key = RunKey::transit6(pm.in_port, hop.out, code);
        Some((
            pm.total_len,
            Fast {
                out: hop.out,
                l2: hop.l2,
                key,
            },
        ))
    }

    /// The IPv6 header of a frame for the fast path: to our MAC, IPv6, at
    /// least the fixed header and 8 bytes after it. Anything else is
    /// `None` and takes the general parser.
    #[inline(always)]
    pub(super) fn fast_frame6<'p>(&self, pkt: &'p Pkt<'_>) -> Option<&'p [u8; 40]> {
        let len = pkt.len;
        let buf = pkt.buf.get(..len)?;
        if len < ETH_HDR_LEN + 48 {
            return None;
        }
        let head = u64::from_le_bytes(buf[..8].try_into().ok()?);
        // Ethertype 0x86dd and version 6, in one load.
        let tag = u32::from_le_bytes(buf[12..16].try_into().ok()?);
        if head & 0xffff_ffff_ffff != self.port_mac[pkt.port.0 as usize & 63]
            || tag & 0xf0_ffff != 0x60_dd86
        {
            return None;
        }
        buf[ETH_HDR_LEN..ETH_HDR_LEN + 40].try_into().ok()
    }

    /// The rest of the fast path's checks of the header `h` that
    /// [`State::fast_frame6`] found in `pkt`, destination `dst`: TCP (its
    /// fixed header all there) or UDP straight after the fixed header, the
    /// payload length within the frame, a global or unique local source
    /// and destination. Anything else is `None` and takes the general
    /// parser, which names the drop reason.
    #[inline(always)]
    pub(super) fn fast_l3_6(pkt: &Pkt<'_>, h: &[u8; 40], dst: u128) -> Option<L3v6> {
        let ip = ipv6::Packet::new_unchecked(h);
        let total = ipv6::HEADER_LEN + usize::from(ip.payload_len());
        let proto = ip.next_header();
        if total < FAST6_MIN_TOTAL[usize::from(proto)] as usize || total > pkt.len - ETH_HDR_LEN {
            return None;
        }
        // Both global or unique local (a forwardable source, RFC 4291),
        // told by their top bits.
        let src_top = u64::from_be_bytes(h[8..16].try_into().ok()?);
        if !AddrClass::is_surely_global_or_ula(src_top)
            || !AddrClass::is_surely_global_or_ula((dst >> 64) as u64)
        {
            return None;
        }
        Some(L3v6 {
            in_port: pkt.port,
            total_len: total,
            proto,
            hop_limit: ip.hop_limit(),
        })
    }
}
