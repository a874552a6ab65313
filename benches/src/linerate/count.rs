//! The cheap sink: an XDP program that counts and drops test frames, built
//! on the safe [`CounterProgram`] of `dataplane::xsk::bpf`.
//!
//! The counting program drops every frame in the driver (the frames never
//! climb the IP stack, which would cost the sink more than the router it
//! measures) and counts, in an `ARRAY` map of two `u64` slots, the frames
//! that carry the `linerate` magic (slot 0) and all others (slot 1):
//! ```text
//!  0: r6 = 1                      ; slot "other"
//!  1: r2 = *(u32 *)(r1 + 0)       ; data
//!  2: r3 = *(u32 *)(r1 + 4)       ; data_end
//!  3: r4 = r2
//!  4: r4 += 44
//!  5: if r4 > r3 goto 13          ; too short for Ethernet + IPv4 + UDP + magic
//!  6: r5 = *(u16 *)(r2 + 12)      ; EtherType
//!  7: if r5 != 0x0008 goto 13     ; 0x0800 read little-endian
//!  8: r5 = *(u8 *)(r2 + 23)       ; IPv4 protocol
//!  9: if r5 != 17 goto 13         ; UDP
//! 10: r5 = *(u16 *)(r2 + 42)      ; first payload bytes (IHL 5)
//! 11: if r5 != MAGIC goto 13
//! 12: r6 = 0                      ; slot "ours"
//! 13: *(u32 *)(r10 - 4) = r6
//! 14: r2 = r10
//! 15: r2 += -4
//! 16: r1 = map fd                 ; ld_imm64, BPF_PSEUDO_MAP_FD (two slots)
//! 18: call bpf_map_lookup_elem
//! 19: if r0 == 0 goto 22
//! 20: r1 = 1
//! 21: lock *(u64 *)(r0 + 0) += r1
//! 22: r0 = XDP_DROP
//! 23: exit
//! ```
//! It is attached with `BPF_LINK_CREATE` and goes away with the link fd,
//! even when the process is killed.

use std::os::fd::RawFd;

use dataplane::xsk::bpf::{insn, Insn, BPF_PSEUDO_MAP_FD};
use dataplane::xsk::{CounterProgram, IfName, XdpMode, XskError};

const XDP_DROP: i32 = 1;
const FUNC_MAP_LOOKUP_ELEM: i32 = 1;

/// Slot of frames that carry the magic.
const SLOT_OURS: u32 = 0;
/// Slot of every other frame.
const SLOT_OTHER: u32 = 1;

/// The counting drop program for the array map `map_fd`; `magic` is the
/// first two UDP payload bytes, in wire order.
fn count_drop_program(map_fd: RawFd, magic: [u8; 2]) -> [Insn; 24] {
    const MOV64_K: u8 = 0xb7;
    const MOV64_X: u8 = 0xbf;
    const ADD64_K: u8 = 0x07;
    const LDX_W: u8 = 0x61;
    const LDX_H: u8 = 0x69;
    const LDX_B: u8 = 0x71;
    const STX_W: u8 = 0x63;
    const JGT_X: u8 = 0x2d;
    const JNE_K: u8 = 0x55;
    const JEQ_K: u8 = 0x15;
    const LD_DW: u8 = 0x18;
    const CALL: u8 = 0x85;
    const EXIT: u8 = 0x95;
    const ATOMIC_DW: u8 = 0xdb; // BPF_STX | BPF_ATOMIC | BPF_DW, imm BPF_ADD
                                // A little-endian u16 load of the two wire bytes.
    let magic_le = i32::from(u16::from_le_bytes(magic));
    [
        insn(MOV64_K, 6, 0, 0, SLOT_OTHER as i32),
        insn(LDX_W, 2, 1, 0, 0),
        insn(LDX_W, 3, 1, 4, 0),
        insn(MOV64_X, 4, 2, 0, 0),
        insn(ADD64_K, 4, 0, 0, 44),
        insn(JGT_X, 4, 3, 7, 0),
        insn(LDX_H, 5, 2, 12, 0),
        insn(JNE_K, 5, 0, 5, 0x0008),
        insn(LDX_B, 5, 2, 23, 0),
        insn(JNE_K, 5, 0, 3, 17),
        insn(LDX_H, 5, 2, 42, 0),
        insn(JNE_K, 5, 0, 1, magic_le),
        insn(MOV64_K, 6, 0, 0, SLOT_OURS as i32),
        insn(STX_W, 10, 6, -4, 0),
        insn(MOV64_X, 2, 10, 0, 0),
        insn(ADD64_K, 2, 0, 0, -4),
        insn(LD_DW, 1, BPF_PSEUDO_MAP_FD, 0, map_fd),
        insn(0, 0, 0, 0, 0),
        insn(CALL, 0, 0, 0, FUNC_MAP_LOOKUP_ELEM),
        insn(JEQ_K, 0, 0, 2, 0),
        insn(MOV64_K, 1, 0, 0, 1),
        insn(ATOMIC_DW, 0, 1, 0, 0),
        insn(MOV64_K, 0, 0, 0, XDP_DROP),
        insn(EXIT, 0, 0, 0, 0),
    ]
}

/// Frames a [`CountDrop`] program has seen since it was attached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounts {
    /// IPv4/UDP frames whose payload starts with the magic.
    pub ours: u64,
    /// Every other frame (ARP, IPv6 chatter, foreign traffic).
    pub other: u64,
}

/// An XDP program on one interface that counts and drops every frame.
#[derive(Debug)]
pub struct CountDrop(CounterProgram);

impl CountDrop {
    /// Loads the program and attaches it to `ifname` (in the calling
    /// thread's network namespace). `magic` is the first two UDP payload
    /// bytes of the frames counted as ours.
    pub fn attach(ifname: &str, mode: XdpMode, magic: [u8; 2]) -> Result<CountDrop, XskError> {
        CounterProgram::attach(ifname, mode, 2, "linerate_sink", |map_fd| {
            count_drop_program(map_fd, magic).to_vec()
        })
        .map(CountDrop)
    }

    /// The interface the program is attached to.
    pub fn ifname(&self) -> IfName {
        self.0.ifname()
    }

    /// The counters so far (two map lookups).
    pub fn counts(&self) -> Result<DropCounts, XskError> {
        Ok(DropCounts {
            ours: self.0.counter(SLOT_OURS)?,
            other: self.0.counter(SLOT_OTHER)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_land_on_the_store_and_the_drop() {
        let p = count_drop_program(7, [0x4c, 0x52]);
        for (i, ins) in p.iter().enumerate() {
            if matches!(ins.code, 0x2d | 0x55) {
                assert_eq!(i + 1 + ins.off as usize, 13, "insn {i}");
            }
        }
        assert_eq!(p[19].code, 0x15);
        assert_eq!(19 + 1 + p[19].off as usize, 22);
        assert_eq!(p[22].imm, XDP_DROP);
        assert_eq!(p[11].imm, 0x524c);
        assert_eq!(size_of::<Insn>(), 8);
    }
}
