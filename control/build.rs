//! Generates the shell completions and man pages of routerd and routerctl
//! from their clap definitions into `OUT_DIR` (`completions/`, `man/`);
//! `routerctl generate` writes the same, from the same code.

#[allow(dead_code)]
#[path = "src/cli.rs"]
mod cli;
#[allow(dead_code)]
#[path = "src/cli_docs.rs"]
mod cli_docs;

fn main() {
    println!("cargo:rerun-if-changed=src/cli.rs");
    println!("cargo:rerun-if-changed=src/cli_docs.rs");
    println!("cargo:rerun-if-changed=build.rs");
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    if let Err(e) = cli_docs::write_all(&out) {
        panic!(
            "cannot write completions and man pages into {}: {e}",
            out.display()
        );
    }
}
