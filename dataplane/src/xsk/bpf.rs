//! The XDP program that hands a queue's packets to its AF_XDP socket, loaded
//! with raw `bpf(2)` calls (no clang, no libbpf).
//!
//! The program is six instruction slots:
//! ```text
//! r2 = *(u32 *)(r1 + 16)     ; ctx->rx_queue_index
//! r1 = map fd                ; ld_imm64 with BPF_PSEUDO_MAP_FD (two slots)
//! r3 = XDP_PASS              ; action when the queue's slot is empty
//! call bpf_redirect_map
//! exit
//! ```
//! It is attached with `BPF_LINK_CREATE`, so it goes away with the link fd,
//! even when the process is killed.

use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::error::{IfName, XskError, XskStep};

// enum bpf_cmd
pub(crate) const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
pub(crate) const BPF_PROG_LOAD: libc::c_long = 5;
pub(crate) const BPF_LINK_CREATE: libc::c_long = 28;
// enum bpf_map_type / bpf_prog_type / bpf_attach_type
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
pub(crate) const BPF_PROG_TYPE_XDP: u32 = 6;
pub(crate) const BPF_XDP: u32 = 37;
// linux/if_link.h
pub(crate) const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
pub(crate) const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
// Instruction encoding (linux/bpf.h, linux/bpf_common.h).
const BPF_LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const BPF_LD_IMM_DW: u8 = 0x18; // BPF_LD | BPF_IMM | BPF_DW
const BPF_ALU64_MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const BPF_JMP_CALL: u8 = 0x85; // BPF_JMP | BPF_CALL
const BPF_JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT
/// `src_reg` of an `ld_imm64` whose immediate is a map's file descriptor.
pub const BPF_PSEUDO_MAP_FD: u8 = 1;
const FUNC_REDIRECT_MAP: i32 = 51; // BPF_FUNC_redirect_map
const XDP_PASS: i32 = 2;
/// `offsetof(struct xdp_md, rx_queue_index)`.
const XDP_MD_RX_QUEUE_INDEX: i16 = 16;

/// XSKMAP slots: one per possible RX queue. 256 pointers cost 2 KiB.
pub const XSKMAP_ENTRIES: u32 = 256;

/// Where the XDP program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XdpMode {
    /// In the driver (`XDP_FLAGS_DRV_MODE`); veth supports it.
    Native,
    /// On the skb after the driver (`XDP_FLAGS_SKB_MODE`); works everywhere,
    /// slower.
    Generic,
}

impl XdpMode {
    fn link_flags(self) -> u32 {
        match self {
            XdpMode::Native => XDP_FLAGS_DRV_MODE,
            XdpMode::Generic => XDP_FLAGS_SKB_MODE,
        }
    }
}

/// `struct bpf_insn`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    /// Opcode.
    pub code: u8,
    /// dst_reg in the low nibble, src_reg in the high nibble.
    pub regs: u8,
    /// Offset.
    pub off: i16,
    /// Immediate.
    pub imm: i32,
}

/// One instruction: opcode, destination and source registers, offset,
/// immediate.
pub const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

/// The redirect program for the XSKMAP `map_fd`.
pub(crate) fn redirect_program(map_fd: RawFd) -> [Insn; 6] {
    [
        insn(BPF_LDX_MEM_W, 2, 1, XDP_MD_RX_QUEUE_INDEX, 0),
        insn(BPF_LD_IMM_DW, 1, BPF_PSEUDO_MAP_FD, 0, map_fd),
        insn(0, 0, 0, 0, 0), // upper 32 bits of the 64-bit immediate
        insn(BPF_ALU64_MOV_K, 3, 0, 0, XDP_PASS),
        insn(BPF_JMP_CALL, 0, 0, 0, FUNC_REDIRECT_MAP),
        insn(BPF_JMP_EXIT, 0, 0, 0, 0),
    ]
}

/// `bpf_attr` for `BPF_MAP_CREATE` (prefix; the kernel zero-fills the rest).
#[repr(C)]
#[derive(Default)]
pub(crate) struct MapCreateAttr {
    pub(crate) map_type: u32,
    pub(crate) key_size: u32,
    pub(crate) value_size: u32,
    pub(crate) max_entries: u32,
    pub(crate) map_flags: u32,
    pub(crate) inner_map_fd: u32,
    pub(crate) numa_node: u32,
    pub(crate) map_name: [u8; 16],
}

