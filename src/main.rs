//! The rjitlink command line: argument parsing, wiring the linker to an executor, messages and
//! exit codes. rjitlink's own failures exit with 125 so they are never mistaken for the status
//! of the program it runs.

use anyhow::Result;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use rjitlink_executor::InProcess;
use rjitlink_link::{
    escape_bytes, InputArg, LinkError, LinkOptions, PhaseTimes, SearchPath, Session, SessionOptions,
};
use rjitlink_memory::{MapError, SlabConfig, TargetAddr, DEFAULT_SLAB_SIZE};
use rjitlink_remote::{MemoryMode, Remote};
use rjitlink_target::{start_state, static_tls, Executor, TargetError};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Exit status for rjitlink's own errors (as `env` and `git bisect run` use it).
const EXIT_LINKER_ERROR: u8 = 125;

#[derive(Parser)]
#[command(
    name = "rjitlink",
    version,
    about = "A just-in-time linker for x86-64 ELF"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Link relocatable objects and archives in memory and run their `main`.
    Run(RunArgs),
    /// Serve linkers as their executor: the process linked code runs in.
    Executor(ExecutorArgs),
}

#[derive(Args)]
struct ExecutorArgs {
    /// Serve linkers over TCP at HOST:PORT or PORT (HOST defaults to 127.0.0.1), several at
    /// once. Each must prove that it knows the token (RJITLINK_TOKEN, at least 16 bytes, or
    /// the one printed at start); the token itself never crosses the network.
    #[arg(long, value_name = "[HOST:]PORT", conflicts_with = "fd")]
    listen: Option<String>,
    /// With --listen: serve at most N linkers at once; more are told the executor is busy.
    #[arg(long, value_name = "N", requires = "listen", default_value_t = rjitlink_executor::DEFAULT_MAX_CLIENTS, value_parser = parse_max_clients)]
    max_clients: usize,
    /// With --listen: stop (ending every program it runs) when standard input reaches its
    /// end, so that a supervisor can end the executor by closing a pipe.
    #[arg(long, requires = "listen")]
    exit_with_stdin: bool,
    /// Serve the linker that spawned this process on the socket at descriptor FD.
    #[arg(long, value_name = "FD", hide = true, requires = "parent")]
    fd: Option<i32>,
    /// The pid of the linker that spawned this process (with --fd).
    #[arg(long, value_name = "PID", hide = true)]
    parent: Option<u32>,
}

/// Where linked code runs.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ExecutorChoice {
    InProcess,
    /// A child process connected by a socket pair.
    Remote,
    /// `rjitlink executor --listen` at this address.
    Tcp(String),
}

fn parse_executor(text: &str) -> Result<ExecutorChoice, String> {
    match text {
        "in-process" => Ok(ExecutorChoice::InProcess),
        "remote" => Ok(ExecutorChoice::Remote),
        _ => match text.strip_prefix("tcp:") {
            Some(address) if !address.is_empty() => Ok(ExecutorChoice::Tcp(address.to_owned())),
            _ => Err("expected in-process, remote or tcp:HOST:PORT".to_owned()),
        },
    }
}

#[derive(Args)]
struct RunArgs {
    /// Objects (.o), static archives (.a), shared libraries (.so) and linker scripts.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,
    /// Link the library NAME: libNAME.so (loaded into the target) or libNAME.a.
    #[arg(short = 'l', value_name = "NAME")]
    libraries: Vec<String>,
    /// Search DIR for -l libraries, before the system directories.
    #[arg(short = 'L', value_name = "DIR")]
    library_dirs: Vec<PathBuf>,
    /// Run SYM instead of main.
    #[arg(long, value_name = "SYM", default_value = "main")]
    entry: String,
    /// Link, then stop without running.
    #[arg(long)]
    noexec: bool,
    /// Do not link libc and libgcc by default.
    #[arg(long)]
    nostdlib: bool,
    /// Print the wall time of each phase on stderr.
    #[arg(long)]
    show_times: bool,
    /// Where the program runs: in-process, remote (a spawned executor process), or
    /// tcp:HOST:PORT (an `rjitlink executor --listen`; the token comes from RJITLINK_TOKEN).
    #[arg(long, value_name = "WHERE", value_parser = parse_executor, default_value = "in-process")]
    executor: ExecutorChoice,
    /// How bytes reach a remote executor: shared (the linker writes into the executor's
    /// pages; the default) or copy (sent over the connection). Over TCP the default falls
    /// back to copy when the executor is on another machine.
    #[arg(long, value_name = "HOW", value_parser = ["shared", "copy"])]
    memory: Option<String>,
    /// The name the program is run under, its first argument (default: the first input's
    /// path), as `exec -a` sets it.
    #[arg(long, value_name = "NAME")]
    argv0: Option<OsString>,
    /// Make the program's global definitions visible to libraries it loads (cc -rdynamic).
    #[arg(long, short = 'E')]
    export_dynamic: bool,
    /// Do not register the inputs' debug information (DWARF) with the target's JIT interface,
    /// through which gdb sees JIT-linked code.
    #[arg(long)]
    no_debugger_support: bool,
    /// Print what crossed the connection and what was linked, on stderr.
    #[arg(long)]
    show_stats: bool,
    /// Address space reserved for linked code and data, e.g. 256M or 2G.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value_t = DEFAULT_SLAB_SIZE)]
    slab_size: u64,
    /// Reserve the slab exactly at ADDR (e.g. 0x40000000), never replacing a mapping.
    #[arg(long, value_name = "ADDR", value_parser = parse_address)]
    slab_address: Option<u64>,
    /// Arguments for the program, after `--`.
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<OsString>,
}

