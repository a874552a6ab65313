//! Errors of the AF_XDP layer: a step, an errno and the interface, each
//! rendered as one line that names the fix.

use std::fmt;

/// An interface name (at most 15 bytes, as `IFNAMSIZ` allows), kept inline
/// so that [`XskError`] stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IfName {
    bytes: [u8; 16],
    len: u8,
}

impl IfName {
    /// The longest name Linux accepts.
    pub const MAX_LEN: usize = 15;

    /// `name`, truncated to [`IfName::MAX_LEN`] bytes on a char boundary.
    pub fn new(name: &str) -> IfName {
        let mut end = name.len().min(Self::MAX_LEN);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        let mut bytes = [0u8; 16];
        bytes[..end].copy_from_slice(&name.as_bytes()[..end]);
        IfName {
            bytes,
            len: end as u8,
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("?")
    }

    /// The name NUL-terminated, for `if_nametoindex`.
    pub(crate) fn c_bytes(&self) -> [u8; 16] {
        self.bytes
    }
}

impl fmt::Debug for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The step of port set-up that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XskStep {
    /// Invalid arguments (detail: the offending value).
    Config,
    /// Resolving the interface name to an index.
    Device,
    /// Creating the XSKMAP.
    MapCreate,
    /// Loading the XDP program (the verifier log is kept).
    ProgLoad,
    /// Attaching the XDP program with `BPF_LINK_CREATE`.
    Attach,
    /// Putting the socket into the XSKMAP.
    MapUpdate,
    /// Creating the AF_XDP socket.
    Socket,
    /// Mapping the UMEM area.
    UmemMmap,
    /// `XDP_UMEM_REG`.
    UmemReg,
    /// Sizing a ring (`XDP_{RX,TX}_RING`, `XDP_UMEM_{FILL,COMPLETION}_RING`).
    RingSetup,
    /// Mapping a ring.
    RingMmap,
    /// Binding the socket to the interface queue (detail: the queue).
    Bind,
}

impl XskStep {
    fn what(self) -> &'static str {
        match self {
            XskStep::Config => "configuration",
            XskStep::Device => "device lookup",
            XskStep::MapCreate => "XSKMAP creation",
            XskStep::ProgLoad => "XDP program load",
            XskStep::Attach => "XDP attach",
            XskStep::MapUpdate => "XSKMAP update",
            XskStep::Socket => "AF_XDP socket creation",
            XskStep::UmemMmap => "UMEM mapping",
            XskStep::UmemReg => "UMEM registration",
            XskStep::RingSetup => "ring set-up",
            XskStep::RingMmap => "ring mapping",
            XskStep::Bind => "bind",
        }
    }
}

/// Bytes of verifier log kept in an error (its tail carries the reason).
const LOG_TAIL: usize = 88;

/// Why a port could not be opened. `Copy`, never allocates; `Display` is one
/// line that names the fix.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct XskError {
    /// The step that failed.
    pub step: XskStep,
    /// The errno it failed with (`EINVAL` for [`XskStep::Config`]).
    pub errno: i32,
    /// The interface concerned (empty when none).
    pub ifname: IfName,
    /// Step detail: the queue for [`XskStep::Bind`], the bad value for
    /// [`XskStep::Config`], else 0.
    pub detail: u64,
    log: [u8; LOG_TAIL],
    log_len: u8,
}

impl XskError {
    /// An error at `step` with `errno` on interface `ifname`.
    pub fn new(step: XskStep, errno: i32, ifname: IfName) -> XskError {
        XskError {
            step,
            errno,
            ifname,
            detail: 0,
            log: [0; LOG_TAIL],
            log_len: 0,
        }
    }

    /// The same error with a step detail.
    pub fn with_detail(mut self, detail: u64) -> XskError {
        self.detail = detail;
        self
    }

    /// The same error carrying the tail of a verifier log.
    pub(crate) fn with_log(mut self, log: &[u8]) -> XskError {
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        let text = log[..end].trim_ascii_end();
        let tail = &text[text.len().saturating_sub(LOG_TAIL)..];
        self.log[..tail.len()].copy_from_slice(tail);
        self.log_len = tail.len() as u8;
        self
    }

    /// The kept tail of the verifier log (empty unless [`XskStep::ProgLoad`]).
    pub fn verifier_log(&self) -> &str {
        let bytes = &self.log[..usize::from(self.log_len)];
        // The tail may start inside a UTF-8 sequence: skip to a boundary.
        let start = (0..bytes.len())
            .find(|&i| std::str::from_utf8(&bytes[i..]).is_ok())
            .unwrap_or(bytes.len());
        std::str::from_utf8(&bytes[start..]).unwrap_or("")
    }

    fn errno_name(&self) -> &'static str {
        match self.errno {
            libc::EPERM => "EPERM",
            libc::EACCES => "EACCES",
            libc::ENODEV => "ENODEV",
            libc::ENXIO => "ENXIO",
            libc::EBUSY => "EBUSY",
            libc::EEXIST => "EEXIST",
            libc::EINVAL => "EINVAL",
            libc::ENOMEM => "ENOMEM",
            libc::ENOBUFS => "ENOBUFS",
            libc::EOPNOTSUPP => "EOPNOTSUPP",
            libc::EAFNOSUPPORT => "EAFNOSUPPORT",
            libc::ENOSYS => "ENOSYS",
            libc::EFAULT => "EFAULT",
            libc::EBADF => "EBADF",
            _ => "errno",
        }
    }
}

