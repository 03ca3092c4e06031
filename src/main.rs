//! The rjitlink command line: argument parsing, wiring the linker to an executor, messages and
//! exit codes. rjitlink's own failures exit with 125 so they are never mistaken for the status
//! of the program it runs.

mod command_line;
mod compile;
mod messages;

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
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Instant;

/// Exit status for rjitlink's own errors (as `env` and `git bisect run` use it).
const EXIT_LINKER_ERROR: u8 = 125;

#[derive(Parser)]
#[command(
    name = "rjitlink",
    version,
    about = "A just-in-time linker for x86-64 ELF",
    override_usage = "rjitlink [run] [OPTIONS] INPUT... [-- ARGS...]\n       rjitlink executor --listen [HOST:]PORT\n       rjitlink completions SHELL\n       rjitlink man",
    after_help = "`run` may be left out: `rjitlink main.c` is `rjitlink run main.c`."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Link objects, archives, libraries and sources in memory and run their `main` (the
    /// default command: `rjitlink main.c` is `rjitlink run main.c`).
    Run(RunArgs),
    /// Serve linkers as their executor: the process linked code runs in.
    Executor(ExecutorArgs),
    /// Print a completion script for SHELL (bash, zsh, fish, elvish, powershell) on stdout.
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print rjitlink's man page (roff) on stdout: `rjitlink man > rjitlink.1`.
    Man,
}

/// cc's options that `rjitlink run` takes too; parsed before clap sees the command line
/// (`command_line.rs`), listed here for --help and the man page.
const CC_OPTIONS_HELP: &str = "\
Sources and cc's options:
  INPUT may be a C (.c), C++ (.cc .cpp .cxx .C) or assembly (.s .S) source: it is compiled with
  $CC/$CXX (else cc/c++) into memory and linked (C++ brings -lstdc++ -lm, as c++ does). A source
  whose first line starts with #! is a script: `#!/usr/bin/env -S rjitlink run` as its first
  line; every argument after it is the program's.
  -O* -g* -I DIR -D NAME[=V] -U NAME -std=* -f* -m* -W* -include FILE -pthread
                  passed to the compiler of the sources
  -rdynamic, -Wl,-E, -Wl,--export-dynamic   the same as --export-dynamic
  -Wl,--as-needed, -Wl,--no-as-needed, -Wl,-z,..., -Wl,-rpath,..., -no-pie, -pie
                  accepted; they change nothing in memory
  -o, -c, -S, -static, -shared   refused: rjitlink writes no file";

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
#[command(after_help = CC_OPTIONS_HELP)]
struct RunArgs {
    /// Objects (.o), static archives (.a), shared libraries (.so), linker scripts, and C, C++
    /// and assembly sources (compiled first).
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
    /// Write /tmp/perf-PID.map (PID: the process running the code) so that perf names the
    /// linked functions.
    #[arg(long)]
    perf_map: bool,
    /// Write a jitdump (jit-PID.dump, with code and line rows) for `perf inject --jit`, in
    /// DIR or by default in $JITDUMPDIR/.debug/jit/rjitlink-PID ($HOME if JITDUMPDIR is unset).
    #[arg(long, value_name = "DIR", num_args = 0..=1, require_equals = true, default_missing_value = "")]
    jitdump: Option<PathBuf>,
    /// Do not report a crash of the program (a fatal signal it has no handler for) on stderr.
    #[arg(long)]
    no_crash_report: bool,
    /// Print what crossed the connection and what was linked, on stderr.
    #[arg(long)]
    show_stats: bool,
    /// Address space reserved for linked code and data, e.g. 256M or 2G.
    #[arg(long, value_name = "SIZE", default_value_t = Size(DEFAULT_SLAB_SIZE))]
    slab_size: Size,
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

/// A size in bytes, read and shown with a K, M or G suffix where it has one (`1G`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Size(u64);

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let units = [(30, "G"), (20, "M"), (10, "K")];
        match units
            .iter()
            .find(|(shift, _)| self.0 != 0 && self.0.is_multiple_of(1u64 << shift))
        {
            Some((shift, unit)) => write!(f, "{}{unit}", self.0 >> shift),
            None => write!(f, "{}", self.0),
        }
    }
}

