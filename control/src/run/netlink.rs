//! A small synchronous rtnetlink client: what routerd asks of the kernel's
//! routing side (links, IPv4 and IPv6 addresses, IPv4 and IPv6 routes), over the
//! `netlink-packet-route` message types and a `netlink-sys` socket.
//!
//! One request at a time, answered before the next one goes out; no
//! threads, no async runtime. Never used on the packet path.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// The `rtm_protocol` routerd marks its own kernel routes with (the host
/// path's routes through the TUN), so that the kernel route feed never
/// mirrors them back. Not one of iproute2's `rt_protos` names.
pub const RTPROT_ROUTERD: u8 = crate::config::RTPROT_ROUTERD;

/// How a route request changes the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteOp {
    /// Add; fails with `AlreadyExists` if the kernel has the route.
    Add,
    /// Add or replace.
    Replace,
    /// Delete.
    Del,
}

/// A netlink socket to the kernel's routing side.
pub struct Rtnl {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Rtnl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rtnl").field("seq", &self.seq).finish()
    }
}

/// Receive buffer size for answers (a dump comes in messages of at most
/// about 32 KiB).
const RECV_BUF: usize = 64 * 1024;

impl Rtnl {
    /// A socket in the calling thread's network namespace.
    pub fn new() -> io::Result<Rtnl> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Rtnl {
            sock,
            seq: 0,
            buf: vec![0; RECV_BUF],
        })
    }

    /// Sends `msg` with `flags` (plus `NLM_F_REQUEST`) and collects the
    /// answer: the messages of a dump, or nothing for an acknowledged
    /// change. A kernel error becomes the `io::Error` of its errno.
    pub fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        nl.finalize();
        let mut out = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut out);
        self.sock.send(&out, 0)?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut answer = Vec::new();
        loop {
            let n = self.sock.recv(&mut &mut self.buf[..], 0)?;
            let mut off = 0;
            while off + 16 <= n {
                let len = u32::from_ne_bytes(self.buf[off..off + 4].try_into().unwrap()) as usize;
                if len < 16 || off + len > n {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "truncated netlink message",
                    ));
                }
                let bytes = &self.buf[off..off + len];
                off += (len + 3) & !3;
                let msg_seq = u32::from_ne_bytes(bytes[8..12].try_into().unwrap());
                if msg_seq != seq {
                    continue; // an answer to an earlier, abandoned request
                }
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                match m.payload {
                    NetlinkPayload::Done(_) => return Ok(answer),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(answer),
                            Some(_) => Err(e.to_io()),
                        }
                    }
                    NetlinkPayload::InnerMessage(inner) => {
                        answer.push(inner);
                        if !dump {
                            return Ok(answer);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Sets `mtu` and brings the link with `index` up.
    pub fn set_link_up(&mut self, index: u32, mtu: u32) -> io::Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        m.attributes.push(LinkAttribute::Mtu(mtu));
        self.request(RouteNetlinkMessage::SetLink(m), NLM_F_ACK)
            .map(drop)
    }

    /// The IPv4 addresses (address, prefix length) of the link `index`.
    pub fn ipv4_addresses(&mut self, index: u32) -> io::Result<Vec<(Ipv4Addr, u8)>> {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        let all = self.request(RouteNetlinkMessage::GetAddress(m), NLM_F_DUMP)?;
        let mut out = Vec::new();
        for msg in all {
            let RouteNetlinkMessage::NewAddress(a) = msg else {
                continue;
            };
            if a.header.index != index || a.header.family != AddressFamily::Inet {
                continue;
            }
            // IFA_LOCAL is the address; IFA_ADDRESS the peer's on a
            // point-to-point link.
            let local = a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Local(std::net::IpAddr::V4(v)) => Some(*v),
                _ => None,
            });
            let addr = local.or_else(|| {
                a.attributes.iter().find_map(|x| match x {
                    AddressAttribute::Address(std::net::IpAddr::V4(v)) => Some(*v),
                    _ => None,
                })
            });
            if let Some(v) = addr {
                out.push((v, a.header.prefix_len));
            }
        }
        Ok(out)
    }

    /// The permanent global IPv6 addresses (address, prefix length) of the
    /// link `index`: not link-local ones (the kernel makes them) nor those
    /// formed from router advertisements (they come back with the next).
    pub fn ipv6_addresses(&mut self, index: u32) -> io::Result<Vec<(Ipv6Addr, u8)>> {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet6;
        let all = self.request(RouteNetlinkMessage::GetAddress(m), NLM_F_DUMP)?;
        let mut out = Vec::new();
        for msg in all {
            let RouteNetlinkMessage::NewAddress(a) = msg else {
                continue;
            };
            if a.header.index != index || a.header.family != AddressFamily::Inet6 {
                continue;
            }
            // IFA_FLAGS, when present, supersedes the header's 8 bits.
            let permanent = a
                .attributes
                .iter()
                .find_map(|x| match x {
                    AddressAttribute::Flags(f) => Some(f.contains(AddressFlags::Permanent)),
                    _ => None,
                })
                .unwrap_or(a.header.flags.contains(AddressHeaderFlags::Permanent));
            let addr = a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Address(IpAddr::V6(v)) => Some(*v),
                _ => None,
            });
            if let Some(v) = addr {
                if permanent && !v.is_unicast_link_local() {
                    out.push((v, a.header.prefix_len));
                }
            }
        }
        Ok(out)
    }

    /// Adds (or with `replace`, adds or replaces) `addr/len` on link `index`.
    pub fn add_address(
        &mut self,
        index: u32,
        addr: impl Into<IpAddr>,
        len: u8,
        replace: bool,
    ) -> io::Result<()> {
        let m = address_message(index, addr.into(), len);
        let flags = NLM_F_ACK | NLM_F_CREATE | if replace { NLM_F_REPLACE } else { NLM_F_EXCL };
        self.request(RouteNetlinkMessage::NewAddress(m), flags)
            .map(drop)
    }

    /// Adds the IPv6 address `addr/len` on link `index` usable at once
    /// (`IFA_F_NODAD`: no tentative state, no DAD probes) and without the
    /// kernel's prefix route for it (`IFA_F_NOPREFIXROUTE`).
    pub fn add_address6_nodad(&mut self, index: u32, addr: Ipv6Addr, len: u8) -> io::Result<()> {
        let mut m = address_message(index, IpAddr::V6(addr), len);
        m.attributes.push(AddressAttribute::Flags(
            AddressFlags::Nodad | AddressFlags::Noprefixroute,
        ));
        self.request(
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    /// Removes `addr/len` from link `index`.
    pub fn del_address(&mut self, index: u32, addr: impl Into<IpAddr>, len: u8) -> io::Result<()> {
        let m = address_message(index, addr.into(), len);
        self.request(RouteNetlinkMessage::DelAddress(m), NLM_F_ACK)
            .map(drop)
    }

    /// Every IPv4 route of every table.
    pub fn ipv4_routes(&mut self) -> io::Result<Vec<RouteMessage>> {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        let all = self.request(RouteNetlinkMessage::GetRoute(m), NLM_F_DUMP)?;
        Ok(all
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => Some(r),
                _ => None,
            })
            .collect())
    }

    /// Adds, replaces or deletes a route.
    pub fn route(&mut self, msg: RouteMessage, op: RouteOp) -> io::Result<()> {
        let (m, flags) = match op {
            RouteOp::Add => (
                RouteNetlinkMessage::NewRoute(msg),
                NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            ),
            RouteOp::Replace => (
                RouteNetlinkMessage::NewRoute(msg),
                NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
            ),
            RouteOp::Del => (RouteNetlinkMessage::DelRoute(msg), NLM_F_ACK),
        };
        self.request(m, flags).map(drop)
    }
}

