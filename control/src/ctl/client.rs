//! The client side of the control socket, as `routerctl` uses it.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::proto::{Request, RequestEnvelope, ResponseEnvelope, VERSION};
use super::{io_reason, CtlError};

/// How long to wait for an answer (a reload of a full Internet table
/// takes seconds).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// A connection to routerd.
pub struct Client {
    path: PathBuf,
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    next_id: u64,
}

impl Client {
    /// Connect to the socket.
    pub fn connect(path: &Path) -> Result<Client, CtlError> {
        let unreachable = |e: std::io::Error| CtlError::Unreachable {
            path: path.to_path_buf(),
            reason: io_reason(&e),
        };
        let stream = UnixStream::connect(path).map_err(unreachable)?;
        stream
            .set_read_timeout(Some(ANSWER_TIMEOUT))
            .map_err(unreachable)?;
        let reader = BufReader::new(stream.try_clone().map_err(unreachable)?);
        Ok(Client {
            path: path.to_path_buf(),
            stream,
            reader,
            next_id: 1,
        })
    }

    fn io(&self, reason: impl Into<String>) -> CtlError {
        CtlError::Io {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    /// Send a request; the answer's `ok` value, or the server's error as
    /// [`CtlError::Server`].
    pub fn call_value(&mut self, request: Request) -> Result<Value, CtlError> {
        let id = self.next_id;
        self.next_id += 1;
        let env = RequestEnvelope {
            version: VERSION,
            id,
            request,
        };
        let mut line =
            serde_json::to_string(&env).map_err(|e| CtlError::Protocol(e.to_string()))?;
        line.push('\n');
        self.stream
            .write_all(line.as_bytes())
            .map_err(|e| self.io(io_reason(&e)))?;
        let mut answer = String::new();
        match self.reader.read_line(&mut answer) {
            Ok(0) => return Err(self.io("routerd closed the connection")),
            Ok(_) => {}
            Err(e) => return Err(self.io(io_reason(&e))),
        }
        let resp: ResponseEnvelope =
            serde_json::from_str(&answer).map_err(|e| CtlError::Protocol(e.to_string()))?;
        if resp.version != VERSION {
            return Err(CtlError::Protocol(format!(
                "routerd speaks protocol version {}, routerctl version {VERSION}",
                resp.version
            )));
        }
        if let Some(e) = resp.error {
            return Err(CtlError::Server(e));
        }
        if resp.id != id {
            return Err(CtlError::Protocol(format!(
                "answer to request {} while waiting for {id}",
                resp.id
            )));
        }
        Ok(resp.ok.unwrap_or(Value::Null))
    }

    /// Send a request and decode the answer.
    pub fn call<T: DeserializeOwned>(&mut self, request: Request) -> Result<T, CtlError> {
        let v = self.call_value(request)?;
        serde_json::from_value(v).map_err(|e| CtlError::Protocol(e.to_string()))
    }
}
