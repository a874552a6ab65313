//! IPv4 and IPv6 prefixes and MAC addresses as the tables hold them:
//! addresses are `u32` (IPv4) or `u128` (IPv6) in host byte order on the
//! packet path, `Ipv4Addr` / `Ipv6Addr` at the edges.

use core::fmt;
use core::str::FromStr;
use std::net::{Ipv4Addr, Ipv6Addr};

/// An IPv4 prefix such as `198.18.0.0/15`. Host bits are always zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Prefix {
    addr: u32,
    len: u8,
}

#[allow(clippy::len_without_is_empty)] // a prefix length, not a collection
impl Ipv4Prefix {
    /// `0.0.0.0/0`.
    pub const DEFAULT: Ipv4Prefix = Ipv4Prefix { addr: 0, len: 0 };

    /// The prefix of `addr` with `len` bits; host bits are cleared.
    /// `None` when `len > 32`.
    pub fn new(addr: u32, len: u8) -> Option<Self> {
        (len <= 32).then(|| Ipv4Prefix {
            addr: addr & Self::mask_of(len),
            len,
        })
    }

    /// A /32 host prefix.
    pub const fn host(addr: u32) -> Self {
        Ipv4Prefix { addr, len: 32 }
    }

    const fn mask_of(len: u8) -> u32 {
        if len == 0 {
            0
        } else {
            u32::MAX << (32 - len as u32)
        }
    }

    /// Network address (host order).
    pub const fn addr(self) -> u32 {
        self.addr
    }

    /// Prefix length in bits.
    pub const fn len(self) -> u8 {
        self.len
    }

    /// Netmask (host order).
    pub const fn mask(self) -> u32 {
        Self::mask_of(self.len)
    }

    /// Whether `ip` (host order) lies in the prefix.
    #[inline]
    pub const fn contains(self, ip: u32) -> bool {
        ip & Self::mask_of(self.len) == self.addr
    }

    /// Directed broadcast address of the prefix (host order).
    pub const fn broadcast(self) -> u32 {
        self.addr | !Self::mask_of(self.len)
    }
}

/// Error parsing a prefix or an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseAddrError(pub &'static str);

impl fmt::Display for ParseAddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ParseAddrError {}

impl FromStr for Ipv4Prefix {
    type Err = ParseAddrError;

    /// `A.B.C.D/N`, `A.B.C.D` (a /32) or `default` (`0.0.0.0/0`). Host bits
    /// set in the address are an error: `198.18.0.1/24` is ambiguous as a
    /// route or a match (use `198.18.0.0/24`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "default" {
            return Ok(Self::DEFAULT);
        }
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let ip: Ipv4Addr = a
            .parse()
            .map_err(|_| ParseAddrError("an IPv4 address such as 198.18.0.0/24"))?;
        let len: u8 = match l {
            None => 32,
            Some(l) => l
                .parse()
                .ok()
                .filter(|n| *n <= 32)
                .ok_or(ParseAddrError("a prefix length from 0 to 32"))?,
        };
        let addr = u32::from(ip);
        let p = Ipv4Prefix::new(addr, len).ok_or(ParseAddrError("a prefix length from 0 to 32"))?;
        if p.addr != addr {
            return Err(ParseAddrError("a network address with no host bits set"));
        }
        Ok(p)
    }
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.addr), self.len)
    }
}

/// An IPv6 prefix such as `2001:db8::/32`. Host bits are always zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv6Prefix {
    addr: u128,
    len: u8,
}

#[allow(clippy::len_without_is_empty)] // a prefix length, not a collection
impl Ipv6Prefix {
    /// `::/0`.
    pub const DEFAULT: Ipv6Prefix = Ipv6Prefix { addr: 0, len: 0 };

    /// The prefix of `addr` with `len` bits; host bits are cleared.
    /// `None` when `len > 128`.
    pub fn new(addr: u128, len: u8) -> Option<Self> {
        (len <= 128).then(|| Ipv6Prefix {
            addr: addr & Self::mask_of(len),
            len,
        })
    }

    /// A /128 host prefix.
    pub const fn host(addr: u128) -> Self {
        Ipv6Prefix { addr, len: 128 }
    }

