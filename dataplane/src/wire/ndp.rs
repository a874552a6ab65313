//! Neighbor Discovery (RFC 4861): router solicitation and advertisement,
//! neighbor solicitation and advertisement, and their options.
//!
//! NDP messages are ICMPv6 messages ([`super::icmpv6`]); the functions here
//! take the whole ICMPv6 message (type, code, checksum first), as
//! [`super::icmpv6::Packet`] wraps it. [`Repr::parse`] validates a message
//! as RFC 4861 6.1 and 7.1 ask of a receiver, given the IPv6 header's
//! source, destination and hop limit, and names the reason a message is
//! refused ([`NdpError`], which maps to drop reasons `nd_*`).
//! [`Repr::emit`] writes a message and its checksum. Parsing never panics
//! and never allocates (an RA keeps up to [`MAX_PREFIXES`] prefixes; more
//! are counted, not kept); unknown options are skipped (RFC 4861 4.6).

use super::icmpv6::{self, Packet};
use super::ipv6::AddrClass;
use crate::addr::Mac;

/// Option type: source link-layer address.
pub const OPT_SOURCE_LL: u8 = 1;
/// Option type: target link-layer address.
pub const OPT_TARGET_LL: u8 = 2;
/// Option type: prefix information.
pub const OPT_PREFIX_INFO: u8 = 3;
/// Option type: redirected header.
pub const OPT_REDIRECTED: u8 = 4;
/// Option type: MTU.
pub const OPT_MTU: u8 = 5;

/// Prefix information options an RA [`Repr`] keeps.
pub const MAX_PREFIXES: usize = 4;

/// NA flag: the sender is a router.
pub const NA_ROUTER: u8 = 0x80;
/// NA flag: sent in response to a solicitation.
pub const NA_SOLICITED: u8 = 0x40;
/// NA flag: override an existing cache entry.
pub const NA_OVERRIDE: u8 = 0x20;
/// RA flag: managed address configuration (DHCPv6).
pub const RA_MANAGED: u8 = 0x80;
/// RA flag: other configuration (DHCPv6 for other information).
pub const RA_OTHER: u8 = 0x40;
/// Prefix information flag: on-link.
pub const PREFIX_ON_LINK: u8 = 0x80;
/// Prefix information flag: autonomous address configuration (SLAAC).
pub const PREFIX_AUTONOMOUS: u8 = 0x40;

/// Why an NDP message is refused (RFC 4861 6.1.1, 6.1.2, 7.1.1, 7.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NdpError {
    /// The IPv6 hop limit is not 255: the message came from off-link.
    BadHopLimit,
    /// The ICMPv6 code is not 0.
    BadCode,
    /// The message is shorter than its fixed part.
    Truncated,
    /// An option of length 0, or one that runs past the message.
    BadOption,
    /// NS or NA for a multicast target address.
    MulticastTarget,
    /// NS from the unspecified address (DAD) with a source link-layer
    /// address option, or to a unicast destination.
    BadDad,
    /// RA from a source that is not link-local.
    RaNotLinkLocal,
    /// NA with the solicited flag sent to a multicast destination.
    SolicitedToMulticast,
    /// Not an NDP message type this module parses.
    NotNdp,
}

impl NdpError {
    /// All reasons, for tests and counters.
    pub const ALL: [NdpError; 9] = [
        NdpError::BadHopLimit,
        NdpError::BadCode,
        NdpError::Truncated,
        NdpError::BadOption,
        NdpError::MulticastTarget,
        NdpError::BadDad,
        NdpError::RaNotLinkLocal,
        NdpError::SolicitedToMulticast,
        NdpError::NotNdp,
    ];

    /// The drop reason this maps to.
    pub const fn name(self) -> &'static str {
        match self {
            NdpError::BadHopLimit => "nd_bad_hop_limit",
            NdpError::BadCode => "nd_bad_code",
            NdpError::Truncated => "nd_truncated",
            NdpError::BadOption => "nd_bad_option",
            NdpError::MulticastTarget => "nd_multicast_target",
            NdpError::BadDad => "nd_bad_dad",
            NdpError::RaNotLinkLocal => "nd_ra_not_link_local",
            NdpError::SolicitedToMulticast => "nd_solicited_to_multicast",
            NdpError::NotNdp => "nd_not_ndp",
        }
    }
}