/// `bpf_attr` for `BPF_PROG_LOAD` (prefix up to `expected_attach_type`).
#[repr(C)]
#[derive(Default)]
pub(crate) struct ProgLoadAttr {
    pub(crate) prog_type: u32,
    pub(crate) insn_cnt: u32,
    pub(crate) insns: u64,
    pub(crate) license: u64,
    pub(crate) log_level: u32,
    pub(crate) log_size: u32,
    pub(crate) log_buf: u64,
    pub(crate) kern_version: u32,
    pub(crate) prog_flags: u32,
    pub(crate) prog_name: [u8; 16],
    pub(crate) prog_ifindex: u32,
    pub(crate) expected_attach_type: u32,
}

/// `bpf_attr` for `BPF_MAP_{UPDATE,DELETE}_ELEM`.
#[repr(C)]
#[derive(Default)]
pub(crate) struct MapElemAttr {
    pub(crate) map_fd: u32,
    pub(crate) _pad: u32,
    pub(crate) key: u64,
    pub(crate) value: u64,
    pub(crate) flags: u64,
}

/// `bpf_attr` for `BPF_LINK_CREATE`, zero tail included.
#[repr(C)]
#[derive(Default)]
pub(crate) struct LinkCreateAttr {
    pub(crate) prog_fd: u32,
    pub(crate) target_ifindex: u32,
    pub(crate) attach_type: u32,
    pub(crate) flags: u32,
    pub(crate) _tail: [u64; 4],
}

/// `bpf(cmd, attr, sizeof attr)`; the result or the errno.
///
/// # Safety
/// `attr` must be the `bpf_attr` layout of `cmd`, and every pointer in it
/// must be valid for what `cmd` does with it (read instructions, write the
/// log buffer, read key and value) for the duration of the call.
pub(crate) unsafe fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> Result<libc::c_long, i32> {
    // SAFETY: the caller guarantees the layout and the pointers; the size
    // passed is the size of `attr`, so the kernel reads no further.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(errno())
    } else {
        Ok(ret)
    }
}

/// The calling thread's errno.
pub(crate) fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Wraps a file descriptor the kernel just returned.
pub(crate) fn owned_fd(ret: libc::c_long) -> OwnedFd {
    // SAFETY: `ret` is a fresh descriptor returned by a successful bpf(2)
    // call; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(ret as RawFd) }
}

pub(crate) fn name16(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    let n = name.len().min(15);
    out[..n].copy_from_slice(&name.as_bytes()[..n]);
    out
}

/// Resolves an interface name in the calling thread's network namespace.
pub(crate) fn ifindex(ifname: IfName) -> Result<u32, XskError> {
    if ifname.as_str().is_empty() {
        return Err(XskError::new(XskStep::Device, libc::ENODEV, ifname));
    }
    let c_name = ifname.c_bytes();
    // SAFETY: `c_name` is NUL-terminated (at most 15 name bytes in 16).
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr().cast()) };
    if index == 0 {
        return Err(XskError::new(XskStep::Device, errno(), ifname));
    }
    Ok(index)
}

/// The redirect program attached to one interface: its XSKMAP, program and
/// link. Share it (`Arc`) between the workers that own queues of the
/// interface; dropping the last handle detaches the program.
#[derive(Debug)]
pub struct XdpProgram {
    ifname: IfName,
    ifindex: u32,
    mode: XdpMode,
    map: OwnedFd,
    // Kept open for the program's lifetime; the link holds its own reference.
    _prog: OwnedFd,
    _link: OwnedFd,
}

impl XdpProgram {
    /// Creates the XSKMAP, loads the program and attaches it to `ifname` (in
    /// the calling thread's network namespace) in `mode`.
    pub fn attach(ifname: &str, mode: XdpMode) -> Result<XdpProgram, XskError> {
        let name = IfName::new(ifname);
        if name.as_str() != ifname {
            return Err(XskError::new(XskStep::Device, libc::ENODEV, name));
        }
        let index = ifindex(name)?;
        let err = |step, errno| XskError::new(step, errno, name);

        let map = create_map(BPF_MAP_TYPE_XSKMAP, 4, 4, XSKMAP_ENTRIES, "afxdp_xsks")
            .map_err(|e| err(XskStep::MapCreate, e))?;

        let insns = redirect_program(map.as_raw_fd());
        let prog = load_xdp(&insns, "afxdp_redirect").map_err(|(errno, log)| {
            let e = err(XskStep::ProgLoad, errno);
            match log {
                Some(log) => e.with_log(&log),
                None => e,
            }
        })?;

        let link = link_xdp(&prog, index, mode).map_err(|e| err(XskStep::Attach, e))?;

        Ok(XdpProgram {
            ifname: name,
            ifindex: index,
            mode,
            map,
            _prog: prog,
            _link: link,
        })
    }

