//! One AF_XDP socket: created, given its four rings (its own fill and
//! completion rings even when it shares the UMEM), bound to an interface
//! queue.

use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use std::sync::Arc;

use super::bpf::errno;
use super::error::{IfName, XskError, XskStep};
use super::fake::FakeQueue;
use super::ring::{ConsRing, Mmap, ProdRing};
use super::umem::Umem;

/// `XDP_MAX_TX_SKB_BUDGET` (linux/if_xdp.h, kernel 6.17+): descriptors one
/// copy-mode `sendto` may send (default 32).
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;
/// The budget we ask for.
const TX_SKB_BUDGET: u32 = 256;
/// How long a bind keeps retrying EBUSY: a socket closed a moment ago keeps
/// its queue busy until the kernel's deferred release has run.
const BIND_BUSY_RETRY: Duration = Duration::from_secs(3);

/// Where one socket binds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SocketTarget {
    pub ifname: IfName,
    pub ifindex: u32,
    pub queue: u32,
    /// Entries of each of the four rings (a power of two).
    pub ring_size: u32,
    /// Copy or zero-copy. A generic-mode program always binds in copy mode,
    /// where the kernel would otherwise try zero-copy (and succeed on i40e,
    /// whose TX kicks then fail with EINVAL).
    pub bind: BindMode,
}

/// How a socket asks to be bound (`dataplane.xdp_bind`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BindMode {
    /// Zero-copy where the driver offers it, else copy (no flag).
    #[default]
    Auto,
    /// Copy mode (`XDP_COPY`).
    Copy,
    /// Zero-copy or nothing (`XDP_ZEROCOPY`: the bind fails where the
    /// driver cannot).
    ZeroCopy,
}

/// The `sxdp_flags` of a bind. A socket sharing another's UMEM may not set
/// the mode or NEED_WAKEUP flags (the kernel refuses with EINVAL): it
/// inherits them from the socket that registered the UMEM.
pub(crate) fn bind_flags(shared: bool, bind: BindMode) -> u16 {
    match (shared, bind) {
        (true, _) => libc::XDP_SHARED_UMEM,
        (false, BindMode::Auto) => libc::XDP_USE_NEED_WAKEUP,
        (false, BindMode::Copy) => libc::XDP_USE_NEED_WAKEUP | libc::XDP_COPY,
        (false, BindMode::ZeroCopy) => libc::XDP_USE_NEED_WAKEUP | libc::XDP_ZEROCOPY,
    }
}

/// The bind a port makes: what was asked, and copy mode for `auto` under a
/// generic-mode program.
pub(crate) fn effective_bind(asked: BindMode, generic: bool) -> BindMode {
    match asked {
        BindMode::Auto if generic => BindMode::Copy,
        b => b,
    }
}

/// What a socket talks to: the kernel, or the fake kernel of the tests.
#[derive(Debug)]
enum Backend {
    Kernel(OwnedFd),
    Fake(Arc<FakeQueue>),
}

impl Drop for Backend {
    fn drop(&mut self) {
        // The fake must stop touching the UMEM once its socket is gone.
        if let Backend::Fake(q) = self {
            q.close();
        }
    }
}

/// An AF_XDP socket and its rings.
#[derive(Debug)]
pub(crate) struct XskSocket {
    pub fill: ProdRing<u64>,
    pub comp: ConsRing<u64>,
    pub rx: ConsRing<libc::xdp_desc>,
    pub tx: ProdRing<libc::xdp_desc>,
    // Declared after the rings: a fake's ring memory outlives them.
    backend: Backend,
}

// asm-generic/socket.h (x86_64, arm64): busy polling on a socket.
const SO_BUSY_POLL: libc::c_int = 46;
const SO_INCOMING_NAPI_ID: libc::c_int = 56;
const SO_PREFER_BUSY_POLL: libc::c_int = 69;
const SO_BUSY_POLL_BUDGET: libc::c_int = 70;

