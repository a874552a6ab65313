//! A TUN device: the host path's door to the kernel's IP stack.
//!
//! Opened with `IFF_TUN | IFF_NO_PI`: each `read` returns one IP packet the
//! kernel routed into the device, each `write` hands one IP packet to the
//! kernel as if it had arrived on the device. The descriptor is
//! non-blocking; [`Tun::wait_readable`] waits with a timeout. The device
//! exists as long as the descriptor is open (it is not made persistent), so
//! the kernel removes it, with its addresses and routes, when routerd exits
//! however it exits.
//!
//! No offloads are asked for (no `IFF_VNET_HDR`, no `TUNSETOFFLOAD`): the
//! kernel sends complete packets no longer than the device's MTU with their
//! checksums done.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// `struct ifreq` as TUNSETIFF reads and writes it: the name, then the
/// flags in the union (40 bytes on 64-bit Linux).
#[repr(C)]
struct IfReqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// One packet read from the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunRead {
    /// Bytes copied into the buffer.
    pub len: usize,
    /// The packet was longer than the buffer: the rest is lost.
    pub truncated: bool,
}

impl TunRead {
    /// What a `read` that returned `ret` (the packet's full length, as the
    /// TUN driver reports it even when it copied less) into a buffer of
    /// `cap` bytes gave.
    fn of(ret: usize, cap: usize) -> TunRead {
        TunRead {
            len: ret.min(cap),
            truncated: ret > cap,
        }
    }
}

/// An open TUN device.
#[derive(Debug)]
pub struct Tun {
    fd: OwnedFd,
    name: String,
}

impl Tun {
    /// Creates TUN device `name` (or attaches to an existing, unused one of
    /// that name) in the calling thread's network namespace. Needs
    /// CAP_NET_ADMIN. The device is down; bring it up with `ip link`.
    pub fn open(name: &str) -> io::Result<Tun> {
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad TUN device name {name:?} (1 to 15 bytes)"),
            ));
        }
        let path = c"/dev/net/tun";
        // SAFETY: a valid NUL-terminated path; the returned descriptor is
        // checked before use and owned by the OwnedFd below.
        let raw = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("open /dev/net/tun: {e}")));
        }
        // SAFETY: `raw` is a descriptor we just opened and nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut req = IfReqFlags {
            name: [0; libc::IFNAMSIZ],
            flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
            _pad: [0; 22],
        };
        req.name[..bytes.len()].copy_from_slice(bytes);
        // SAFETY: TUNSETIFF reads and writes a `struct ifreq`; `req` has its
        // size and layout (name then the flags union member) and lives
        // across the call.
        let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut _) };
        if ret < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("TUNSETIFF {name}: {e} (needs CAP_NET_ADMIN; is the name taken by another device?)"),
            ));
        }
        let end = req
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(req.name.len());
        Ok(Tun {
            fd,
            name: String::from_utf8_lossy(&req.name[..end]).into_owned(),
        })
    }

    /// The device's name as the kernel made it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one IP packet into `buf`; `Ok(None)` when none is waiting.
    /// A packet longer than `buf` is cut (the kernel drops the rest) and
    /// says so.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<Option<TunRead>> {
        // SAFETY: `buf` is writable for `buf.len()` bytes; read writes at
        // most that many.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(Some(TunRead::of(n as usize, buf.len())));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock => Ok(None),
            io::ErrorKind::Interrupted => Ok(None),
            _ => Err(e),
        }
    }

    /// Hands one IP packet to the kernel; `Ok(false)` when the device
    /// cannot take it now.
    pub fn write(&self, packet: &[u8]) -> io::Result<bool> {
        // SAFETY: `packet` is readable for its length; write only reads it.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), packet.as_ptr().cast(), packet.len()) };
        if n >= 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(false),
            _ => Err(e),
        }
    }

    /// Waits until a packet can be read or `timeout` passed; true when
    /// readable.
    pub fn wait_readable(&self, timeout: Duration) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ts = libc::timespec {
            tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: one valid pollfd and a valid timespec, both live across
        // the call; no signal mask is passed.
        let n = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
        n > 0 && pfd.revents & libc::POLLIN != 0
    }
}

impl AsRawFd for Tun {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_read_reports_what_was_copied() {
        // The TUN driver returns the packet's whole length even when it
        // copied only what fit.
        assert_eq!(
            TunRead::of(2100, 2048),
            TunRead {
                len: 2048,
                truncated: true
            }
        );
        assert_eq!(
            TunRead::of(2048, 2048),
            TunRead {
                len: 2048,
                truncated: false
            }
        );
        assert!(!TunRead::of(60, 2048).truncated);
    }

    #[test]
    fn names_that_cannot_be_devices_are_refused() {
        for bad in ["", "a-name-that-is-too-long", "nul\0"] {
            let e = Tun::open(bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
    }
}
