//! The shell completions and man pages the build generates (`OUT_DIR`,
//! from control/build.rs) mention every subcommand, taken from the clap
//! command itself so that the list cannot go stale; `routerctl generate`
//! writes the same files.

use std::path::PathBuf;

use control::cli::{CompletionShell, Program};
use control::cli_docs;

const SHELLS: [CompletionShell; 3] = [
    CompletionShell::Bash,
    CompletionShell::Zsh,
    CompletionShell::Fish,
];

fn out_dir() -> PathBuf {
    PathBuf::from(env!("OUT_DIR"))
}

/// Every subcommand as its path of names (`["generate", "man"]`).
fn subcommands(cmd: &clap::Command, above: &[String], out: &mut Vec<Vec<String>>) {
    for s in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if s.get_name() == "help" {
            continue;
        }
        let mut path = above.to_vec();
        path.push(s.get_name().to_string());
        out.push(path.clone());
        subcommands(s, &path, out);
    }
}

fn all(p: Program) -> Vec<Vec<String>> {
    let mut v = Vec::new();
    subcommands(&cli_docs::command(p), &[], &mut v);
    v
}

fn has_word(text: &str, word: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .any(|w| w == word)
}

#[test]
fn routerctl_has_the_subcommands_the_docs_must_cover() {
    let names: Vec<String> = all(Program::Routerctl)
        .into_iter()
        .map(|p| p.join(" "))
        .collect();
    for want in [
        "explain",
        "reload",
        "stats",
        "generate",
        "generate man",
        "generate completions",
    ] {
        assert!(names.iter().any(|n| n == want), "{want}: {names:?}");
    }
}

#[test]
fn the_built_completions_mention_every_subcommand_and_option() {
    for p in [Program::Routerctl, Program::Routerd] {
        for shell in SHELLS {
            let (file, _) = cli_docs::completion_file(p, shell);
            let path = out_dir().join("completions").join(shell.name()).join(&file);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            for sub in all(p) {
                let last = sub.last().unwrap();
                assert!(has_word(&text, last), "{}: no {sub:?}", path.display());
            }
            let cmd = cli_docs::command(p);
            for arg in cmd.get_arguments().filter_map(|a| a.get_long()) {
                assert!(
                    has_word(&text, &format!("--{arg}")) || has_word(&text, arg),
                    "{}: no --{arg}",
                    path.display()
                );
            }
            // What routerctl generate prints is the build's file.
            assert_eq!(
                cli_docs::completion(p, shell),
                std::fs::read(&path).unwrap(),
                "{}",
                path.display()
            );
        }
    }
}

#[test]
fn the_built_man_pages_cover_every_subcommand() {
    let dir = out_dir().join("man/man1");
    for p in [Program::Routerctl, Program::Routerd] {
        let top = cli_docs::command(p).get_name().to_string();
        let page = std::fs::read_to_string(dir.join(format!("{top}.1"))).unwrap();
        assert!(page.contains(&format!(".TH {top} 1")), "{page}");
        for sub in all(p) {
            let name = format!("{top}-{}", sub.join("-"));
            let file = dir.join(format!("{name}.1"));
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert!(
                text.contains(&format!(".TH {name} 1")),
                "{}",
                file.display()
            );
            if sub.len() == 1 {
                // roff writes a dash as `\-`.
                let listed = format!("{}(1)", name.replace('-', "\\-"));
                assert!(page.contains(&listed), "{top}.1 does not list {listed}");
            }
        }
    }
    assert!(dir.join("routerd.1").exists());
}

#[test]
fn routerctl_generate_writes_the_same_pages_and_scripts() {
    let dir = std::env::temp_dir().join(format!("cli-docs-{}", std::process::id()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_routerctl"))
        .args(["generate", "man"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built = out_dir().join("man/man1");
    let mut n = 0;
    for e in std::fs::read_dir(&built).unwrap() {
        let e = e.unwrap();
        let written = std::fs::read(dir.join(e.file_name()))
            .unwrap_or_else(|_| panic!("routerctl generate man wrote no {:?}", e.file_name()));
        assert_eq!(
            written,
            std::fs::read(e.path()).unwrap(),
            "{:?}",
            e.file_name()
        );
        n += 1;
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), n);
    std::fs::remove_dir_all(&dir).unwrap();
    for shell in SHELLS {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_routerctl"))
            .args([
                "generate",
                "completions",
                shell.name(),
                "--program",
                "routerd",
            ])
            .output()
            .unwrap();
        assert_eq!(out.stdout, cli_docs::completion(Program::Routerd, shell));
    }
}