/// `setsockopt(fd, SOL_XDP, opt, value)`.
fn set_opt<T>(fd: RawFd, opt: libc::c_int, value: &T) -> Result<(), i32> {
    set_level_opt(fd, libc::SOL_XDP, opt, value)
}

/// `setsockopt(fd, level, opt, value)`.
fn set_level_opt<T>(fd: RawFd, level: libc::c_int, opt: libc::c_int, value: &T) -> Result<(), i32> {
    // SAFETY: `value` is a live `T` of the size we pass; the kernel only
    // reads it.
    let ret = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// `getsockopt(fd, SOL_XDP, opt)` into a zeroed `T`.
///
/// # Safety
/// `T` must be a plain C struct for which all-zero bytes are valid and
/// whose layout is what the kernel writes for `opt`.
unsafe fn get_opt<T>(fd: RawFd, opt: libc::c_int) -> Result<T, i32> {
    // SAFETY: the caller guarantees all-zero is a valid T.
    let mut value: T = unsafe { std::mem::zeroed() };
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` is writable for `len` bytes; the kernel writes at most
    // `len` and reports how many.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_XDP,
            opt,
            (&mut value as *mut T).cast(),
            &mut len,
        )
    };
    if ret != 0 {
        return Err(errno());
    }
    if (len as usize) < size_of::<T>() {
        // An older layout (no flags fields): we do not handle it.
        return Err(libc::EOPNOTSUPP);
    }
    Ok(value)
}

impl XskSocket {
    /// Builds a socket on `umem` and binds it to `target`. With
    /// `shared_with: None` the socket registers the UMEM and binds with
    /// NEED_WAKEUP; otherwise it binds with `XDP_SHARED_UMEM` to the UMEM of
    /// that (bound) socket and inherits its flags.
    pub(crate) fn open(
        umem: &Umem,
        shared_with: Option<RawFd>,
        target: SocketTarget,
    ) -> Result<XskSocket, XskError> {
        let err = |step, errno| XskError::new(step, errno, target.ifname);

        // SAFETY: plain socket(2); the result is checked.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(err(XskStep::Socket, errno()));
        }
        // SAFETY: `raw` is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sfd = fd.as_raw_fd();

        if shared_with.is_none() {
            set_opt(sfd, libc::XDP_UMEM_REG, &umem.reg()).map_err(|e| err(XskStep::UmemReg, e))?;
        }
        let size = target.ring_size;
        for opt in [
            libc::XDP_UMEM_FILL_RING,
            libc::XDP_UMEM_COMPLETION_RING,
            libc::XDP_RX_RING,
            libc::XDP_TX_RING,
        ] {
            set_opt(sfd, opt, &size).map_err(|e| err(XskStep::RingSetup, e))?;
        }
        // SAFETY: xdp_mmap_offsets is plain u64s; the kernel writes this
        // layout (with flags) since 5.4.
        let off: libc::xdp_mmap_offsets = unsafe { get_opt(sfd, libc::XDP_MMAP_OFFSETS) }
            .map_err(|e| err(XskStep::RingMmap, e))?;

        let map = |o: &libc::xdp_ring_offset, desc: usize, pgoff: u64| {
            let len = o.desc as usize + size as usize * desc;
            Mmap::shared(sfd, len, pgoff).map_err(|e| err(XskStep::RingMmap, e))
        };
        let rx_map = map(
            &off.rx,
            size_of::<libc::xdp_desc>(),
            libc::XDP_PGOFF_RX_RING as u64,
        )?;
        let tx_map = map(
            &off.tx,
            size_of::<libc::xdp_desc>(),
            libc::XDP_PGOFF_TX_RING as u64,
        )?;
        let fill_map = map(&off.fr, size_of::<u64>(), libc::XDP_UMEM_PGOFF_FILL_RING)?;
        let comp_map = map(
            &off.cr,
            size_of::<u64>(),
            libc::XDP_UMEM_PGOFF_COMPLETION_RING,
        )?;
        let (fill_p, comp_p, rx_p, tx_p) = (
            fill_map.as_ptr(),
            comp_map.as_ptr(),
            rx_map.as_ptr(),
            tx_map.as_ptr(),
        );
        // SAFETY: each mapping is the kernel's ring of `size` entries laid out
        // as XDP_MMAP_OFFSETS reports; each ring owns its mapping (moving an
        // Mmap does not move the memory), and each side of each ring gets
        // exactly one Rust owner.
        let (fill, comp, rx, tx) = unsafe {
            (
                ProdRing::new(fill_p, off.fr.into(), size, Some(fill_map)),
                ConsRing::new(comp_p, off.cr.into(), size, Some(comp_map)),
                ConsRing::new(rx_p, off.rx.into(), size, Some(rx_map)),
                ProdRing::new(tx_p, off.tx.into(), size, Some(tx_map)),
            )
        };

        // Kernels before 6.17 reject it (ENOPROTOOPT); the default then holds.
        let budget = TX_SKB_BUDGET.min(size);
        let _ = set_opt(sfd, XDP_MAX_TX_SKB_BUDGET, &budget);

        let addr = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: bind_flags(shared_with.is_some(), target.bind),
            sxdp_ifindex: target.ifindex,
            sxdp_queue_id: target.queue,
            sxdp_shared_umem_fd: shared_with.unwrap_or(0) as u32,
        };
        let started = Instant::now();
        loop {
            // SAFETY: `addr` is a valid sockaddr_xdp of the size passed.
            let ret = unsafe {
                libc::bind(
                    sfd,
                    (&addr as *const libc::sockaddr_xdp).cast(),
                    size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
                )
            };
            if ret == 0 {
                break;
            }
            let e = errno();
            if e == libc::EBUSY && started.elapsed() < BIND_BUSY_RETRY {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            return Err(err(XskStep::Bind, e).with_detail(target.queue.into()));
        }
        Ok(XskSocket {
            fill,
            comp,
            rx,
            tx,
            backend: Backend::Kernel(fd),
        })
    }

    /// A socket whose kernel side is the fake kernel's `queue` (tests),
    /// on `umem`, with rings of `ring_size` entries.
    pub(crate) fn fake(queue: Arc<FakeQueue>, umem: &Umem, ring_size: u32) -> XskSocket {
        let (fill, comp, rx, tx) = queue.attach(umem, ring_size);
        XskSocket {
            fill,
            comp,
            rx,
            tx,
            backend: Backend::Fake(queue),
        }
    }

    /// The socket's descriptor (-1 for a fake one, which `poll` ignores).
    pub(crate) fn fd(&self) -> RawFd {
        match &self.backend {
            Backend::Kernel(fd) => fd.as_raw_fd(),
            Backend::Fake(_) => -1,
        }
    }

    /// Preferred busy polling (`SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL` of
    /// `usecs`, `SO_BUSY_POLL_BUDGET` of `budget`), then the NAPI id the
    /// kernel gave the socket (`SO_INCOMING_NAPI_ID`; 0: none, and busy
    /// polling does nothing, as on veth since 6.13).
    pub(crate) fn busy_poll(&self, usecs: u32, budget: u32) -> Result<u32, i32> {
        let fd = match &self.backend {
            Backend::Kernel(fd) => fd.as_raw_fd(),
            Backend::Fake(_) => return Ok(0),
        };
        let on: libc::c_int = 1;
        set_level_opt(fd, libc::SOL_SOCKET, SO_PREFER_BUSY_POLL, &on)?;
        set_level_opt(fd, libc::SOL_SOCKET, SO_BUSY_POLL, &(usecs as libc::c_int))?;
        set_level_opt(
            fd,
            libc::SOL_SOCKET,
            SO_BUSY_POLL_BUDGET,
            &(budget as libc::c_int),
        )?;
        let mut id: u32 = 0;
        let mut len = size_of::<u32>() as libc::socklen_t;
        // SAFETY: `id` is writable for `len` bytes; the kernel writes at
        // most that many.
        let ret = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                SO_INCOMING_NAPI_ID,
                (&mut id as *mut u32).cast(),
                &mut len,
            )
        };
        if ret != 0 {
            return Err(errno());
        }
        Ok(id)
    }

    /// Whether the kernel bound the socket zero-copy (`XDP_OPTIONS`).
    pub(crate) fn zero_copy(&self) -> Result<bool, i32> {
        match &self.backend {
            Backend::Kernel(fd) => {
                // SAFETY: xdp_options is one u32, the layout the kernel
                // writes since 5.3.
                let o: libc::xdp_options = unsafe { get_opt(fd.as_raw_fd(), libc::XDP_OPTIONS) }?;
                Ok(o.flags & libc::XDP_OPTIONS_ZEROCOPY != 0)
            }
            Backend::Fake(q) => Ok(q.zero_copy()),
        }
    }

    /// One TX kick: `sendto(fd, NULL, 0, MSG_DONTWAIT)`. `Err(errno)` when
    /// the kernel left work (EAGAIN, EBUSY, ENOBUFS) or failed.
    pub(crate) fn kick_tx(&self) -> Result<(), i32> {
        let fd = match &self.backend {
            Backend::Kernel(fd) => fd.as_raw_fd(),
            Backend::Fake(q) => return q.kick(),
        };
        // SAFETY: a zero-length sendto with null buffer and address is the
        // AF_XDP TX wake-up; no memory is passed.
        let ret = unsafe {
            libc::sendto(
                fd,
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        if ret < 0 {
            Err(errno())
        } else {
            Ok(())
        }
    }

    /// RX wake-up: `recvfrom(fd, NULL, 0, MSG_DONTWAIT)`.
    pub(crate) fn wake_rx(&self) {
        let fd = match &self.backend {
            Backend::Kernel(fd) => fd.as_raw_fd(),
            Backend::Fake(q) => return q.wake_rx(),
        };
        // SAFETY: a zero-length recvfrom with null buffers is the AF_XDP RX
        // wake-up; the kernel writes nothing.
        unsafe {
            libc::recvfrom(
                fd,
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
    }

    /// `XDP_STATISTICS`.
    pub(crate) fn statistics(&self) -> Result<libc::xdp_statistics, i32> {
        match &self.backend {
            // SAFETY: xdp_statistics is six u64 counters, the layout the
            // kernel writes since 5.9.
            Backend::Kernel(fd) => unsafe { get_opt(fd.as_raw_fd(), libc::XDP_STATISTICS) },
            Backend::Fake(q) => Ok(q.statistics()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_mode_binds_in_copy_mode_and_shared_sockets_inherit() {
        let own = bind_flags(false, BindMode::Copy);
        assert_ne!(
            own & libc::XDP_COPY,
            0,
            "generic mode must ask for copy mode"
        );
        assert_ne!(own & libc::XDP_USE_NEED_WAKEUP, 0);
        let auto = bind_flags(false, BindMode::Auto);
        assert_eq!(auto & (libc::XDP_COPY | libc::XDP_ZEROCOPY), 0);
        let zc = bind_flags(false, BindMode::ZeroCopy);
        assert_eq!(
            zc & (libc::XDP_COPY | libc::XDP_ZEROCOPY),
            libc::XDP_ZEROCOPY
        );
        // The kernel refuses mode flags on a shared-UMEM bind.
        assert_eq!(bind_flags(true, BindMode::Copy), libc::XDP_SHARED_UMEM);
        // Generic mode binds copy whatever `auto` would do.
        assert_eq!(effective_bind(BindMode::Auto, true), BindMode::Copy);
        assert_eq!(effective_bind(BindMode::Auto, false), BindMode::Auto);
        assert_eq!(effective_bind(BindMode::ZeroCopy, true), BindMode::ZeroCopy);
    }
}
