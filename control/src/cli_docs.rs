//! Shell completions and man pages of `routerd` and `routerctl`, generated
//! from their clap definitions ([`crate::cli`]) with `clap_complete` and
//! `clap_mangen`.
//!
//! The build (`control/build.rs`) includes this file and [`crate::cli`] to
//! write them into `OUT_DIR`; `routerctl generate` writes the same from
//! the same code. So this file, like `cli.rs`, uses only clap, its two
//! generator crates and `std`.

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, CompletionShell, Program, RouterdArgs};

/// The clap command of a program.
pub fn command(p: Program) -> clap::Command {
    match p {
        Program::Routerctl => Cli::command(),
        Program::Routerd => RouterdArgs::command(),
    }
}

/// The file a shell looks its completions up in, and where it goes.
pub fn completion_file(p: Program, shell: CompletionShell) -> (String, &'static str) {
    let name = command(p).get_name().to_string();
    match shell {
        CompletionShell::Bash => (name, "/usr/share/bash-completion/completions"),
        CompletionShell::Zsh => (format!("_{name}"), "/usr/share/zsh/vendor-completions"),
        CompletionShell::Fish => (
            format!("{name}.fish"),
            "/usr/share/fish/vendor_completions.d",
        ),
    }
}

/// The completion script of `p` for `shell`.
pub fn completion(p: Program, shell: CompletionShell) -> Vec<u8> {
    let mut cmd = command(p);
    let name = cmd.get_name().to_string();
    let shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    out
}

/// The man pages of `p`: its own (`routerctl.1`) and one per subcommand
/// (`routerctl-explain.1`, `routerctl-generate-man.1`), as clap_mangen's
/// `generate_to` names them; (file name, roff text).
pub fn man_pages(p: Program) -> Vec<(String, Vec<u8>)> {
    fn walk(cmd: clap::Command, out: &mut Vec<(String, Vec<u8>)>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub.clone(), out);
        }
        let man = clap_mangen::Man::new(cmd);
        let mut text = Vec::new();
        // Rendering into memory cannot fail.
        let _ = man.render(&mut text);
        out.push((man.get_filename(), text));
    }
    let mut cmd = command(p).disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();
    walk(cmd, &mut out);
    out.reverse();
    out
}

/// Writes every completion and man page of both programs under `dir`:
/// `completions/{bash,zsh,fish}/FILE` and `man/man1/*.1`.
pub fn write_all(dir: &std::path::Path) -> std::io::Result<()> {
    for p in [Program::Routerd, Program::Routerctl] {
        for shell in [
            CompletionShell::Bash,
            CompletionShell::Zsh,
            CompletionShell::Fish,
        ] {
            let (file, _) = completion_file(p, shell);
            let d = dir.join("completions").join(shell.name());
            std::fs::create_dir_all(&d)?;
            std::fs::write(d.join(file), completion(p, shell))?;
        }
        let d = dir.join("man").join("man1");
        std::fs::create_dir_all(&d)?;
        for (file, text) in man_pages(p) {
            std::fs::write(d.join(file), text)?;
        }
    }
    Ok(())
}
