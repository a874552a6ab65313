//! The packet language of `routerctl explain` and `trace` filters:
//!
//! ```text
//! in=wan tcp 198.18.0.2:40000 > 198.18.0.1:22 flags=S
//! in=host tcp 198.18.0.1:22 > 198.18.0.2:40000 flags=SA
//! in=lan udp 198.19.0.2:5353 > 203.0.113.9:53 ttl=1
//! in=wan icmp 198.18.0.2 > 198.19.0.2 type=echo-request id=7
//! in=wan icmp 203.0.113.9 > 198.18.0.1 type=destination-unreachable code=3 inner udp 198.18.0.1:40000 > 203.0.113.9:53
//! in=wan proto=47 198.18.0.2 > 198.19.0.2
//! in=wan tcp [2001:db8::2]:40000 > [2001:db8:1::1]:22 flags=S
//! in=wan udp [2001:db8::2]:5353 > [2001:db8:5::9]:53 hl=1
//! in=wan icmpv6 2001:db8::2 > 2001:db8::1 type=echo-request id=7
//! in=wan icmpv6 2001:db8:5::9 > 2001:db8::2 type=packet-too-big mtu=1280 inner tcp [2001:db8::2]:40000 > [2001:db8:5::9]:443
//! ```
//! The family comes from the addresses (IPv6 ones with a port are written
//! `[ADDRESS]:PORT`); one packet is all IPv4 or all IPv6, its `inner`
//! packet included. Options: `ttl=N` (the hop limit for IPv6, also
//! `hl=N`), `len=N` (payload bytes), `flags=` TCP flags as letters
//! (S syn, A ack, F fin, R rst, P psh, U urg, E ece, C cwr; `none`), `type=`
//! and `code=` (ICMP or ICMPv6, nftables names or numbers), `id=` (ICMP
//! query id), `mtu=N` (ICMPv6 packet too big), `frag=more` (first
//! fragment, MF set) or `frag=N` (non-first fragment at byte offset N; an
//! IPv6 fragment header), `df` (don't fragment, IPv4 only), `options` (a
//! 4-byte NOP option for IPv4, an empty hop-by-hop options header for IPv6).
//! After `inner` comes the packet an ICMP error quotes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dataplane::addr::Mac;
use dataplane::wire::checksum;
use dataplane::wire::{icmp, icmpv6};

/// ICMPv6's protocol number (next header).
const PROTO_ICMPV6: u8 = 58;

/// A parsed packet description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketSpec {
    /// Arrival interface name (`host` for the router itself).
    pub input: String,
    /// IP protocol (IPv6: the upper-layer next header).
    pub proto: u8,
    /// IPv4 addresses (unspecified for an IPv6 packet: see `v6`).
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// An IPv6 packet, from `src6` to `dst6`.
    pub v6: bool,
    pub src6: Ipv6Addr,
    pub dst6: Ipv6Addr,
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u8,
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub icmp_id: u16,
    /// ICMPv6 packet too big's MTU.
    pub mtu: u32,
    /// TTL, or the hop limit of an IPv6 packet.
    pub ttl: u8,
    pub payload: usize,
    /// Fragment offset in bytes (non-first fragment when > 0).
    pub frag_offset: u16,
    pub more_frags: bool,
    pub dont_frag: bool,
    pub options: bool,
    /// The packet an ICMP error quotes.
    pub inner: Option<Box<PacketSpec>>,
    /// The text it was parsed from.
    pub text: String,
}

/// A packet description that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("packet `{text}`: {message}")]
pub struct SpecError {
    pub text: String,
    pub message: String,
}

fn err(text: &str, message: impl Into<String>) -> SpecError {
    SpecError {
        text: text.to_string(),
        message: message.into(),
    }
}

fn parse_addr(text: &str, s: &str) -> Result<IpAddr, SpecError> {
    let bare = s
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(s);
    bare.parse()
        .map_err(|_| err(text, format!("`{s}` is not an IPv4 or IPv6 address")))
}

