//! `routerctl reload --dry-run` and the control socket's file safety
//! against a live routerd (root): client - router - server namespaces,
//! routerd on the transit config with its control socket in a temporary
//! directory of each test.
//!
//! Checks: a dry run of the running file says "no change"; a dry run of a
//! changed file names each change (a rule added, one removed, one moved, a
//! route added, a setting that needs a restart) and changes nothing (the
//! rules in `stats` and the drops of the old rules stay); an invalid file
//! gives `routerd --check`'s line; a file the caller may not read (0600,
//! root's) is refused to an unprivileged caller without a word of it,
//! while a file it may read is compared; a config error on a long line
//! quotes a cut piece of it, in the answer and in the log.
//!
//! The tests run one at a time (a lock); namespaces and temporary files go
//! also when a test fails.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lab::{require_root, RouterdProc, TempDir, Topology, SERVER_IP};
use serde_json::Value;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The unprivileged caller of the tests (`nobody` on Debian).
const NOBODY: u32 = 65534;

fn transit_text() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/transit-router.yaml");
    std::fs::read_to_string(p).expect("read the transit config")
}

/// A routerd under test. Fields drop in order: routerd stops, then the
/// namespaces go, then the temporary directory.
struct Live {
    r: RouterdProc,
    t: Topology,
    dir: TempDir,
    socket: PathBuf,
    config: PathBuf,
}

impl Live {
    fn start(tag: &str) -> Live {
        let dir = TempDir::new("e2edry", tag);
        let config = dir.path("router.yaml");
        std::fs::write(&config, transit_text()).expect("write the config");
        let socket = dir.path("routerd.sock");
        let t = Topology::build(tag).expect("build the lab");
        let routerd = Path::new(env!("CARGO_BIN_EXE_routerd"));
        let sock = socket.to_str().expect("utf-8 path");
        let r = RouterdProc::spawn_ready(routerd, &["--socket", sock], &t.rtr, &config);
        Live {
            r,
            t,
            dir,
            socket,
            config,
        }
    }

    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_routerctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run routerctl")
    }

    /// routerctl run as uid and gid `NOBODY`.
    fn ctl_as_nobody(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_routerctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .uid(NOBODY)
            .gid(NOBODY)
            .env_clear()
            .output()
            .expect("run routerctl as nobody")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "routerctl {args:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn stats(&self) -> Value {
        serde_json::from_str(&self.ok(&["stats", "--json"])).expect("stats JSON")
    }

    /// A file of the test's directory with `text`.
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path(name);
        std::fs::write(&p, text).expect("write a config");
        p
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The one line on stderr of a failed run (exit 1, nothing on stdout).
fn one_error_line(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "stdout: {}", text(&out.stdout));
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one error line: {err}");
    err.trim_end().to_string()
}

/// The rules as `stats` lists them: table, chain, position, action, comment.
fn rule_list(s: &Value) -> Vec<String> {
    s["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {} {}",
                r["table"], r["chain"], r["position"], r["action"], r["comment"]
            )
        })
        .collect()
}