    const fn mask_of(len: u8) -> u128 {
        if len == 0 {
            0
        } else {
            u128::MAX << (128 - len as u32)
        }
    }

    /// Network address (host order).
    pub const fn addr(self) -> u128 {
        self.addr
    }

    /// Prefix length in bits.
    pub const fn len(self) -> u8 {
        self.len
    }

    /// Netmask (host order).
    pub const fn mask(self) -> u128 {
        Self::mask_of(self.len)
    }

    /// Whether `ip` (host order) lies in the prefix.
    #[inline]
    pub const fn contains(self, ip: u128) -> bool {
        ip & Self::mask_of(self.len) == self.addr
    }

    /// Last address of the prefix (host order).
    pub const fn last(self) -> u128 {
        self.addr | !Self::mask_of(self.len)
    }
}

impl FromStr for Ipv6Prefix {
    type Err = ParseAddrError;

    /// `ADDR/N`, `ADDR` (a /128) or `default` (`::/0`). Host bits set in the
    /// address are an error, as for [`Ipv4Prefix`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "default" {
            return Ok(Self::DEFAULT);
        }
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let ip: Ipv6Addr = a
            .parse()
            .map_err(|_| ParseAddrError("an IPv6 address such as 2001:db8::/32"))?;
        let len: u8 = match l {
            None => 128,
            Some(l) => l
                .parse()
                .ok()
                .filter(|n| *n <= 128)
                .ok_or(ParseAddrError("a prefix length from 0 to 128"))?,
        };
        let addr = u128::from(ip);
        let p =
            Ipv6Prefix::new(addr, len).ok_or(ParseAddrError("a prefix length from 0 to 128"))?;
        if p.addr != addr {
            return Err(ParseAddrError("a network address with no host bits set"));
        }
        Ok(p)
    }
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv6Addr::from(self.addr), self.len)
    }
}

/// An interface address: the router's address and its network, `198.18.0.1/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IfAddr {
    /// The router's own address (host order).
    pub addr: u32,
    /// The connected network.
    pub net: Ipv4Prefix,
}

impl FromStr for IfAddr {
    type Err = ParseAddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, l) = s.split_once('/').ok_or(ParseAddrError(
            "an address with its prefix length, such as 198.18.0.1/24",
        ))?;
        let ip: Ipv4Addr = a.parse().map_err(|_| {
            ParseAddrError("an address with its prefix length, such as 198.18.0.1/24")
        })?;
        let len: u8 = l
            .parse()
            .ok()
            .filter(|n| *n <= 32)
            .ok_or(ParseAddrError("a prefix length from 0 to 32"))?;
        let addr = u32::from(ip);
        let net =
            Ipv4Prefix::new(addr, len).ok_or(ParseAddrError("a prefix length from 0 to 32"))?;
        Ok(IfAddr { addr, net })
    }
}

impl fmt::Display for IfAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.addr), self.net.len())
    }
}

/// An IPv6 interface address: the router's address and its on-link
/// prefix, `2001:db8:1::1/64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IfAddr6 {
    /// The router's own address (host order).
    pub addr: u128,
    /// The connected (on-link) prefix.
    pub net: Ipv6Prefix,
}

impl FromStr for IfAddr6 {
    type Err = ParseAddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const WANT: &str = "an IPv6 address with its prefix length, such as 2001:db8::1/64";
        let (a, l) = s.split_once('/').ok_or(ParseAddrError(WANT))?;
        let ip: Ipv6Addr = a.parse().map_err(|_| ParseAddrError(WANT))?;
        let len: u8 = l
            .parse()
            .ok()
            .filter(|n| *n <= 128)
            .ok_or(ParseAddrError("a prefix length from 0 to 128"))?;
        let addr = u128::from(ip);
        let net =
            Ipv6Prefix::new(addr, len).ok_or(ParseAddrError("a prefix length from 0 to 128"))?;
        Ok(IfAddr6 { addr, net })
    }
}

impl fmt::Display for IfAddr6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv6Addr::from(self.addr), self.net.len())
    }
}

/// A MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// ff:ff:ff:ff:ff:ff
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    /// 00:00:00:00:00:00
    pub const ZERO: Mac = Mac([0; 6]);
}