fn parse_endpoint(text: &str, s: &str, with_port: bool) -> Result<(IpAddr, u16), SpecError> {
    if !with_port {
        return Ok((parse_addr(text, s)?, 0));
    }
    let (a, p) = if let Some(rest) = s.strip_prefix('[') {
        let (a, p) = rest
            .split_once("]:")
            .ok_or_else(|| err(text, format!("`{s}`: expected [ADDRESS]:PORT")))?;
        let a: Ipv6Addr = a
            .parse()
            .map_err(|_| err(text, format!("`{a}` is not an IPv6 address")))?;
        (IpAddr::V6(a), p)
    } else {
        if s.matches(':').count() > 1 {
            return Err(err(
                text,
                format!("`{s}`: write an IPv6 address with a port as [ADDRESS]:PORT"),
            ));
        }
        let (a, p) = s
            .rsplit_once(':')
            .ok_or_else(|| err(text, format!("`{s}`: expected ADDRESS:PORT")))?;
        let a: Ipv4Addr = a
            .parse()
            .map_err(|_| err(text, format!("`{a}` is not an IPv4 address")))?;
        (IpAddr::V4(a), p)
    };
    let p = p
        .parse()
        .map_err(|_| err(text, format!("`{p}` is not a port (0-65535)")))?;
    Ok((a, p))
}

fn parse_flags(text: &str, s: &str) -> Result<u8, SpecError> {
    if s == "none" {
        return Ok(0);
    }
    let mut f = 0u8;
    for c in s.chars() {
        f |= match c.to_ascii_uppercase() {
            'F' => 0x01,
            'S' => 0x02,
            'R' => 0x04,
            'P' => 0x08,
            'A' => 0x10,
            'U' => 0x20,
            'E' => 0x40,
            'C' => 0x80,
            _ => {
                return Err(err(
                    text,
                    format!("`{c}` is not a TCP flag (S A F R P U E C, or none)"),
                ))
            }
        };
    }
    Ok(f)
}

fn parse_num<T: std::str::FromStr>(text: &str, key: &str, v: &str) -> Result<T, SpecError> {
    v.parse()
        .map_err(|_| err(text, format!("{key}={v}: expected a number")))
}

fn icmp_code_by_name(s: &str) -> Option<u8> {
    Some(match s {
        "net-unreachable" => 0,
        "host-unreachable" => 1,
        "prot-unreachable" | "protocol-unreachable" => 2,
        "port-unreachable" => 3,
        "frag-needed" => 4,
        "admin-prohibited" => 13,
        _ => return None,
    })
}

/// ICMPv6 destination unreachable codes in nftables spelling
/// (`nft describe icmpv6 code`).
fn icmpv6_code_by_name(s: &str) -> Option<u8> {
    Some(match s {
        "no-route" => icmpv6::NO_ROUTE,
        "admin-prohibited" => icmpv6::ADMIN_PROHIBITED,
        "beyond-scope" => icmpv6::BEYOND_SCOPE,
        "addr-unreachable" => icmpv6::ADDR_UNREACHABLE,
        "port-unreachable" => icmpv6::PORT_UNREACHABLE,
        "policy-fail" => icmpv6::FAILED_POLICY,
        "reject-route" => icmpv6::REJECT_ROUTE,
        _ => return None,
    })
}

impl PacketSpec {
    /// Parse one description.
    pub fn parse(text: &str) -> Result<PacketSpec, SpecError> {
        let words: Vec<&str> = text.split_whitespace().collect();
        Self::parse_words(text, &words, true)
    }

    /// The source address, of either family.
    pub fn src_ip(&self) -> IpAddr {
        if self.v6 {
            IpAddr::V6(self.src6)
        } else {
            IpAddr::V4(self.src)
        }
    }

    /// The destination address, of either family.
    pub fn dst_ip(&self) -> IpAddr {
        if self.v6 {
            IpAddr::V6(self.dst6)
        } else {
            IpAddr::V4(self.dst)
        }
    }

