//! IPv6 headers (RFC 8200), their extension headers, and the address rules
//! a router needs (RFC 4291).
//!
//! After [`Packet::check_len`] passes, no accessor panics: the buffer holds
//! the 40-byte fixed header, the version is 6, and the payload length lies
//! within the buffer (a frame may carry link-layer padding after it).
//! IPv6 has no header checksum; the upper layers checksum a pseudo-header
//! ([`super::checksum::pseudo_header6`]).
//!
//! Jumbograms (RFC 2675: payload length 0 and a Jumbo Payload option) are
//! not supported: no Ethernet link carries one, so a payload length of 0
//! means an empty payload.
//!
//! # Extension headers
//!
//! [`walk`] follows the next-header chain from the fixed header to the
//! upper-layer header, bounded by [`MAX_EXT_HEADERS`] headers and
//! [`MAX_CHAIN_BYTES`] bytes, and says what it found ([`Chain`]) or why the
//! chain is malformed ([`ExtError`]). Each case and what the router does:
//!
//! | header                      | behaviour                                              |
//! |-----------------------------|--------------------------------------------------------|
//! | hop-by-hop options (0)      | walked past if it comes first (RFC 8200 4.3); anywhere else the packet is malformed: [`ExtError::HopByHopNotFirst`] |
//! | destination options (60)    | walked past (the router is not the destination)        |
//! | routing (43), type 0        | RFC 5095: with segments left > 0 the packet is dropped ([`ExtError::RoutingType0`]; RFC 5095 3 lets routers filter it); with segments left 0 it is walked past as an inert header |
//! | routing (43), other types   | walked past: only the node in the destination address processes it (RFC 8200 4.4) |
//! | fragment (44), offset 0     | first fragment (or atomic fragment, RFC 6946): the walk goes on into it; the whole chain up to the upper-layer header must lie in it (RFC 8200 4.5, RFC 7112), or [`ExtError::IncompleteChain`] |
//! | fragment (44), offset > 0   | later fragment: the walk stops, the upper-layer header is not here ([`Chain::fragment`] says so, `upper` is `None`); the router forwards it whole without ports, it never reassembles or fragments IPv6 |
//! | fragment, bad length        | M=1 and a fragment payload that is not a multiple of 8 bytes: [`ExtError::BadFragmentLength`] (RFC 8200 4.5) |
//! | authentication (51)         | walked past (length in 4-byte units, RFC 4302 2.2)     |
//! | no next header (59)         | the walk stops; there is no upper-layer header (RFC 8200 4.7) |
//! | anything else (TCP 6, UDP 17, ICMPv6 58, ESP 50, unknown) | the upper-layer protocol, at [`Chain::offset`] |
//!
//! The bound: more than [`MAX_EXT_HEADERS`] extension headers is
//! [`ExtError::TooMany`]; an upper-layer header that starts past
//! [`MAX_CHAIN_BYTES`] of the payload is [`ExtError::TooLong`]; a header
//! that runs past the payload is [`ExtError::Truncated`]. A header type
//! repeated (RFC 8200 4.1 recommends each at most once) is allowed within
//! the bound.
//!
//! # Drop reasons these map to (`drop.rs`, `pipeline/parse6.rs`)
//!
//! `ip6_truncated` ([`super::Error::Truncated`]), `ip6_bad_version`
//! ([`super::Error::BadVersion`]), `ip6_bad_payload_length`
//! ([`super::Error::BadTotalLength`]), and from [`ExtError::name`]:
//! `ip6_ext_truncated`, `ip6_ext_too_many`, `ip6_ext_too_long`,
//! `ip6_ext_hbh_not_first`, `ip6_ext_rh0`, `ip6_frag_incomplete_chain`,
//! `ip6_frag_bad_length`. From [`AddrClass`] for the martian checks:
//! `ip6_src_multicast`, `ip6_src_unspecified`, `ip6_src_loopback`,
//! `ip6_dst_loopback`, `ip6_dst_unspecified`, `ip6_link_local` (never
//! forwarded), `ip6_ipv4_mapped` (RFC 4291 2.5.5.2: not on the wire), and
//! `ip6_hop_limit_exceeded`.

use super::{fixed, fixed_mut, get16, get32, set16, set32, Error};
use crate::addr::Mac;

/// Next header: hop-by-hop options.
pub const NH_HOP_BY_HOP: u8 = 0;
/// Next header: TCP.
pub const NH_TCP: u8 = 6;
/// Next header: UDP.
pub const NH_UDP: u8 = 17;
/// Next header: routing.
pub const NH_ROUTING: u8 = 43;
/// Next header: fragment.
pub const NH_FRAGMENT: u8 = 44;
/// Next header: encapsulating security payload (opaque: an upper layer here).
pub const NH_ESP: u8 = 50;
/// Next header: authentication header.
pub const NH_AUTH: u8 = 51;
/// Next header: ICMPv6.
pub const NH_ICMPV6: u8 = 58;
/// Next header: no next header.
pub const NH_NONE: u8 = 59;
/// Next header: destination options.
pub const NH_DEST_OPTS: u8 = 60;