impl core::fmt::Display for NdpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for NdpError {}

/// A prefix information option (RFC 4861 4.6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixInfo {
    /// Prefix length in bits.
    pub prefix_len: u8,
    /// On-link flag (L).
    pub on_link: bool,
    /// Autonomous address-configuration flag (A): hosts run SLAAC on it.
    pub autonomous: bool,
    /// Valid lifetime in seconds (`u32::MAX` is infinity).
    pub valid_lifetime: u32,
    /// Preferred lifetime in seconds (`u32::MAX` is infinity).
    pub preferred_lifetime: u32,
    /// The prefix (host order).
    pub prefix: u128,
}

/// One NDP option as parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdpOption {
    /// Source link-layer address (Ethernet).
    SourceLinkLayer(Mac),
    /// Target link-layer address (Ethernet).
    TargetLinkLayer(Mac),
    /// Prefix information.
    PrefixInfo(PrefixInfo),
    /// MTU.
    Mtu(u32),
    /// Anything else (or a link-layer option not 8 bytes long): its type,
    /// skipped.
    Other(u8),
}

impl NdpOption {
    /// Bytes this option takes when emitted (`Other` emits nothing).
    pub const fn len(&self) -> usize {
        match self {
            NdpOption::SourceLinkLayer(_) | NdpOption::TargetLinkLayer(_) | NdpOption::Mtu(_) => 8,
            NdpOption::PrefixInfo(_) => 32,
            NdpOption::Other(_) => 0,
        }
    }

    /// Whether [`NdpOption::len`] is 0.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the option at the start of `buf`; returns its length.
    ///
    /// # Panics
    ///
    /// If `buf` is shorter than [`NdpOption::len`].
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let n = self.len();
        let b = &mut buf[..n];
        b.fill(0);
        match *self {
            NdpOption::SourceLinkLayer(m) | NdpOption::TargetLinkLayer(m) => {
                b[0] = if matches!(self, NdpOption::SourceLinkLayer(_)) {
                    OPT_SOURCE_LL
                } else {
                    OPT_TARGET_LL
                };
                b[1] = 1;
                b[2..8].copy_from_slice(&m.0);
            }
            NdpOption::Mtu(mtu) => {
                b[0] = OPT_MTU;
                b[1] = 1;
                b[4..8].copy_from_slice(&mtu.to_be_bytes());
            }
            NdpOption::PrefixInfo(p) => {
                b[0] = OPT_PREFIX_INFO;
                b[1] = 4;
                b[2] = p.prefix_len;
                b[3] = if p.on_link { PREFIX_ON_LINK } else { 0 }
                    | if p.autonomous { PREFIX_AUTONOMOUS } else { 0 };
                b[4..8].copy_from_slice(&p.valid_lifetime.to_be_bytes());
                b[8..12].copy_from_slice(&p.preferred_lifetime.to_be_bytes());
                b[16..32].copy_from_slice(&p.prefix.to_be_bytes());
            }
            NdpOption::Other(_) => {}
        }
        n
    }
}

/// The options of an NDP message, in order; an error ends the iteration.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    rest: &'a [u8],
}