/// Inputs and -l libraries interleaved in command-line order, as ld reads them.
fn ordered_inputs(matches: &ArgMatches, run: &RunArgs) -> Vec<InputArg> {
    let mut indexed: Vec<(usize, InputArg)> = Vec::new();
    if let Some(indices) = matches.indices_of("inputs") {
        indexed.extend(
            indices
                .zip(&run.inputs)
                .map(|(i, p)| (i, InputArg::Path(p.clone()))),
        );
    }
    if let Some(indices) = matches.indices_of("libraries") {
        indexed.extend(
            indices
                .zip(&run.libraries)
                .map(|(i, l)| (i, InputArg::Library(l.clone()))),
        );
    }
    indexed.sort_by_key(|(i, _)| *i);
    indexed.into_iter().map(|(_, input)| input).collect()
}

/// A size in bytes: a number (decimal or 0x hex) with an optional K, M or G suffix.
fn parse_size(text: &str) -> Result<u64, String> {
    let (digits, unit) = match text.char_indices().last() {
        Some((i, c)) if "kKmMgG".contains(c) => (
            &text[..i],
            1u64 << (10 * ("kKmMgG".find(c).unwrap() / 2 + 1)),
        ),
        _ => (text, 1),
    };
    parse_number(digits)?
        .checked_mul(unit)
        .filter(|&size| size > 0)
        .ok_or_else(|| format!("`{text}` is not a usable size"))
}

fn parse_number(text: &str) -> Result<u64, String> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    }
    .map_err(|_| format!("`{text}` is not a number"))
}

fn parse_max_clients(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=4096).contains(&n) => Ok(n),
        _ => Err(format!("`{text}` is not a number from 1 to 4096")),
    }
}

/// The token shared with a TCP executor, from RJITLINK_TOKEN.
fn token_from_environment() -> Result<Option<rjitlink_remote::Token>> {
    use std::os::unix::ffi::OsStrExt;
    match std::env::var_os("RJITLINK_TOKEN") {
        None => Ok(None),
        Some(token) if token.is_empty() => Ok(None),
        Some(token) => Ok(Some(rjitlink_remote::Token::new(token.as_bytes())?)),
    }
}

fn parse_address(text: &str) -> Result<u64, String> {
    let address = parse_number(text)?;
    if address % 4096 != 0 {
        return Err(format!("{text} is not page-aligned"));
    }
    Ok(address)
}