    /// The interface index the program is attached to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The interface name.
    pub fn ifname(&self) -> IfName {
        self.ifname
    }

    /// The attach mode.
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// Sends packets of `queue` to the AF_XDP socket `xsk_fd` (which must be
    /// bound). `map_update(queue, xsk_fd)`.
    pub fn register(&self, queue: u32, xsk_fd: RawFd) -> Result<(), XskError> {
        let key = queue;
        let value = xsk_fd as u32;
        let mut attr = MapElemAttr {
            map_fd: self.map.as_raw_fd() as u32,
            key: &key as *const u32 as u64,
            value: &value as *const u32 as u64,
            flags: 0, // BPF_ANY
            ..Default::default()
        };
        // SAFETY: MapElemAttr is the BPF_MAP_UPDATE_ELEM layout; key and
        // value point to live u32s matching the map's key and value sizes.
        unsafe { sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr) }
            .map(drop)
            .map_err(|e| {
                XskError::new(XskStep::MapUpdate, e, self.ifname).with_detail(queue.into())
            })
    }

    /// Empties the slot of `queue`: its packets go to the kernel stack again.
    pub fn unregister(&self, queue: u32) {
        let key = queue;
        let mut attr = MapElemAttr {
            map_fd: self.map.as_raw_fd() as u32,
            key: &key as *const u32 as u64,
            ..Default::default()
        };
        // SAFETY: MapElemAttr is the BPF_MAP_DELETE_ELEM layout; key points
        // to a live u32. An already-empty slot only yields ENOENT.
        let _ = unsafe { sys_bpf(BPF_MAP_DELETE_ELEM, &mut attr) };
    }
}

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_TYPE_ARRAY: u32 = 2;

/// An XDP program of the caller's own instructions with one `ARRAY` map of
/// `u64` counters, attached to one interface through a bpf_link (so it
/// goes away with this value, even when the process is killed).
///
/// Safe to offer: the kernel's verifier checks the program before it runs,
/// and the program runs in the kernel, never in this process's memory.
#[derive(Debug)]
pub struct CounterProgram {
    ifname: IfName,
    slots: u32,
    map: OwnedFd,
    _prog: OwnedFd,
    _link: OwnedFd,
}

impl CounterProgram {
    /// Creates an `ARRAY` map of `slots` `u64` counters (key `u32`, all 0),
    /// builds the program with `program(map_fd)` (the descriptor an
    /// `ld_imm64` with [`BPF_PSEUDO_MAP_FD`] names the map by), loads it
    /// as `name` and attaches it to `ifname` (in the calling thread's
    /// network namespace) in `mode`.
    pub fn attach(
        ifname: &str,
        mode: XdpMode,
        slots: u32,
        name: &str,
        program: impl FnOnce(RawFd) -> Vec<Insn>,
    ) -> Result<CounterProgram, XskError> {
        let ifn = IfName::new(ifname);
        if ifn.as_str() != ifname {
            return Err(XskError::new(XskStep::Device, libc::ENODEV, ifn));
        }
        let index = ifindex(ifn)?;
        let err = |step, errno| XskError::new(step, errno, ifn);
        let map = create_map(BPF_MAP_TYPE_ARRAY, 4, 8, slots, name)
            .map_err(|e| err(XskStep::MapCreate, e))?;
        let insns = program(map.as_raw_fd());
        let prog = load_xdp(&insns, name).map_err(|(errno, log)| {
            let e = err(XskStep::ProgLoad, errno);
            match log {
                Some(log) => e.with_log(&log),
                None => e,
            }
        })?;
        let link = link_xdp(&prog, index, mode).map_err(|e| err(XskStep::Attach, e))?;
        Ok(CounterProgram {
            ifname: ifn,
            slots,
            map,
            _prog: prog,
            _link: link,
        })
    }

    /// The interface the program is attached to.
    pub fn ifname(&self) -> IfName {
        self.ifname
    }

    /// Counter `slot` (one map lookup).
    pub fn counter(&self, slot: u32) -> Result<u64, XskError> {
        if slot >= self.slots {
            return Err(
                XskError::new(XskStep::Config, libc::EINVAL, self.ifname).with_detail(slot.into())
            );
        }
        let mut value = 0u64;
        let mut attr = MapElemAttr {
            map_fd: self.map.as_raw_fd() as u32,
            key: &slot as *const u32 as u64,
            value: &mut value as *mut u64 as u64,
            ..Default::default()
        };
        // SAFETY: MapElemAttr is the BPF_MAP_LOOKUP_ELEM layout; key points
        // to a live u32 and value to a live, writable u64 (the map's key and
        // value sizes).
        unsafe { sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) }
            .map_err(|e| XskError::new(XskStep::MapUpdate, e, self.ifname))?;
        Ok(value)
    }
}

