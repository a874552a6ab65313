//! ICMPv6 echo from a raw socket of our own, as `ping -6 -c COUNT -i
//! INTERVAL -W WAIT [-t HOPS] [-s SIZE]` does, without the `ping` program.
//!
//! The kernel fills in the ICMPv6 checksum of a raw ICMPv6 socket (RFC
//! 3542 3.1) and hands over the message without the IPv6 header, so the
//! hop limit a reply arrived with comes from an `IPV6_HOPLIMIT` control
//! message. Replies are matched by our echo identifier (one per call),
//! errors (packet too big, time exceeded, unreachable) by the echo request
//! they quote.

use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    recvmsg, sendto, setsockopt, socket, sockopt, AddressFamily, ControlMessageOwned, MsgFlags,
    SockFlag, SockProtocol, SockType, SockaddrIn6,
};
use nix::sys::time::TimeVal;

use crate::netns::run_in;
use crate::ping::PingOptions;
use crate::LabError;

const DEST_UNREACHABLE: u8 = 1;
const PACKET_TOO_BIG: u8 = 2;
const TIME_EXCEEDED: u8 = 3;
const PARAMETER_PROBLEM: u8 = 4;
const ECHO_REQUEST: u8 = 128;
const ECHO_REPLY: u8 = 129;
/// ICMPv6 next header number, in a quoted IPv6 header.
const NEXT_ICMPV6: u8 = 58;
/// Echo payload bytes, as `ping`'s default.
pub const PAYLOAD: usize = 56;

/// An ICMPv6 error that came back about one of our requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ping6Error {
    /// Who sent it.
    pub from: Ipv6Addr,
    /// The request's sequence number.
    pub seq: u16,
    /// ICMPv6 type (1 unreachable, 2 packet too big, 3 time exceeded, 4
    /// parameter problem).
    pub icmp_type: u8,
    /// ICMPv6 code.
    pub code: u8,
    /// The MTU a packet too big names (else 0).
    pub mtu: u32,
}

impl Ping6Error {
    /// What `ping` prints for it.
    pub fn describe(&self) -> &'static str {
        match (self.icmp_type, self.code) {
            (PACKET_TOO_BIG, _) => "Packet too big",
            (TIME_EXCEEDED, 0) => "Time exceeded: Hop limit",
            (TIME_EXCEEDED, _) => "Time exceeded: Defragmentation failure",
            (DEST_UNREACHABLE, 0) => "Destination unreachable: No route",
            (DEST_UNREACHABLE, 1) => "Destination unreachable: Administratively prohibited",
            (DEST_UNREACHABLE, 3) => "Destination unreachable: Address unreachable",
            (DEST_UNREACHABLE, 4) => "Destination unreachable: Port unreachable",
            (DEST_UNREACHABLE, _) => "Destination unreachable",
            _ => "Parameter problem",
        }
    }
}

/// What came back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ping6Result {
    /// Echo requests sent.
    pub sent: u32,
    /// Distinct requests answered.
    pub received: u32,
    /// Hop limit of each reply, in arrival order.
    pub hop_limits: Vec<u8>,
    /// ICMPv6 errors about our requests.
    pub errors: Vec<Ping6Error>,
    /// A `ping`-like transcript, for failure messages.
    pub text: String,
}

/// An echo request: type 128, code 0, checksum (the kernel's), identifier,
/// sequence, `payload` bytes.
fn echo_request(id: u16, seq: u16, payload: usize) -> Vec<u8> {
    let mut m = vec![0u8; 8 + payload];
    m[0] = ECHO_REQUEST;
    m[4..6].copy_from_slice(&id.to_be_bytes());
    m[6..8].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in m[8..].iter_mut().enumerate() {
        *b = i as u8;
    }
    m
}

/// What a received ICMPv6 message from `from` says about our echo `id` to `dst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Heard {
    Reply { seq: u16 },
    Error(Ping6Error),
}