impl<'a> Options<'a> {
    /// Iterates the options in `bytes` (what follows the fixed part).
    pub const fn new(bytes: &'a [u8]) -> Options<'a> {
        Options { rest: bytes }
    }
}

impl Iterator for Options<'_> {
    type Item = Result<NdpOption, NdpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let Some((&[kind, units], _)) = self.rest.split_first_chunk::<2>() else {
            // One stray byte after the last option.
            self.rest = &[];
            return Some(Err(NdpError::BadOption));
        };
        let len = usize::from(units) * 8;
        // RFC 4861 4.6: length 0 is invalid; and it must fit.
        if len == 0 || len > self.rest.len() {
            self.rest = &[];
            return Some(Err(NdpError::BadOption));
        }
        let b = &self.rest[..len];
        self.rest = &self.rest[len..];
        let mac = || Mac(b[2..8].try_into().expect("8-byte option"));
        let be32 = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().expect("in option"));
        Some(Ok(match (kind, len) {
            (OPT_SOURCE_LL, 8) => NdpOption::SourceLinkLayer(mac()),
            (OPT_TARGET_LL, 8) => NdpOption::TargetLinkLayer(mac()),
            (OPT_MTU, 8) => NdpOption::Mtu(be32(4)),
            (OPT_PREFIX_INFO, 32) => NdpOption::PrefixInfo(PrefixInfo {
                prefix_len: b[2],
                on_link: b[3] & PREFIX_ON_LINK != 0,
                autonomous: b[3] & PREFIX_AUTONOMOUS != 0,
                valid_lifetime: be32(4),
                preferred_lifetime: be32(8),
                prefix: u128::from_be_bytes(b[16..32].try_into().expect("in option")),
            }),
            // RFC 4861 4.6.2: a prefix option whose length is not 4 is invalid.
            (OPT_PREFIX_INFO, _) => {
                self.rest = &[];
                return Some(Err(NdpError::BadOption));
            }
            (other, _) => NdpOption::Other(other),
        }))
    }
}

/// Router advertisement fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterAdvert {
    /// Hop limit hosts should use (0: unspecified).
    pub hop_limit: u8,
    /// [`RA_MANAGED`] and [`RA_OTHER`] flags.
    pub flags: u8,
    /// Router lifetime in seconds (0: not a default router).
    pub router_lifetime: u16,
    /// Reachable time in milliseconds (0: unspecified).
    pub reachable_time: u32,
    /// Retransmission timer in milliseconds (0: unspecified).
    pub retrans_timer: u32,
    /// The router's link-layer address.
    pub source_mac: Option<Mac>,
    /// Link MTU.
    pub mtu: Option<u32>,
    /// The prefix options kept (the first [`MAX_PREFIXES`]).
    pub prefixes: [Option<PrefixInfo>; MAX_PREFIXES],
    /// Prefix options seen, kept or not.
    pub prefix_count: usize,
}

/// An NDP message, owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr {
    /// Router solicitation (type 133).
    RouterSolicit {
        /// The host's link-layer address.
        source_mac: Option<Mac>,
    },
    /// Router advertisement (type 134).
    RouterAdvert(RouterAdvert),
    /// Neighbor solicitation (type 135).
    NeighborSolicit {
        /// The address being resolved.
        target: u128,
        /// The solicitor's link-layer address (absent in DAD).
        source_mac: Option<Mac>,
    },
    /// Neighbor advertisement (type 136).
    NeighborAdvert {
        /// [`NA_ROUTER`], [`NA_SOLICITED`], [`NA_OVERRIDE`].
        flags: u8,
        /// The address advertised.
        target: u128,
        /// Its link-layer address.
        target_mac: Option<Mac>,
    },
}

const FIXED_RS: usize = 8;
const FIXED_RA: usize = 16;
const FIXED_NS_NA: usize = 24;

