//! Entering a named network namespace (`ip netns add NAME`) from a thread,
//! with `setns(2)` through `nix` (no `unsafe` here).

use std::fs::File;
use std::io;

use nix::sched::CloneFlags;

use crate::{io_err, LabError};

/// Moves the calling thread (only it) into the network namespace `name`
/// (`/run/netns/NAME`). Use a thread of its own: it stays there until it
/// ends. Sockets, interface lookups, ioctls, `/proc/sys/net` and XDP
/// attaches it makes then happen in that namespace (`/sys/class/net` does
/// not follow: it shows the namespace sysfs was mounted in).
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
    nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| {
        let e = io::Error::from(e);
        io::Error::new(e.kind(), format!("setns into {name}: {e}"))
    })
}

/// Runs `f` in a new thread inside network namespace `ns`.
pub fn in_ns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> Result<T, LabError> + Send + 'static,
) -> std::thread::JoinHandle<Result<T, LabError>> {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        enter(&ns).map_err(io_err(format!("enter namespace {ns}")))?;
        f()
    })
}

/// Runs `f` in a thread inside `ns` and waits for it.
pub fn run_in<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> Result<T, LabError> + Send + 'static,
) -> Result<T, LabError> {
    join(in_ns(ns, f))
}

/// The thread's result; a panic becomes an error.
pub fn join<T>(h: std::thread::JoinHandle<Result<T, LabError>>) -> Result<T, LabError> {
    h.join()
        .unwrap_or_else(|_| Err(LabError::Traffic("a lab thread panicked".into())))
}
