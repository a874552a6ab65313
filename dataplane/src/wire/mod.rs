//! Wire views: protocol headers as views over bytes, in the style of smoltcp
//! `src/wire/`.
//!
//! Each header type is a `Packet<T: AsRef<[u8]>>` (or `Frame<T>` for
//! Ethernet) wrapping a buffer that starts at the header. Getters live in
//! `impl<T: AsRef<[u8]>>`, setters in `impl<T: AsRef<[u8]> + AsMut<[u8]>>`,
//! field offsets in a private `mod field`. Fields are read and written at
//! offsets with `from_be_bytes` / `to_be_bytes`, never by casting bytes to a
//! struct. IPv4 addresses are `u32` in host byte order, IPv6 addresses
//! `u128` in host byte order, MACs are [`crate::addr::Mac`].
//!
//! Constructors:
//! - `new_unchecked(buf)` wraps without looking: for buffers the caller sized
//!   (building a reply in a buffer it knows is large enough).
//! - `check_len()` validates the buffer against the header's length rules.
//! - `new_checked(buf)` = `new_unchecked` + `check_len`. Untrusted bytes only
//!   ever go through `new_checked`.
//!
//! The promise of every module here: once `check_len` has passed, no getter
//! or setter panics. Setters that change a length field (`set_header_len`,
//! `set_total_len`, an Ethernet ethertype set to VLAN) can void that promise;
//! call `check_len` again before trusting the view after such a change.
//!
//! Everything here is on the hot path: accessors are `#[inline]` and, once
//! inlined after `check_len`, compile to a load and a byte swap. Fixed headers
//! are read through a `&[u8; N]` obtained with one length check, so every
//! field access after it indexes a fixed-size array with constant offsets and
//! carries no bounds check of its own. Nothing here allocates.
//!
//! Owned `Repr` forms (parse/emit pairs) are for the slow path: ARP replies,
//! ICMP errors, tests.

use core::fmt;
use core::ops::Range;

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod ndp;
pub mod tcp;
pub mod udp;

/// Why a buffer is not a valid header of the kind asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the fixed header (or its VLAN tag).
    Truncated,
    /// IP version field is not 4 (IPv4) or 6 (IPv6).
    BadVersion,
    /// A header length field (IPv4 IHL, TCP data offset) is below the minimum
    /// or reaches beyond the buffer.
    BadHeaderLength,
    /// A total length field (IPv4 total length, IPv6 payload length, UDP
    /// length) is below the header length or reaches beyond the buffer.
    BadTotalLength,
    /// A well-formed packet of a kind we do not handle (ARP for another
    /// hardware or protocol type, unknown ARP opcode).
    Unsupported,
}

impl Error {
    /// Stable lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Error::Truncated => "truncated",
            Error::BadVersion => "bad_version",
            Error::BadHeaderLength => "bad_header_length",
            Error::BadTotalLength => "bad_total_length",
            Error::Unsupported => "unsupported",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for Error {}

/// The first `N` bytes of `buf` as a fixed-size array: one length check,
/// after which constant-offset indexing needs none. Panics if `buf` is
/// shorter than `N` (the views call it only after `check_len` proved it).
#[inline(always)]
pub(crate) fn fixed<const N: usize>(buf: &[u8]) -> &[u8; N] {
    match buf.first_chunk::<N>() {
        Some(h) => h,
        None => short(buf.len(), N),
    }
}

/// Mutable twin of [`fixed`].
#[inline(always)]
pub(crate) fn fixed_mut<const N: usize>(buf: &mut [u8]) -> &mut [u8; N] {
    let len = buf.len();
    match buf.first_chunk_mut::<N>() {
        Some(h) => h,
        None => short(len, N),
    }
}

// Out of line and cold so the inlined accessors stay a compare and a load.
#[cold]
#[inline(never)]
#[track_caller]
fn short(len: usize, need: usize) -> ! {
    panic!("wire view: buffer of {len} bytes used without check_len (need {need})")
}

/// Big-endian `u16` in field `f` (a constant 2-byte range) of a fixed header.
#[inline(always)]
pub(crate) fn get16<const N: usize>(h: &[u8; N], f: Range<usize>) -> u16 {
    u16::from_be_bytes(h[f].try_into().expect("2-byte field"))
}

/// Big-endian `u32` in field `f` (a constant 4-byte range) of a fixed header.
#[inline(always)]
pub(crate) fn get32<const N: usize>(h: &[u8; N], f: Range<usize>) -> u32 {
    u32::from_be_bytes(h[f].try_into().expect("4-byte field"))
}

/// Writes a big-endian `u16` into field `f` of a fixed header.
#[inline(always)]
pub(crate) fn set16<const N: usize>(h: &mut [u8; N], f: Range<usize>, v: u16) {
    h[f].copy_from_slice(&v.to_be_bytes());
}

/// Writes a big-endian `u32` into field `f` of a fixed header.
#[inline(always)]
pub(crate) fn set32<const N: usize>(h: &mut [u8; N], f: Range<usize>, v: u32) {
    h[f].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_reads_and_writes_big_endian() {
        let mut buf = [0x12, 0x34, 0x56, 0x78, 0x9a];
        let h = fixed::<4>(&buf);
        assert_eq!(get16(h, 1..3), 0x3456);
        assert_eq!(get32(h, 0..4), 0x1234_5678);
        let h = fixed_mut::<5>(&mut buf);
        set16(h, 3..5, 0xbeef);
        set32(h, 0..4, 0xdead_c0de);
        assert_eq!(buf, [0xde, 0xad, 0xc0, 0xde, 0xef]);
    }

    #[test]
    #[should_panic(expected = "without check_len")]
    fn fixed_on_a_short_buffer_panics() {
        let buf = [0u8; 3];
        let _ = fixed::<4>(&buf);
    }

    #[test]
    fn error_names_are_distinct() {
        let all = [
            Error::Truncated,
            Error::BadVersion,
            Error::BadHeaderLength,
            Error::BadTotalLength,
            Error::Unsupported,
        ];
        let mut names: Vec<_> = all.iter().map(|e| e.to_string()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
    }
}
