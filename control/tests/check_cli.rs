//! `routerd --check` as an operator runs it: summary and exit 0 on a good
//! file, one error line on stderr and exit 1 on a bad one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn routerd(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_routerd"))
        .args(args)
        .output()
        .expect("run routerd")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn check_accepts_the_transit_router_config() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/transit-router.yaml");
    let out = routerd(&["--check".as_ref(), file.as_os_str()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert!(stdout.contains("configuration is valid"), "{stdout}");
    assert!(
        stdout.contains("wan (device r0, mtu 1500): 198.18.0.1/24 2001:db8::1/64\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "lan (device r1, mtu 1500): 198.19.0.1/24 2001:db8:1::1/64, router advertisements\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("routes: 4 configured, 4 connected"),
        "{stdout}"
    );
    assert!(
        stdout.contains("default via 198.18.0.2 dev wan"),
        "{stdout}"
    );
    assert!(stdout.contains("::/0 via 2001:db8::2 dev wan"), "{stdout}");
    assert!(stdout.contains("neighbours: 2 static"), "{stdout}");
    assert!(
        stdout.contains("raw: prerouting 2 rules, output 0 rules"),
        "{stdout}"
    );
    assert!(
        stdout.contains("filter input: 4 rules, policy drop"),
        "{stdout}"
    );
    assert!(
        stdout.contains("filter forward: 1 rule, policy accept"),
        "{stdout}"
    );
    assert!(out.stderr.is_empty(), "stderr: {}", text(&out.stderr));
}

#[test]
fn check_rejects_a_bad_file_with_one_located_line() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let file = dir.join("check_cli_bad.yaml");
    std::fs::write(
        &file,
        "interfaces:\n  - name: wan\n    device: r0\n    addresses: [198.18.0.1/24]\nroutes:\n  - to: default\n    via: 10.0.0.1\n",
    )
    .unwrap();
    let out = routerd(&["--check".as_ref(), file.as_os_str()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stdout: {}", text(&out.stdout));
    assert_eq!(
        stderr,
        format!(
            "{}:7:10: routes[0].via: 10.0.0.1 is on no connected network, expected a gateway on a \
             connected network (connected: wan 198.18.0.0/24)\n",
            file.display()
        )
    );
    assert!(out.stdout.is_empty());

    let missing = dir.join("check_cli_no_such_file.yaml");
    let out = routerd(&["--check".as_ref(), missing.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read the file"));
}

#[test]
fn config_mode_names_a_missing_device_in_one_line() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/transit-router.yaml");
    let text_in = std::fs::read_to_string(&file).expect("read config");
    let cfg = std::env::temp_dir().join(format!("check-cli-{}.yaml", std::process::id()));
    std::fs::write(&cfg, text_in.replace("device: r0", "device: afxnodev0")).expect("write");
    let out = routerd(&["--config".as_ref(), cfg.as_os_str()]);
    let _ = std::fs::remove_file(&cfg);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        "routerd: no such device afxnodev0: create it or fix interfaces[].device"
    );
}