fn hear(icmp: &[u8], from: Ipv6Addr, id: u16, dst: Ipv6Addr) -> Option<Heard> {
    if icmp.len() < 8 {
        return None;
    }
    let be16 = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    match icmp[0] {
        ECHO_REPLY if from == dst && be16(&icmp[4..]) == id => Some(Heard::Reply {
            seq: be16(&icmp[6..]),
        }),
        DEST_UNREACHABLE | PACKET_TOO_BIG | TIME_EXCEEDED | PARAMETER_PROBLEM => {
            // RFC 4443 2.1: 4 bytes of type-specific data (the MTU for a
            // packet too big), then as much of the invoking packet as fits.
            let inner = &icmp[8..];
            if inner.len() < 40 + 8 || inner[0] >> 4 != 6 || inner[6] != NEXT_ICMPV6 {
                return None;
            }
            let inner_dst = Ipv6Addr::from(<[u8; 16]>::try_from(&inner[24..40]).ok()?);
            let quoted = &inner[40..];
            (inner_dst == dst && quoted[0] == ECHO_REQUEST && be16(&quoted[4..]) == id).then(|| {
                Heard::Error(Ping6Error {
                    from,
                    seq: be16(&quoted[6..]),
                    icmp_type: icmp[0],
                    code: icmp[1],
                    mtu: if icmp[0] == PACKET_TOO_BIG {
                        u32::from_be_bytes([icmp[4], icmp[5], icmp[6], icmp[7]])
                    } else {
                        0
                    },
                })
            })
        }
        _ => None,
    }
}

fn nix_err(what: &'static str) -> impl FnOnce(nix::Error) -> LabError {
    move |e| LabError::Io {
        what: what.into(),
        err: std::io::Error::from(e),
    }
}

/// A fresh echo identifier per call.
fn next_id() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0x0707);
    (std::process::id() as u16).wrapping_mul(37) ^ NEXT.fetch_add(0x0101, Ordering::Relaxed)
}

/// One received message: its bytes, sender and hop limit; `None` on a
/// timeout.
fn receive(
    fd: &OwnedFd,
    buf: &mut [u8],
    timeout: Duration,
) -> Result<Option<(usize, Ipv6Addr, u8)>, LabError> {
    let tv = TimeVal::new(timeout.as_secs() as i64, i64::from(timeout.subsec_micros()));
    setsockopt(fd, sockopt::ReceiveTimeout, &tv).map_err(nix_err("SO_RCVTIMEO"))?;
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!(i32);
    let msg = match recvmsg::<SockaddrIn6>(
        fd.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    ) {
        Ok(m) => m,
        Err(nix::Error::EAGAIN | nix::Error::EINTR) => return Ok(None),
        Err(e) => return Err(nix_err("receive ICMPv6")(e)),
    };
    let mut hops = 0u8;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::Ipv6HopLimit(h) = c {
                hops = h as u8;
            }
        }
    }
    let from = msg.address.map(|a| a.ip()).unwrap_or(Ipv6Addr::UNSPECIFIED);
    Ok(Some((msg.bytes, from, hops)))
}

