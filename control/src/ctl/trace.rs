//! The control side of live traces: match words to a
//! [`TraceRequest`], records from the workers to explain's words, and a
//! [`TraceService`] that routerd's [`ControlHandler`](super::api::ControlHandler)
//! forwards its trace methods to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use dataplane::packet::PortId;
use dataplane::tables::Tables;
use dataplane::trace_capture::{
    IpPrefix, PacketSummary, TraceHub, TraceMatch, TraceRecord, TraceRequest, MAX_TRACE_COUNT,
};
use dataplane::wire::icmpv6;

use super::api::{TracePoll, TraceStart, TracedPacket};
use crate::explain::{render_events, Rendering};

/// Parse tcpdump-like match words: `ip`, `ip6`, `tcp`, `udp`, `icmp`,
/// `icmpv6`, `proto N`, `src A[/N]`, `dst A[/N]`, `host A[/N]` (IPv4 or
/// IPv6), `sport P`, `dport P`, `port P`.
/// Words may also be written `key=value` (`dport=22`).
pub fn parse_match(words: &[String]) -> Result<TraceMatch, String> {
    let mut toks: Vec<String> = Vec::new();
    for w in words {
        for t in w.split_whitespace() {
            match t.split_once('=') {
                Some((k, v)) => {
                    toks.push(k.to_string());
                    toks.push(v.to_string());
                }
                None => toks.push(t.to_string()),
            }
        }
    }
    let mut m = TraceMatch::default();
    let mut it = toks.iter();
    let prefix = |k: &str, v: Option<&String>| -> Result<IpPrefix, String> {
        let v = v.ok_or_else(|| format!("match `{k}`: expected an address or prefix after it"))?;
        v.parse::<IpPrefix>()
            .map_err(|e| format!("match `{k} {v}`: expected {e}"))
    };
    let port = |k: &str, v: Option<&String>| -> Result<u16, String> {
        let v = v.ok_or_else(|| format!("match `{k}`: expected a port after it"))?;
        v.parse::<u16>()
            .map_err(|_| format!("match `{k} {v}`: expected a port (0-65535)"))
    };
    while let Some(t) = it.next() {
        match t.as_str() {
            "tcp" => m.proto = Some(6),
            "udp" => m.proto = Some(17),
            "icmp" => m.proto = Some(1),
            "icmpv6" => m.proto = Some(58),
            "ip" => m.v6 = Some(false),
            "ip6" => m.v6 = Some(true),
            "proto" => {
                let v = it.next().ok_or("match `proto`: expected a protocol number")?;
                m.proto = Some(
                    v.parse()
                        .map_err(|_| format!("match `proto {v}`: expected 0-255"))?,
                );
            }
            "src" => m.src = Some(prefix(t, it.next())?),
            "dst" => m.dst = Some(prefix(t, it.next())?),
            "host" => m.host = Some(prefix(t, it.next())?),
            "sport" => m.sport = Some(port(t, it.next())?),
            "dport" => m.dport = Some(port(t, it.next())?),
            "port" => m.port = Some(port(t, it.next())?),
            other => {
                return Err(format!(
                    "match `{other}`: expected tcp, udp, icmp, icmpv6, ip, ip6, proto N, src/dst/host ADDRESS[/LEN], sport/dport/port PORT"
                ))
            }
        }
    }
    Ok(m)
}

