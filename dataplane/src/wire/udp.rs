//! UDP datagram headers (RFC 768).
//!
//! After [`Packet::check_len`] passes (8 bytes, a length field between 8 and
//! the buffer length), no accessor panics. A checksum of 0 means "none"
//! (IPv4 only); a computed checksum of 0 is sent as `0xFFFF`.

use super::{checksum, fixed, fixed_mut, get16, set16, Error};

/// Bytes of the UDP header.
pub const HEADER_LEN: usize = 8;

mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

/// A view of a UDP datagram.
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

    /// Wraps `buffer` and checks header and length field.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Truncated` below 8 bytes; `BadTotalLength` if the length field is
    /// below 8 or beyond the buffer.
    #[inline]
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let field_len = usize::from(self.len());
        if field_len < HEADER_LEN || field_len > len {
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

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        get16(self.header(), field::SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        get16(self.header(), field::DST_PORT)
    }

    /// Length field: header and data, in bytes.
    #[inline]
    pub fn len(&self) -> u16 {
        get16(self.header(), field::LENGTH)
    }

    /// Whether the datagram carries no data.
    #[inline]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// Checksum as stored (0 = none).
    #[inline]
    pub fn checksum(&self) -> u16 {
        get16(self.header(), field::CHECKSUM)
    }

    /// The data, `8..len`.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    /// Whether the checksum is correct or absent (0); addresses in host order.
    #[inline]
    pub fn verify_checksum(&self, src: u32, dst: u32) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let len = self.len();
        let dgram = &self.buffer.as_ref()[..usize::from(len)];
        let ph = checksum::pseudo_header(src, dst, super::ipv4::PROTO_UDP, len);
        checksum::fold(ph + checksum::sum(dgram)) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline(always)]
    fn header_mut(&mut self) -> &mut [u8; HEADER_LEN] {
        fixed_mut(self.buffer.as_mut())
    }

    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, port: u16) {
        set16(self.header_mut(), field::SRC_PORT, port);
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, port: u16) {
        set16(self.header_mut(), field::DST_PORT, port);
    }

    /// Sets the length field. Call `check_len` again before trusting the view.
    #[inline]
    pub fn set_len(&mut self, len: u16) {
        set16(self.header_mut(), field::LENGTH, len);
    }

    /// Sets the checksum (0 = none).
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set16(self.header_mut(), field::CHECKSUM, v);
    }

    /// Computes and stores the checksum over pseudo-header and `..len`; a
    /// computed 0 is stored as `0xFFFF` (RFC 768), 0 meaning "none".
    #[inline]
    pub fn fill_checksum(&mut self, src: u32, dst: u32) {
        self.set_checksum(0);
        let len = self.len();
        let dgram = &self.buffer.as_ref()[..usize::from(len)];
        let ph = checksum::pseudo_header(src, dst, super::ipv4::PROTO_UDP, len);
        let c = checksum::fold(ph + checksum::sum(dgram));
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }

    /// The data, `8..len`, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: u32 = 0xc000_020a; // 192.0.2.10
    const DST: u32 = 0xc633_6435; // 198.51.100.53

    /// A DNS query for example.com A, 192.0.2.10:53000 -> 198.51.100.53:53.
    const DNS_QUERY: [u8; 37] = [
        0xcf, 0x08, 0x00, 0x35, 0x00, 0x25, 0xb5, 0x95, // UDP header
        0xbe, 0xef, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // DNS header
        0x07, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0x03, b'c', b'o', b'm', 0x00, // name
        0x00, 0x01, 0x00, 0x01, // A, IN
    ];

    #[test]
    fn dns_query_fields() {
        let p = Packet::new_checked(&DNS_QUERY[..]).unwrap();
        assert_eq!(p.src_port(), 53000);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 37);
        assert!(!p.is_empty());
        assert_eq!(p.checksum(), 0xb595);
        assert_eq!(p.payload(), &DNS_QUERY[8..]);
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(SRC, DST ^ 1));
    }

    #[test]
    fn padding_after_len_is_ignored() {
        let mut buf = [0u8; 40];
        buf[..37].copy_from_slice(&DNS_QUERY);
        buf[37..].copy_from_slice(&[0xaa, 0xbb, 0xcc]);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload().len(), 29);
        assert!(p.verify_checksum(SRC, DST));
    }

    #[test]
    fn length_checks() {
        assert_eq!(
            Packet::new_checked(&DNS_QUERY[..7]).unwrap_err(),
            Error::Truncated
        );
        // Length field 37 but 36 bytes.
        assert_eq!(
            Packet::new_checked(&DNS_QUERY[..36]).unwrap_err(),
            Error::BadTotalLength
        );
        let mut buf = DNS_QUERY;
        buf[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&buf[..]).unwrap_err(),
            Error::BadTotalLength
        );
        buf[4..6].copy_from_slice(&8u16.to_be_bytes());
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert!(p.is_empty());
        assert!(p.payload().is_empty());
    }

    #[test]
    fn zero_checksum_means_none() {
        let mut buf = DNS_QUERY;
        buf[6] = 0;
        buf[7] = 0;
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum(SRC, DST));
        assert!(p.verify_checksum(0, 0));
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Choose the last two data bytes so that the datagram sums to 0xFFFF
        // with a zero checksum field: the computed checksum is then 0.
        let mut buf = [0u8; 12];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_src_port(1000);
        p.set_dst_port(2000);
        p.set_len(12);
        let partial = checksum::pseudo_header(SRC, DST, 17, 12) + checksum::sum(&buf);
        // Adding the complement of the folded sum makes it 0xFFFF.
        buf[10..12].copy_from_slice(&checksum::fold(partial).to_be_bytes());
        let mut p = Packet::new_checked(&mut buf[..]).unwrap();
        p.fill_checksum(SRC, DST);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(SRC, DST));
    }

    #[test]
    fn setters_round_trip() {
        let mut buf = [0u8; 12];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_src_port(0xabcd);
        p.set_dst_port(123);
        p.set_len(12);
        p.set_checksum(0x4242);
        assert_eq!(p.check_len(), Ok(()));
        assert_eq!(
            (p.src_port(), p.dst_port(), p.len(), p.checksum()),
            (0xabcd, 123, 12, 0x4242)
        );
        p.payload_mut().copy_from_slice(b"ntp!");
        assert_eq!(p.payload(), b"ntp!");
        p.fill_checksum(SRC, DST);
        assert_ne!(p.checksum(), 0x4242);
        assert!(p.verify_checksum(SRC, DST));
    }
}
