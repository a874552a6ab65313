//! ICMP echo from a raw socket of our own, as `ping -c COUNT -i INTERVAL
//! -W WAIT [-t TTL]` does, without the `ping` program.
//!
//! A raw ICMP socket sees every ICMP packet that reaches its namespace:
//! replies are matched by our echo identifier (one per call), errors
//! (time exceeded, unreachable) by the echo request they quote.

use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::netns::run_in;
use crate::{io_err, LabError};

const ECHO_REPLY: u8 = 0;
const DEST_UNREACHABLE: u8 = 3;
const ECHO_REQUEST: u8 = 8;
const TIME_EXCEEDED: u8 = 11;
const PARAMETER_PROBLEM: u8 = 12;
/// ICMP payload bytes, as `ping`'s default (64-byte ICMP messages).
const PAYLOAD: usize = 56;

/// How to ping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PingOptions {
    /// Echo requests to send (`-c`).
    pub count: u32,
    /// Between two requests (`-i`).
    pub interval: Duration,
    /// How long to wait for replies after the last request (`-W`).
    pub wait: Duration,
    /// IP TTL of the requests (`-t`); `None`: the system's default.
    pub ttl: Option<u32>,
}

impl PingOptions {
    /// `count` requests 0.2 s apart, waiting 2 s after the last.
    pub fn count(count: u32) -> PingOptions {
        PingOptions {
            count,
            interval: Duration::from_millis(200),
            wait: Duration::from_secs(2),
            ttl: None,
        }
    }
}

/// An ICMP error that came back about one of our requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PingError {
    /// Who sent it.
    pub from: Ipv4Addr,
    /// The request's sequence number.
    pub seq: u16,
    /// ICMP type (3 unreachable, 11 time exceeded, 12 parameter problem).
    pub icmp_type: u8,
    /// ICMP code.
    pub code: u8,
}

impl PingError {
    /// What `ping` prints for it.
    pub fn describe(&self) -> &'static str {
        match (self.icmp_type, self.code) {
            (TIME_EXCEEDED, 0) => "Time to live exceeded",
            (TIME_EXCEEDED, _) => "Frag reassembly time exceeded",
            (DEST_UNREACHABLE, 0) => "Destination Net Unreachable",
            (DEST_UNREACHABLE, 1) => "Destination Host Unreachable",
            (DEST_UNREACHABLE, 3) => "Destination Port Unreachable",
            (DEST_UNREACHABLE, 13) => "Packet filtered",
            (DEST_UNREACHABLE, _) => "Destination Unreachable",
            _ => "Parameter problem",
        }
    }
}

/// What came back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PingResult {
    /// Echo requests sent.
    pub sent: u32,
    /// Distinct requests answered.
    pub received: u32,
    /// TTL of each reply, in arrival order.
    pub ttls: Vec<u8>,
    /// ICMP errors about our requests.
    pub errors: Vec<PingError>,
    /// A `ping`-like transcript, for failure messages.
    pub text: String,
}