    fn parse_words(text: &str, words: &[&str], outer: bool) -> Result<PacketSpec, SpecError> {
        let mut i = 0;
        let mut input = None;
        if outer {
            match words.first().and_then(|w| w.strip_prefix("in=")) {
                Some(name) => {
                    input = Some(name.to_string());
                    i = 1;
                }
                None => return Err(err(text, "must start with in=INTERFACE (or in=host)")),
            }
        }
        let proto_word = words.get(i).ok_or_else(|| {
            err(
                text,
                "expected a protocol: tcp, udp, icmp, icmpv6 or proto=N",
            )
        })?;
        let proto: u8 = match *proto_word {
            "tcp" => 6,
            "udp" => 17,
            "icmp" => 1,
            "icmpv6" => PROTO_ICMPV6,
            w => match w.strip_prefix("proto=") {
                Some(n) => parse_num(text, "proto", n)?,
                None => {
                    return Err(err(
                        text,
                        format!("`{w}`: expected tcp, udp, icmp, icmpv6 or proto=N"),
                    ))
                }
            },
        };
        let ports = proto == 6 || proto == 17;
        let (src, sport) = parse_endpoint(
            text,
            words
                .get(i + 1)
                .ok_or_else(|| err(text, "expected a source"))?,
            ports,
        )?;
        if words.get(i + 2) != Some(&">") {
            return Err(err(text, "expected `>` between source and destination"));
        }
        let (dst, dport) = parse_endpoint(
            text,
            words
                .get(i + 3)
                .ok_or_else(|| err(text, "expected a destination"))?,
            ports,
        )?;
        let v6 = match (src, dst) {
            (IpAddr::V4(_), IpAddr::V4(_)) => false,
            (IpAddr::V6(_), IpAddr::V6(_)) => true,
            _ => {
                return Err(err(
                    text,
                    format!("{src} > {dst} mixes IPv4 and IPv6: both addresses of a packet are of one family"),
                ))
            }
        };
        match (proto, v6) {
            (1, true) => return Err(err(text, "icmp is IPv4's: write icmpv6 for IPv6 addresses")),
            (PROTO_ICMPV6, false) => {
                return Err(err(text, "icmpv6 is IPv6's: write icmp for IPv4 addresses"))
            }
            _ => {}
        }
        let v4 = |a: IpAddr| match a {
            IpAddr::V4(a) => a,
            IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
        };
        let v6a = |a: IpAddr| match a {
            IpAddr::V6(a) => a,
            IpAddr::V4(_) => Ipv6Addr::UNSPECIFIED,
        };
        let mut p = PacketSpec {
            input: input.unwrap_or_default(),
            proto,
            src: v4(src),
            dst: v4(dst),
            v6,
            src6: v6a(src),
            dst6: v6a(dst),
            sport,
            dport,
            tcp_flags: if proto == 6 { 0x02 } else { 0 },
            icmp_type: match proto {
                1 => icmp::ECHO_REQUEST,
                PROTO_ICMPV6 => icmpv6::ECHO_REQUEST,
                _ => 0,
            },
            icmp_code: 0,
            icmp_id: 1,
            mtu: 0,
            ttl: 64,
            payload: 0,
            frag_offset: 0,
            more_frags: false,
            dont_frag: false,
            options: false,
            inner: None,
            text: text.to_string(),
        };
        let mut j = i + 4;
        while j < words.len() {
            let w = words[j];
            j += 1;
            if w == "inner" {
                if !outer {
                    return Err(err(text, "only one `inner` packet"));
                }
                let inner = Self::parse_words(text, &words[j..], false)?;
                if inner.v6 != p.v6 {
                    return Err(err(
                        text,
                        format!(
                            "the inner packet is {} but the packet quoting it is {}: an ICMP error quotes a packet of its own family",
                            if inner.v6 { "IPv6" } else { "IPv4" },
                            if p.v6 { "IPv6" } else { "IPv4" }
                        ),
                    ));
                }
                p.inner = Some(Box::new(inner));
                break;
            }
            match w {
                "df" if p.v6 => {
                    return Err(err(
                        text,
                        "df is IPv4's: IPv6 packets are never fragmented by routers",
                    ))
                }
                "df" => p.dont_frag = true,
                "options" => p.options = true,
                _ => {
                    let (k, v) = w
                        .split_once('=')
                        .ok_or_else(|| err(text, format!("`{w}`: expected KEY=VALUE")))?;
                    match k {
                        "flags" if proto == 6 => p.tcp_flags = parse_flags(text, v)?,
                        "ttl" | "hl" => p.ttl = parse_num(text, k, v)?,
                        "len" => p.payload = parse_num(text, k, v)?,
                        "id" => p.icmp_id = parse_num(text, k, v)?,
                        "type" if proto == 1 => {
                            p.icmp_type = match icmp::type_from_name(v) {
                                Some(t) => t,
                                None => parse_num(text, k, v).map_err(|_| {
                                    err(text, format!("type={v}: expected an ICMP type name (echo-request, destination-unreachable, time-exceeded, ...) or number"))
                                })?,
                            }
                        }
                        "type" if proto == PROTO_ICMPV6 => {
                            p.icmp_type = match icmpv6::type_from_name(v) {
                                Some(t) => t,
                                None => parse_num(text, k, v).map_err(|_| {
                                    err(text, format!("type={v}: expected an ICMPv6 type name (echo-request, destination-unreachable, packet-too-big, time-exceeded, ...) or number"))
                                })?,
                            }
                        }
                        "code" if proto == 1 => {
                            p.icmp_code = match icmp_code_by_name(v) {
                                Some(c) => c,
                                None => parse_num(text, k, v)?,
                            }
                        }
                        "code" if proto == PROTO_ICMPV6 => {
                            p.icmp_code = match icmpv6_code_by_name(v) {
                                Some(c) => c,
                                None => parse_num(text, k, v)?,
                            }
                        }
                        "mtu" if proto == PROTO_ICMPV6 => p.mtu = parse_num(text, k, v)?,
                        "frag" => {
                            if v == "more" || v == "first" {
                                p.more_frags = true;
                            } else {
                                let off: u16 = parse_num(text, k, v)?;
                                if off % 8 != 0 || off == 0 {
                                    return Err(err(text, "frag=N: N is a byte offset, a non-zero multiple of 8"));
                                }
                                p.frag_offset = off;
                            }
                        }
                        _ => return Err(err(text, format!("`{k}` is not an option for this protocol"))),
                    }
                }
            }
        }
        Ok(p)
    }

