//! The few `SIOCETHTOOL` requests the router and its test lab make, without
//! the `ethtool` program: TX checksum offload on and off (what
//! `ethtool -K IF tx off` does) and the channel (queue) counts
//! (`ethtool -l IF`).
//!
//! Every call works on the interface of that name in the calling thread's
//! network namespace (the socket the request goes through is made there).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::error::IfName;

const SIOCETHTOOL: libc::c_ulong = 0x8946;
// linux/ethtool.h
const ETHTOOL_GTXCSUM: u32 = 0x16;
const ETHTOOL_STXCSUM: u32 = 0x17;
const ETHTOOL_GCHANNELS: u32 = 0x3c;

/// `struct ethtool_value`.
#[repr(C)]
#[derive(Default)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// `struct ethtool_channels`.
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

/// Turns TX checksum offload of `ifname` on or off (`ethtool -K IF tx on|off`).
///
/// veth endpoints that send through an AF_XDP forwarder need it off: with
/// offload on, their TCP and UDP leave with unfinished checksums that only
/// the kernel's own forwarding would tolerate.
pub fn set_tx_checksum(ifname: &str, on: bool) -> io::Result<()> {
    let mut v = EthtoolValue {
        cmd: ETHTOOL_STXCSUM,
        data: u32::from(on),
    };
    let what = if on { "on" } else { "off" };
    request(ifname, &mut v, &format!("set TX checksum offload {what}"))
}

/// Whether TX checksum offload of `ifname` is on.
pub fn tx_checksum(ifname: &str) -> io::Result<bool> {
    let mut v = EthtoolValue {
        cmd: ETHTOOL_GTXCSUM,
        data: 0,
    };
    request(ifname, &mut v, "read TX checksum offload")?;
    Ok(v.data != 0)
}

/// The channel counts of `ifname` in use: (rx, tx, combined), as
/// `ethtool -l IF` shows under "Current hardware settings". An AF_XDP
/// socket can bind queue `q` only when `q` is below rx + combined.
pub fn channels(ifname: &str) -> io::Result<(u32, u32, u32)> {
    let mut c = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    request(ifname, &mut c, "read the channel counts")?;
    Ok((c.rx_count, c.tx_count, c.combined_count))
}

/// Marker for the `#[repr(C)]` ethtool structs whose first field is `cmd`.
trait EthtoolCmd {}
impl EthtoolCmd for EthtoolValue {}
impl EthtoolCmd for EthtoolChannels {}

/// `ioctl(SIOCETHTOOL)` on `ifname` with `data` as `ifr_data`.
fn request<T: EthtoolCmd>(ifname: &str, data: &mut T, what: &str) -> io::Result<()> {
    let name = IfName::new(ifname);
    if name.as_str() != ifname || ifname.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{ifname:?}: not an interface name ({what})"),
        ));
    }
    let fail = |e: io::Error| io::Error::new(e.kind(), format!("{ifname}: cannot {what}: {e}"));
    // SAFETY: socket(2) takes no pointers; a non-negative result is a new
    // descriptor that nothing else owns.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(fail(io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned here only.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data (a name and a union of integers and
    // pointers); all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &src) in ifr.ifr_name.iter_mut().zip(name.c_bytes().iter()) {
        *dst = src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = (data as *mut T).cast();
    // SAFETY: SIOCETHTOOL reads the NUL-terminated name and the command in
    // `*ifr_data`, then reads and writes at most the struct that command
    // takes; `data` is that live, writable `#[repr(C)]` struct (EthtoolCmd
    // is implemented only for those), and `ifr` outlives the call.
    let ret = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &mut ifr) };
    if ret < 0 {
        return Err(fail(io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_uapi() {
        assert_eq!(size_of::<EthtoolValue>(), 8);
        assert_eq!(size_of::<EthtoolChannels>(), 36);
        assert_eq!(std::mem::offset_of!(EthtoolChannels, combined_count), 32);
        assert_eq!(size_of::<libc::ifreq>(), 40);
    }

    #[test]
    fn a_missing_device_is_named() {
        let err = channels("nosuchdev7x").unwrap_err();
        assert_eq!(err.raw_os_error(), None, "wrapped with its context");
        assert!(
            err.to_string()
                .starts_with("nosuchdev7x: cannot read the channel counts: "),
            "{err}"
        );
        let err = set_tx_checksum("a-name-longer-than-15", false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
