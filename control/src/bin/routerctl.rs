//! `routerctl`: the router's control CLI.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use control::cli::{
    CaptureArgs, Cli, Cmd, CtAction, ExportFormat, GenerateWhat, RouteCmd, StatsWhat,
};
use control::config::Config;
use control::ctl::api::{
    DryRunReport, FlowEntry, NeighbourEntry, ReloadSummary, RuntimeStats, StatsSnapshot, TracePoll,
    TraceStart,
};
use control::ctl::client::Client;
use control::ctl::proto::Request;
use control::ctl::{text, CtlError};
use control::explain::Explainer;
use control::packet_spec::PacketSpec;

/// A failed command: what to print and how.
enum Failure {
    /// `routerctl: ` and the message.
    Ctl(CtlError),
    /// The message as it is (config errors keep `routerd --check`'s form).
    Plain(String),
}

impl From<CtlError> for Failure {
    fn from(e: CtlError) -> Self {
        Failure::Ctl(e)
    }
}

fn json_out<T: serde::Serialize>(v: &T) -> Result<(), Failure> {
    let s = serde_json::to_string_pretty(v)
        .map_err(|e| Failure::Ctl(CtlError::Protocol(e.to_string())))?;
    println!("{s}");
    Ok(())
}

fn stats(socket: &Path, json: bool, reset: bool) -> Result<(), Failure> {
    let mut c = Client::connect(socket)?;
    if reset {
        c.call_value(Request::ResetCounters)?;
        println!("counters reset");
        return Ok(());
    }
    if json {
        let v = c.call_value(Request::Stats)?;
        return json_out(&v);
    }
    let s: StatsSnapshot = c.call(Request::Stats)?;
    print!("{}", text::stats(&s));
    Ok(())
}

fn runtime(socket: &Path, json: bool, clear: bool) -> Result<(), Failure> {
    let mut c = Client::connect(socket)?;
    if clear {
        c.call_value(Request::ClearRuntime)?;
        println!("runtime accounting cleared");
        return Ok(());
    }
    if json {
        let v = c.call_value(Request::Runtime)?;
        return json_out(&v);
    }
    let r: RuntimeStats = c.call(Request::Runtime)?;
    print!("{}", text::runtime(&r));
    Ok(())
}

fn conntrack(socket: &Path, action: CtAction, json: bool) -> Result<(), Failure> {
    let mut c = Client::connect(socket)?;
    match action {
        CtAction::List => {
            let flows: Vec<FlowEntry> = c.call(Request::ConntrackList)?;
            if json {
                return json_out(&flows);
            }
            for f in &flows {
                println!("{}", text::conntrack_line(f));
            }
            eprintln!("routerctl: {} flow entries have been shown.", flows.len());
        }
        CtAction::Flush => {
            let v = c.call_value(Request::ConntrackFlush)?;
            if json {
                return json_out(&v);
            }
            println!(
                "connection tracking table has been emptied: {} entries removed",
                v["flushed"].as_u64().unwrap_or(0)
            );
        }
    }
    Ok(())
}

fn neighbours(socket: &Path, json: bool) -> Result<(), Failure> {
    let mut c = Client::connect(socket)?;
    let n: Vec<NeighbourEntry> = c.call(Request::Neighbours)?;
    if json {
        return json_out(&n);
    }
    for e in &n {
        println!("{}", text::neighbour_line(e));
    }
    Ok(())
}