/// Build the dataplane request; `in` is resolved against `tables`.
pub fn to_request(tables: &Tables, req: &TraceStart) -> Result<TraceRequest, String> {
    let in_port = match req.input.as_deref() {
        None => None,
        Some("host") => Some(PortId::HOST),
        Some(name) => Some(tables.port_by_name(name).ok_or_else(|| {
            format!(
                "--in {name}: not an interface of the running config (interfaces: {}, or host)",
                tables
                    .interfaces
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?),
    };
    if req.count == 0 || req.count > MAX_TRACE_COUNT {
        return Err(format!(
            "--count {}: expected 1 to {MAX_TRACE_COUNT}",
            req.count
        ));
    }
    Ok(TraceRequest {
        count: req.count,
        in_port,
        matcher: parse_match(&req.matcher)?,
    })
}

fn icmp_type_name(t: u8) -> Option<&'static str> {
    Some(match t {
        0 => "echo-reply",
        3 => "destination-unreachable",
        5 => "redirect",
        8 => "echo-request",
        11 => "time-exceeded",
        12 => "parameter-problem",
        13 => "timestamp-request",
        14 => "timestamp-reply",
        _ => return None,
    })
}

fn tcp_flags(f: u8) -> String {
    let mut s = String::new();
    for (bit, c) in [
        (0x02, 'S'),
        (0x10, 'A'),
        (0x01, 'F'),
        (0x04, 'R'),
        (0x08, 'P'),
        (0x20, 'U'),
        (0x40, 'E'),
        (0x80, 'C'),
    ] {
        if f & bit != 0 {
            s.push(c);
        }
    }
    if s.is_empty() {
        s.push_str("none");
    }
    s
}

/// The packet in explain's packet language:
/// `in=wan tcp 198.18.0.2:40000 > 198.18.0.1:22 flags=S ttl=64`,
/// `in=wan tcp [2001:db8::2]:40000 > [2001:db8:1::1]:22 flags=S hl=64`.
pub fn describe(p: &PacketSummary, t: &Tables) -> String {
    let input = format!("in={}", t.port_name(p.port));
    if p.is_ipv6() {
        return format!("{input} {}", describe6(p));
    }
    if !p.is_ipv4() {
        let what = match p.ethertype {
            0x0806 => "arp".to_string(),
            0 => "frame".to_string(),
            e => format!("ethertype 0x{e:04x}"),
        };
        return format!("{input} {what} len={}", p.frame_len);
    }
    let (s, d) = (Ipv4Addr::from(p.src), Ipv4Addr::from(p.dst));
    let body = match p.proto {
        6 | 17 if !p.fragment => {
            let name = if p.proto == 6 { "tcp" } else { "udp" };
            let mut b = format!("{name} {s}:{} > {d}:{}", p.sport, p.dport);
            if p.proto == 6 {
                b.push_str(&format!(" flags={}", tcp_flags(p.tcp_flags)));
            }
            b
        }
        1 if !p.fragment => {
            let ty = icmp_type_name(p.icmp_type)
                .map(str::to_string)
                .unwrap_or_else(|| p.icmp_type.to_string());
            let mut b = format!("icmp {s} > {d} type={ty}");
            if p.icmp_code != 0 {
                b.push_str(&format!(" code={}", p.icmp_code));
            }
            if matches!(p.icmp_type, 0 | 8 | 13 | 14) {
                b.push_str(&format!(" id={}", p.sport));
            }
            b
        }
        n => format!("proto={n} {s} > {d}"),
    };
    let frag = if p.fragment { " frag" } else { "" };
    format!("{input} {body} ttl={}{frag}", p.ttl)
}

/// An IPv6 packet's words after `in=`.
fn describe6(p: &PacketSummary) -> String {
    let (s, d) = (Ipv6Addr::from(p.src6), Ipv6Addr::from(p.dst6));
    let body = match p.proto {
        6 | 17 if !p.fragment => {
            let name = if p.proto == 6 { "tcp" } else { "udp" };
            let mut b = format!("{name} [{s}]:{} > [{d}]:{}", p.sport, p.dport);
            if p.proto == 6 {
                b.push_str(&format!(" flags={}", tcp_flags(p.tcp_flags)));
            }
            b
        }
        58 if !p.fragment => {
            let ty = icmpv6::type_name(p.icmp_type)
                .map(str::to_string)
                .unwrap_or_else(|| p.icmp_type.to_string());
            let mut b = format!("icmpv6 {s} > {d} type={ty}");
            if p.icmp_code != 0 {
                b.push_str(&format!(" code={}", p.icmp_code));
            }
            if matches!(p.icmp_type, icmpv6::ECHO_REQUEST | icmpv6::ECHO_REPLY) {
                b.push_str(&format!(" id={}", p.sport));
            }
            b
        }
        n => format!("proto={n} {s} > {d}"),
    };
    let frag = if p.fragment { " frag" } else { "" };
    format!("{body} hl={}{frag}", p.ttl)
}

/// A record in explain's words.
pub fn render_record(r: &TraceRecord) -> TracedPacket {
    let t = &*r.tables;
    let e = render_events(&Rendering {
        tables: t,
        head: describe(&r.packet, t),
        input: t.port_name(r.packet.port).to_string(),
        dst: if r.packet.is_ipv6() {
            IpAddr::V6(Ipv6Addr::from(r.packet.dst6))
        } else {
            IpAddr::V4(Ipv4Addr::from(r.packet.dst))
        },
        events: &r.events,
        out_frame: &r.out_head,
        flow: &|f| r.flow(f),
        is_static: &|a, port| match a {
            IpAddr::V4(a) => r.static_neighbours.contains(&u32::from(a)),
            IpAddr::V6(a) => r.static_neighbours6.contains(&(u128::from(a), port)),
        },
        learned: "resolved",
    });
    TracedPacket {
        worker: r.worker,
        lines: e.lines,
        json: e.json,
    }
}

/// The trace half of a control handler: owns the hub the workers watch.
#[derive(Clone, Default)]
pub struct TraceService {
    hub: Arc<TraceHub>,
}

impl TraceService {
    /// A service with its own hub.
    pub fn new() -> TraceService {
        TraceService::default()
    }

    /// The hub to hand to every worker.
    pub fn hub(&self) -> Arc<TraceHub> {
        Arc::clone(&self.hub)
    }

    /// Arm a trace over the tables in force.
    pub fn start(&self, tables: &Tables, req: &TraceStart) -> Result<(), String> {
        let r = to_request(tables, req)?;
        tracing::info!(count = r.count, input = ?req.input, matcher = ?req.matcher, "trace armed");
        self.hub.arm(r);
        Ok(())
    }

    /// Records traced so far, in words.
    pub fn poll(&self) -> TracePoll {
        let mut packets = Vec::new();
        while let Some(r) = self.hub.pop() {
            packets.push(render_record(&r));
        }
        TracePoll {
            packets,
            remaining: self.hub.remaining(),
            lost: self.hub.lost(),
        }
    }

    /// Stop tracing.
    pub fn stop(&self) {
        self.hub.disarm();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn match_words_parse_like_tcpdump() {
        let m = parse_match(&words("tcp dst 198.18.0.1 dport=22 src 198.18.0.0/24")).unwrap();
        assert_eq!(m.proto, Some(6));
        assert_eq!(m.dport, Some(22));
        assert_eq!(m.dst, "198.18.0.1".parse().ok());
        assert_eq!(m.src, "198.18.0.0/24".parse().ok());
        assert_eq!(parse_match(&[]).unwrap(), TraceMatch::default());
    }

    #[test]
    fn match_words_take_ipv6() {
        let m = parse_match(&words(
            "ip6 tcp dst 2001:db8:1::1 src=2001:db8::/32 port 22",
        ))
        .unwrap();
        assert_eq!(m.v6, Some(true));
        assert_eq!(m.dst, "2001:db8:1::1/128".parse().ok());
        assert!(matches!(m.src, Some(IpPrefix::V6(_))));
        assert_eq!(parse_match(&words("icmpv6")).unwrap().proto, Some(58));
        let e = parse_match(&words("dst 2001:db8::1/129")).unwrap_err();
        assert!(
            e.starts_with("match `dst 2001:db8::1/129`: expected"),
            "{e}"
        );
    }

    #[test]
    fn describes_ipv6_packets_in_the_packet_language() {
        use crate::packet_spec::PacketSpec;
        let t = Tables::build(dataplane::tables::TablesSpec {
            interfaces: vec![dataplane::tables::Interface {
                name: "wan".into(),
                device: "wan0".into(),
                mac: Default::default(),
                addresses: vec![],
                addresses6: vec![],
                mtu: 1500,
                ra: None,
            }],
            ..Default::default()
        });
        let d = |text: &str| {
            let p = PacketSpec::parse(text).unwrap();
            describe(
                &PacketSummary::parse(&p.frame(Default::default(), Default::default()), PortId(0)),
                &t,
            )
        };
        assert_eq!(
            d("in=wan tcp [2001:db8::2]:40000 > [2001:db8:1::1]:22 flags=S"),
            "in=wan tcp [2001:db8::2]:40000 > [2001:db8:1::1]:22 flags=S hl=64"
        );
        assert_eq!(
            d("in=wan icmpv6 2001:db8::2 > 2001:db8::1 type=echo-request id=7 hl=9"),
            "in=wan icmpv6 2001:db8::2 > 2001:db8::1 type=echo-request id=7 hl=9"
        );
        assert_eq!(
            d("in=wan udp [2001:db8::2]:1 > [2001:db8::1]:2 frag=64"),
            "in=wan proto=17 2001:db8::2 > 2001:db8::1 hl=64 frag"
        );
        // What describe prints parses back to the same packet.
        let text = d("in=wan udp [2001:db8::2]:5353 > [2001:db8:5::9]:53 hl=1");
        assert_eq!(
            PacketSpec::parse(&text).unwrap().dst6,
            "2001:db8:5::9".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn bad_match_words_say_what_was_expected() {
        let e = parse_match(&words("tcp dport ssh")).unwrap_err();
        assert_eq!(e, "match `dport ssh`: expected a port (0-65535)");
        let e = parse_match(&words("tcp bogus")).unwrap_err();
        assert!(e.starts_with("match `bogus`: expected tcp, udp"), "{e}");
        let e = parse_match(&words("src")).unwrap_err();
        assert!(e.contains("expected an address"), "{e}");
    }
}