fn run(matches: &ArgMatches, args: RunArgs) -> Result<u8> {
    let start = Instant::now();
    let options = LinkOptions {
        inputs: ordered_inputs(matches, &args),
        search: SearchPath::with_system_dirs(args.library_dirs.clone()),
        entry: Some(args.entry.clone()),
        default_libraries: !args.nostdlib,
        export_dynamic: args.export_dynamic,
        debugger_support: !args.no_debugger_support,
    };
    let memory = match args.memory.as_deref() {
        None => MemoryMode::Auto,
        Some("shared") => MemoryMode::Shared,
        Some(_) => MemoryMode::Copy,
    };
    let executor: Box<dyn Executor> = match &args.executor {
        ExecutorChoice::InProcess if args.memory.is_some() => {
            anyhow::bail!("--memory applies to remote executors (--executor=remote or tcp:...)")
        }
        ExecutorChoice::InProcess => Box::new(InProcess::new()),
        ExecutorChoice::Remote => Box::new(Remote::spawn(memory)?),
        ExecutorChoice::Tcp(address) => {
            let Some(token) = token_from_environment()? else {
                anyhow::bail!(
                    "RJITLINK_TOKEN is not set: --executor=tcp needs the token of the executor (it prints one at start if it was given none)"
                );
            };
            Box::new(Remote::connect(address, &token, memory)?)
        }
    };
    let mut session = Session::new(
        executor,
        SessionOptions {
            slab: SlabConfig {
                size: args.slab_size,
                address: args.slab_address.map(TargetAddr),
            },
            keep_symbols: false,
        },
    );
    let times = PhaseTimes::default();
    let linked = session.link(&options, &times)?;
    for warning in &linked.warnings {
        eprintln!("rjitlink: warning: {}", escape_bytes(warning.as_bytes()));
    }
    if args.show_times {
        eprint!("{}", times.report());
        eprintln!(
            "{:>10} {:>9.3} ms",
            "wall",
            start.elapsed().as_secs_f64() * 1e3
        );
    }
    if args.show_stats {
        if let Some(transport) = session.transport_stats() {
            eprintln!(
                "transport: {} bytes sent, {} bytes received, {} round trips",
                transport.bytes_sent, transport.bytes_received, transport.round_trips
            );
        }
        let slab = session.memory_stats();
        eprintln!("linked: {} bytes of code and data", linked.linked_bytes);
        eprintln!(
            "slab: {} allocations served, {} bytes reserved",
            slab.allocations_served, slab.reserved_bytes
        );
    }
    if args.noexec {
        // Nothing runs: leave the teardown (unmapping, closing the executor's connection) to
        // the process exit rather than doing it piece by piece first.
        std::mem::forget(session);
        return Ok(0);
    }
    let argv0 = args
        .argv0
        .unwrap_or_else(|| args.inputs[0].clone().into_os_string());
    let argv = std::iter::once(argv0)
        .chain(args.args)
        .map(OsString::into_vec)
        .collect();
    let program = linked.program(argv).expect("an entry was requested");
    let status = session.executor().run(&program)?;
    // The program has exited (remotely; in process `run` does not return): its memory needs
    // no freeing, and the executor is gone.
    std::mem::forget(session);
    Ok(status as u8)
}

fn executor(args: ExecutorArgs) -> Result<u8> {
    if let Some(fd) = args.fd {
        // The spawning linker reports what went wrong on its side of the connection; a second
        // message from here would only repeat it.
        return Ok(
            match rjitlink_executor::serve_inherited_socket(fd, args.parent.unwrap_or(0)) {
                Ok(()) => 0,
                Err(_) => EXIT_LINKER_ERROR,
            },
        );
    }
    let Some(listen) = args.listen else {
        anyhow::bail!("rjitlink executor needs --listen [HOST:]PORT");
    };
    // A bare port binds loopback: listening elsewhere must be asked for by name.
    let address = if listen.contains(':') {
        listen
    } else {
        format!("127.0.0.1:{listen}")
    };
    let token = match token_from_environment()? {
        Some(token) => token,
        None => {
            let token = rjitlink_executor::Token::generate()
                .map_err(|e| anyhow::anyhow!("cannot generate a token: {e}"))?;
            println!(
                "RJITLINK_TOKEN={}",
                String::from_utf8_lossy(token.as_bytes())
            );
            token
        }
    };
    // The programs it runs get this process's environment: not the secret.
    std::env::remove_var("RJITLINK_TOKEN");
    let options = rjitlink_executor::ListenOptions {
        max_clients: args.max_clients,
        exit_with_stdin: args.exit_with_stdin,
    };
    rjitlink_executor::listen(&address, &token, &options)?;
    Ok(0)
}

/// What to print for an error, one line per problem, with the command line's hints.
fn error_lines(error: &anyhow::Error) -> Vec<String> {
    // Names from inputs reach the messages of the target's errors too (a library's path in
    // the loader's message): every line is escaped for the terminal, which leaves the
    // linker's own escaped names as they are.
    error_text(error)
        .iter()
        .map(|line| escape_bytes(line.as_bytes()))
        .collect()
}

fn error_text(error: &anyhow::Error) -> Vec<String> {
    // The remote executor's errors about shared memory are what --memory=shared asked for.
    if let Some(TargetError::NoSharedMemory | TargetError::SharedMemory(_)) =
        error.downcast_ref::<TargetError>()
    {
        return vec![format!("--memory=shared cannot be honoured: {error:#}")];
    }
    let hint = match error.downcast_ref::<LinkError>() {
        Some(LinkError::Undefined(symbols)) => {
            return symbols.iter().map(ToString::to_string).collect()
        }
        Some(LinkError::Memory(MapError::SlabExhausted { .. })) => "; raise --slab-size",
        Some(LinkError::Memory(MapError::SlabAddressNotLow { .. })) => {
            " (see --slab-address and --slab-size)"
        }
        Some(LinkError::Memory(MapError::SlabNotLow { .. })) => {
            "; pass --slab-address below 2 GiB, or link such code first"
        }
        _ => "",
    };
    vec![format!("{error:#}{hint}")]
}