impl fmt::Debug for XskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XskError")
            .field("step", &self.step)
            .field("errno", &self.errno)
            .field("ifname", &self.ifname)
            .field("detail", &self.detail)
            .field("verifier_log", &self.verifier_log())
            .finish()
    }
}

impl fmt::Display for XskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dev = self.ifname;
        let errno = self.errno;
        let name = self.errno_name();
        match (self.step, errno) {
            (XskStep::Config, _) => write!(
                f,
                "invalid AF_XDP port configuration (value {}): ports must be 1..=63 distinct \
                 interface/queue pairs, frame_size a power of two in 2048..=4096, \
                 umem_frames >= 64 per port",
                self.detail
            ),
            (XskStep::Device, libc::ENODEV | libc::ENXIO) => write!(
                f,
                "no such device {dev}: create it or fix interfaces[].device"
            ),
            (XskStep::UmemReg, libc::ENOMEM | libc::EPERM | libc::ENOBUFS) => write!(
                f,
                "{dev}: UMEM registration refused ({name}): locked-memory limit too low: \
                 raise `ulimit -l` (RLIMIT_MEMLOCK) or run with CAP_IPC_LOCK, or lower umem_frames"
            ),
            (XskStep::UmemMmap, _) => write!(
                f,
                "cannot map the UMEM of {} bytes ({name}): lower umem_frames",
                self.detail
            ),
            (_, libc::EPERM) => write!(
                f,
                "{dev}: {} failed (EPERM): needs root or CAP_NET_ADMIN + CAP_BPF + CAP_NET_RAW",
                self.step.what()
            ),
            (XskStep::Attach, libc::EBUSY | libc::EEXIST) => write!(
                f,
                "{dev}: XDP attach refused ({name}): another XDP program is attached: \
                 `ip link set dev {dev} xdp off` (or stop the program that holds it)"
            ),
            (XskStep::Attach, libc::EOPNOTSUPP) => write!(
                f,
                "{dev}: native XDP not supported by this driver (EOPNOTSUPP): use xdp_mode: generic"
            ),
            (XskStep::Bind, libc::EOPNOTSUPP) => write!(
                f,
                "{dev}: zero-copy refused by the driver (bind EOPNOTSUPP): use \
                 dataplane.xdp_bind: auto or copy"
            ),
            (XskStep::Bind, libc::EINVAL) => write!(
                f,
                "{dev}: queue {} does not exist (bind EINVAL): see the channel count with \
                 `ethtool -l {dev}`",
                self.detail
            ),
            (XskStep::Bind, libc::EBUSY) => write!(
                f,
                "{dev}: queue {} is busy (EBUSY): another AF_XDP socket is bound to it; stop \
                 the other program",
                self.detail
            ),
            (XskStep::ProgLoad, _) if self.log_len > 0 => write!(
                f,
                "{dev}: XDP program load failed ({name}): verifier says: {}",
                self.verifier_log().replace('\n', " | ")
            ),
            (XskStep::Socket, libc::EAFNOSUPPORT) => write!(
                f,
                "AF_XDP sockets unavailable (EAFNOSUPPORT): the kernel needs CONFIG_XDP_SOCKETS"
            ),
            (step, _) => write!(
                f,
                "{dev}: {} failed ({name}: {})",
                step.what(),
                std::io::Error::from_raw_os_error(errno)
            ),
        }
    }
}

impl std::error::Error for XskError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_the_fix() {
        let r0 = IfName::new("r0");
        let cases = [
            (
                XskError::new(XskStep::Device, libc::ENODEV, r0),
                "no such device r0: create it or fix interfaces[].device",
            ),
            (
                XskError::new(XskStep::Socket, libc::EPERM, r0),
                "needs root or CAP_NET_ADMIN + CAP_BPF + CAP_NET_RAW",
            ),
            (
                XskError::new(XskStep::Attach, libc::EBUSY, r0),
                "`ip link set dev r0 xdp off`",
            ),
            (
                XskError::new(XskStep::Attach, libc::EOPNOTSUPP, r0),
                "use xdp_mode: generic",
            ),
            (
                XskError::new(XskStep::Bind, libc::EINVAL, r0).with_detail(3),
                "queue 3 does not exist (bind EINVAL): see the channel count with `ethtool -l r0`",
            ),
            (
                XskError::new(XskStep::UmemReg, libc::ENOMEM, r0),
                "locked-memory limit too low",
            ),
        ];
        for (err, want) in cases {
            let line = err.to_string();
            assert!(line.contains(want), "{line:?} lacks {want:?}");
            assert!(!line.contains('\n'), "{line:?} is not one line");
        }
    }

    #[test]
    fn verifier_log_tail_is_kept() {
        let mut log = vec![b'x'; 400];
        log.extend_from_slice(b"\nR1 type=ctx expected=fp\n\0garbage");
        let err = XskError::new(XskStep::ProgLoad, libc::EACCES, IfName::new("r0")).with_log(&log);
        assert!(err.verifier_log().ends_with("R1 type=ctx expected=fp"));
        assert!(err.to_string().contains("verifier says:"));
        assert!(err.to_string().ends_with("R1 type=ctx expected=fp"));
    }

    #[test]
    fn error_stays_small() {
        // Returned by value on every set-up path; clippy's limit is 128.
        assert!(std::mem::size_of::<XskError>() <= 120);
    }

    #[test]
    fn long_names_are_truncated_to_ifnamsiz() {
        assert_eq!(
            IfName::new("abcdefghijklmnopqrst").as_str(),
            "abcdefghijklmno"
        );
        assert_eq!(IfName::new("r0").c_bytes()[2], 0);
    }
}