/// Pings `dst` with `payload` bytes of echo data from the calling thread's
/// network namespace. Needs root (a raw socket). Bounded: `count *
/// interval + wait`.
pub fn ping6(dst: Ipv6Addr, opts: &PingOptions, payload: usize) -> Result<Ping6Result, LabError> {
    let fd = socket(
        AddressFamily::Inet6,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::IcmpV6,
    )
    .map_err(nix_err("raw ICMPv6 socket"))?;
    setsockopt(&fd, sockopt::Ipv6RecvHopLimit, &true).map_err(nix_err("IPV6_RECVHOPLIMIT"))?;
    if let Some(hops) = opts.ttl {
        setsockopt(&fd, sockopt::Ipv6Ttl, &(hops as i32)).map_err(nix_err("IPV6_UNICAST_HOPS"))?;
    }
    let to = SockaddrIn6::from(SocketAddrV6::new(dst, 0, 0, 0));
    let id = next_id();
    let count = opts.count.min(u32::from(u16::MAX) - 1);
    let mut res = Ping6Result::default();
    let mut sent_at: Vec<Instant> = Vec::new();
    let mut answered = vec![false; count as usize + 1];
    let mut buf = vec![0u8; 65536];
    let mut next_send = Instant::now();
    let mut last_deadline = None;
    loop {
        let now = Instant::now();
        if res.sent < count && now >= next_send {
            let seq = res.sent as u16 + 1;
            sendto(
                fd.as_raw_fd(),
                &echo_request(id, seq, payload),
                &to,
                MsgFlags::empty(),
            )
            .map_err(|e| LabError::Io {
                what: format!("send an echo request to {dst}"),
                err: e.into(),
            })?;
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
        let Some((n, from, hops)) = receive(&fd, &mut buf, timeout)? else {
            continue;
        };
        match hear(&buf[..n], from, id, dst) {
            Some(Heard::Reply { seq }) => {
                let s = usize::from(seq);
                if s == 0 || s > res.sent as usize || answered[s] {
                    continue;
                }
                answered[s] = true;
                res.received += 1;
                res.hop_limits.push(hops);
                let ms = sent_at[s - 1].elapsed().as_secs_f64() * 1e3;
                res.text.push_str(&format!(
                    "{n} bytes from {dst}: icmp_seq={seq} ttl={hops} time={ms:.3} ms\n"
                ));
            }
            Some(Heard::Error(e)) => {
                let mtu = if e.icmp_type == PACKET_TOO_BIG {
                    format!(": mtu={}", e.mtu)
                } else {
                    String::new()
                };
                res.text.push_str(&format!(
                    "From {} icmp_seq={} {}{mtu}\n",
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

/// Pings `dst` from network namespace `ns` with the default 56 bytes.
pub fn ping6_in(ns: &str, dst: &str, opts: &PingOptions) -> Result<Ping6Result, LabError> {
    ping6_sized_in(ns, dst, opts, PAYLOAD)
}

/// Pings `dst` from `ns` with `payload` bytes of echo data (an IPv6
/// packet of `48 + payload` bytes).
pub fn ping6_sized_in(
    ns: &str,
    dst: &str,
    opts: &PingOptions,
    payload: usize,
) -> Result<Ping6Result, LabError> {
    let dst: Ipv6Addr = dst
        .parse()
        .map_err(|_| LabError::Traffic(format!("ping6: bad IPv6 address {dst:?}")))?;
    let opts = *opts;
    run_in(ns, move || ping6(dst, &opts, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: u16 = 0x1234;
    const DST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 2);
    const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
    const RTR: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);

    fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, hops: u8, payload: &[u8]) -> Vec<u8> {
        let mut h = vec![0x60, 0, 0, 0, 0, 0, NEXT_ICMPV6, hops];
        h[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
        h.extend_from_slice(&src.octets());
        h.extend_from_slice(&dst.octets());
        h.extend_from_slice(payload);
        h
    }

    #[test]
    fn replies_and_errors_are_matched_by_id() {
        let req = echo_request(ID, 2, PAYLOAD);
        assert_eq!(req.len(), 64);
        assert_eq!(&req[..8], &[128, 0, 0, 0, 0x12, 0x34, 0, 2]);
        let mut reply = req.clone();
        reply[0] = ECHO_REPLY;
        assert_eq!(hear(&reply, DST, ID, DST), Some(Heard::Reply { seq: 2 }));
        assert_eq!(hear(&reply, DST, ID + 1, DST), None, "someone else's echo");
        assert_eq!(hear(&reply, RTR, ID, DST), None, "not from the target");

        // Packet too big from the router, quoting our request.
        let quoted = ipv6(SRC, DST, 63, &echo_request(ID, 1, 1352));
        let mut ptb = vec![PACKET_TOO_BIG, 0, 0, 0, 0, 0, 0x05, 0x00];
        ptb.extend_from_slice(&quoted[..1280 - 48]);
        let Some(Heard::Error(e)) = hear(&ptb, RTR, ID, DST) else {
            panic!("{:?}", hear(&ptb, RTR, ID, DST));
        };
        assert_eq!((e.from, e.seq, e.mtu), (RTR, 1, 1280));
        assert_eq!(e.describe(), "Packet too big");
        let mut te = ptb.clone();
        te[0] = TIME_EXCEEDED;
        let Some(Heard::Error(e)) = hear(&te, RTR, ID, DST) else {
            panic!("time exceeded");
        };
        assert_eq!((e.mtu, e.describe()), (0, "Time exceeded: Hop limit"));
        assert_eq!(hear(&ptb[..40], RTR, ID, DST), None, "truncated");
    }
}