    /// The upper-layer message (TCP, UDP, ICMP, ICMPv6 or filler), checksum
    /// included.
    fn l4_bytes(&self) -> Vec<u8> {
        let mut l4: Vec<u8> = match self.proto {
            6 => {
                let mut t = vec![0u8; 20];
                t[0..2].copy_from_slice(&self.sport.to_be_bytes());
                t[2..4].copy_from_slice(&self.dport.to_be_bytes());
                t[4..8].copy_from_slice(&1000u32.to_be_bytes());
                if self.tcp_flags & 0x10 != 0 {
                    t[8..12].copy_from_slice(&2000u32.to_be_bytes());
                }
                t[12] = 5 << 4;
                t[13] = self.tcp_flags;
                t[14..16].copy_from_slice(&65535u16.to_be_bytes());
                t.resize(20 + self.payload, 0);
                t
            }
            17 => {
                let mut u = vec![0u8; 8];
                u[0..2].copy_from_slice(&self.sport.to_be_bytes());
                u[2..4].copy_from_slice(&self.dport.to_be_bytes());
                u.resize(8 + self.payload, 0);
                let n = u.len() as u16;
                u[4..6].copy_from_slice(&n.to_be_bytes());
                u
            }
            1 => {
                let mut c = vec![0u8; 8];
                c[0] = self.icmp_type;
                c[1] = self.icmp_code;
                if icmp::is_error(self.icmp_type) {
                    if let Some(inner) = &self.inner {
                        let q = inner.ip_bytes();
                        let n = (((q[0] & 0x0f) as usize) * 4 + 8).min(q.len());
                        c.extend_from_slice(&q[..n]);
                    }
                } else {
                    c[4..6].copy_from_slice(&self.icmp_id.to_be_bytes());
                    c[6..8].copy_from_slice(&1u16.to_be_bytes());
                }
                c.resize(c.len() + self.payload, 0);
                let s = checksum::data(&c);
                c[2..4].copy_from_slice(&s.to_be_bytes());
                c
            }
            PROTO_ICMPV6 => {
                let mut c = vec![0u8; 8];
                c[0] = self.icmp_type;
                c[1] = self.icmp_code;
                if icmpv6::is_error(self.icmp_type) {
                    if self.icmp_type == icmpv6::PACKET_TOO_BIG {
                        c[4..8].copy_from_slice(&self.mtu.to_be_bytes());
                    }
                    if let Some(inner) = &self.inner {
                        // RFC 4443 2.4 (c): as much of the invoking packet
                        // as fits in the minimum MTU.
                        let q = inner.ip_bytes();
                        c.extend_from_slice(&q[..q.len().min(icmpv6::MAX_QUOTE)]);
                    }
                } else {
                    c[4..6].copy_from_slice(&self.icmp_id.to_be_bytes());
                    c[6..8].copy_from_slice(&1u16.to_be_bytes());
                }
                c.resize(c.len() + self.payload, 0);
                c
            }
            _ => vec![0u8; self.payload.max(8)],
        };
        if self.v6 {
            let (src, dst) = (u128::from(self.src6), u128::from(self.dst6));
            let at = match self.proto {
                6 => Some(16..18),
                17 => Some(6..8),
                PROTO_ICMPV6 => Some(2..4),
                _ => None,
            };
            if let Some(at) = at {
                let s = if self.proto == 17 {
                    checksum::udp6(src, dst, &l4)
                } else {
                    checksum::upper6(src, dst, self.proto, &l4)
                };
                l4[at].copy_from_slice(&s.to_be_bytes());
            }
            return l4;
        }
        let src = u32::from(self.src);
        let dst = u32::from(self.dst);
        let pseudo = |len: usize| checksum::pseudo_header(src, dst, self.proto, len as u16);
        match self.proto {
            6 => {
                let s = checksum::fold(pseudo(l4.len()) + checksum::sum(&l4));
                l4[16..18].copy_from_slice(&s.to_be_bytes());
            }
            17 => {
                let mut s = checksum::fold(pseudo(l4.len()) + checksum::sum(&l4));
                if s == 0 {
                    s = 0xffff;
                }
                l4[6..8].copy_from_slice(&s.to_be_bytes());
            }
            _ => {}
        }
        l4
    }

