//! Ethernet II frames, with at most one 802.1Q tag.
//!
//! `Frame<T>` is a view over the frame bytes. After [`Frame::check_len`]
//! passes (the untagged header, plus the 4-byte tag when the outer ethertype
//! is [`ETHERTYPE_VLAN`]), no accessor panics. Stacked tags (QinQ) are not
//! parsed: a frame whose inner ethertype is VLAN again is for the caller to
//! refuse.

use super::{fixed, fixed_mut, get16, set16, Error};
use crate::addr::Mac;

/// Ethertype of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// Ethertype of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// Ethertype of an 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// Ethertype of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// Bytes of an untagged Ethernet header.
pub const HEADER_LEN: usize = 14;
/// Bytes of an Ethernet header with one 802.1Q tag.
pub const VLAN_HEADER_LEN: usize = 18;

mod field {
    use core::ops::Range;

    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    // Present only when ETHERTYPE is VLAN.
    pub const VLAN_TCI: Range<usize> = 14..16;
    pub const INNER_ETHERTYPE: Range<usize> = 16..18;
}

/// Bits of the 802.1Q tag control information holding the VLAN id.
const VID_MASK: u16 = 0x0fff;

/// A view of an Ethernet frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps `buffer` without checking it; see [`Frame::check_len`].
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps `buffer` and checks that the header (and tag) fit.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Frame<T>, Error> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// `Truncated` if the buffer is shorter than the header, or than the
    /// tagged header when the outer ethertype is VLAN.
    #[inline]
    pub fn check_len(&self) -> Result<(), Error> {
        let buf = self.buffer.as_ref();
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.ethertype() == ETHERTYPE_VLAN && buf.len() < VLAN_HEADER_LEN {
            return Err(Error::Truncated);
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

    /// Destination MAC.
    #[inline]
    pub fn dst_addr(&self) -> Mac {
        Mac(self.header()[field::DST].try_into().expect("6-byte MAC"))
    }

    /// Source MAC.
    #[inline]
    pub fn src_addr(&self) -> Mac {
        Mac(self.header()[field::SRC].try_into().expect("6-byte MAC"))
    }

    /// The outer ethertype ([`ETHERTYPE_VLAN`] for a tagged frame).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        get16(self.header(), field::ETHERTYPE)
    }

    /// Whether the frame carries an 802.1Q tag.
    #[inline]
    pub fn is_tagged(&self) -> bool {
        self.ethertype() == ETHERTYPE_VLAN
    }

    /// The tagged header as a fixed array; `None` when untagged (or, before
    /// `check_len`, too short for its tag: VLAN accessors never panic).
    #[inline(always)]
    fn tagged(&self) -> Option<&[u8; VLAN_HEADER_LEN]> {
        if self.is_tagged() {
            self.buffer.as_ref().first_chunk()
        } else {
            None
        }
    }

    /// The VLAN id (12 bits) of the 802.1Q tag; `None` when untagged.
    #[inline]
    pub fn vlan_id(&self) -> Option<u16> {
        self.tagged().map(|h| get16(h, field::VLAN_TCI) & VID_MASK)
    }

    /// The whole tag control information (priority, DEI, VLAN id); `None`
    /// when untagged.
    #[inline]
    pub fn vlan_tci(&self) -> Option<u16> {
        self.tagged().map(|h| get16(h, field::VLAN_TCI))
    }

    /// The ethertype of the payload: after one 802.1Q tag if present, else
    /// the outer one.
    #[inline]
    pub fn inner_ethertype(&self) -> u16 {
        match self.tagged() {
            Some(h) => get16(h, field::INNER_ETHERTYPE),
            None => self.ethertype(),
        }
    }

    /// Header length: 14, or 18 with a tag.
    #[inline]
    pub fn header_len(&self) -> usize {
        if self.is_tagged() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// The bytes after the header (and tag).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    #[inline(always)]
    fn header_mut(&mut self) -> &mut [u8; HEADER_LEN] {
        fixed_mut(self.buffer.as_mut())
    }

    /// Sets the destination MAC.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: Mac) {
        self.header_mut()[field::DST].copy_from_slice(&addr.0);
    }

    /// Sets the source MAC.
    #[inline]
    pub fn set_src_addr(&mut self, addr: Mac) {
        self.header_mut()[field::SRC].copy_from_slice(&addr.0);
    }

    /// Sets the outer ethertype. Setting it to [`ETHERTYPE_VLAN`] makes the
    /// header 18 bytes long: call `check_len` again before trusting the view.
    #[inline]
    pub fn set_ethertype(&mut self, ethertype: u16) {
        set16(self.header_mut(), field::ETHERTYPE, ethertype);
    }

    /// Mutable twin of `tagged`.
    #[inline(always)]
    fn tagged_mut(&mut self) -> Option<&mut [u8; VLAN_HEADER_LEN]> {
        if self.is_tagged() {
            self.buffer.as_mut().first_chunk_mut()
        } else {
            None
        }
    }

    /// Sets the tag control information of a tagged frame. Returns `false`
    /// and writes nothing when the frame is untagged.
    #[inline]
    pub fn set_vlan_tci(&mut self, tci: u16) -> bool {
        match self.tagged_mut() {
            Some(h) => {
                set16(h, field::VLAN_TCI, tci);
                true
            }
            None => false,
        }
    }

    /// Sets the VLAN id of a tagged frame, keeping priority and DEI. Returns
    /// `false` and writes nothing when the frame is untagged.
    #[inline]
    pub fn set_vlan_id(&mut self, id: u16) -> bool {
        match self.vlan_tci() {
            Some(tci) => self.set_vlan_tci((tci & !VID_MASK) | (id & VID_MASK)),
            None => false,
        }
    }

    /// Sets the payload ethertype: after the tag if present, else the outer.
    #[inline]
    pub fn set_inner_ethertype(&mut self, ethertype: u16) {
        if self.is_tagged() {
            if let Some(h) = self.tagged_mut() {
                set16(h, field::INNER_ETHERTYPE, ethertype);
            }
        } else {
            self.set_ethertype(ethertype);
        }
    }

    /// The bytes after the header (and tag), mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let at = self.header_len();
        &mut self.buffer.as_mut()[at..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Broadcast ARP request frame header from 02:00:00:00:00:01.
    const UNTAGGED: [u8; 16] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src
        0x08, 0x06, // ARP
        0x00, 0x01, // start of payload
    ];

    /// IPv4 frame tagged with VLAN 100, priority 5 (TCI 0xa064).
    const TAGGED: [u8; 20] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src
        0x81, 0x00, // 802.1Q
        0xa0, 0x64, // PCP 5, DEI 0, VID 100
        0x08, 0x00, // IPv4
        0x45, 0x00, // start of payload
    ];

    #[test]
    fn untagged_frame_fields() {
        let f = Frame::new_checked(&UNTAGGED[..]).unwrap();
        assert_eq!(f.dst_addr(), Mac::BROADCAST);
        assert_eq!(f.src_addr(), Mac([2, 0, 0, 0, 0, 1]));
        assert_eq!(f.ethertype(), ETHERTYPE_ARP);
        assert!(!f.is_tagged());
        assert_eq!(f.vlan_id(), None);
        assert_eq!(f.vlan_tci(), None);
        assert_eq!(f.inner_ethertype(), ETHERTYPE_ARP);
        assert_eq!(f.header_len(), HEADER_LEN);
        assert_eq!(f.payload(), &[0x00, 0x01]);
    }

    #[test]
    fn tagged_frame_fields() {
        let f = Frame::new_checked(&TAGGED[..]).unwrap();
        assert_eq!(f.dst_addr(), Mac([2, 0, 0, 0, 0, 2]));
        assert_eq!(f.ethertype(), ETHERTYPE_VLAN);
        assert!(f.is_tagged());
        assert_eq!(f.vlan_id(), Some(100));
        assert_eq!(f.vlan_tci(), Some(0xa064));
        assert_eq!(f.inner_ethertype(), ETHERTYPE_IPV4);
        assert_eq!(f.header_len(), VLAN_HEADER_LEN);
        assert_eq!(f.payload(), &[0x45, 0x00]);
    }

    #[test]
    fn truncated_frames_are_refused() {
        assert_eq!(
            Frame::new_checked(&UNTAGGED[..13]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(Frame::new_checked(&[][..]).unwrap_err(), Error::Truncated);
        // A VLAN ethertype promises a tag: 14..17 bytes are not enough.
        for len in 14..18 {
            assert_eq!(
                Frame::new_checked(&TAGGED[..len]).unwrap_err(),
                Error::Truncated
            );
        }
        // Unchecked, a short tagged frame reads as having no tag: no panic.
        assert_eq!(Frame::new_unchecked(&TAGGED[..16]).vlan_id(), None);
        // Exactly a header, no payload: valid, empty payload.
        assert!(Frame::new_checked(&UNTAGGED[..14])
            .unwrap()
            .payload()
            .is_empty());
        let f = Frame::new_checked(&TAGGED[..18]).unwrap();
        assert_eq!(f.inner_ethertype(), ETHERTYPE_IPV4);
        assert!(f.payload().is_empty());
    }

    #[test]
    fn setters_round_trip() {
        let mut buf = UNTAGGED;
        let mut f = Frame::new_checked(&mut buf[..]).unwrap();
        let a = Mac([2, 0, 0, 0, 0, 0xaa]);
        let b = Mac([2, 0, 0, 0, 0, 0xbb]);
        f.set_dst_addr(a);
        f.set_src_addr(b);
        f.set_ethertype(ETHERTYPE_IPV6);
        assert_eq!(
            (f.dst_addr(), f.src_addr(), f.ethertype()),
            (a, b, ETHERTYPE_IPV6)
        );
        // On an untagged frame the VLAN setters refuse and change nothing.
        assert!(!f.set_vlan_tci(0x0123));
        assert!(!f.set_vlan_id(5));
        f.set_inner_ethertype(ETHERTYPE_IPV4);
        assert_eq!(f.ethertype(), ETHERTYPE_IPV4);
        f.payload_mut()[0] = 0x99;
        assert_eq!(buf[14..], [0x99, 0x01]);
    }

    #[test]
    fn vlan_setters_round_trip() {
        let mut buf = TAGGED;
        let mut f = Frame::new_checked(&mut buf[..]).unwrap();
        assert!(f.set_vlan_id(0xfff + 7)); // masked to 12 bits
        assert_eq!(f.vlan_id(), Some(6));
        assert_eq!(f.vlan_tci(), Some(0xa006), "priority kept");
        assert!(f.set_vlan_tci(0x2001));
        assert_eq!(f.vlan_id(), Some(1));
        f.set_inner_ethertype(ETHERTYPE_ARP);
        assert_eq!(f.inner_ethertype(), ETHERTYPE_ARP);
        assert_eq!(f.ethertype(), ETHERTYPE_VLAN, "outer untouched");
        f.payload_mut()[1] = 0x10;
        assert_eq!(buf[14..], [0x20, 0x01, 0x08, 0x06, 0x45, 0x10]);
    }

    #[test]
    fn building_a_tagged_frame() {
        let mut buf = [0u8; 18];
        let mut f = Frame::new_unchecked(&mut buf[..]);
        f.set_dst_addr(Mac::BROADCAST);
        f.set_src_addr(Mac([2, 0, 0, 0, 0, 1]));
        f.set_ethertype(ETHERTYPE_VLAN);
        assert!(f.set_vlan_tci(100));
        f.set_inner_ethertype(ETHERTYPE_ARP);
        assert!(f.check_len().is_ok());
        assert_eq!(buf[12..], [0x81, 0x00, 0x00, 0x64, 0x08, 0x06]);
    }
}
