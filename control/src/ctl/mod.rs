//! The control socket of routerd and its clients: a versioned JSON-lines
//! protocol over a Unix stream socket ([`proto`]), the server routerd runs
//! ([`server`]) over a [`api::ControlHandler`], the client `routerctl` uses
//! ([`client`]), the text `routerctl` prints ([`text`]), live traces
//! ([`trace`]), packet capture into pcapng ([`capture`], [`pcapng`]) and
//! the Prometheus exposition ([`metrics`]).
//!
//! Nothing here runs on a worker: the handler gathers what workers publish.

pub mod api;
pub mod capture;
pub mod client;
pub mod metrics;
pub mod pcapng;
pub mod peer;
pub mod proto;
pub mod route;
pub mod server;
pub mod text;
pub mod trace;

use std::path::PathBuf;

/// Errors of the control socket, its client and the metrics listener.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// No routerd answers on the socket.
    #[error("cannot reach routerd at {}: {reason} (is routerd running? --socket PATH)", path.display())]
    Unreachable { path: PathBuf, reason: String },
    /// The connection broke mid-request.
    #[error("lost the connection to routerd at {}: {reason}", path.display())]
    Io { path: PathBuf, reason: String },
    /// routerd answered with an error.
    #[error("{0}")]
    Server(String),
    /// routerd's answer does not parse.
    #[error("routerd sent an answer routerctl cannot read: {0}")]
    Protocol(String),
    /// The socket or listener could not be set up.
    #[error("cannot listen on {what}: {reason}")]
    Listen { what: String, reason: String },
}

/// An I/O error's message without Rust's ` (os error N)` suffix, as a user
/// reads it from other tools.
pub fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}