/// The internet checksum (RFC 1071) of `data`.
fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in data.chunks(2) {
        let word = u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request: type 8, code 0, checksum, identifier, sequence, payload.
fn echo_request(id: u16, seq: u16) -> Vec<u8> {
    let mut m = vec![0u8; 8 + PAYLOAD];
    m[0] = ECHO_REQUEST;
    m[4..6].copy_from_slice(&id.to_be_bytes());
    m[6..8].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in m[8..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let c = checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// What a received IPv4 packet (the raw socket hands over the IP header)
/// says about our echo `id` to `dst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Heard {
    Reply { seq: u16, ttl: u8 },
    Error(PingError),
}

fn ihl(ip: &[u8]) -> Option<usize> {
    let len = usize::from(ip.first()? & 0x0f) * 4;
    (ip.first()? >> 4 == 4 && len >= 20 && ip.len() >= len).then_some(len)
}

fn hear(pkt: &[u8], id: u16, dst: Ipv4Addr) -> Option<Heard> {
    let hl = ihl(pkt)?;
    if pkt[9] != 1 {
        return None;
    }
    let from = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
    let icmp = &pkt[hl..];
    if icmp.len() < 8 {
        return None;
    }
    let be16 = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    match icmp[0] {
        ECHO_REPLY if from == dst && be16(&icmp[4..]) == id => Some(Heard::Reply {
            seq: be16(&icmp[6..]),
            ttl: pkt[8],
        }),
        DEST_UNREACHABLE | TIME_EXCEEDED | PARAMETER_PROBLEM => {
            let inner = &icmp[8..];
            let ihl2 = ihl(inner)?;
            let quoted = &inner[ihl2..];
            let inner_dst = Ipv4Addr::new(inner[16], inner[17], inner[18], inner[19]);
            (inner[9] == 1
                && inner_dst == dst
                && quoted.len() >= 8
                && quoted[0] == ECHO_REQUEST
                && be16(&quoted[4..]) == id)
                .then(|| {
                    Heard::Error(PingError {
                        from,
                        seq: be16(&quoted[6..]),
                        icmp_type: icmp[0],
                        code: icmp[1],
                    })
                })
        }
        _ => None,
    }
}

/// A fresh echo identifier per call (several pings may share a namespace).
fn next_id() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    (std::process::id() as u16).wrapping_mul(31) ^ NEXT.fetch_add(0x0101, Ordering::Relaxed)
}

/// Pings `dst` from the calling thread's network namespace. Needs root
/// (a raw socket). Bounded: `count * interval + wait`.
pub fn ping(dst: Ipv4Addr, opts: &PingOptions) -> Result<PingResult, LabError> {
    let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
        .map_err(io_err("raw ICMP socket"))?;
    if let Some(ttl) = opts.ttl {
        sock.set_ttl_v4(ttl).map_err(io_err("IP_TTL"))?;
    }
    let to = SockAddr::from(SocketAddrV4::new(dst, 0));
    let id = next_id();
    let count = opts.count.min(u32::from(u16::MAX) - 1);
    let mut res = PingResult::default();
    let mut sent_at: Vec<Instant> = Vec::new();
    let mut answered = vec![false; count as usize + 1];
    let mut buf = vec![0u8; 2048];
    let start = Instant::now();
    let mut next_send = start;
    let mut last_deadline = None;
    loop {
        let now = Instant::now();
        if res.sent < count && now >= next_send {
            let seq = res.sent as u16 + 1;
            sock.send_to(&echo_request(id, seq), &to)
                .map_err(io_err(format!("send an echo request to {dst}")))?;
            sent_at.push(Instant::now());
            res.sent += 1;
            next_send += opts.interval;
            if res.sent == count {
                last_deadline = Some(Instant::now() + opts.wait);
            }
            continue;
        }
        let until = match last_deadline {
            Some(d) => {
                if now >= d || res.received == count {
                    break;
                }
                d
            }
            None => next_send,
        };
        let timeout = until
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        sock.set_read_timeout(Some(timeout))
            .map_err(io_err("SO_RCVTIMEO"))?;
        let n = match (&sock).read(&mut buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err("receive ICMP")(e)),
        };
        match hear(&buf[..n], id, dst) {
            Some(Heard::Reply { seq, ttl }) => {
                let s = usize::from(seq);
                if s == 0 || s > res.sent as usize || answered[s] {
                    continue;
                }
                answered[s] = true;
                res.received += 1;
                res.ttls.push(ttl);
                let ms = sent_at[s - 1].elapsed().as_secs_f64() * 1e3;
                res.text.push_str(&format!(
                    "{} bytes from {dst}: icmp_seq={seq} ttl={ttl} time={ms:.3} ms\n",
                    n - ihl(&buf[..n]).unwrap_or(20)
                ));
            }
            Some(Heard::Error(e)) => {
                res.text.push_str(&format!(
                    "From {} icmp_seq={} {}\n",
                    e.from,
                    e.seq,
                    e.describe()
                ));
                res.errors.push(e);
            }
            None => {}
        }
    }
    res.text.push_str(&format!(
        "--- {dst} ping statistics ---\n{} packets transmitted, {} received, {} errors\n",
        res.sent,
        res.received,
        res.errors.len()
    ));
    Ok(res)
}

/// Pings `dst` from network namespace `ns` (a thread that enters it).
pub fn ping_in(ns: &str, dst: &str, opts: &PingOptions) -> Result<PingResult, LabError> {
    let dst: Ipv4Addr = dst
        .parse()
        .map_err(|_| LabError::Traffic(format!("ping: bad IPv4 address {dst:?}")))?;
    let opts = *opts;
    run_in(ns, move || ping(dst, &opts))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: u16 = 0x1234;
    const DST: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);

    fn ipv4(src: [u8; 4], dst: [u8; 4], ttl: u8, payload: &[u8]) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 0, 0, 0, 0, 0, ttl, 1, 0, 0];
        h[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h.extend_from_slice(payload);
        h
    }

    #[test]
    fn the_request_checksums_to_zero() {
        let m = echo_request(ID, 3);
        assert_eq!(m.len(), 64);
        assert_eq!(&m[..2], &[8, 0]);
        assert_eq!(&m[4..8], &[0x12, 0x34, 0, 3]);
        assert_eq!(checksum(&m), 0);
        // RFC 1071's example words: 0x0001 0xf203 0xf4f5 0xf6f7 sum to 0xddf2.
        assert_eq!(checksum(&[0, 1, 0xf2, 3, 0xf4, 0xf5, 0xf6, 0xf7]), !0xddf2);
    }

    #[test]
    fn replies_and_errors_are_matched_by_id() {
        let mut reply = echo_request(ID, 2);
        reply[0] = ECHO_REPLY;
        let pkt = ipv4([198, 19, 0, 2], [198, 18, 0, 2], 63, &reply);
        assert_eq!(hear(&pkt, ID, DST), Some(Heard::Reply { seq: 2, ttl: 63 }));
        assert_eq!(hear(&pkt, ID + 1, DST), None, "someone else's echo");
        let other_src = ipv4([198, 19, 0, 9], [198, 18, 0, 2], 63, &reply);
        assert_eq!(hear(&other_src, ID, DST), None);

        // Time exceeded from the router, quoting our request with TTL 1.
        let quoted = ipv4(
            [198, 18, 0, 2],
            [198, 19, 0, 2],
            1,
            &echo_request(ID, 1)[..8],
        );
        let mut te = vec![TIME_EXCEEDED, 0, 0, 0, 0, 0, 0, 0];
        te.extend_from_slice(&quoted);
        let pkt = ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64, &te);
        let Some(Heard::Error(e)) = hear(&pkt, ID, DST) else {
            panic!("{:?}", hear(&pkt, ID, DST));
        };
        assert_eq!(e.from, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(e.seq, 1);
        assert_eq!(e.describe(), "Time to live exceeded");
        assert_eq!(hear(&pkt[..30], ID, DST), None, "truncated");
    }
}
