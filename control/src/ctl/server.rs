//! The control socket server: a thread accepting on a Unix stream socket
//! (mode 0600), one thread per client, each answering request lines in order.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::api::ControlHandler;
use super::peer::Caller;
use super::proto::handle_line;
use super::{io_reason, CtlError};

/// Longest request line accepted (a trace match is the longest request).
const MAX_LINE: u64 = 64 * 1024;

/// A running control socket; dropping it stops the server and removes the
/// socket file.
pub struct ServerHandle {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stop accepting, wait for the accept thread and remove the socket.
    /// Clients already connected finish their current request.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        let Some(t) = self.thread.take() else { return };
        self.stop.store(true, Ordering::SeqCst);
        let _ = t.join();
        let _ = std::fs::remove_file(&self.path);
        tracing::info!(socket = %self.path.display(), "control socket closed");
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn listen_err(path: &Path, reason: impl Into<String>) -> CtlError {
    CtlError::Listen {
        what: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Make way for the socket: a socket file nobody answers on is stale and
/// removed; a live one or a file of another kind is an error.
fn clear_stale(path: &Path) -> Result<(), CtlError> {
    let md = match std::fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(listen_err(path, io_reason(&e))),
    };
    if !md.file_type().is_socket() {
        return Err(listen_err(path, "exists and is not a socket"));
    }
    if UnixStream::connect(path).is_ok() {
        return Err(listen_err(path, "another routerd is answering on it"));
    }
    tracing::info!(socket = %path.display(), "removing stale control socket");
    std::fs::remove_file(path).map_err(|e| listen_err(path, io_reason(&e)))
}

/// Serve the control protocol on `path` in a background thread: creates the
/// parent directory, removes a stale socket, binds and sets mode 0600.
pub fn serve(path: &Path, handler: Arc<dyn ControlHandler>) -> Result<ServerHandle, CtlError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            listen_err(
                path,
                format!("cannot create {}: {}", dir.display(), io_reason(&e)),
            )
        })?;
    }
    clear_stale(path)?;
    let listener = UnixListener::bind(path).map_err(|e| listen_err(path, io_reason(&e)))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| listen_err(path, io_reason(&e)))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| listen_err(path, io_reason(&e)))?;
    tracing::info!(socket = %path.display(), "control socket listening");
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("ctl-accept".into())
        .spawn(move || accept_loop(listener, handler, stop2))
        .map_err(|e| listen_err(path, io_reason(&e)))?;
    Ok(ServerHandle {
        path: path.to_path_buf(),
        stop,
        thread: Some(thread),
    })
}

/// How often the accept loop looks at the stop flag. The listener does not
/// block, so that stopping never depends on the socket path still existing.
const ACCEPT_POLL: Duration = Duration::from_millis(20);

fn accept_loop(listener: UnixListener, handler: Arc<dyn ControlHandler>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
            Ok((s, _)) => {
                if let Err(e) = s.set_nonblocking(false) {
                    tracing::warn!(error = %e, "control client socket setup failed");
                    continue;
                }
                let h = Arc::clone(&handler);
                let r = std::thread::Builder::new()
                    .name("ctl-client".into())
                    .spawn(move || client_loop(s, &*h));
                if let Err(e) = r {
                    tracing::warn!(error = %e, "cannot start a control client thread");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                std::thread::sleep(ACCEPT_POLL);
            }
        }
    }
}

fn client_loop(stream: UnixStream, h: &dyn ControlHandler) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    // Who asks decides which files routerd opens for them: no caller, no
    // answer.
    let caller = match Caller::of(&stream) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "control client without credentials (SO_PEERCRED)");
            let _ = writeln!(
                out,
                "{{\"version\":{},\"id\":0,\"error\":\"routerd cannot tell who is asking (SO_PEERCRED failed)\"}}",
                super::proto::VERSION
            );
            return;
        }
    };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        match (&mut reader).take(MAX_LINE).read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "control client read failed");
                return;
            }
        }
        if !line.ends_with('\n') && line.len() as u64 >= MAX_LINE {
            let _ = writeln!(
                out,
                "{{\"version\":{},\"id\":0,\"error\":\"request longer than {MAX_LINE} bytes\"}}",
                super::proto::VERSION
            );
            return;
        }
        if line.trim().is_empty() {
            continue;
        }
        let resp = handle_line(line.trim_end(), h, &caller);
        let mut text = serde_json::to_string(&resp).unwrap_or_else(|e| {
            format!(
                "{{\"version\":1,\"id\":{},\"error\":\"cannot encode the answer: {e}\"}}",
                resp.id
            )
        });
        text.push('\n');
        if out.write_all(text.as_bytes()).is_err() {
            return;
        }
    }
}