/// A telnet attempt from the client to the server: dropped by the forward
/// rule of the running config. How many packets that rule took since.
fn telnet_drops(live: &Live) -> u64 {
    let count = |s: &Value| {
        s["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["comment"] == "no telnet from outside")
            .map_or(0, |r| r["packets"].as_u64().unwrap())
    };
    let before = count(&live.stats());
    let dst: SocketAddr = format!("{SERVER_IP}:23").parse().unwrap();
    let refused = lab::in_ns(&live.t.cli, move || {
        Ok(TcpStream::connect_timeout(&dst, Duration::from_millis(300)).is_err())
    });
    assert!(refused.join().unwrap().unwrap(), "telnet must not connect");
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let n = count(&live.stats());
        if n > before || Instant::now() >= deadline {
            return n - before;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The transit config with: the ssh rule moved to the front of input, a
/// rule for 8080 added at its end, the forward telnet rule removed, a route
/// added and the UMEM doubled (a restart-only setting).
fn changed_config() -> String {
    let ssh = "      - match: { protocol: tcp, destination_port: 22, state: [new] }\n        action: accept\n        comment: ssh\n";
    let telnet = "    rules:\n      - match: { in: wan, protocol: tcp, destination_port: [23, 2323] }\n        action: drop\n        comment: no telnet from outside\n";
    let t = transit_text();
    assert!(
        t.contains(ssh) && t.contains(telnet),
        "the transit config changed"
    );
    let web = "      - match: { protocol: tcp, destination_port: 8080 }\n        action: accept\n        comment: web\n";
    let t = t.replacen(ssh, web, 1).replacen(
        "  input:\n    policy: drop\n    rules:\n",
        &format!("  input:\n    policy: drop\n    rules:\n{ssh}"),
        1,
    );
    let t = t.replacen(telnet, "    rules: []\n", 1);
    let t = t.replacen(
        "routes:\n",
        "routes:\n  - to: 198.19.128.0/24\n    via: 198.19.0.2\n",
        1,
    );
    t.replacen("umem_frames: 16384", "umem_frames: 8192", 1)
}

#[test]
fn dry_run_names_each_change_and_changes_nothing() {
    require_root();
    let _g = serial();
    let live = Live::start("edryc");
    let running = live.config.to_str().unwrap();

    // The running file: no change.
    let out = live.ok(&["reload", "--dry-run", running]);
    assert_eq!(
        out,
        format!("{running} against the running config ({running}):\nno change\n")
    );
    let j: Value =
        serde_json::from_str(&live.ok(&["reload", "--dry-run", "--json", running])).expect("JSON");
    assert_eq!(j["reload_would_apply"], true, "{j}");
    for key in ["chains", "routes", "interfaces", "restart", "settings"] {
        assert_eq!(j["diff"][key], serde_json::json!([]), "{key}: {j}");
    }
    // Without a file: routerd's own, unchanged too.
    assert!(live.ok(&["reload", "--dry-run"]).ends_with("\nno change\n"));

    let rules_before = rule_list(&live.stats());
    let new = live.file("new.yaml", &changed_config());
    let new_s = new.to_str().unwrap();
    let out = live.ok(&["reload", "--dry-run", new_s]);
    // What the README shows (`-- --nocapture`).
    println!("$ routerctl reload --dry-run {new_s}\n{out}");
    for want in [
        "filter.input:\n",
        "  ~ rule 3 -> 1: { protocol: tcp, destination_port: 22, state: [new] } accept (ssh) (moved)\n",
        "  + rule 4: { protocol: tcp, destination_port: 8080 } accept (web)\n",
        "filter.forward:\n",
        "  - rule 1: { in: wan, protocol: tcp, destination_port: [23, 2323] } drop (no telnet from outside)\n",
        "routes:\n  + 198.19.128.0/24 via 198.19.0.2\n",
        "need a restart (a reload refuses them and changes nothing):\n  ~ dataplane.umem_frames: 16384 -> 8192\n",
        "a reload would be refused: restart routerd to apply it (the running config stays)\n",
    ] {
        assert!(out.contains(want), "no {want:?} in:\n{out}");
    }
    let j: Value =
        serde_json::from_str(&live.ok(&["reload", "--dry-run", "--json", new_s])).expect("JSON");
    let d = &j["diff"];
    assert_eq!(j["reload_would_apply"], false);
    assert_eq!(d["chains"].as_array().unwrap().len(), 2, "{d}");
    assert_eq!(d["chains"][0]["chain"], "filter.input");
    assert_eq!(d["chains"][0]["moved"][0]["from"], 3);
    assert_eq!(d["chains"][0]["moved"][0]["to"], 1);
    assert_eq!(d["chains"][0]["added"][0]["position"], 4);
    assert_eq!(d["chains"][1]["removed"][0]["position"], 1);
    assert_eq!(d["routes"][0]["key"], "198.19.128.0/24");
    assert_eq!(d["restart"][0]["key"], "dataplane.umem_frames");

    // Nothing changed: the same rules, and the telnet rule still drops.
    assert_eq!(rule_list(&live.stats()), rules_before);
    assert!(
        telnet_drops(&live) >= 1,
        "the old forward rule still applies"
    );

    // The same change without the restart-only setting would be applied;
    // the dry run says so, and the reload then does what it said.
    let live_ok = live.file(
        "live.yaml",
        &changed_config().replacen("umem_frames: 8192", "umem_frames: 16384", 1),
    );
    let out = live.ok(&["reload", "--dry-run", live_ok.to_str().unwrap()]);
    assert!(out.ends_with("a reload would apply this\n"), "{out}");
    assert!(!out.contains("need a restart"), "{out}");
    assert_eq!(rule_list(&live.stats()), rules_before, "a dry run again");
    live.ok(&["reload", live_ok.to_str().unwrap()]);
    let after = rule_list(&live.stats());
    assert_ne!(after, rules_before, "the reload applies");
    assert!(
        after.iter().any(|r| r.ends_with("\"web\"")),
        "the added rule runs: {after:?}"
    );
    assert_eq!(telnet_drops(&live), 0, "the removed rule is gone");

    // An invalid file: routerd --check's line, exit 1, nothing changed.
    let bad = live.file(
        "bad.yaml",
        &transit_text().replace("policy: drop", "policy: dorp"),
    );
    let check = Command::new(env!("CARGO_BIN_EXE_routerd"))
        .arg("--check")
        .arg(&bad)
        .output()
        .unwrap();
    let line = one_error_line(&live.ctl(&["reload", "--dry-run", bad.to_str().unwrap()]));
    assert_eq!(line, text(&check.stderr).trim_end());
    assert!(line.contains(": filter.input.policy: "), "{line}");
    assert_eq!(rule_list(&live.stats()), after);
}

#[test]
fn a_file_the_caller_may_not_read_is_refused_without_a_word_of_it() {
    require_root();
    let _g = serial();
    let mut live = Live::start("edryp");
    // The caller must reach the socket (routerd makes it 0600, root's).
    std::fs::set_permissions(live.dir.path(""), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&live.socket, std::fs::Permissions::from_mode(0o666)).unwrap();

    // A shadow-like file: root's, mode 0600, a secret on its first line.
    let secret = "s3cr3t-hunter2-0123456789abcdefghijklmnopqrstuvwxyz";
    let shadow = live.file("shadow", &format!("root: {secret}\n{}", transit_text()));
    std::fs::set_permissions(&shadow, std::fs::Permissions::from_mode(0o600)).unwrap();
    let shadow_s = shadow.to_str().unwrap();
    for args in [
        ["reload", shadow_s].as_slice(),
        &["reload", "--dry-run", shadow_s],
    ] {
        let line = one_error_line(&live.ctl_as_nobody(args));
        assert_eq!(
            line,
            format!(
                "{shadow_s}:0:0: cannot read the file: not readable by uid {NOBODY} (routerd opens \
                 a file for its caller only if the caller may read it)"
            ),
            "{args:?}"
        );
    }
    // A missing file reads the same: no way to probe for files.
    let missing = live.dir.path("missing.yaml");
    let line = one_error_line(&live.ctl_as_nobody(&["reload", missing.to_str().unwrap()]));
    assert!(line.contains("not readable by uid 65534"), "{line}");
    // The same caller may compare a file it can read: the refusal above is
    // the file's mode, not the socket.
    let readable = live.file("mine.yaml", &transit_text());
    std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = live.ctl_as_nobody(&["reload", "--dry-run", readable.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).ends_with("\nno change\n"),
        "{}",
        text(&out.stdout)
    );

    // Root may read it; its error quotes a cut piece of the long key.
    let line = one_error_line(&live.ctl(&["reload", shadow_s]));
    assert!(!line.contains(secret), "{line}");
    assert!(
        line.contains("root: unknown key") || line.contains('…'),
        "{line}"
    );
    // A long value: cut in the answer and the log.
    let long = format!("native-{secret}-{secret}");
    let bad = live.file(
        "long.yaml",
        &transit_text().replacen("xdp_mode: native", &format!("xdp_mode: {long}"), 1),
    );
    let line = one_error_line(&live.ctl(&["reload", bad.to_str().unwrap()]));
    let cut: String = long.chars().take(39).collect();
    assert!(
        line.contains(&format!(
            "dataplane.xdp_mode: \"{cut}…\" is not allowed here"
        )),
        "{line}"
    );
    assert!(!line.contains(secret), "{line}");

    live.r
        .terminate(Duration::from_secs(10))
        .expect("routerd stops");
    let log = live.r.log().join("\n");
    assert!(
        log.contains("reload refused"),
        "the refusals are logged:\n{log}"
    );
    assert!(!log.contains(secret), "the log quotes the secret:\n{log}");
}