fn address_message(index: u32, addr: IpAddr, len: u8) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    m.header.prefix_len = len;
    m.header.index = index;
    m.attributes.push(AddressAttribute::Local(addr));
    m.attributes.push(AddressAttribute::Address(addr));
    m
}

/// The table of a route message (`RTA_TABLE` when present: tables above
/// 255 do not fit the header).
pub fn route_table(r: &RouteMessage) -> u32 {
    r.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(r.header.table))
}

/// The output interface index of a single-path route.
pub fn route_oif(r: &RouteMessage) -> Option<u32> {
    r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(i) => Some(*i),
        _ => None,
    })
}

/// An IPv4 route message for the main table with routerd's protocol.
pub fn ipv4_route(
    dst: Ipv4Addr,
    len: u8,
    kind: RouteType,
    scope: RouteScope,
    attrs: Vec<RouteAttribute>,
) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = AddressFamily::Inet;
    m.header.destination_prefix_length = len;
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    m.header.protocol = RouteProtocol::from(RTPROT_ROUTERD);
    m.header.scope = scope;
    m.header.kind = kind;
    if len > 0 {
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(dst)));
    }
    m.attributes.extend(attrs);
    m
}

/// An IPv6 route message for the main table with routerd's protocol.
pub fn ipv6_route(
    dst: Ipv6Addr,
    len: u8,
    kind: RouteType,
    attrs: Vec<RouteAttribute>,
) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = AddressFamily::Inet6;
    m.header.destination_prefix_length = len;
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    m.header.protocol = RouteProtocol::from(RTPROT_ROUTERD);
    // IPv6 routes have no scope (the kernel ignores rtm_scope for them).
    m.header.scope = RouteScope::Universe;
    m.header.kind = kind;
    if len > 0 {
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet6(dst)));
    }
    m.attributes.extend(attrs);
    m
}

/// The interface index of `device` (from sysfs).
pub fn ifindex(device: &str) -> io::Result<u32> {
    if device.is_empty() || device.contains('/') {
        return Err(io::Error::from(io::ErrorKind::NotFound));
    }
    let text = std::fs::read_to_string(format!("/sys/class/net/{device}/ifindex"))?;
    text.trim()
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "ifindex is not a number"))
}
