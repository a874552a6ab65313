//! The control protocol on the wire, as another client (a script, a newer
//! routerctl) sees it: JSON lines, ids echoed, versions checked.

mod ctl_support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

use control::ctl::server::serve;
use ctl_support::*;
use serde_json::{json, Value};

fn exchange(sock: &std::path::Path, lines: &[Value]) -> Vec<Value> {
    let mut s = UnixStream::connect(sock).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    lines
        .iter()
        .map(|l| {
            writeln!(s, "{l}").unwrap();
            let mut a = String::new();
            r.read_line(&mut a).unwrap();
            serde_json::from_str(&a).unwrap_or_else(|e| panic!("{e}: {a}"))
        })
        .collect()
}

#[test]
fn requests_are_answered_in_order_with_their_ids() {
    let (sock, dir) = temp_socket("proto");
    let fake = Fake::transit();
    fake.feed(SSH_SYN);
    let srv = serve(&sock, fake).expect("serve");
    let a = exchange(
        &sock,
        &[
            json!({"version": 1, "id": 11, "request": {"op": "conntrack_list"}}),
            json!({"version": 1, "id": 12, "request": {"op": "conntrack_flush"}}),
            json!({"version": 1, "id": 13, "request": {"op": "stats"}}),
        ],
    );
    assert_eq!(a[0]["id"], 11);
    assert_eq!(a[0]["version"], 1);
    assert_eq!(a[0]["ok"].as_array().unwrap().len(), 1);
    assert_eq!(a[1], json!({"version": 1, "id": 12, "ok": {"flushed": 1}}));
    assert_eq!(a[2]["ok"]["conntrack"]["entries"], 0);
    assert!(a.iter().all(|x| x.get("error").is_none()));
    drop(srv);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn other_versions_and_bad_requests_get_a_clear_error() {
    let (sock, dir) = temp_socket("proto-bad");
    let srv = serve(&sock, Fake::transit()).expect("serve");
    let a = exchange(
        &sock,
        &[
            json!({"version": 2, "id": 5, "request": {"op": "stats"}}),
            json!({"id": 6, "request": {"op": "stats"}}),
            json!({"version": 1, "id": 7, "request": {"op": "reboot"}}),
            json!({"version": 1, "id": 8, "request": {"op": "reload", "path": "/nonexistent/router.yaml"}}),
        ],
    );
    assert_eq!(
        a[0],
        json!({"version": 1, "id": 5,
               "error": "protocol version 2 is not supported: this routerd speaks version 1"})
    );
    assert_eq!(
        a[1]["error"],
        "request has no protocol version: this routerd speaks version 1"
    );
    let e = a[2]["error"].as_str().unwrap();
    assert!(
        e.starts_with("bad request: unknown variant `reboot`"),
        "{e}"
    );
    let e = a[3]["error"].as_str().unwrap();
    assert!(e.starts_with("/nonexistent/router.yaml:"), "{e}");
    assert!(a.iter().all(|x| x.get("ok").is_none()));
    // Not JSON: an error, and the connection still serves.
    let mut s = UnixStream::connect(&sock).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    writeln!(s, "stats please").unwrap();
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    let v: Value = serde_json::from_str(&l).unwrap();
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("malformed request (not JSON)"),
        "{v}"
    );
    writeln!(
        s,
        "{}",
        json!({"version": 1, "id": 9, "request": {"op": "trace_poll"}})
    )
    .unwrap();
    l.clear();
    r.read_line(&mut l).unwrap();
    let v: Value = serde_json::from_str(&l).unwrap();
    assert_eq!(v["ok"]["packets"], json!([]));
    drop(srv);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn routerctl_reports_a_server_speaking_another_version() {
    // A stand-in server that answers everything with version 2.
    let (sock, dir) = temp_socket("proto-v2");
    std::fs::create_dir_all(sock.parent().unwrap()).unwrap();
    let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let t = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut line = String::new();
        BufReader::new(s.try_clone().unwrap())
            .read_line(&mut line)
            .unwrap();
        writeln!(s, "{}", json!({"version": 2, "id": 1, "ok": {}})).unwrap();
    });
    let line = one_error_line(&routerctl(&sock, &["stats", "--json"]));
    assert_eq!(
        line,
        "routerctl: routerd sent an answer routerctl cannot read: routerd speaks protocol version 2, routerctl version 1"
    );
    t.join().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