    /// The IP packet (header and payload), IPv4 or IPv6.
    pub fn ip_bytes(&self) -> Vec<u8> {
        if self.v6 {
            return self.ip6_bytes();
        }
        let ihl = if self.options { 24 } else { 20 };
        let mut l4 = self.l4_bytes();
        if self.frag_offset > 0 {
            // A non-first fragment carries payload bytes, not an L4 header.
            l4.iter_mut().for_each(|b| *b = 0xab);
        }
        let total = ihl + l4.len();
        let mut ip = vec![0u8; ihl];
        ip[0] = 0x40 | (ihl / 4) as u8;
        ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        let mut frag = self.frag_offset / 8;
        if self.more_frags {
            frag |= 0x2000;
        }
        if self.dont_frag {
            frag |= 0x4000;
        }
        ip[6..8].copy_from_slice(&frag.to_be_bytes());
        ip[8] = self.ttl;
        ip[9] = self.proto;
        ip[12..16].copy_from_slice(&self.src.octets());
        ip[16..20].copy_from_slice(&self.dst.octets());
        if self.options {
            ip[20..24].copy_from_slice(&[1, 1, 1, 0]); // NOP NOP NOP EOL
        }
        let s = checksum::data(&ip);
        ip[10..12].copy_from_slice(&s.to_be_bytes());
        ip.extend_from_slice(&l4);
        ip
    }

