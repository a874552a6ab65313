//! TCP segment headers (RFC 9293).
//!
//! The view covers the whole segment (the IPv4 payload): the checksum is over
//! all of it plus the pseudo-header. After [`Packet::check_len`] passes (20
//! bytes, data offset at least 5 words and within the buffer), no accessor
//! panics.

use super::{checksum, fixed, fixed_mut, get16, get32, set16, set32, Error};

/// No more data from sender.
pub const FIN: u8 = 0x01;
/// Synchronize sequence numbers.
pub const SYN: u8 = 0x02;
/// Reset the connection.
pub const RST: u8 = 0x04;
/// Push function.
pub const PSH: u8 = 0x08;
/// Acknowledgment field is significant.
pub const ACK: u8 = 0x10;
/// Urgent pointer field is significant.
pub const URG: u8 = 0x20;
/// ECN echo.
pub const ECE: u8 = 0x40;
/// Congestion window reduced.
pub const CWR: u8 = 0x80;

/// Bytes of a header without options.
pub const HEADER_LEN: usize = 20;

mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ_NUM: Range<usize> = 4..8;
    pub const ACK_NUM: Range<usize> = 8..12;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// A view of a TCP segment.
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

    /// Wraps `buffer` and checks the header length.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Truncated` below 20 bytes; `BadHeaderLength` if the data offset is
    /// below 5 words or beyond the buffer.
    #[inline]
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN || header_len > len {
            return Err(Error::BadHeaderLength);
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

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        get32(self.header(), field::SEQ_NUM)
    }

    /// Acknowledgment number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        get32(self.header(), field::ACK_NUM)
    }

    /// Header length in bytes (data offset * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.header()[field::DATA_OFF] >> 4) * 4
    }

    /// Flags byte: [`FIN`], [`SYN`], [`RST`], [`PSH`], [`ACK`], [`URG`],
    /// [`ECE`], [`CWR`].
    #[inline]
    pub fn flags(&self) -> u8 {
        self.header()[field::FLAGS]
    }

    /// Window size.
    #[inline]
    pub fn window(&self) -> u16 {
        get16(self.header(), field::WINDOW)
    }

    /// Checksum as stored.
    #[inline]
    pub fn checksum(&self) -> u16 {
        get16(self.header(), field::CHECKSUM)
    }

    /// Urgent pointer.
    #[inline]
    pub fn urgent(&self) -> u16 {
        get16(self.header(), field::URGENT)
    }

    /// The options, `20..header_len`.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The data after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// Whether the checksum over pseudo-header and segment is correct;
    /// addresses in host order.
    #[inline]
    pub fn verify_checksum(&self, src: u32, dst: u32) -> bool {
        let seg = self.buffer.as_ref();
        let ph = checksum::pseudo_header(src, dst, super::ipv4::PROTO_TCP, seg.len() as u16);
        checksum::fold(ph + checksum::sum(seg)) == 0
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

    /// Sets the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, v: u32) {
        set32(self.header_mut(), field::SEQ_NUM, v);
    }

    /// Sets the acknowledgment number.
    #[inline]
    pub fn set_ack_number(&mut self, v: u32) {
        set32(self.header_mut(), field::ACK_NUM, v);
    }

    /// Sets the header length in bytes (a multiple of 4, at most 60); the
    /// reserved bits are cleared. Call `check_len` again before trusting the view.
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        self.header_mut()[field::DATA_OFF] = ((len / 4) as u8 & 0x0f) << 4;
    }

    /// Sets the flags byte.
    #[inline]
    pub fn set_flags(&mut self, flags: u8) {
        self.header_mut()[field::FLAGS] = flags;
    }

    /// Sets the window size.
    #[inline]
    pub fn set_window(&mut self, v: u16) {
        set16(self.header_mut(), field::WINDOW, v);
    }

    /// Sets the checksum.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set16(self.header_mut(), field::CHECKSUM, v);
    }

    /// Sets the urgent pointer.
    #[inline]
    pub fn set_urgent(&mut self, v: u16) {
        set16(self.header_mut(), field::URGENT, v);
    }

    /// Computes and stores the checksum over pseudo-header and the whole
    /// buffer; addresses in host order.
    #[inline]
    pub fn fill_checksum(&mut self, src: u32, dst: u32) {
        self.set_checksum(0);
        let seg = self.buffer.as_ref();
        let ph = checksum::pseudo_header(src, dst, super::ipv4::PROTO_TCP, seg.len() as u16);
        let c = checksum::fold(ph + checksum::sum(seg));
        self.set_checksum(c);
    }

    /// The data after the header, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let at = self.header_len();
        &mut self.buffer.as_mut()[at..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: u32 = 0xc633_6401; // 198.51.100.1
    const DST: u32 = 0xcb00_7107; // 203.0.113.7

    /// A Linux-style SYN 198.51.100.1:51000 -> 203.0.113.7:443 with options
    /// MSS 1460, SACK permitted, timestamps, NOP, window scale 7.
    const SYN_SEGMENT: [u8; 40] = [
        0xc7, 0x38, 0x01, 0xbb, // ports
        0x6b, 0x8b, 0x45, 0x67, // seq
        0x00, 0x00, 0x00, 0x00, // ack
        0xa0, 0x02, 0xfa, 0xf0, // data offset 10, SYN, window 64240
        0x56, 0xd4, 0x00, 0x00, // checksum, urgent
        0x02, 0x04, 0x05, 0xb4, // MSS 1460
        0x04, 0x02, // SACK permitted
        0x08, 0x0a, 0x0a, 0x0b, 0x0c, 0x0d, 0x00, 0x00, 0x00, 0x00, // timestamps
        0x01, // NOP
        0x03, 0x03, 0x07, // window scale 7
    ];

    #[test]
    fn syn_fields() {
        let p = Packet::new_checked(&SYN_SEGMENT[..]).unwrap();
        assert_eq!(p.src_port(), 51000);
        assert_eq!(p.dst_port(), 443);
        assert_eq!(p.seq_number(), 0x6b8b_4567);
        assert_eq!(p.ack_number(), 0);
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.flags(), SYN);
        assert_eq!(p.flags() & (ACK | RST | FIN), 0);
        assert_eq!(p.window(), 64240);
        assert_eq!(p.checksum(), 0x56d4);
        assert_eq!(p.urgent(), 0);
        assert_eq!(p.options(), &SYN_SEGMENT[20..]);
        assert_eq!(&p.options()[..4], &[0x02, 0x04, 0x05, 0xb4]);
        assert!(p.payload().is_empty());
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(SRC, DST + 1), "pseudo-header is covered");
    }

    #[test]
    fn length_checks() {
        assert_eq!(
            Packet::new_checked(&SYN_SEGMENT[..19]).unwrap_err(),
            Error::Truncated
        );
        // Data offset 10 words but only 39 bytes.
        assert_eq!(
            Packet::new_checked(&SYN_SEGMENT[..39]).unwrap_err(),
            Error::BadHeaderLength
        );
        let mut buf = SYN_SEGMENT;
        buf[12] = 0x40; // data offset 4
        assert_eq!(
            Packet::new_checked(&buf[..]).unwrap_err(),
            Error::BadHeaderLength
        );
        buf[12] = 0x50;
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert!(p.options().is_empty());
        assert_eq!(p.payload().len(), 20);
    }

    #[test]
    fn corrupted_segment_fails_checksum() {
        let mut buf = SYN_SEGMENT;
        buf[39] ^= 0x01; // an option byte
        assert!(!Packet::new_checked(&buf[..])
            .unwrap()
            .verify_checksum(SRC, DST));
    }

    #[test]
    fn rst_reply_round_trip() {
        // The RST a router answers a SYN with: ports swapped, ack = seq + 1.
        let mut buf = [0u8; 20];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_src_port(443);
        p.set_dst_port(51000);
        p.set_seq_number(0);
        p.set_ack_number(0x6b8b_4568);
        p.set_header_len(20);
        p.set_flags(RST | ACK);
        p.set_window(0);
        p.set_urgent(0);
        p.fill_checksum(DST, SRC);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (443, 51000));
        assert_eq!(p.ack_number(), 0x6b8b_4568);
        assert_eq!(p.flags(), RST | ACK);
        assert!(p.verify_checksum(DST, SRC));
        assert_eq!(buf[12..14], [0x50, 0x14]);
    }

    #[test]
    fn setters_round_trip() {
        let mut buf = [0u8; 28];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_header_len(24);
        p.set_src_port(1);
        p.set_dst_port(0xffff);
        p.set_seq_number(0xdead_beef);
        p.set_ack_number(0x0102_0304);
        p.set_flags(FIN | PSH | URG | ECE | CWR);
        p.set_window(0x8000);
        p.set_checksum(0x1234);
        p.set_urgent(7);
        assert_eq!(p.check_len(), Ok(()));
        assert_eq!(p.header_len(), 24);
        assert_eq!((p.src_port(), p.dst_port()), (1, 0xffff));
        assert_eq!((p.seq_number(), p.ack_number()), (0xdead_beef, 0x0102_0304));
        assert_eq!(p.flags(), 0xe9);
        assert_eq!((p.window(), p.checksum(), p.urgent()), (0x8000, 0x1234, 7));
        assert_eq!(p.options().len(), 4);
        p.payload_mut().copy_from_slice(b"data");
        assert_eq!(p.payload(), b"data");
        p.fill_checksum(SRC, DST);
        assert!(p.verify_checksum(SRC, DST));
    }
}