impl std::str::FromStr for Size {
    type Err = String;
    fn from_str(text: &str) -> Result<Size, String> {
        parse_size(text).map(Size)
    }
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

/// The paths of compiled sources' objects (`/proc/self/fd/N`) and the sources they stand for
/// in messages.
static COMPILED_NAMES: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// Extensions of the files rjitlink links, and of the sources it compiles: an input without
/// one that does not exist is more likely an argument meant for the program.
fn looks_like_input(path: &Path) -> bool {
    let name = path.to_string_lossy();
    compile::Language::of_extension(path).is_some()
        || name.contains(".so.")
        || path
            .extension()
            .is_some_and(|e| ["o", "a", "so", "ld", "lds", "lo"].iter().any(|x| e == *x))
}

/// Inputs that cannot be opened and look like the program's arguments: the `--` before them
/// was forgotten (`rjitlink run a.o b.o x`).
fn check_inputs(inputs: &[PathBuf]) -> Result<()> {
    for (i, input) in inputs.iter().enumerate().skip(1) {
        let missing = matches!(std::fs::symlink_metadata(input), Err(e) if e.kind() == std::io::ErrorKind::NotFound);
        if missing && !looks_like_input(input) {
            let before: Vec<String> = inputs[..i]
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            anyhow::bail!(
                "cannot open {}: no such file; arguments for the program go after `--`: rjitlink {} -- {}",
                input.display(),
                before.join(" "),
                input.display()
            );
        }
    }
    Ok(())
}

/// Compile the sources among `inputs` (all at once) and put their objects in their place;
/// C++ sources bring libstdc++ and libm, as `c++` links them. The objects live as long as the
/// value returned.
fn compile_sources(
    inputs: &mut Vec<InputArg>,
    flags: &[OsString],
) -> Result<Vec<compile::CompiledObject>> {
    let mut sources = Vec::new();
    let mut places = Vec::new();
    for (place, input) in inputs.iter().enumerate() {
        if let InputArg::Path(path) = input {
            if let Some(language) = compile::Language::of_input(path) {
                sources.push((path.clone(), language));
                places.push(place);
            }
        }
    }
    if sources.is_empty() {
        return Ok(Vec::new());
    }
    let compiled = compile::compile_all(&sources, flags)?;
    let mut names = COMPILED_NAMES.lock().unwrap_or_else(|e| e.into_inner());
    for (object, place) in compiled.iter().zip(places) {
        inputs[place] = InputArg::Path(object.path.clone());
        names.push((
            object.path.display().to_string(),
            object.source.display().to_string(),
        ));
    }
    let cxx = sources.iter().any(|(_, l)| *l == compile::Language::Cxx);
    if cxx {
        for library in ["stdc++", "m"] {
            let given = inputs
                .iter()
                .any(|i| matches!(i, InputArg::Library(l) if l == library));
            if !given {
                inputs.push(InputArg::Library(library.to_owned()));
            }
        }
    }
    Ok(compiled)
}

fn run(matches: &ArgMatches, args: RunArgs, compiler_flags: &[OsString]) -> Result<u8> {
    let start = Instant::now();
    check_inputs(&args.inputs)?;
    let mut inputs = ordered_inputs(matches, &args);
    // Kept open until the link has mapped them.
    let compiled = compile_sources(&mut inputs, compiler_flags)?;
    let options = LinkOptions {
        inputs,
        search: SearchPath::with_system_dirs(args.library_dirs.clone()),
        entry: Some(args.entry.clone()),
        default_libraries: !args.nostdlib,
        export_dynamic: args.export_dynamic,
        // Names for crash reports: with --noexec nothing runs, so nothing can crash, and the
        // names would cost a large link several percent of its time for nothing.
        symbolize: !args.no_crash_report && !args.noexec,
        perf_map: args.perf_map,
        jitdump: args.jitdump.is_some(),
        jitdump_directory: args.jitdump.clone().filter(|d| !d.as_os_str().is_empty()),
    };
    let memory = match args.memory.as_deref() {
        // perf reads a perf map only for anonymous memory: shared memory is a memory file's.
        None if args.perf_map => MemoryMode::Copy,
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
                size: args.slab_size.0,
                address: args.slab_address.map(TargetAddr),
            },
            keep_symbols: false,
        },
    );
    let times = PhaseTimes::default();
    let linked = session.link(&options, &times)?;
    // The objects are mapped: their descriptors go, so the program's first open gets 3.
    drop(compiled);
    for warning in &linked.warnings {
        eprintln!(
            "rjitlink: warning: {}",
            escape_bytes(source_names(warning).as_bytes())
        );
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
    let mut program = linked.program(argv).expect("an entry was requested");
    program.crash_report = !args.no_crash_report;
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

/// Print generated text (`what`) on stdout. A reader that has seen enough (`rjitlink man |
/// head`) is no failure.
fn print_generated(text: &[u8], what: &str) -> Result<u8> {
    use std::io::Write;
    match std::io::stdout().write_all(text) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::anyhow!("cannot write {what}: {e}"))
        }
        _ => Ok(0),
    }
}