    /// The IPv6 packet: fixed header, then a hop-by-hop options header
    /// (`options`), a fragment header (`frag=`), the upper layer.
    fn ip6_bytes(&self) -> Vec<u8> {
        let mut l4 = self.l4_bytes();
        let pad = (8 - l4.len() % 8) % 8;
        if self.more_frags && pad > 0 {
            // RFC 8200 4.5: every fragment but the last carries 8n bytes.
            let mut padded = self.clone();
            padded.payload += pad;
            l4 = padded.l4_bytes();
        }
        if self.frag_offset > 0 {
            // A non-first fragment carries payload bytes, not an L4 header.
            l4.iter_mut().for_each(|b| *b = 0xab);
        }
        let fragmented = self.frag_offset > 0 || self.more_frags;
        let mut ext: Vec<u8> = Vec::new();
        let mut first_nh = if fragmented { 44 } else { self.proto };
        if self.options {
            // Hop-by-hop options: one PadN option filling the 8 bytes.
            ext.extend_from_slice(&[first_nh, 0, 1, 4, 0, 0, 0, 0]);
            first_nh = 0;
        }
        if fragmented {
            let mut off = self.frag_offset & !7;
            if self.more_frags {
                off |= 1;
            }
            ext.extend_from_slice(&[self.proto, 0]);
            ext.extend_from_slice(&off.to_be_bytes());
            ext.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        }
        let payload_len = ext.len() + l4.len();
        let mut ip = vec![0u8; 40];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
        ip[6] = first_nh;
        ip[7] = self.ttl;
        ip[8..24].copy_from_slice(&self.src6.octets());
        ip[24..40].copy_from_slice(&self.dst6.octets());
        ip.extend_from_slice(&ext);
        ip.extend_from_slice(&l4);
        ip
    }

    /// An Ethernet frame of this packet from `src_mac` to `dst_mac`.
    pub fn frame(&self, dst_mac: Mac, src_mac: Mac) -> Vec<u8> {
        let mut f = Vec::with_capacity(2048);
        f.extend_from_slice(&dst_mac.0);
        f.extend_from_slice(&src_mac.0);
        let ethertype: u16 = if self.v6 { 0x86dd } else { 0x0800 };
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(&self.ip_bytes());
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let p = PacketSpec::parse("in=wan tcp 198.18.0.2:40000 > 198.18.0.1:22 flags=S").unwrap();
        assert_eq!(
            (p.proto, p.sport, p.dport, p.tcp_flags),
            (6, 40000, 22, 0x02)
        );
        let p = PacketSpec::parse("in=host tcp 198.18.0.1:22 > 198.18.0.2:40000 flags=SA").unwrap();
        assert_eq!((p.input.as_str(), p.tcp_flags), ("host", 0x12));
        let p = PacketSpec::parse("in=lan udp 198.19.0.2:5353 > 203.0.113.9:53 ttl=1").unwrap();
        assert_eq!((p.proto, p.ttl), (17, 1));
        let p = PacketSpec::parse("in=wan icmp 198.18.0.2 > 198.19.0.2 type=echo-request").unwrap();
        assert_eq!(p.icmp_type, 8);
        let p = PacketSpec::parse(
            "in=wan icmp 203.0.113.9 > 198.18.0.1 type=destination-unreachable code=port-unreachable inner udp 198.18.0.1:40000 > 203.0.113.9:53",
        )
        .unwrap();
        assert_eq!((p.icmp_type, p.icmp_code), (3, 3));
        assert_eq!(p.inner.as_ref().unwrap().dport, 53);
        let b = p.ip_bytes();
        assert_eq!(b.len(), 20 + 8 + 20 + 8);
    }

