//! Entering a named network namespace (`ip netns add NAME`) from a thread.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Moves the calling thread (only it) into the network namespace `name`
/// (`/run/netns/NAME`). Use a thread of its own: it stays there until it
/// ends. Sockets, interface lookups and XDP attaches it makes then happen in
/// that namespace.
pub fn enter(name: &str) -> io::Result<()> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad network namespace name {name:?}"),
        ));
    }
    let file = File::open(format!("/run/netns/{name}")).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("network namespace {name}: /run/netns/{name}: {e}"),
        )
    })?;
    // SAFETY: setns on a namespace file we hold open; CLONE_NEWNET affects
    // only the calling thread's network namespace.
    let ret = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if ret != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("setns into {name}: {e}")));
    }
    Ok(())
}