fn reload(socket: &Path, file: Option<&Path>, dry_run: bool, json: bool) -> Result<(), Failure> {
    // routerd's working directory is not ours.
    let path = match file {
        Some(f) if f.is_relative() => Some(
            std::env::current_dir()
                .map(|d| d.join(f))
                .unwrap_or_else(|_| f.to_path_buf()),
        ),
        other => other.map(Path::to_path_buf),
    };
    let mut c = Client::connect(socket)?;
    if dry_run {
        if json {
            let v = c
                .call_value(Request::ReloadDryRun { path })
                .map_err(plain_server)?;
            return json_out(&v);
        }
        let r: DryRunReport = c
            .call(Request::ReloadDryRun { path })
            .map_err(plain_server)?;
        print!("{}", text::dry_run(&r));
        return Ok(());
    }
    match c.call::<ReloadSummary>(Request::Reload { path }) {
        Ok(r) => {
            println!("{}", text::reload_ok(&r));
            Ok(())
        }
        Err(CtlError::Server(e)) => Err(Failure::Plain(e)),
        Err(e) => Err(e.into()),
    }
}

/// routerd's refusal as it is (config errors keep `routerd --check`'s form).
fn plain_server(e: CtlError) -> Failure {
    match e {
        CtlError::Server(e) => Failure::Plain(e),
        e => e.into(),
    }
}