    #[test]
    fn rejects_bad_input_with_a_reason() {
        for (bad, why) in [
            ("tcp 1.2.3.4:1 > 1.2.3.5:2", "in="),
            ("in=wan tcp 1.2.3.4 > 1.2.3.5:2", "ADDRESS:PORT"),
            ("in=wan sctp 1.2.3.4 > 1.2.3.5", "expected tcp"),
            ("in=wan tcp 1.2.3.4:1 1.2.3.5:2", "`>`"),
            ("in=wan tcp 1.2.3.4:1 > 1.2.3.5:2 flags=X", "TCP flag"),
            (
                "in=wan udp 1.2.3.4:1 > 1.2.3.5:2 type=echo-request",
                "not an option",
            ),
        ] {
            let e = PacketSpec::parse(bad).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }
    use dataplane::wire::{ipv6, tcp};

    /// The frame's IPv6 header view, its extension chain and upper layer.
    fn v6_parts(f: &[u8]) -> (ipv6::Packet<&[u8]>, ipv6::Chain, &[u8]) {
        assert_eq!(&f[12..14], &[0x86, 0xdd], "ethertype IPv6");
        let ip = ipv6::Packet::new_checked(&f[14..]).expect("a whole IPv6 header");
        assert_eq!(ip.version(), 6);
        assert_eq!(ip.payload_len() as usize, f.len() - 14 - 40);
        let chain = ip.chain().expect("a valid extension chain");
        let upper = &f[14 + 40 + chain.offset..];
        (ip, chain, upper)
    }

    #[test]
    fn builds_ipv6_tcp_with_a_valid_checksum() {
        let p = PacketSpec::parse("in=wan tcp [2001:db8::2]:40000 > [2001:db8:1::1]:22 flags=S")
            .unwrap();
        assert!(p.v6);
        assert_eq!(p.dst_ip(), "2001:db8:1::1".parse::<IpAddr>().unwrap());
        let f = p.frame(Mac::ZERO, Mac::ZERO);
        let (ip, chain, l4) = v6_parts(&f);
        assert_eq!((ip.next_header(), ip.hop_limit()), (6, 64));
        assert_eq!(
            ip.src_addr(),
            u128::from("2001:db8::2".parse::<Ipv6Addr>().unwrap())
        );
        assert_eq!(chain.upper, Some(6));
        let t = tcp::Packet::new_checked(l4).unwrap();
        assert_eq!((t.src_port(), t.dst_port(), t.flags()), (40000, 22, 0x02));
        assert!(checksum::verify6(ip.src_addr(), ip.dst_addr(), 6, l4));
    }

    #[test]
    fn builds_ipv6_udp_with_hop_limit() {
        for text in [
            "in=wan udp [2001:db8::2]:5353 > [2001:db8:5::9]:53 hl=1",
            "in=wan udp [2001:db8::2]:5353 > [2001:db8:5::9]:53 ttl=1",
        ] {
            let p = PacketSpec::parse(text).unwrap();
            let f = p.frame(Mac::ZERO, Mac::ZERO);
            let (ip, _, l4) = v6_parts(&f);
            assert_eq!((ip.next_header(), ip.hop_limit()), (17, 1), "{text}");
            assert_eq!(l4.len(), 8);
            assert!(checksum::verify_udp6(ip.src_addr(), ip.dst_addr(), l4));
        }
    }

    #[test]
    fn builds_icmpv6_echo_and_packet_too_big_with_its_quote() {
        let p = PacketSpec::parse("in=wan icmpv6 2001:db8::2 > 2001:db8::1 type=echo-request id=7")
            .unwrap();
        let f = p.frame(Mac::ZERO, Mac::ZERO);
        let (ip, _, m) = v6_parts(&f);
        let c = icmpv6::Packet::new_checked(m).unwrap();
        assert_eq!((c.msg_type(), c.echo_ident()), (icmpv6::ECHO_REQUEST, 7));
        assert!(c.verify_checksum(ip.src_addr(), ip.dst_addr()));

        let p = PacketSpec::parse(
            "in=wan icmpv6 2001:db8:5::9 > 2001:db8::2 type=packet-too-big mtu=1280 inner tcp [2001:db8::2]:40000 > [2001:db8:5::9]:443 len=1400",
        )
        .unwrap();
        let f = p.frame(Mac::ZERO, Mac::ZERO);
        let (ip, _, m) = v6_parts(&f);
        let c = icmpv6::Packet::new_checked(m).unwrap();
        assert_eq!((c.msg_type(), c.mtu()), (icmpv6::PACKET_TOO_BIG, 1280));
        assert!(c.verify_checksum(ip.src_addr(), ip.dst_addr()));
        // The quote is cut so that the error fits the minimum MTU.
        assert_eq!(f.len() - 14, ipv6::MIN_MTU);
        // A cut quote: its payload length says more than is there.
        let q = ipv6::Packet::new_unchecked(c.payload());
        assert_eq!((q.next_header(), q.src_addr()), (6, ip.dst_addr()));
        let t = tcp::Packet::new_checked(&c.payload()[40..]).unwrap();
        assert_eq!(t.dst_port(), 443);

        let p = PacketSpec::parse(
            "in=wan icmpv6 2001:db8:5::9 > 2001:db8::2 type=destination-unreachable code=port-unreachable inner udp [2001:db8::2]:40000 > [2001:db8:5::9]:53",
        )
        .unwrap();
        assert_eq!((p.icmp_type, p.icmp_code), (1, icmpv6::PORT_UNREACHABLE));
        assert_eq!(p.ip_bytes().len(), 40 + 8 + 40 + 8);
    }

    #[test]
    fn builds_ipv6_fragment_and_hop_by_hop_headers() {
        let p =
            PacketSpec::parse("in=wan udp [2001:db8::2]:1 > [2001:db8:5::9]:2 frag=more").unwrap();
        let f = p.frame(Mac::ZERO, Mac::ZERO);
        let (ip, chain, l4) = v6_parts(&f);
        assert_eq!(ip.next_header(), ipv6::NH_FRAGMENT);
        let fr = chain.fragment.expect("a fragment header");
        assert!(fr.more && fr.is_first());
        assert_eq!(chain.upper, Some(17));
        assert!(checksum::verify_udp6(ip.src_addr(), ip.dst_addr(), l4));
        // A TCP header (20 bytes) is padded to 24 in a fragment with MF.
        let p =
            PacketSpec::parse("in=wan tcp [2001:db8::2]:1 > [2001:db8:5::9]:2 frag=more").unwrap();
        let f = p.frame(Mac::ZERO, Mac::ZERO);
        let (ip, chain, l4) = v6_parts(&f);
        assert_eq!((chain.upper, l4.len()), (Some(6), 24));
        assert!(checksum::verify6(ip.src_addr(), ip.dst_addr(), 6, l4));

        let p = PacketSpec::parse("in=wan udp [2001:db8::2]:1 > [2001:db8:5::9]:2 frag=64 options")
            .unwrap();
        let f = p.frame(Mac::ZERO, Mac::ZERO);
        let (ip, chain, _) = v6_parts(&f);
        assert_eq!(ip.next_header(), ipv6::NH_HOP_BY_HOP);
        assert!(chain.hop_by_hop);
        let fr = chain.fragment.expect("a fragment header");
        assert_eq!((fr.offset, fr.more), (64, false));
        assert_eq!((chain.upper, chain.last_next_header), (None, 17));
    }

    #[test]
    fn rejects_mixed_families_and_wrong_protocols_for_the_family() {
        for (bad, why) in [
            ("in=wan tcp 198.18.0.2:1 > [2001:db8::1]:22", "mixes IPv4 and IPv6"),
            ("in=wan icmpv6 2001:db8::2 > 198.18.0.1", "mixes IPv4 and IPv6"),
            ("in=wan icmp 2001:db8::2 > 2001:db8::1", "icmpv6"),
            ("in=wan icmpv6 198.18.0.2 > 198.18.0.1", "write icmp"),
            ("in=wan tcp 2001:db8::2:40000 > [2001:db8::1]:22", "[ADDRESS]:PORT"),
            ("in=wan tcp [2001:db8::2] > [2001:db8::1]:22", "[ADDRESS]:PORT"),
            ("in=wan tcp [198.18.0.2]:1 > [2001:db8::1]:22", "not an IPv6 address"),
            ("in=wan udp [2001:db8::2]:1 > [2001:db8::1]:2 df", "df is IPv4's"),
            (
                "in=wan icmpv6 2001:db8::9 > 2001:db8::2 type=time-exceeded inner udp 198.18.0.1:1 > 203.0.113.9:53",
                "own family",
            ),
            ("in=wan icmpv6 2001:db8::9 > 2001:db8::2 type=bogus", "ICMPv6 type name"),
            ("in=wan icmp 198.18.0.2 > 198.18.0.1 mtu=1280", "not an option"),
        ] {
            let e = PacketSpec::parse(bad).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }
}
