//! The one error type of the config module: where (file, line, column, field
//! path) and what (what is wrong, what was expected).

use std::fmt;
use std::path::PathBuf;

/// A configuration error, displayed as
/// `FILE:LINE:COLUMN: field.path: what is wrong, what was expected`.
///
/// `line` and `column` count from 1; `0` means the position is unknown (the
/// file could not be read). `path` is empty for YAML syntax errors and for
/// errors about the file as a whole; the `path: ` part is then left out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The config file as given.
    pub file: PathBuf,
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
    /// Field path such as `filter.input.rules[2].match.destination_port`.
    pub path: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}