/// Bytes of the fixed header.
pub const HEADER_LEN: usize = 40;
/// The minimum link MTU (RFC 8200 5): ICMPv6 errors fit in it.
pub const MIN_MTU: usize = 1280;
/// Most extension headers [`walk`] follows.
pub const MAX_EXT_HEADERS: usize = 8;
/// The upper-layer header must start within this many payload bytes.
pub const MAX_CHAIN_BYTES: usize = 512;

mod field {
    use core::ops::Range;

    // Version (4 bits), traffic class (8), flow label (20).
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Range<usize> = 8..24;
    pub const DST_ADDR: Range<usize> = 24..40;
}

/// A view of an IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking it; see [`Packet::check_len`].
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` and validates the length and the version.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Truncated` below 40 bytes, `BadVersion` unless 6, `BadTotalLength`
    /// if the payload length reaches beyond the buffer.
    #[inline]
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        // RFC 8200 3: version = 6.
        if self.version() != 6 {
            return Err(Error::BadVersion);
        }
        // RFC 8200 3: payload length counts what follows the fixed header.
        if HEADER_LEN + usize::from(self.payload_len()) > len {
            return Err(Error::BadTotalLength);
        }
        Ok(())
    }

    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline(always)]
    fn header(&self) -> &[u8; HEADER_LEN] {
        fixed(self.buffer.as_ref())
    }

    /// Version field (6).
    #[inline]
    pub fn version(&self) -> u8 {
        self.header()[0] >> 4
    }

    /// Traffic class (DSCP and ECN).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (get32(self.header(), field::VER_TC_FLOW) >> 20) as u8
    }

    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        get32(self.header(), field::VER_TC_FLOW) & 0x000f_ffff
    }

    /// Payload length: bytes after the fixed header, extension headers
    /// included.
    #[inline]
    pub fn payload_len(&self) -> u16 {
        get16(self.header(), field::LENGTH)
    }

    /// Next header: the first extension header or the upper layer.
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.header()[field::NEXT_HEADER]
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.header()[field::HOP_LIMIT]
    }

    /// Source address (host order).
    #[inline]
    pub fn src_addr(&self) -> u128 {
        u128::from_be_bytes(self.header()[field::SRC_ADDR].try_into().expect("16 bytes"))
    }

    /// Destination address (host order).
    #[inline]
    pub fn dst_addr(&self) -> u128 {
        u128::from_be_bytes(self.header()[field::DST_ADDR].try_into().expect("16 bytes"))
    }

    /// The payload, `40..40 + payload_len`: link-layer padding excluded.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }

    /// The extension header chain of this packet; see [`walk`].
    #[inline]
    pub fn chain(&self) -> Result<Chain, ExtError> {
        walk(self.next_header(), self.payload())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline(always)]
    fn header_mut(&mut self) -> &mut [u8; HEADER_LEN] {
        fixed_mut(self.buffer.as_mut())
    }

    /// Sets version, traffic class and flow label.
    #[inline]
    pub fn set_ver_tc_flow(&mut self, version: u8, traffic_class: u8, flow_label: u32) {
        let v = (u32::from(version) << 28)
            | (u32::from(traffic_class) << 20)
            | (flow_label & 0x000f_ffff);
        set32(self.header_mut(), field::VER_TC_FLOW, v);
    }

    /// Sets the payload length. Call `check_len` again before trusting the
    /// view.
    #[inline]
    pub fn set_payload_len(&mut self, len: u16) {
        set16(self.header_mut(), field::LENGTH, len);
    }

    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, nh: u8) {
        self.header_mut()[field::NEXT_HEADER] = nh;
    }

    /// Sets the hop limit (no header checksum to update in IPv6).
    #[inline]
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.header_mut()[field::HOP_LIMIT] = hop_limit;
    }

    /// Decrements the hop limit; the caller checks `hop_limit() > 1` first
    /// (RFC 8200 3, RFC 4443 3.3). 0 wraps to 255.
    #[inline]
    pub fn decrement_hop_limit(&mut self) {
        let h = self.header_mut();
        h[field::HOP_LIMIT] = h[field::HOP_LIMIT].wrapping_sub(1);
    }

    /// Sets the source address (host order).
    #[inline]
    pub fn set_src_addr(&mut self, addr: u128) {
        self.header_mut()[field::SRC_ADDR].copy_from_slice(&addr.to_be_bytes());
    }

    /// Sets the destination address (host order).
    #[inline]
    pub fn set_dst_addr(&mut self, addr: u128) {
        self.header_mut()[field::DST_ADDR].copy_from_slice(&addr.to_be_bytes());
    }

    /// The payload, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// An IPv6 fixed header, owned: for building replies and errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address (host order).
    pub src: u128,
    /// Destination address (host order).
    pub dst: u128,
    /// Next header.
    pub next_header: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Payload length.
    pub payload_len: u16,
}