impl Repr {
    /// Parses and validates the ICMPv6 message `msg` (type first) of an
    /// IPv6 packet `src` -> `dst` with `hop_limit`. The checksum is the
    /// caller's ([`icmpv6::Packet::verify_checksum`]), counted apart.
    pub fn parse(src: u128, dst: u128, hop_limit: u8, msg: &[u8]) -> Result<Repr, NdpError> {
        let p = Packet::new_checked(msg).map_err(|_| NdpError::Truncated)?;
        let fixed = match p.msg_type() {
            icmpv6::ROUTER_SOLICIT => FIXED_RS,
            icmpv6::ROUTER_ADVERT => FIXED_RA,
            icmpv6::NEIGHBOR_SOLICIT | icmpv6::NEIGHBOR_ADVERT => FIXED_NS_NA,
            _ => return Err(NdpError::NotNdp),
        };
        // RFC 4861 6.1 / 7.1: hop limit 255, code 0, length >= fixed part.
        if hop_limit != 255 {
            return Err(NdpError::BadHopLimit);
        }
        if p.code() != 0 {
            return Err(NdpError::BadCode);
        }
        if msg.len() < fixed {
            return Err(NdpError::Truncated);
        }
        let target = || u128::from_be_bytes(msg[8..24].try_into().expect("fixed part"));
        let mut source_mac = None;
        let mut target_mac = None;
        let mut mtu = None;
        let mut prefixes = [None; MAX_PREFIXES];
        let mut prefix_count = 0;
        for opt in Options::new(&msg[fixed..]) {
            match opt? {
                NdpOption::SourceLinkLayer(m) => source_mac = Some(m),
                NdpOption::TargetLinkLayer(m) => target_mac = Some(m),
                NdpOption::Mtu(m) => mtu = Some(m),
                NdpOption::PrefixInfo(pi) => {
                    if let Some(slot) = prefixes.get_mut(prefix_count) {
                        *slot = Some(pi);
                    }
                    prefix_count += 1;
                }
                NdpOption::Other(_) => {}
            }
        }
        let dst_multicast = matches!(AddrClass::of(dst), AddrClass::Multicast(_));
        Ok(match p.msg_type() {
            icmpv6::ROUTER_SOLICIT => {
                // RFC 4861 6.1.1: no source link-layer option from `::`.
                if src == 0 && source_mac.is_some() {
                    return Err(NdpError::BadDad);
                }
                Repr::RouterSolicit { source_mac }
            }
            icmpv6::ROUTER_ADVERT => {
                // RFC 4861 6.1.2: the source is link-local.
                if AddrClass::of(src) != AddrClass::LinkLocal {
                    return Err(NdpError::RaNotLinkLocal);
                }
                let be16 = |i: usize| u16::from_be_bytes([msg[i], msg[i + 1]]);
                let be32 = |i: usize| u32::from_be_bytes(msg[i..i + 4].try_into().expect("fixed"));
                Repr::RouterAdvert(RouterAdvert {
                    hop_limit: msg[4],
                    flags: msg[5] & (RA_MANAGED | RA_OTHER),
                    router_lifetime: be16(6),
                    reachable_time: be32(8),
                    retrans_timer: be32(12),
                    source_mac,
                    mtu,
                    prefixes,
                    prefix_count,
                })
            }
            icmpv6::NEIGHBOR_SOLICIT => {
                let target = target();
                // RFC 4861 7.1.1: target not multicast; DAD (from `::`) goes
                // to a solicited-node address and carries no source option.
                if matches!(AddrClass::of(target), AddrClass::Multicast(_)) {
                    return Err(NdpError::MulticastTarget);
                }
                if src == 0 && (source_mac.is_some() || !dst_multicast) {
                    return Err(NdpError::BadDad);
                }
                Repr::NeighborSolicit { target, source_mac }
            }
            _ => {
                let target = target();
                // RFC 4861 7.1.2: target not multicast; a solicited NA is
                // not sent to a multicast address.
                if matches!(AddrClass::of(target), AddrClass::Multicast(_)) {
                    return Err(NdpError::MulticastTarget);
                }
                let flags = msg[4] & (NA_ROUTER | NA_SOLICITED | NA_OVERRIDE);
                if flags & NA_SOLICITED != 0 && dst_multicast {
                    return Err(NdpError::SolicitedToMulticast);
                }
                Repr::NeighborAdvert {
                    flags,
                    target,
                    target_mac,
                }
            }
        })
    }

    /// Bytes [`Repr::emit`] writes.
    pub fn len(&self) -> usize {
        let ll = |m: &Option<Mac>| if m.is_some() { 8 } else { 0 };
        match self {
            Repr::RouterSolicit { source_mac } => FIXED_RS + ll(source_mac),
            Repr::RouterAdvert(ra) => {
                FIXED_RA
                    + ll(&ra.source_mac)
                    + if ra.mtu.is_some() { 8 } else { 0 }
                    + 32 * ra.prefixes.iter().flatten().count()
            }
            Repr::NeighborSolicit { source_mac, .. } => FIXED_NS_NA + ll(source_mac),
            Repr::NeighborAdvert { target_mac, .. } => FIXED_NS_NA + ll(target_mac),
        }
    }