/// The target's errors in `error`'s chain: itself, or the cause of an error of the linker.
fn target_errors(error: &anyhow::Error) -> impl Iterator<Item = &TargetError> {
    error.chain().filter_map(|cause| {
        cause
            .downcast_ref::<TargetError>()
            .or_else(|| match cause.downcast_ref::<LinkError>() {
                Some(LinkError::Target { source, .. }) => Some(source),
                _ => None,
            })
    })
}

/// The signal that killed the executor, if that is what `error` reports.
fn terminated_by(error: &anyhow::Error) -> Option<i32> {
    target_errors(error).find_map(|target_error| match target_error {
        TargetError::Terminated { signal } => Some(*signal),
        _ => None,
    })
}

/// Whether `error` is the loader of this process running out of static TLS.
fn static_tls_exhausted(error: &anyhow::Error) -> bool {
    target_errors(error).any(|target_error| matches!(target_error, TargetError::StaticTls { .. }))
}

/// Replace this process by rjitlink run again with the same arguments (and so the same stdin,
/// stdout and stderr) and a larger static TLS surplus, which glibc sizes only at start.
/// Returns if there is nothing to do (the user's GLIBC_TUNABLES sets the surplus: theirs is
/// kept) with `None`, or with the error if the new run could not be started.
fn restart_with_static_tls_surplus() -> Option<std::io::Error> {
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    // /proc/self/exe is this very binary, even if its path has changed since it started.
    let mut command = std::process::Command::new("/proc/self/exe");
    if let Some(argv0) = args.next() {
        command.arg0(argv0);
    }
    command.args(args);
    if !static_tls::add_surplus(&mut command) {
        return None;
    }
    // `Command` resets SIGPIPE, and the Rust runtime put /dev/null on closed standard
    // descriptors: the user's state travels in the environment instead.
    start_state::pass_on(&mut command);
    Some(command.exec())
}

fn main() -> ExitCode {
    // First, while this process has one thread: a run started with a larger static TLS
    // surplus gets the user's GLIBC_TUNABLES back, so the program sees the environment the
    // user gave (the loader has sized the surplus already).
    let has_surplus = static_tls::restore_user_tunables();
    // Likewise the signals and standard descriptors the user started the first rjitlink with,
    // which the program gets back before it runs.
    start_state::adopt_inherited();
    let matches = match Cli::command().try_get_matches() {
        Ok(matches) => matches,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_LINKER_ERROR } else { 0 });
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(EXIT_LINKER_ERROR);
        }
    };
    let result = match cli.command {
        Command::Run(args) => {
            let run_matches = matches.subcommand_matches("run").expect("run was parsed");
            let in_process = args.executor == ExecutorChoice::InProcess;
            let result = run(run_matches, args);
            // Linked code needs more static TLS than this process was started with, and
            // only a new process can have more: nothing of the program has run yet, so run
            // again with the surplus an executor gets. A second failure is reported as is.
            if let Err(error) = &result {
                if in_process && !has_surplus && static_tls_exhausted(error) {
                    if let Some(e) = restart_with_static_tls_surplus() {
                        eprintln!(
                            "rjitlink: warning: cannot run again with a larger static TLS surplus: {e}"
                        );
                    }
                }
            }
            result
        }
        Command::Executor(args) => {
            // Every executor runs with the larger surplus: the linker that spawns one sets
            // it, and one started otherwise (--listen) starts itself again with it.
            if !has_surplus {
                if let Some(e) = restart_with_static_tls_surplus() {
                    eprintln!(
                        "rjitlink executor: warning: cannot restart with a larger static TLS surplus: {e}"
                    );
                }
            }
            executor(args)
        }
    };
    match result {
        Ok(status) => ExitCode::from(status),
        Err(e) => {
            for line in error_lines(&e) {
                eprintln!("rjitlink: error: {line}");
            }
            // A remote program killed by a signal: exit as a shell reports it, 128 + N.
            match terminated_by(&e) {
                Some(signal) => ExitCode::from(128u8.wrapping_add(signal as u8)),
                None => ExitCode::from(EXIT_LINKER_ERROR),
            }
        }
    }
}