impl Repr {
    /// Bytes [`Repr::emit`] writes.
    pub const HEADER_LEN: usize = HEADER_LEN;

    /// The fields of a checked packet (traffic class and flow label are not
    /// kept).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Repr {
        Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            next_header: p.next_header(),
            hop_limit: p.hop_limit(),
            payload_len: p.payload_len(),
        }
    }

    /// Writes the 40-byte header (traffic class and flow label 0). `p`
    /// needs at least 40 bytes; the payload is not touched.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_ver_tc_flow(6, 0, 0);
        p.set_payload_len(self.payload_len);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
    }
}

/// A fragment header's fields (RFC 8200 4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// Offset of the fragment's data in the original packet, in bytes.
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
    /// Identification.
    pub ident: u32,
}

impl Fragment {
    /// Whether this is the first fragment (offset 0), which carries the
    /// upper-layer header; an atomic fragment (offset 0, M=0) is one too.
    pub const fn is_first(&self) -> bool {
        self.offset == 0
    }
}

/// What [`walk`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    /// The upper-layer protocol (TCP, UDP, ICMPv6, ESP, an unknown value),
    /// or `None` when there is none here: No Next Header (59), or a later
    /// fragment (then [`Chain::last_next_header`] says what follows).
    pub upper: Option<u8>,
    /// Offset in the IPv6 payload where the upper-layer header (or what
    /// follows the last extension header) starts.
    pub offset: usize,
    /// Extension headers walked.
    pub headers: u8,
    /// The next-header value that ended the walk (the upper protocol, 59,
    /// or the fragment header's next header).
    pub last_next_header: u8,
    /// The fragment header, if any.
    pub fragment: Option<Fragment>,
    /// Routing header type and segments left, if any.
    pub routing: Option<(u8, u8)>,
    /// Whether a hop-by-hop options header came first.
    pub hop_by_hop: bool,
}

/// Why an extension header chain is malformed; the names map to drop
/// reasons (see module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExtError {
    /// An extension header runs past the end of the payload.
    Truncated,
    /// More than [`MAX_EXT_HEADERS`] extension headers.
    TooMany,
    /// The upper-layer header starts beyond [`MAX_CHAIN_BYTES`].
    TooLong,
    /// A hop-by-hop options header that is not the first (RFC 8200 4.3).
    HopByHopNotFirst,
    /// A type 0 routing header with segments left (RFC 5095).
    RoutingType0,
    /// A first fragment that does not hold the whole chain (RFC 7112 5).
    IncompleteChain,
    /// M=1 and a fragment length that is not a multiple of 8 (RFC 8200 4.5).
    BadFragmentLength,
}

impl ExtError {
    /// All reasons, for tests and counters.
    pub const ALL: [ExtError; 7] = [
        ExtError::Truncated,
        ExtError::TooMany,
        ExtError::TooLong,
        ExtError::HopByHopNotFirst,
        ExtError::RoutingType0,
        ExtError::IncompleteChain,
        ExtError::BadFragmentLength,
    ];

    /// The drop reason this maps to.
    pub const fn name(self) -> &'static str {
        match self {
            ExtError::Truncated => "ip6_ext_truncated",
            ExtError::TooMany => "ip6_ext_too_many",
            ExtError::TooLong => "ip6_ext_too_long",
            ExtError::HopByHopNotFirst => "ip6_ext_hbh_not_first",
            ExtError::RoutingType0 => "ip6_ext_rh0",
            ExtError::IncompleteChain => "ip6_frag_incomplete_chain",
            ExtError::BadFragmentLength => "ip6_frag_bad_length",
        }
    }
}

impl core::fmt::Display for ExtError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for ExtError {}