    /// Whether [`Repr::len`] is 0 (never: every message has a fixed part).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the ICMPv6 message (type first) at the start of `buf` with
    /// its checksum for `src` -> `dst`; returns its length. Options come in
    /// the order source link-layer, MTU, prefixes (RA), as Linux sends them.
    ///
    /// # Panics
    ///
    /// If `buf` is shorter than [`Repr::len`].
    pub fn emit(&self, src: u128, dst: u128, buf: &mut [u8]) -> usize {
        let n = self.len();
        let b = &mut buf[..n];
        b.fill(0);
        let mut off;
        match self {
            Repr::RouterSolicit { source_mac } => {
                b[0] = icmpv6::ROUTER_SOLICIT;
                off = FIXED_RS;
                if let Some(m) = source_mac {
                    off += NdpOption::SourceLinkLayer(*m).emit(&mut b[off..]);
                }
            }
            Repr::RouterAdvert(ra) => {
                b[0] = icmpv6::ROUTER_ADVERT;
                b[4] = ra.hop_limit;
                b[5] = ra.flags & (RA_MANAGED | RA_OTHER);
                b[6..8].copy_from_slice(&ra.router_lifetime.to_be_bytes());
                b[8..12].copy_from_slice(&ra.reachable_time.to_be_bytes());
                b[12..16].copy_from_slice(&ra.retrans_timer.to_be_bytes());
                off = FIXED_RA;
                if let Some(m) = ra.source_mac {
                    off += NdpOption::SourceLinkLayer(m).emit(&mut b[off..]);
                }
                if let Some(mtu) = ra.mtu {
                    off += NdpOption::Mtu(mtu).emit(&mut b[off..]);
                }
                for p in ra.prefixes.iter().flatten() {
                    off += NdpOption::PrefixInfo(*p).emit(&mut b[off..]);
                }
            }
            Repr::NeighborSolicit { target, source_mac } => {
                b[0] = icmpv6::NEIGHBOR_SOLICIT;
                b[8..24].copy_from_slice(&target.to_be_bytes());
                off = FIXED_NS_NA;
                if let Some(m) = source_mac {
                    off += NdpOption::SourceLinkLayer(*m).emit(&mut b[off..]);
                }
            }
            Repr::NeighborAdvert {
                flags,
                target,
                target_mac,
            } => {
                b[0] = icmpv6::NEIGHBOR_ADVERT;
                b[4] = flags & (NA_ROUTER | NA_SOLICITED | NA_OVERRIDE);
                b[8..24].copy_from_slice(&target.to_be_bytes());
                off = FIXED_NS_NA;
                if let Some(m) = target_mac {
                    off += NdpOption::TargetLinkLayer(*m).emit(&mut b[off..]);
                }
            }
        }
        debug_assert_eq!(off, n);
        Packet::new_unchecked(&mut b[..]).fill_checksum(src, dst);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv6::{link_local_from_mac, solicited_node, ALL_NODES, ALL_ROUTERS};
    use std::net::Ipv6Addr;

    fn a(s: &str) -> u128 {
        u128::from(s.parse::<Ipv6Addr>().unwrap())
    }

    const MAC: Mac = Mac([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

    /// smoltcp's router advertisement, fe80::1 -> fe80::2: hop limit 64,
    /// M flag, lifetime 900 s, reachable and retransmit 900 ms, source
    /// link-layer 52:54:00:12:34:56, checksum 0xa9de.
    const RA: [u8; 24] = [
        0x86, 0x00, 0xa9, 0xde, 0x40, 0x80, 0x03, 0x84, 0x00, 0x00, 0x03, 0x84, 0x00, 0x00, 0x03,
        0x84, 0x01, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
    ];

    #[test]
    fn router_advert_known_bytes() {
        let (src, dst) = (a("fe80::1"), a("fe80::2"));
        assert!(Packet::new_checked(&RA[..])
            .unwrap()
            .verify_checksum(src, dst));
        let Repr::RouterAdvert(ra) = Repr::parse(src, dst, 255, &RA).unwrap() else {
            panic!("not an RA");
        };
        assert_eq!(ra.hop_limit, 64);
        assert_eq!(ra.flags, RA_MANAGED);
        assert_eq!(ra.router_lifetime, 900);
        assert_eq!((ra.reachable_time, ra.retrans_timer), (900, 900));
        assert_eq!(ra.source_mac, Some(MAC));
        assert_eq!((ra.mtu, ra.prefix_count), (None, 0));
        let mut out = [0u8; 64];
        let n = Repr::RouterAdvert(ra).emit(src, dst, &mut out);
        assert_eq!(out[..n], RA[..]);
    }

    #[test]
    fn router_advert_with_mtu_and_prefixes_round_trips() {
        let src = link_local_from_mac(MAC);
        let pi = |p: &str, len| PrefixInfo {
            prefix_len: len,
            on_link: true,
            autonomous: true,
            valid_lifetime: 2_592_000,
            preferred_lifetime: 604_800,
            prefix: a(p),
        };
        let mut prefixes = [None; MAX_PREFIXES];
        prefixes[0] = Some(pi("2001:db8:1::", 64));
        prefixes[1] = Some(PrefixInfo {
            on_link: false,
            autonomous: false,
            valid_lifetime: u32::MAX,
            ..pi("2001:db8:2::", 56)
        });
        let ra = RouterAdvert {
            hop_limit: 64,
            flags: RA_OTHER,
            router_lifetime: 1800,
            reachable_time: 0,
            retrans_timer: 0,
            source_mac: Some(MAC),
            mtu: Some(1500),
            prefixes,
            prefix_count: 2,
        };
        let repr = Repr::RouterAdvert(ra);
        let mut out = [0u8; 128];
        let n = repr.emit(src, ALL_NODES, &mut out);
        assert_eq!(n, 16 + 8 + 8 + 64);
        assert_eq!(n, repr.len());
        // RFC 4861 4.6.2 layout of the first prefix option.
        let po = &out[32..64];
        assert_eq!(po[..4], [3, 4, 64, 0xc0]);
        assert_eq!(po[4..8], 2_592_000u32.to_be_bytes());
        assert_eq!(po[8..12], 604_800u32.to_be_bytes());
        assert_eq!(po[12..16], [0; 4], "reserved");
        assert_eq!(po[16..32], a("2001:db8:1::").to_be_bytes());
        assert_eq!(out[24..32], [5, 1, 0, 0, 0, 0, 0x05, 0xdc], "MTU option");
        let p = Packet::new_checked(&out[..n]).unwrap();
        assert!(p.verify_checksum(src, ALL_NODES));
        assert_eq!(Repr::parse(src, ALL_NODES, 255, &out[..n]), Ok(repr));
    }

    #[test]
    fn more_prefixes_than_kept_are_counted() {
        let src = a("fe80::1");
        let mut msg = vec![0x86, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        for i in 0..6u8 {
            let mut o = [0u8; 32];
            NdpOption::PrefixInfo(PrefixInfo {
                prefix_len: 64,
                on_link: true,
                autonomous: true,
                valid_lifetime: 1,
                preferred_lifetime: 1,
                prefix: u128::from(i) << 64,
            })
            .emit(&mut o);
            msg.extend(o);
        }
        let Ok(Repr::RouterAdvert(ra)) = Repr::parse(src, a("ff02::1"), 255, &msg) else {
            panic!("an RA");
        };
        assert_eq!(ra.prefix_count, 6);
        assert_eq!(ra.prefixes[3].unwrap().prefix, 3 << 64);
    }

    #[test]
    fn neighbor_solicit_and_advert_round_trip() {
        let me = a("2001:db8::1");
        let them = a("2001:db8::2");
        let ns = Repr::NeighborSolicit {
            target: me,
            source_mac: Some(MAC),
        };
        let mut out = [0u8; 64];
        let n = ns.emit(them, solicited_node(me), &mut out);
        assert_eq!(n, 32);
        assert_eq!(out[0], 135);
        assert_eq!(out[8..24], me.to_be_bytes());
        assert_eq!(out[24..32], [1, 1, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert_eq!(
            Repr::parse(them, solicited_node(me), 255, &out[..n]),
            Ok(ns)
        );

        let na = Repr::NeighborAdvert {
            flags: NA_ROUTER | NA_SOLICITED | NA_OVERRIDE,
            target: me,
            target_mac: Some(MAC),
        };
        let n = na.emit(me, them, &mut out);
        assert_eq!(n, 32);
        assert_eq!(out[4], 0xe0, "R, S, O");
        assert_eq!(out[24], OPT_TARGET_LL);
        assert!(Packet::new_checked(&out[..n])
            .unwrap()
            .verify_checksum(me, them));
        assert_eq!(Repr::parse(me, them, 255, &out[..n]), Ok(na));

        let rs = Repr::RouterSolicit { source_mac: None };
        let n = rs.emit(a("fe80::2"), ALL_ROUTERS, &mut out);
        assert_eq!(n, 8);
        assert_eq!(
            Repr::parse(a("fe80::2"), ALL_ROUTERS, 255, &out[..n]),
            Ok(rs)
        );
    }

    #[test]
    fn validation_refusals() {
        let me = a("2001:db8::1");
        let them = a("2001:db8::2");
        let mut out = [0u8; 64];
        let ns = Repr::NeighborSolicit {
            target: me,
            source_mac: Some(MAC),
        };
        let n = ns.emit(them, solicited_node(me), &mut out);
        let msg = out[..n].to_vec();
        let sn = solicited_node(me);
        assert_eq!(Repr::parse(them, sn, 64, &msg), Err(NdpError::BadHopLimit));
        let mut m = msg.clone();
        m[1] = 1;
        assert_eq!(Repr::parse(them, sn, 255, &m), Err(NdpError::BadCode));
        assert_eq!(
            Repr::parse(them, sn, 255, &msg[..23]),
            Err(NdpError::Truncated)
        );
        assert_eq!(
            Repr::parse(them, sn, 255, &msg[..7]),
            Err(NdpError::Truncated)
        );
        let mut m = msg.clone();
        m[25] = 0; // option length 0
        assert_eq!(Repr::parse(them, sn, 255, &m), Err(NdpError::BadOption));
        m[25] = 2; // option runs past the message
        assert_eq!(Repr::parse(them, sn, 255, &m), Err(NdpError::BadOption));
        let mut m = msg.clone();
        m[8..24].copy_from_slice(&a("ff02::1").to_be_bytes());
        assert_eq!(
            Repr::parse(them, sn, 255, &m),
            Err(NdpError::MulticastTarget)
        );
        // DAD: from :: with a source link-layer option, or to unicast.
        assert_eq!(Repr::parse(0, sn, 255, &msg), Err(NdpError::BadDad));
        assert_eq!(
            Repr::parse(0, me, 255, &msg[..24]),
            Err(NdpError::BadDad),
            "DAD to a unicast address"
        );
        assert!(
            Repr::parse(0, sn, 255, &msg[..24]).is_ok(),
            "a proper DAD probe"
        );
        // An RA from a global address.
        assert_eq!(
            Repr::parse(them, sn, 255, &RA),
            Err(NdpError::RaNotLinkLocal)
        );
        // A solicited NA to all nodes.
        let na = Repr::NeighborAdvert {
            flags: NA_SOLICITED,
            target: me,
            target_mac: None,
        };
        let n = na.emit(me, them, &mut out);
        assert_eq!(
            Repr::parse(me, a("ff02::1"), 255, &out[..n]),
            Err(NdpError::SolicitedToMulticast)
        );
        // A prefix option with a length other than 4.
        let mut m = RA.to_vec();
        m.extend([3, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            Repr::parse(a("fe80::1"), them, 255, &m),
            Err(NdpError::BadOption)
        );
        // A stray byte after the options.
        let mut m = RA.to_vec();
        m.push(1);
        assert_eq!(
            Repr::parse(a("fe80::1"), them, 255, &m),
            Err(NdpError::BadOption)
        );
        // Unknown options are skipped.
        let mut m = RA.to_vec();
        m.extend([200, 1, 0, 0, 0, 0, 0, 0]);
        assert!(Repr::parse(a("fe80::1"), them, 255, &m).is_ok());
        // Not an NDP message.
        assert_eq!(
            Repr::parse(me, them, 255, &[128, 0, 0, 0, 0, 0, 0, 0]),
            Err(NdpError::NotNdp)
        );
    }

    #[test]
    fn error_names_are_distinct_drop_reasons() {
        let mut names: Vec<_> = NdpError::ALL.iter().map(|e| e.to_string()).collect();
        assert!(names.iter().all(|n| n.starts_with("nd_")));
        names.sort();
        names.dedup();
        assert_eq!(names.len(), NdpError::ALL.len());
    }
}
