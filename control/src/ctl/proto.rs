//! The wire protocol: one JSON object per line each way.
//!
//! ```text
//! -> {"version":1,"id":7,"request":{"op":"reload","path":"/etc/afxdp-router/router.yaml"}}
//! <- {"version":1,"id":7,"ok":{"path":"...","interfaces":2,...}}
//! <- {"version":1,"id":7,"error":"/etc/...:12:5: filter.input.policy: ..."}
//! ```
//! A request with another `version` gets an error naming both versions; a
//! client must check `version` in the answer the same way.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::api::{ConfigFile, ControlHandler, TraceStart};
use super::capture::CaptureStart;
use super::peer::Caller;

/// The protocol version this build speaks.
pub const VERSION: u64 = 1;

/// What a client asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// [`super::api::StatsSnapshot`].
    Stats,
    /// `Vec<`[`super::api::FlowEntry`]`>`.
    ConntrackList,
    /// `{"flushed": N}`.
    ConntrackFlush,
    /// `Vec<`[`super::api::NeighbourEntry`]`>`.
    Neighbours,
    /// [`super::api::ReloadSummary`].
    Reload {
        #[serde(default)]
        path: Option<PathBuf>,
    },
    /// [`super::api::DryRunReport`]: what `Reload` would change.
    ReloadDryRun {
        #[serde(default)]
        path: Option<PathBuf>,
    },
    /// `null` once armed.
    TraceStart(TraceStart),
    /// [`super::api::TracePoll`].
    TracePoll,
    /// `null`.
    TraceStop,
    /// `null`.
    ResetCounters,
    /// [`super::api::RuntimeStats`].
    Runtime,
    /// `null`.
    ClearRuntime,
    /// [`super::capture::CaptureStarted`] once armed.
    CaptureStart(CaptureStart),
    /// [`super::capture::CapturePoll`].
    CapturePoll { id: u64 },
    /// `null`.
    CaptureStop { id: u64 },
    /// `routerctl route`: [`super::route::RouteShow`],
    /// [`super::route::RouteLookup`] or [`super::route::RouteVerify`].
    Route(super::route::RouteRequest),
}

/// A request on the wire.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RequestEnvelope {
    pub version: u64,
    pub id: u64,
    pub request: Request,
}

/// An answer on the wire: exactly one of `ok` and `error`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResponseEnvelope {
    pub version: u64,
    pub id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ResponseEnvelope {
    fn err(id: u64, e: impl Into<String>) -> ResponseEnvelope {
        ResponseEnvelope {
            version: VERSION,
            id,
            ok: None,
            error: Some(e.into()),
        }
    }
}

fn to_value<T: Serialize>(v: T) -> Result<Value, String> {
    serde_json::to_value(v).map_err(|e| format!("cannot encode the answer: {e}"))
}

/// The config a reload names, read for `caller` (only if it may read it).
fn config_file(path: Option<PathBuf>, caller: &Caller) -> Result<ConfigFile, String> {
    match path {
        None => Ok(ConfigFile::Started),
        Some(path) => {
            let text = caller.read_file(&path).inspect_err(|e| {
                tracing::warn!(uid = caller.uid, pid = caller.pid, "reload refused: {e}");
            })?;
            Ok(ConfigFile::Read { path, text })
        }
    }
}

/// Run one request of `caller` on the handler.
pub fn dispatch(req: Request, h: &dyn ControlHandler, caller: &Caller) -> Result<Value, String> {
    match req {
        Request::Stats => to_value(h.stats()),
        Request::ConntrackList => to_value(h.conntrack()),
        Request::ConntrackFlush => to_value(serde_json::json!({ "flushed": h.conntrack_flush() })),
        Request::Neighbours => to_value(h.neighbours()),
        Request::Reload { path } => to_value(h.reload(config_file(path, caller)?)?),
        Request::ReloadDryRun { path } => to_value(h.reload_dry_run(config_file(path, caller)?)?),
        Request::TraceStart(t) => {
            h.trace_start(t)?;
            Ok(Value::Null)
        }
        Request::TracePoll => to_value(h.trace_poll()),
        Request::TraceStop => {
            h.trace_stop();
            Ok(Value::Null)
        }
        Request::ResetCounters => {
            h.reset_counters();
            Ok(Value::Null)
        }
        Request::Runtime => to_value(h.runtime()),
        Request::ClearRuntime => {
            h.clear_runtime();
            Ok(Value::Null)
        }
        Request::CaptureStart(c) => to_value(h.capture_start(c)?),
        Request::CapturePoll { id } => to_value(h.capture_poll(id)?),
        Request::CaptureStop { id } => {
            h.capture_stop(id);
            Ok(Value::Null)
        }
        Request::Route(r) => h.route(r),
    }
}

/// Answer one request line of `caller` (the server's whole protocol logic).
pub fn handle_line(line: &str, h: &dyn ControlHandler, caller: &Caller) -> ResponseEnvelope {
    let v: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return ResponseEnvelope::err(0, format!("malformed request (not JSON): {e}")),
    };
    let id = v.get("id").and_then(Value::as_u64).unwrap_or(0);
    match v.get("version").and_then(Value::as_u64) {
        Some(VERSION) => {}
        Some(other) => {
            return ResponseEnvelope::err(
                id,
                format!(
                "protocol version {other} is not supported: this routerd speaks version {VERSION}"
            ),
            )
        }
        None => {
            return ResponseEnvelope::err(
                id,
                format!("request has no protocol version: this routerd speaks version {VERSION}"),
            )
        }
    }
    let req: Request = match v.get("request").map(Request::deserialize) {
        Some(Ok(r)) => r,
        Some(Err(e)) => return ResponseEnvelope::err(id, format!("bad request: {e}")),
        None => return ResponseEnvelope::err(id, "bad request: no `request` field"),
    };
    tracing::debug!(id, ?req, "control request");
    match dispatch(req, h, caller) {
        Ok(ok) => ResponseEnvelope {
            version: VERSION,
            id,
            ok: Some(ok),
            error: None,
        },
        Err(e) => ResponseEnvelope::err(id, e),
    }
}