fn trace(
    socket: &Path,
    count: u32,
    input: Option<String>,
    timeout: Option<u64>,
    json: bool,
    matcher: Vec<String>,
) -> Result<(), Failure> {
    let mut c = Client::connect(socket)?;
    c.call_value(Request::TraceStart(TraceStart {
        count,
        input,
        matcher,
    }))?;
    let deadline = timeout.map(|t| Instant::now() + Duration::from_secs(t));
    let mut shown = 0u32;
    // Polls that found nothing after the router claimed every packet: a
    // claimed packet reaches the queue a moment after its claim.
    let mut idle_after_done = 0;
    while shown < count {
        let p: TracePoll = c.call(Request::TracePoll)?;
        for pkt in &p.packets {
            shown += 1;
            if json {
                println!("{}", pkt.json);
            } else {
                if shown > 1 {
                    println!();
                }
                println!("packet {shown}: {}", pkt.lines[0]);
                for l in &pkt.lines[1..] {
                    println!("{l}");
                }
            }
        }
        if p.packets.is_empty() && p.remaining == 0 {
            idle_after_done += 1;
            if idle_after_done > 20 {
                eprintln!("routerctl: trace ended: {shown} of {count} packets received");
                break;
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            c.call_value(Request::TraceStop)?;
            eprintln!("routerctl: trace timed out: {shown} of {count} packets seen");
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn capture(socket: &Path, a: CaptureArgs) -> Result<(), Failure> {
    use control::ctl::capture::{self, CaptureError, CaptureStart, Output};
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The first Ctrl-C stops the capture and writes what it got; a second
    // one ends routerctl at once (exit 130).
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())
            .and_then(|_| signal_hook::flag::register(sig, stop.clone()))
            .map_err(|e| Failure::Plain(format!("routerctl: cannot handle signals: {e}")))?;
    }
    let output = if a.write.as_os_str() == "-" {
        Output::Stdout
    } else {
        Output::File(a.write.clone())
    };
    let start = CaptureStart {
        interface: Some(a.interface),
        rx: a.rx,
        tx: a.tx,
        drops: a.drops,
        matcher: a.matcher,
        count: a.count,
        bytes: a.bytes,
        snaplen: a.snaplen,
        duration_secs: a.duration,
    };
    let mut log = std::io::stderr();
    match capture::run(socket, start, &output, &stop, &mut log) {
        Ok(s) => {
            eprintln!(
                "routerctl: {} packet{} captured ({} received, {} sent, {} dropped){}{}",
                s.packets(),
                if s.packets() == 1 { "" } else { "s" },
                s.received,
                s.sent,
                s.dropped,
                if s.lost > 0 {
                    format!(", {} lost (the queue was full)", s.lost)
                } else {
                    String::new()
                },
                if s.reader_gone {
                    ", the reader of standard output went away"
                } else {
                    ""
                }
            );
            Ok(())
        }
        Err(CaptureError::Ctl(e)) => Err(Failure::Ctl(e)),
        Err(CaptureError::Output(e)) => Err(Failure::Plain(format!("routerctl: {e}"))),
    }
}

fn route_cmd(socket: &Path, cmd: RouteCmd) -> Result<(), Failure> {
    use control::ctl::route::{self, RouteLookup, RouteRequest, RouteShow, RouteVerify};
    let mut c = Client::connect(socket)?;
    match cmd {
        RouteCmd::Show {
            prefix,
            summary,
            json,
        } => {
            let v = c.call_value(Request::Route(RouteRequest::Show { prefix, summary }))?;
            if json {
                return json_out(&v);
            }
            let s: RouteShow = serde_json::from_value(v)
                .map_err(|e| Failure::Ctl(CtlError::Protocol(e.to_string())))?;
            print!("{}", route::show_text(&s));
        }
        RouteCmd::Lookup { address, json } => {
            let v = c.call_value(Request::Route(RouteRequest::Lookup { address }))?;
            let l: RouteLookup = serde_json::from_value(v.clone())
                .map_err(|e| Failure::Ctl(CtlError::Protocol(e.to_string())))?;
            if json {
                json_out(&v)?;
            } else {
                match &l.route {
                    Some(r) => println!("{}", route::route_line(r)),
                    None => println!("{}: no route", l.address),
                }
            }
            if l.route.is_none() {
                std::process::exit(1);
            }
        }
        RouteCmd::Verify { json } => {
            let v = c.call_value(Request::Route(RouteRequest::Verify))?;
            let r: RouteVerify = serde_json::from_value(v.clone())
                .map_err(|e| Failure::Ctl(CtlError::Protocol(e.to_string())))?;
            if json {
                json_out(&v)?;
            } else {
                print!("{}", route::verify_text(&r));
            }
            if !r.clean {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}

fn export(format: ExportFormat, config: &Path) -> Result<(), String> {
    let cfg = Config::load(config).map_err(|e| e.to_string())?;
    match format {
        ExportFormat::Nft => {
            let rs = control::nft::ruleset(&cfg.tables_spec());
            print!(
                "{}",
                control::nft::ruleset_text(&rs, &config.display().to_string())
            );
        }
    }
    Ok(())
}

fn explain(config: &std::path::Path, json: bool, packets: &[String]) -> Result<(), String> {
    let cfg = Config::load(config).map_err(|e| e.to_string())?;
    let specs = packets
        .iter()
        .map(|p| PacketSpec::parse(p).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ex = Explainer::new(cfg.tables_spec());
    for (n, spec) in specs.iter().enumerate() {
        let e = ex.explain(spec).map_err(|e| e.to_string())?;
        if json {
            println!("{}", e.json);
        } else {
            if n > 0 {
                println!();
            }
            println!("packet {}: {}", n + 1, e.lines[0]);
            for l in &e.lines[1..] {
                println!("{l}");
            }
        }
    }
    if !json {
        println!("\nconnection table: {} entries", ex.conntrack_entries());
    }
    Ok(())
}

/// `explain --config NEW --against OLD`: both answers per packet; how
/// many packets changed.
fn explain_against(
    new: &Path,
    old: &Path,
    json: bool,
    packets: &[String],
) -> Result<usize, String> {
    let load = |p: &Path| Config::load(p).map_err(|e| e.to_string());
    let (new_cfg, old_cfg) = (load(new)?, load(old)?);
    let specs = packets
        .iter()
        .map(|p| PacketSpec::parse(p).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut old_ex = Explainer::new(old_cfg.tables_spec());
    let mut new_ex = Explainer::new(new_cfg.tables_spec());
    let run = |ex: &mut Explainer, spec: &PacketSpec, file: &Path| {
        ex.explain(spec)
            .map(|e| e.json)
            .map_err(|e| format!("{}: {e}", file.display()))
    };
    let mut out = Vec::with_capacity(specs.len());
    for spec in &specs {
        let a = run(&mut old_ex, spec, old)?;
        let b = run(&mut new_ex, spec, new)?;
        out.push((spec, a, b));
    }
    let width = 3 + old
        .display()
        .to_string()
        .len()
        .max(new.display().to_string().len());
    let mut changed = 0;
    for (n, (spec, a, b)) in out.iter().enumerate() {
        let fields = control::explain::changed_fields(a, b);
        changed += usize::from(!fields.is_empty());
        if json {
            let j = serde_json::json!({
                "packet": spec.text,
                "old": a,
                "new": b,
                "changed": !fields.is_empty(),
                "fields": fields,
            });
            println!("{j}");
            continue;
        }
        if n > 0 {
            println!();
        }
        let mark = if fields.is_empty() {
            "same".to_string()
        } else {
            format!("CHANGED ({})", fields.join(", "))
        };
        println!("packet {}: {}  {mark}", n + 1, spec.text);
        for (tag, file, j) in [("old", old, a), ("new", new, b)] {
            let head = format!("{tag} {}", file.display());
            println!("  {head:<width$} {}", control::explain::answer_line(j));
        }
    }
    if !json {
        println!(
            "\n{changed} of {} packets changed ({} against {})",
            out.len(),
            new.display(),
            old.display()
        );
    }
    Ok(changed)
}

fn generate(what: GenerateWhat) -> Result<(), String> {
    use std::io::Write as _;
    match what {
        GenerateWhat::Completions { shell, program } => {
            let text = control::cli_docs::completion(program, shell);
            std::io::stdout()
                .write_all(&text)
                .map_err(|e| format!("routerctl: cannot write the completions: {e}"))
        }
        GenerateWhat::Man { dir } => {
            let fail =
                |e: std::io::Error| format!("routerctl: cannot write into {}: {e}", dir.display());
            std::fs::create_dir_all(&dir).map_err(fail)?;
            for p in [
                control::cli::Program::Routerd,
                control::cli::Program::Routerctl,
            ] {
                for (file, text) in control::cli_docs::man_pages(p) {
                    std::fs::write(dir.join(&file), text).map_err(fail)?;
                    println!("{}", dir.join(file).display());
                }
            }
            Ok(())
        }
        GenerateWhat::Schema => {
            println!("{}", control::config::schema::schema_text());
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let socket = cli.socket.as_path();
    let r = match cli.cmd {
        Cmd::Explain {
            config,
            against: Some(old),
            exit_code,
            json,
            packets,
        } => {
            return match explain_against(&config, &old, json, &packets) {
                Ok(changed) if changed > 0 && exit_code => ExitCode::from(1),
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(if exit_code { 2 } else { 1 })
                }
            };
        }
        Cmd::Explain {
            config,
            against: None,
            json,
            packets,
            ..
        } => explain(&config, json, &packets).map_err(Failure::Plain),
        Cmd::Export { format, config } => export(format, &config).map_err(Failure::Plain),
        Cmd::Generate { what } => generate(what).map_err(Failure::Plain),
        Cmd::Stats {
            what: Some(StatsWhat::Runtime { json, clear }),
            ..
        } => runtime(socket, json, clear),
        Cmd::Stats {
            what: None,
            json,
            reset,
        } => stats(socket, json, reset),
        Cmd::Conntrack { action, json } => conntrack(socket, action, json),
        Cmd::Neighbours { json } => neighbours(socket, json),
        Cmd::Reload {
            file,
            dry_run,
            json,
        } => reload(socket, file.as_deref(), dry_run, json),
        Cmd::Trace {
            count,
            input,
            timeout,
            json,
            matcher,
        } => trace(socket, count, input, timeout, json, matcher),
        Cmd::Capture(a) => capture(socket, a),
        Cmd::Route { cmd } => route_cmd(socket, cmd),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Plain(e)) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
        Err(Failure::Ctl(e)) => {
            eprintln!("routerctl: {e}");
            ExitCode::FAILURE
        }
    }
}