/// Creates a BPF map; its descriptor or the errno.
pub(crate) fn create_map(
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    name: &str,
) -> Result<OwnedFd, i32> {
    let mut attr = MapCreateAttr {
        map_type,
        key_size,
        value_size,
        max_entries,
        map_name: name16(name),
        ..Default::default()
    };
    // SAFETY: MapCreateAttr is the BPF_MAP_CREATE prefix; no pointers.
    unsafe { sys_bpf(BPF_MAP_CREATE, &mut attr) }.map(owned_fd)
}

/// Loads an XDP program (expected attach type BPF_XDP); on failure the errno
/// and, when the verifier said something, its log.
pub(crate) fn load_xdp(insns: &[Insn], name: &str) -> Result<OwnedFd, (i32, Option<Vec<u8>>)> {
    let license = b"GPL\0";
    let attempt = |log: Option<&mut Vec<u8>>| {
        let mut attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_XDP,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            prog_name: name16(name),
            expected_attach_type: BPF_XDP,
            ..Default::default()
        };
        if let Some(buf) = log {
            attr.log_level = 1;
            attr.log_size = buf.len() as u32;
            attr.log_buf = buf.as_mut_ptr() as u64;
        }
        // SAFETY: ProgLoadAttr is the BPF_PROG_LOAD prefix; `insns` and
        // `license` outlive the call, and the log buffer (when given) is
        // writable for `log_size` bytes.
        unsafe { sys_bpf(BPF_PROG_LOAD, &mut attr) }
    };
    match attempt(None) {
        Ok(fd) => Ok(owned_fd(fd)),
        Err(first) => {
            // Load again with a log to learn why (what libbpf does too).
            let mut log = vec![0u8; 64 * 1024];
            match attempt(Some(&mut log)) {
                Ok(fd) => Ok(owned_fd(fd)),
                Err(_) if log[0] == 0 => Err((first, None)),
                Err(_) => Err((first, Some(log))),
            }
        }
    }
}

/// Attaches `prog` to the interface `ifindex` in `mode` through a bpf_link
/// (detached by the kernel when the link's last descriptor closes).
pub(crate) fn link_xdp(prog: &OwnedFd, ifindex: u32, mode: XdpMode) -> Result<OwnedFd, i32> {
    let mut attr = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: BPF_XDP,
        flags: mode.link_flags(),
        ..Default::default()
    };
    // SAFETY: LinkCreateAttr is the BPF_LINK_CREATE layout; no pointers.
    unsafe { sys_bpf(BPF_LINK_CREATE, &mut attr) }.map(owned_fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(insns: &[Insn]) -> Vec<u8> {
        insns
            .iter()
            .flat_map(|i| {
                let mut b = vec![i.code, i.regs];
                b.extend_from_slice(&i.off.to_le_bytes());
                b.extend_from_slice(&i.imm.to_le_bytes());
                b
            })
            .collect()
    }

    #[test]
    fn program_encodes_as_the_kernel_expects() {
        assert_eq!(size_of::<Insn>(), 8);
        // Golden bytes, as `llvm-objdump -d` shows them for the C version.
        let want: [[u8; 8]; 6] = [
            [0x61, 0x12, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00], // r2 = *(u32 *)(r1 + 16)
            [0x18, 0x11, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00], // r1 = map fd 7
            [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
            [0xb7, 0x03, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00], // r3 = 2
            [0x85, 0x00, 0x00, 0x00, 0x33, 0x00, 0x00, 0x00], // call 51
            [0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // exit
        ];
        assert_eq!(bytes(&redirect_program(7)), want.concat());
    }

    #[test]
    fn attr_layouts_match_the_uapi_offsets() {
        assert_eq!(std::mem::offset_of!(MapCreateAttr, map_name), 28);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(std::mem::offset_of!(MapElemAttr, key), 8);
        assert_eq!(std::mem::offset_of!(LinkCreateAttr, flags), 12);
    }

    #[test]
    fn missing_device_is_named() {
        let err = XdpProgram::attach("nosuchdev9x", XdpMode::Native).unwrap_err();
        assert_eq!(err.step, XskStep::Device);
        assert_eq!(
            err.to_string(),
            "no such device nosuchdev9x: create it or fix interfaces[].device"
        );
    }
}