/// Follows the next-header chain of an IPv6 payload from `next_header` (the
/// fixed header's) to the upper-layer header. See the module doc for each
/// case. Never panics, never allocates, reads at most [`MAX_CHAIN_BYTES`]
/// plus one header.
pub fn walk(next_header: u8, payload: &[u8]) -> Result<Chain, ExtError> {
    let mut chain = Chain {
        upper: None,
        offset: 0,
        headers: 0,
        last_next_header: next_header,
        fragment: None,
        routing: None,
        hop_by_hop: false,
    };
    let mut nh = next_header;
    let mut off = 0usize;
    // Inside a first fragment, a chain cut short is IncompleteChain.
    let truncated = |chain: &Chain| {
        if chain.fragment.is_some() {
            ExtError::IncompleteChain
        } else {
            ExtError::Truncated
        }
    };
    loop {
        chain.offset = off;
        chain.last_next_header = nh;
        if off > MAX_CHAIN_BYTES {
            return Err(ExtError::TooLong);
        }
        let len = match nh {
            NH_HOP_BY_HOP | NH_DEST_OPTS | NH_ROUTING | NH_FRAGMENT | NH_AUTH => {
                if usize::from(chain.headers) == MAX_EXT_HEADERS {
                    return Err(ExtError::TooMany);
                }
                // RFC 8200 4.3: hop-by-hop only right after the fixed header.
                if nh == NH_HOP_BY_HOP && chain.headers != 0 {
                    return Err(ExtError::HopByHopNotFirst);
                }
                let Some(h) = payload.get(off..off + 8) else {
                    return Err(truncated(&chain));
                };
                let len = match nh {
                    NH_FRAGMENT => 8,
                    // RFC 4302 2.2: (length + 2) 4-byte words.
                    NH_AUTH => (usize::from(h[1]) + 2) * 4,
                    // RFC 8200 4.3-4.6: (length + 1) 8-byte units.
                    _ => (usize::from(h[1]) + 1) * 8,
                };
                if off + len > payload.len() {
                    return Err(truncated(&chain));
                }
                match nh {
                    NH_HOP_BY_HOP => chain.hop_by_hop = true,
                    NH_ROUTING => {
                        let (rtype, left) = (h[2], h[3]);
                        // RFC 5095 3: RH0 with segments left is refused.
                        if rtype == 0 && left > 0 {
                            return Err(ExtError::RoutingType0);
                        }
                        chain.routing = Some((rtype, left));
                    }
                    NH_FRAGMENT => {
                        let w = u16::from_be_bytes([h[2], h[3]]);
                        let frag = Fragment {
                            offset: w & 0xfff8,
                            more: w & 1 != 0,
                            ident: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                        };
                        // RFC 8200 4.5: fragments but the last are 8n bytes.
                        if frag.more && (payload.len() - off - 8) % 8 != 0 {
                            return Err(ExtError::BadFragmentLength);
                        }
                        chain.fragment = Some(frag);
                        if !frag.is_first() {
                            // A later fragment: no upper-layer header here.
                            chain.headers += 1;
                            chain.offset = off + 8;
                            chain.last_next_header = h[0];
                            return Ok(chain);
                        }
                    }
                    _ => {}
                }
                nh = h[0];
                len
            }
            NH_NONE => {
                return Ok(chain);
            }
            upper => {
                chain.upper = Some(upper);
                return Ok(chain);
            }
        };
        chain.headers += 1;
        off += len;
    }
}

/// What an address is, for the martian and scope checks (RFC 4291 2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddrClass {
    /// `::` (RFC 4291 2.5.2): never a destination, a source only in DAD.
    Unspecified,
    /// `::1` (RFC 4291 2.5.3): never on the wire.
    Loopback,
    /// `::ffff:0:0/96` (RFC 4291 2.5.5.2): IPv4-mapped, never on the wire.
    Ipv4Mapped,
    /// `ff00::/8` with its scope (RFC 4291 2.7): 1 interface-local,
    /// 2 link-local, 4 admin-local, 5 site-local, 8 organization-local,
    /// 0xe global.
    Multicast(u8),
    /// `fe80::/10` (RFC 4291 2.5.6): never forwarded.
    LinkLocal,
    /// `fc00::/7` (RFC 4193): routed within a site.
    UniqueLocal,
    /// Everything else: global unicast (RFC 4291 2.5.4).
    Global,
}

/// By an address's top 10 bits: not surely global or unique local
/// ([`AddrClass::is_surely_global_or_ula`]): ::/10, fe80::/10, ff00::/8.
const NOT_SURELY_GLOBAL: [bool; 1024] = {
    let mut t = [false; 1024];
    t[0] = true;
    t[0xfe80 >> 6] = true;
    let mut i = 0xff00 >> 6;
    while i < 1024 {
        t[i] = true;
        i += 1;
    }
    t
};