/// What to print for an error, one line per problem, with the command line's hints.
fn error_lines(error: &anyhow::Error) -> Vec<String> {
    // Names from inputs reach the messages of the target's errors too (a library's path in
    // the loader's message): every line is escaped for the terminal, which leaves the
    // linker's own escaped names as they are.
    error_text(error)
        .iter()
        .map(|line| escape_bytes(source_names(&messages::demangle_line(line)).as_bytes()))
        .collect()
}

/// `text` with each compiled object's path (`/proc/self/fd/N`) replaced by its source's.
fn source_names(text: &str) -> String {
    let names = COMPILED_NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let mut text = text.to_owned();
    // Longest first: /proc/self/fd/1 must not eat the start of /proc/self/fd/12.
    let mut names: Vec<&(String, String)> = names.iter().collect();
    names.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
    for (path, source) in names {
        text = text.replace(path.as_str(), source);
    }
    text
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
            return symbols.iter().map(messages::undefined_line).collect()
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
    // And the descriptor table grown, which costs a wait once threads exist.
    rjitlink_executor::grow_descriptor_table();
    let command = Cli::command();
    let subcommands: Vec<String> = command
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .chain(["help".to_owned()])
        .collect();
    let run_command = command.find_subcommand("run").expect("run is a subcommand");
    let prepared =
        match command_line::prepare(std::env::args_os().collect(), run_command, &subcommands) {
            Ok(prepared) => prepared,
            Err(message) => {
                eprintln!("rjitlink: error: {}", escape_bytes(message.as_bytes()));
                return ExitCode::from(EXIT_LINKER_ERROR);
            }
        };
    let matches = match command.try_get_matches_from(&prepared.args) {
        Ok(matches) => matches,
        Err(e) if !e.use_stderr() => {
            // --help, --version: what was asked for, on stdout.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let line = match e.kind() {
                clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    "no inputs; usage: rjitlink [run] [OPTIONS] INPUT... [-- ARGS...] (rjitlink --help says more)".to_owned()
                }
                _ => messages::clap_error_line(&e),
            };
            eprintln!("rjitlink: error: {}", escape_bytes(line.as_bytes()));
            return ExitCode::from(EXIT_LINKER_ERROR);
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!(
                "rjitlink: error: {}",
                escape_bytes(messages::clap_error_line(&e).as_bytes())
            );
            return ExitCode::from(EXIT_LINKER_ERROR);
        }
    };
    let result = match cli.command {
        Command::Run(args) => {
            let run_matches = matches.subcommand_matches("run").expect("run was parsed");
            let in_process = args.executor == ExecutorChoice::InProcess;
            let result = run(run_matches, args, &prepared.compiler_flags);
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
        Command::Completions { shell } => {
            // Made in memory (clap_complete panics on a failed write), then printed.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "rjitlink", &mut script);
            print_generated(&script, "the completion script")
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .map_err(anyhow::Error::from)
                .and_then(|()| print_generated(&page, "the man page"))
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
