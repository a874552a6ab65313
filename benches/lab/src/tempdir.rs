//! A temporary directory for a test's files (configs, control sockets),
//! removed when dropped, also when the test fails.

use std::path::PathBuf;

/// `$TMPDIR/PREFIX-TAG-PID`, made empty at creation, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh directory named after `prefix`, `tag` and this process.
    pub fn new(prefix: &str, tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("{prefix}-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("create a temporary directory");
        TempDir(d)
    }

    /// A path inside it.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