impl AddrClass {
    /// Classifies `addr` (host order).
    pub const fn of(addr: u128) -> AddrClass {
        if addr == 0 {
            AddrClass::Unspecified
        } else if addr == 1 {
            AddrClass::Loopback
        } else if addr >> 32 == 0xffff {
            AddrClass::Ipv4Mapped
        } else if addr >> 120 == 0xff {
            AddrClass::Multicast(((addr >> 112) & 0x0f) as u8)
        } else if addr >> 118 == 0xfe80 >> 6 {
            AddrClass::LinkLocal
        } else if addr >> 121 == 0xfc >> 1 {
            AddrClass::UniqueLocal
        } else {
            AddrClass::Global
        }
    }

    /// Whether an address whose top 64 bits are `top` is surely global or
    /// unique local (`of` says one of the two, whatever its low 64 bits),
    /// from its top 10 bits in a table: not multicast (ff00::/8), not
    /// link-local (fe80::/10) and not in ::/10, where the unspecified,
    /// loopback and IPv4-mapped addresses lie. `false` says nothing of the
    /// few global addresses in ::/10: for the fast paths, which leave
    /// those to the general path. One load, where `of` walks its whole
    /// chain of 128-bit compares.
    #[inline(always)]
    pub fn is_surely_global_or_ula(top: u64) -> bool {
        // A constant, not a static: inlined into other crates, a static is
        // read through the global offset table (one load more).
        const T: [bool; 1024] = NOT_SURELY_GLOBAL;
        !T[(top >> 54) as usize]
    }

    /// Whether a router may forward a packet with this source (RFC 4291
    /// 2.5.2, 2.5.3, 2.5.6, 2.7: not unspecified, loopback, multicast,
    /// link-local or IPv4-mapped).
    pub const fn forwardable_src(self) -> bool {
        matches!(self, AddrClass::UniqueLocal | AddrClass::Global)
    }

    /// Whether a router may forward a packet to this destination: unicast
    /// beyond the link, or multicast of a scope larger than the link (which
    /// this router does not route, but which is not martian).
    pub const fn forwardable_dst(self) -> bool {
        match self {
            AddrClass::UniqueLocal | AddrClass::Global => true,
            AddrClass::Multicast(scope) => scope > 2,
            _ => false,
        }
    }
}

/// `ff02::1`, all nodes on the link.
pub const ALL_NODES: u128 = 0xff02 << 112 | 1;
/// `ff02::2`, all routers on the link.
pub const ALL_ROUTERS: u128 = 0xff02 << 112 | 2;

/// The solicited-node multicast address of `addr`, `ff02::1:ffXX:XXXX`
/// with the low 24 bits of `addr` (RFC 4291 2.7.1).
pub const fn solicited_node(addr: u128) -> u128 {
    (0xff02 << 112) | (0x1_ff00_0000) | (addr & 0x00ff_ffff)
}

/// The Ethernet address of an IPv6 multicast address: `33:33` and its low
/// 32 bits (RFC 2464 7).
pub const fn multicast_mac(addr: u128) -> Mac {
    let l = (addr as u32).to_be_bytes();
    Mac([0x33, 0x33, l[0], l[1], l[2], l[3]])
}

