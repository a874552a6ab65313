//! The UMEM: one anonymous mapping cut into equal power-of-two frames that
//! the kernel and a worker pass back and forth by address.

use super::error::{IfName, XskError, XskStep};
use super::ring::Mmap;

/// Default frame size: half a page, room for a 1500-byte MTU frame after
/// the kernel's 256-byte headroom.
pub const DEFAULT_FRAME_SIZE: u32 = 2048;

/// The frame area. Addresses are byte offsets from its start.
#[derive(Debug)]
pub struct Umem {
    map: Mmap,
    frames: u32,
    frame_size: u32,
}

impl Umem {
    /// Maps `frames * frame_size` bytes. `frame_size` must be a power of two
    /// in 2048..=4096 (the kernel's aligned-chunk rule on 4 KiB pages).
    pub fn new(frames: u32, frame_size: u32) -> Result<Umem, XskError> {
        let none = IfName::new("");
        if !frame_size.is_power_of_two() || !(2048..=4096).contains(&frame_size) {
            return Err(
                XskError::new(XskStep::Config, libc::EINVAL, none).with_detail(frame_size.into())
            );
        }
        if frames == 0 {
            return Err(XskError::new(XskStep::Config, libc::EINVAL, none));
        }
        let len = u64::from(frames) * u64::from(frame_size);
        let map = Mmap::anonymous(len as usize)
            .map_err(|e| XskError::new(XskStep::UmemMmap, e, none).with_detail(len))?;
        Ok(Umem {
            map,
            frames,
            frame_size,
        })
    }

    /// Number of frames.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// Bytes per frame.
    pub fn frame_size(&self) -> u32 {
        self.frame_size
    }

    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.map.len() as u64
    }

    /// Whether the UMEM has no frames (never, once built).
    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// Start of the area.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.map.as_ptr()
    }

    /// The frame base of an address inside a frame.
    pub fn frame_base(&self, addr: u64) -> u64 {
        addr & !u64::from(self.frame_size - 1)
    }

    /// Frame number of an address.
    pub fn frame_index(&self, addr: u64) -> usize {
        (addr / u64::from(self.frame_size)) as usize
    }

    /// `XDP_UMEM_REG` argument for this area, no headroom.
    pub(crate) fn reg(&self) -> libc::xdp_umem_reg {
        libc::xdp_umem_reg {
            addr: self.map.as_ptr() as u64,
            len: self.len(),
            chunk_size: self.frame_size,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        }
    }
}