impl FromStr for Mac {
    type Err = ParseAddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut n = 0;
        for part in s.split([':', '-']) {
            if n == 6 || part.len() != 2 {
                return Err(ParseAddrError("a MAC address such as 02:00:00:00:00:01"));
            }
            out[n] = u8::from_str_radix(part, 16)
                .map_err(|_| ParseAddrError("a MAC address such as 02:00:00:00:00:01"))?;
            n += 1;
        }
        if n != 6 {
            return Err(ParseAddrError("a MAC address such as 02:00:00:00:00:01"));
        }
        Ok(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_parse_and_contains() {
        let p: Ipv4Prefix = "198.18.0.0/15".parse().unwrap();
        assert!(p.contains(u32::from(Ipv4Addr::new(198, 19, 255, 1))));
        assert!(!p.contains(u32::from(Ipv4Addr::new(198, 20, 0, 1))));
        assert_eq!(
            "default".parse::<Ipv4Prefix>().unwrap(),
            Ipv4Prefix::DEFAULT
        );
        assert!("198.18.0.1/24".parse::<Ipv4Prefix>().is_err());
        assert!("198.18.0.0/33".parse::<Ipv4Prefix>().is_err());
        assert_eq!(p.to_string(), "198.18.0.0/15");
    }

    #[test]
    fn ifaddr_and_mac() {
        let a: IfAddr = "198.18.0.1/24".parse().unwrap();
        assert_eq!(a.net.to_string(), "198.18.0.0/24");
        assert_eq!(a.to_string(), "198.18.0.1/24");
        let m: Mac = "02:00:00:00:00:0a".parse().unwrap();
        assert_eq!(m.0[5], 10);
        assert!("02:00:00:00:00".parse::<Mac>().is_err());
    }

    #[test]
    fn ifaddr6_parse_and_display() {
        let a: IfAddr6 = "2001:db8:1::1/64".parse().unwrap();
        assert_eq!(a.net.to_string(), "2001:db8:1::/64");
        assert_eq!(a.to_string(), "2001:db8:1::1/64");
        assert!("2001:db8::1".parse::<IfAddr6>().is_err(), "no length");
        assert!("2001:db8::1/129".parse::<IfAddr6>().is_err());
        assert!("198.18.0.1/24".parse::<IfAddr6>().is_err());
    }

    #[test]
    fn ipv6_prefix_parse_contains_and_bounds() {
        let p: Ipv6Prefix = "2001:db8::/32".parse().unwrap();
        assert_eq!(p.addr(), 0x2001_0db8 << 96);
        assert_eq!(p.len(), 32);
        assert!(p.contains(u128::from("2001:db8:ffff::1".parse::<Ipv6Addr>().unwrap())));
        assert!(!p.contains(u128::from("2001:db9::".parse::<Ipv6Addr>().unwrap())));
        assert_eq!(p.last(), (0x2001_0db8 << 96) | (u128::MAX >> 32));
        assert_eq!(p.to_string(), "2001:db8::/32");
        assert_eq!(
            "default".parse::<Ipv6Prefix>().unwrap(),
            Ipv6Prefix::DEFAULT
        );
        assert_eq!("::/0".parse::<Ipv6Prefix>().unwrap(), Ipv6Prefix::DEFAULT);
        assert!(Ipv6Prefix::DEFAULT.contains(u128::MAX));
        assert_eq!("2001:db8::1".parse::<Ipv6Prefix>().unwrap().len(), 128);
        assert!("2001:db8::1/64".parse::<Ipv6Prefix>().is_err(), "host bits");
        assert!("2001:db8::/129".parse::<Ipv6Prefix>().is_err());
        assert!("198.18.0.0/15".parse::<Ipv6Prefix>().is_err());
        assert_eq!(Ipv6Prefix::new(u128::MAX, 128).unwrap().mask(), u128::MAX);
        assert_eq!(Ipv6Prefix::new(u128::MAX, 1).unwrap().addr(), 1 << 127);
        assert!(Ipv6Prefix::new(0, 129).is_none());
        assert_eq!(Ipv6Prefix::host(7).last(), 7);
    }
}
