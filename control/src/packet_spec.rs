//! The packet language of `routerctl explain` and `trace` filters:
//!
//! ```text
//! in=wan tcp 198.18.0.2:40000 > 198.18.0.1:22 flags=S
//! in=host tcp 198.18.0.1:22 > 198.18.0.2:40000 flags=SA
//! in=lan udp 198.19.0.2:5353 > 203.0.113.9:53 ttl=1
//! in=wan icmp 198.18.0.2 > 198.19.0.2 type=echo-request id=7
//! in=wan icmp 203.0.113.9 > 198.18.0.1 type=destination-unreachable code=3 inner udp 198.18.0.1:40000 > 203.0.113.9:53
//! in=wan proto=47 198.18.0.2 > 198.19.0.2
//! ```
//! Options: `ttl=N`, `len=N` (payload bytes), `flags=` TCP flags as letters
//! (S syn, A ack, F fin, R rst, P psh, U urg, E ece, C cwr; `none`), `type=`
//! and `code=` (ICMP, names or numbers), `id=` (ICMP query id), `frag=more`
//! (first fragment, MF set) or `frag=N` (non-first fragment at byte offset
//! N), `df` (don't fragment), `options` (a 4-byte NOP option). After `inner`
//! comes the packet an ICMP error quotes.

use std::net::Ipv4Addr;

use dataplane::addr::Mac;
use dataplane::wire::checksum;
use dataplane::wire::icmp;

/// A parsed packet description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketSpec {
    /// Arrival interface name (`host` for the router itself).
    pub input: String,
    pub proto: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u8,
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub icmp_id: u16,
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

fn parse_endpoint(text: &str, s: &str, with_port: bool) -> Result<(Ipv4Addr, u16), SpecError> {
    if with_port {
        let (a, p) = s
            .rsplit_once(':')
            .ok_or_else(|| err(text, format!("`{s}`: expected ADDRESS:PORT")))?;
        let a = a
            .parse()
            .map_err(|_| err(text, format!("`{a}` is not an IPv4 address")))?;
        let p = p
            .parse()
            .map_err(|_| err(text, format!("`{p}` is not a port (0-65535)")))?;
        Ok((a, p))
    } else {
        let a = s
            .parse()
            .map_err(|_| err(text, format!("`{s}` is not an IPv4 address")))?;
        Ok((a, 0))
    }
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

impl PacketSpec {
    /// Parse one description.
    pub fn parse(text: &str) -> Result<PacketSpec, SpecError> {
        let words: Vec<&str> = text.split_whitespace().collect();
        Self::parse_words(text, &words, true)
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
        let proto_word = words
            .get(i)
            .ok_or_else(|| err(text, "expected a protocol: tcp, udp, icmp or proto=N"))?;
        let proto: u8 = match *proto_word {
            "tcp" => 6,
            "udp" => 17,
            "icmp" => 1,
            w => match w.strip_prefix("proto=") {
                Some(n) => parse_num(text, "proto", n)?,
                None => {
                    return Err(err(
                        text,
                        format!("`{w}`: expected tcp, udp, icmp or proto=N"),
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
        let mut p = PacketSpec {
            input: input.unwrap_or_default(),
            proto,
            src,
            dst,
            sport,
            dport,
            tcp_flags: if proto == 6 { 0x02 } else { 0 },
            icmp_type: if proto == 1 { icmp::ECHO_REQUEST } else { 0 },
            icmp_code: 0,
            icmp_id: 1,
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
                p.inner = Some(Box::new(inner));
                break;
            }
            match w {
                "df" => p.dont_frag = true,
                "options" => p.options = true,
                _ => {
                    let (k, v) = w
                        .split_once('=')
                        .ok_or_else(|| err(text, format!("`{w}`: expected KEY=VALUE")))?;
                    match k {
                        "flags" if proto == 6 => p.tcp_flags = parse_flags(text, v)?,
                        "ttl" => p.ttl = parse_num(text, k, v)?,
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
                        "code" if proto == 1 => {
                            p.icmp_code = match icmp_code_by_name(v) {
                                Some(c) => c,
                                None => parse_num(text, k, v)?,
                            }
                        }
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

    /// The IPv4 packet (header and payload).
    pub fn ip_bytes(&self) -> Vec<u8> {
        let ihl = if self.options { 24 } else { 20 };
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
            _ => vec![0u8; self.payload.max(8)],
        };
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

    /// An Ethernet frame of this packet from `src_mac` to `dst_mac`.
    pub fn frame(&self, dst_mac: Mac, src_mac: Mac) -> Vec<u8> {
        let mut f = Vec::with_capacity(2048);
        f.extend_from_slice(&dst_mac.0);
        f.extend_from_slice(&src_mac.0);
        f.extend_from_slice(&0x0800u16.to_be_bytes());
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
}
