//! Who is on the other end of the control socket, and the files routerd
//! may open for them.
//!
//! routerd runs as root, so a path a client sends (`reload FILE`,
//! `reload --dry-run FILE`) is opened only if the client could open it
//! itself: the caller's uid and gid come from the socket (`SO_PEERCRED`,
//! taken by the kernel at connect time), its groups from the group
//! database, and the file and every directory above it are checked
//! against their owner, group and mode bits as the kernel checks them
//! (without ACLs: a file that only an ACL opens to the caller is refused,
//! failing closed). Root callers may open everything. A refusal quotes
//! nothing from the file and says nothing about whether it exists.
//!
//! Never reads a file before the check passes, and reads the very file
//! it checked (the opened file's device and inode must be the checked
//! ones).

use std::ffi::CString;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::unistd::{getgrouplist, Gid, Uid, User};

use super::io_reason;

/// The process on the other end of a control connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Its process id when it connected.
    pub pid: i32,
    /// Its effective user id.
    pub uid: u32,
    /// Its effective group id.
    pub gid: u32,
    /// Its user's groups (the group database), with `gid`.
    pub groups: Vec<u32>,
}

/// Permission bits, as in `access(2)`.
const READ: u32 = 4;
const SEARCH: u32 = 1;

impl Caller {
    /// routerd itself (SIGHUP, its own config file).
    pub fn routerd() -> Caller {
        Caller {
            pid: std::process::id() as i32,
            uid: 0,
            gid: 0,
            groups: vec![0],
        }
    }

    /// The peer of a connected Unix socket.
    pub fn of(stream: &UnixStream) -> std::io::Result<Caller> {
        let cred = getsockopt(stream, PeerCredentials).map_err(std::io::Error::from)?;
        let (uid, gid) = (cred.uid(), cred.gid());
        let mut groups = vec![gid];
        // The user's supplementary groups; a uid with no user name (a
        // container's, a test's) has only its own gid.
        if let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) {
            if let Ok(name) = CString::new(user.name) {
                if let Ok(list) = getgrouplist(&name, Gid::from_raw(gid)) {
                    groups.extend(list.into_iter().map(Gid::as_raw));
                }
            }
        }
        groups.sort_unstable();
        groups.dedup();
        Ok(Caller {
            pid: cred.pid(),
            uid,
            gid,
            groups,
        })
    }

    /// Whether the mode bits of `md` grant `want` (`READ`, `SEARCH`) to
    /// this caller: the owner's bits if it owns the file, else the group's
    /// if it is in the file's group, else the others' (the kernel's order).
    fn granted(&self, md: &Metadata, want: u32) -> bool {
        if self.uid == 0 {
            return true;
        }
        let mode = md.mode();
        let bits = if md.uid() == self.uid {
            mode >> 6
        } else if self.groups.contains(&md.gid()) {
            mode >> 3
        } else {
            mode
        };
        bits & want == want
    }

    /// Reads `path` for this caller: the whole text, or the line routerd
    /// answers (`PATH:0:0: cannot read the file: ...`, as a config that
    /// cannot be read is reported).
    pub fn read_file(&self, path: &Path) -> Result<String, String> {
        let cannot = |why: String| format!("{}:0:0: cannot read the file: {why}", path.display());
        if self.uid == 0 {
            return std::fs::read_to_string(path).map_err(|e| cannot(io_reason(&e)));
        }
        let refused = || {
            cannot(format!(
                "not readable by uid {} (routerd opens a file for its caller only if the \
                 caller may read it)",
                self.uid
            ))
        };
        if !path.is_absolute() {
            return Err(cannot("a relative path, expected an absolute one".into()));
        }
        // Checked on the resolved path, then opened there without following
        // a link; missing and forbidden read the same.
        let real = std::fs::canonicalize(path).map_err(|_| refused())?;
        let mut dir = PathBuf::new();
        for part in real.parent().into_iter().flat_map(Path::components) {
            dir.push(part);
            let md = std::fs::metadata(&dir).map_err(|_| refused())?;
            if !self.granted(&md, SEARCH) {
                return Err(refused());
            }
        }
        let checked = std::fs::symlink_metadata(&real).map_err(|_| refused())?;
        if !checked.is_file() || !self.granted(&checked, READ) {
            return Err(refused());
        }
        let mut f = File::options()
            .read(true)
            .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
            .open(&real)
            .map_err(|_| refused())?;
        let opened = f.metadata().map_err(|_| refused())?;
        if (opened.dev(), opened.ino()) != (checked.dev(), checked.ino())
            || !self.granted(&opened, READ)
        {
            return Err(refused());
        }
        let mut text = String::new();
        f.read_to_string(&mut text)
            .map_err(|e| cannot(io_reason(&e)))?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn caller(uid: u32, gid: u32, groups: &[u32]) -> Caller {
        Caller {
            pid: 1,
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn the_peer_of_a_socket_pair_is_this_process() {
        let (a, _b) = UnixStream::pair().unwrap();
        let c = Caller::of(&a).unwrap();
        assert_eq!(c.pid, std::process::id() as i32);
        assert_eq!(c.uid, nix::unistd::geteuid().as_raw());
        assert!(c.groups.contains(&c.gid));
    }

    #[test]
    fn mode_bits_decide_and_a_refusal_quotes_nothing() {
        let dir = std::env::temp_dir().join(format!("peer-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let f = dir.join("secret.yaml");
        std::fs::write(&f, "password: hunter2\n").unwrap();
        // As root (the usual case here) the file goes to a plain user, so
        // that the owner's checks are not root's.
        if nix::unistd::geteuid().is_root() {
            let id = 4000;
            nix::unistd::chown(&f, Some(Uid::from_raw(id)), Some(Gid::from_raw(id))).unwrap();
        }
        let (owner, group) = {
            let md = std::fs::metadata(&f).unwrap();
            (md.uid(), md.gid())
        };
        let set = |mode: u32| {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        let other = caller(owner + 4242, group + 4242, &[group + 4242]);
        let member = caller(owner + 4242, group + 4242, &[group + 4242, group]);
        let own = caller(owner, group + 4242, &[group + 4242]);

        set(0o600);
        let e = other.read_file(&f).unwrap_err();
        assert!(!e.contains("hunter2") && !e.contains("password"), "{e}");
        assert!(e.contains("not readable by uid"), "{e}");
        assert!(member.read_file(&f).is_err());
        assert_eq!(own.read_file(&f).unwrap(), "password: hunter2\n");
        set(0o640);
        assert!(member.read_file(&f).is_ok());
        assert!(other.read_file(&f).is_err());
        set(0o604);
        assert!(other.read_file(&f).is_ok());
        // The owner class alone decides for the owner.
        set(0o044);
        assert!(own.read_file(&f).is_err());
        // A directory the caller cannot search hides what it holds.
        set(0o644);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(other.read_file(&f).is_err());
        // Missing files read like forbidden ones.
        let missing = other.read_file(&dir.join("nope.yaml")).unwrap_err();
        assert!(missing.contains("not readable by uid"), "{missing}");
        // A link to a file the caller may not read is refused.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        set(0o600);
        let link = dir.join("link.yaml");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert!(other.read_file(&link).is_err());
        assert!(own.read_file(&link).is_ok());
        assert!(Caller::routerd().read_file(&f).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