/// The link-local address of a MAC: `fe80::/64` and the modified EUI-64
/// interface identifier (RFC 4291 2.5.6 and appendix A: `ff:fe` in the
/// middle, the universal/local bit inverted).
pub const fn link_local_from_mac(mac: Mac) -> u128 {
    let m = mac.0;
    let iid = [m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]];
    (0xfe80 << 112) | u64::from_be_bytes(iid) as u128
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn a(s: &str) -> u128 {
        u128::from(s.parse::<Ipv6Addr>().unwrap())
    }

    /// The IPv6 header that smoltcp's ICMPv6 tests quote in a Packet Too
    /// Big: fe80::1 -> fe80::2, UDP, hop limit 64, 12 bytes of payload (a
    /// UDP header 0xbf00 -> 53 and 4 bytes), then 2 bytes of padding.
    const UDP6: [u8; 54] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x11, 0x40, // ver, len 12, UDP, hl 64
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // src
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, // dst
        0xbf, 0x00, 0x00, 0x35, 0x00, 0x0c, 0x12, 0x4d, 0xaa, 0x00, 0x00, 0xff, // UDP
        0xee, 0xee, // padding
    ];

    #[test]
    fn fixed_header_fields() {
        let p = Packet::new_checked(&UDP6[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0);
        assert_eq!(p.flow_label(), 0);
        assert_eq!(p.payload_len(), 12);
        assert_eq!(p.next_header(), NH_UDP);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), a("fe80::1"));
        assert_eq!(p.dst_addr(), a("fe80::2"));
        assert_eq!(p.payload(), &UDP6[40..52], "padding excluded");
        let c = p.chain().unwrap();
        assert_eq!((c.upper, c.offset, c.headers), (Some(NH_UDP), 0, 0));
    }

    #[test]
    fn traffic_class_and_flow_label() {
        let mut buf = UDP6;
        buf[0..4].copy_from_slice(&[0x6b, 0xa1, 0x23, 0x45]);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.traffic_class(), 0xba);
        assert_eq!(p.flow_label(), 0x12345);
        let mut buf2 = [0u8; 40];
        let mut q = Packet::new_unchecked(&mut buf2[..]);
        q.set_ver_tc_flow(6, 0xba, 0x12345);
        assert_eq!(buf2[0..4], buf[0..4]);
    }

    #[test]
    fn length_and_version_checks() {
        assert_eq!(
            Packet::new_checked(&UDP6[..39]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(Packet::new_checked(&[][..]).unwrap_err(), Error::Truncated);
        let mut buf = UDP6;
        buf[0] = 0x45;
        assert_eq!(
            Packet::new_checked(&buf[..]).unwrap_err(),
            Error::BadVersion
        );
        // Payload length one past the frame.
        let mut buf = UDP6;
        buf[5] = 15;
        assert_eq!(
            Packet::new_checked(&buf[..]).unwrap_err(),
            Error::BadTotalLength
        );
        buf[5] = 14;
        assert!(Packet::new_checked(&buf[..]).is_ok(), "exactly the frame");
        assert_eq!(
            Packet::new_checked(&UDP6[..51]).unwrap_err(),
            Error::BadTotalLength
        );
    }

    #[test]
    fn setters_and_repr_round_trip() {
        let mut buf = UDP6;
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        p.decrement_hop_limit();
        assert_eq!(p.hop_limit(), 63);
        p.set_hop_limit(1);
        p.decrement_hop_limit();
        assert_eq!(p.hop_limit(), 0);
        p.set_src_addr(a("2001:db8::1"));
        p.set_dst_addr(a("2001:db8:1::2"));
        p.set_next_header(NH_NONE);
        p.payload_mut()[0] = 0x11;
        assert_eq!(p.src_addr(), a("2001:db8::1"));
        assert_eq!(p.dst_addr(), a("2001:db8:1::2"));
        assert_eq!(buf[40], 0x11);

        let repr = Repr {
            src: a("fe80::1"),
            dst: a("fe80::2"),
            next_header: NH_UDP,
            hop_limit: 64,
            payload_len: 12,
        };
        let mut out = [0xffu8; 52];
        repr.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out[..40], UDP6[..40], "header bytes as captured");
        assert_eq!(out[40..], [0xff; 12], "payload untouched");
        assert_eq!(Repr::parse(&Packet::new_checked(&out[..]).unwrap()), repr);
    }

    /// Extension header of `nh` followed by `next`, `units` 8-byte units.
    fn ext(kind: u8, next: u8, units: usize) -> Vec<u8> {
        let mut h = vec![0u8; units * 8];
        h[0] = next;
        match kind {
            NH_FRAGMENT => {}
            NH_AUTH => h[1] = (units * 2 - 2) as u8,
            _ => h[1] = (units - 1) as u8,
        }
        // Options headers: PadN over the rest keeps them valid.
        if matches!(kind, NH_HOP_BY_HOP | NH_DEST_OPTS) {
            h[2] = 1;
            h[3] = (units * 8 - 4) as u8;
        }
        h
    }

    fn frag(next: u8, offset: u16, more: bool) -> Vec<u8> {
        let w = offset | u16::from(more);
        let mut h = vec![next, 0];
        h.extend_from_slice(&w.to_be_bytes());
        h.extend_from_slice(&0xdead_beef_u32.to_be_bytes());
        h
    }

    fn routing(next: u8, rtype: u8, left: u8) -> Vec<u8> {
        let mut h = ext(NH_ROUTING, next, 3);
        h[2] = rtype;
        h[3] = left;
        h
    }

    const TCP_HDR: [u8; 20] = [0; 20];

    #[test]
    fn chain_hop_by_hop_dest_routing_to_tcp() {
        let mut p = ext(NH_HOP_BY_HOP, NH_DEST_OPTS, 1);
        p.extend(ext(NH_DEST_OPTS, NH_ROUTING, 2));
        p.extend(routing(NH_TCP, 4, 1)); // an SRH: walked past
        p.extend(TCP_HDR);
        let c = walk(NH_HOP_BY_HOP, &p).unwrap();
        assert_eq!(c.upper, Some(NH_TCP));
        assert_eq!(c.offset, 8 + 16 + 24);
        assert_eq!(c.headers, 3);
        assert!(c.hop_by_hop);
        assert_eq!(c.routing, Some((4, 1)));
        assert_eq!(c.fragment, None);
    }

    #[test]
    fn hop_by_hop_must_come_first() {
        let mut p = ext(NH_DEST_OPTS, NH_HOP_BY_HOP, 1);
        p.extend(ext(NH_HOP_BY_HOP, NH_UDP, 1));
        p.extend([0u8; 8]);
        assert_eq!(walk(NH_DEST_OPTS, &p), Err(ExtError::HopByHopNotFirst));
        // The same header first is fine.
        assert!(walk(NH_HOP_BY_HOP, &p[8..]).is_ok());
    }

    #[test]
    fn routing_type_0() {
        let mut p = routing(NH_UDP, 0, 2);
        p.extend([0u8; 8]);
        assert_eq!(walk(NH_ROUTING, &p), Err(ExtError::RoutingType0));
        // RFC 5095: with no segments left it is inert, walked past.
        p[3] = 0;
        let c = walk(NH_ROUTING, &p).unwrap();
        assert_eq!(
            (c.upper, c.offset, c.routing),
            (Some(NH_UDP), 24, Some((0, 0)))
        );
    }

    #[test]
    fn first_and_later_fragments() {
        // First fragment: the walk goes on to the UDP header.
        let mut p = frag(NH_UDP, 0, true);
        p.extend([0u8; 16]);
        let c = walk(NH_FRAGMENT, &p).unwrap();
        assert_eq!(c.upper, Some(NH_UDP));
        assert_eq!(c.offset, 8);
        let f = c.fragment.unwrap();
        assert!(f.is_first() && f.more);
        assert_eq!(f.ident, 0xdead_beef);
        // Later fragment: no upper-layer header, what follows is said.
        let mut p = frag(NH_UDP, 1448, false);
        p.extend([0u8; 13]);
        let c = walk(NH_FRAGMENT, &p).unwrap();
        assert_eq!(c.upper, None);
        assert_eq!(c.last_next_header, NH_UDP);
        assert_eq!(c.offset, 8);
        assert_eq!(c.fragment.unwrap().offset, 1448);
        assert!(!c.fragment.unwrap().is_first());
        // Atomic fragment (RFC 6946): offset 0, M=0, a whole packet.
        let mut p = frag(NH_TCP, 0, false);
        p.extend(TCP_HDR);
        assert_eq!(walk(NH_FRAGMENT, &p).unwrap().upper, Some(NH_TCP));
    }

    #[test]
    fn fragment_length_and_incomplete_chain() {
        // M=1 with 13 bytes of fragment data (not 8n).
        let mut p = frag(NH_UDP, 8, true);
        p.extend([0u8; 13]);
        assert_eq!(walk(NH_FRAGMENT, &p), Err(ExtError::BadFragmentLength));
        // A first fragment whose destination options run past its end.
        let mut p = frag(NH_DEST_OPTS, 0, true);
        p.extend(&ext(NH_DEST_OPTS, NH_TCP, 3)[..16]);
        assert_eq!(walk(NH_FRAGMENT, &p), Err(ExtError::IncompleteChain));
    }

    #[test]
    fn truncated_too_many_too_long_and_no_next_header() {
        // A destination options header cut short.
        let p = ext(NH_DEST_OPTS, NH_TCP, 2);
        assert_eq!(walk(NH_DEST_OPTS, &p[..15]), Err(ExtError::Truncated));
        assert_eq!(walk(NH_DEST_OPTS, &p[..7]), Err(ExtError::Truncated));
        assert_eq!(walk(NH_DEST_OPTS, &[]), Err(ExtError::Truncated));
        // Eight destination options are allowed, nine are not.
        let chain = |n: usize| {
            let mut p = Vec::new();
            for i in 0..n {
                p.extend(ext(
                    NH_DEST_OPTS,
                    if i + 1 == n { NH_NONE } else { NH_DEST_OPTS },
                    1,
                ));
            }
            p
        };
        let c = walk(NH_DEST_OPTS, &chain(8)).unwrap();
        assert_eq!(
            (c.upper, c.headers, c.offset, c.last_next_header),
            (None, 8, 64, NH_NONE)
        );
        assert_eq!(walk(NH_DEST_OPTS, &chain(9)), Err(ExtError::TooMany));
        // Two 256-byte headers put the upper layer at 512: allowed; three not.
        let mut p = ext(NH_DEST_OPTS, NH_DEST_OPTS, 32);
        p.extend(ext(NH_DEST_OPTS, NH_UDP, 32));
        p.extend([0u8; 8]);
        assert_eq!(walk(NH_DEST_OPTS, &p).unwrap().offset, 512);
        let mut p = ext(NH_DEST_OPTS, NH_DEST_OPTS, 32);
        p.extend(ext(NH_DEST_OPTS, NH_DEST_OPTS, 32));
        p.extend(ext(NH_DEST_OPTS, NH_UDP, 1));
        p.extend([0u8; 8]);
        assert_eq!(walk(NH_DEST_OPTS, &p), Err(ExtError::TooLong));
        // No next header right away: nothing after the fixed header.
        let c = walk(NH_NONE, &[1, 2, 3]).unwrap();
        assert_eq!((c.upper, c.headers), (None, 0));
        // ESP and unknown values are upper layers (opaque).
        assert_eq!(walk(NH_ESP, &[]).unwrap().upper, Some(NH_ESP));
        assert_eq!(walk(253, &[]).unwrap().upper, Some(253));
    }

    #[test]
    fn authentication_header_length_in_4_byte_units() {
        // AH with payload length 4: (4 + 2) * 4 = 24 bytes.
        let mut p = ext(NH_AUTH, NH_TCP, 3);
        assert_eq!(p[1], 4);
        p.extend(TCP_HDR);
        assert_eq!(walk(NH_AUTH, &p).unwrap().offset, 24);
    }

    #[test]
    fn ext_error_names_are_distinct_drop_reasons() {
        let mut names: Vec<_> = ExtError::ALL.iter().map(|e| e.to_string()).collect();
        assert!(names.iter().all(|n| n.starts_with("ip6_")));
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ExtError::ALL.len());
    }

    #[test]
    fn address_classes() {
        use AddrClass::*;
        let cases = [
            ("::", Unspecified),
            ("::1", Loopback),
            ("::2", Global),
            ("::ffff:198.18.0.1", Ipv4Mapped),
            ("ff02::1", Multicast(2)),
            ("ff05::2", Multicast(5)),
            ("ff0e::101", Multicast(0xe)),
            ("ff01::1", Multicast(1)),
            ("fe80::1", LinkLocal),
            ("febf:ffff::1", LinkLocal),
            ("fec0::1", Global), // deprecated site-local (RFC 3879): global now
            ("fc00::1", UniqueLocal),
            ("fdff::1", UniqueLocal),
            ("fe00::1", Global),
            ("2001:db8::1", Global),
        ];
        for (s, class) in cases {
            assert_eq!(AddrClass::of(a(s)), class, "{s}");
            // The addresses here outside ::/10 are told apart exactly.
            if a(s) >> 118 != 0 {
                assert_eq!(
                    AddrClass::is_surely_global_or_ula((a(s) >> 64) as u64),
                    matches!(class, Global | UniqueLocal),
                    "{s}"
                );
            } else {
                assert!(
                    !AddrClass::is_surely_global_or_ula((a(s) >> 64) as u64),
                    "{s}"
                );
            }
        }
        assert!(Global.forwardable_src() && UniqueLocal.forwardable_src());
        for c in [Unspecified, Loopback, Ipv4Mapped, Multicast(0xe), LinkLocal] {
            assert!(!c.forwardable_src(), "{c:?}");
        }
        assert!(Multicast(5).forwardable_dst() && Global.forwardable_dst());
        for c in [
            Unspecified,
            Loopback,
            Ipv4Mapped,
            Multicast(2),
            Multicast(1),
            LinkLocal,
        ] {
            assert!(!c.forwardable_dst(), "{c:?}");
        }
    }

    #[test]
    fn solicited_node_multicast_mac_and_link_local() {
        // RFC 4291 2.7.1: 2001:db8::2:abcd:ef12 -> ff02::1:ffcd:ef12.
        assert_eq!(
            solicited_node(a("2001:db8::2:abcd:ef12")),
            a("ff02::1:ffcd:ef12")
        );
        assert_eq!(solicited_node(a("fe80::1")), a("ff02::1:ff00:1"));
        // RFC 2464 7: 33:33 and the low 32 bits.
        assert_eq!(
            multicast_mac(a("ff02::1:ffcd:ef12")),
            Mac([0x33, 0x33, 0xff, 0xcd, 0xef, 0x12])
        );
        assert_eq!(multicast_mac(ALL_NODES), Mac([0x33, 0x33, 0, 0, 0, 1]));
        assert_eq!(ALL_ROUTERS, a("ff02::2"));
        // RFC 4291 appendix A: 34:56:78:9a:bc:de -> 3656:78ff:fe9a:bcde.
        let mac = Mac([0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde]);
        assert_eq!(link_local_from_mac(mac), a("fe80::3656:78ff:fe9a:bcde"));
        // A locally administered MAC (02:...) gets the bit cleared.
        let mac = Mac([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);
        assert_eq!(link_local_from_mac(mac), a("fe80::ff:fe00:1"));
        assert_eq!(
            AddrClass::of(link_local_from_mac(mac)),
            AddrClass::LinkLocal
        );
    }
}
