//! The rjitlink command line: argument parsing, wiring the linker to an executor, messages and
//! exit codes. rjitlink's own failures exit with 125 so they are never mistaken for the status
//! of the program it runs.

mod command_line;
mod compile;
mod messages;
mod process_tuning;

use anyhow::Result;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use rjitlink::{
    escape_bytes, process, serve, MapError, PluginSwitches, RemoteMemory, Session, TargetAddr,
    TargetError, Token, Unit, DEFAULT_SLAB,
};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
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
    #[arg(long, value_name = "N", requires = "listen", default_value_t = serve::DEFAULT_MAX_CLIENTS, value_parser = parse_max_clients)]
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
    // An OsString, not a PathBuf: clap refuses an empty path, which a bare `--jitdump` is.
    jitdump: Option<OsString>,
    /// Do not report a crash of the program (a fatal signal it has no handler for) on stderr.
    #[arg(long)]
    no_crash_report: bool,
    /// Do not register the inputs' debug information (DWARF) with the target's JIT interface,
    /// through which gdb sees JIT-linked code.
    #[arg(long)]
    no_debugger_support: bool,
    /// Print what crossed the connection and what was linked, on stderr.
    #[arg(long)]
    show_stats: bool,
    /// Address space reserved for linked code and data, e.g. 256M or 2G.
    #[arg(long, value_name = "SIZE", default_value_t = Size(DEFAULT_SLAB))]
    slab_size: Size,
    /// Reserve the slab exactly at ADDR (e.g. 0x40000000), never replacing a mapping.
    #[arg(long, value_name = "ADDR", value_parser = parse_address)]
    slab_address: Option<u64>,
    /// Arguments for the program, after `--`.
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<OsString>,
}

/// An input of the command line: a path (an object, archive, library, script or source), or
/// `-l NAME`; after compiling, a source's object.
#[derive(Clone, Debug, PartialEq, Eq)]
enum InputArg {
    Path(PathBuf),
    Library(String),
    /// A compiled source's object, in memory, named by its source: messages, crash reports
    /// and debuggers name `main.c`, not the memory file.
    Compiled {
        source: PathBuf,
        object: Vec<u8>,
    },
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
fn token_from_environment() -> Result<Option<Token>> {
    use std::os::unix::ffi::OsStrExt;
    match std::env::var_os("RJITLINK_TOKEN") {
        None => Ok(None),
        Some(token) if token.is_empty() => Ok(None),
        Some(token) => Ok(Some(Token::new(token.as_bytes())?)),
    }
}

fn parse_address(text: &str) -> Result<u64, String> {
    let address = parse_number(text)?;
    if address % 4096 != 0 {
        return Err(format!("{text} is not page-aligned"));
    }
    Ok(address)
}

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
/// C++ sources bring libstdc++ and libm, as `c++` links them.
fn compile_sources(inputs: &mut Vec<InputArg>, flags: &[OsString]) -> Result<()> {
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
        return Ok(());
    }
    let compiled = compile::compile_all(&sources, flags)?;
    for (object, place) in compiled.into_iter().zip(places) {
        let (source, object) = object.into_source_and_bytes()?;
        inputs[place] = InputArg::Compiled { source, object };
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
    Ok(())
}

fn run(matches: &ArgMatches, args: RunArgs, compiler_flags: &[OsString]) -> Result<u8> {
    let start = Instant::now();
    check_inputs(&args.inputs)?;
    let mut inputs = ordered_inputs(matches, &args);
    // The objects are read into memory, so no descriptor of theirs stays open: the
    // program's first open gets 3, as natively.
    compile_sources(&mut inputs, compiler_flags)?;
    let mut unit = Unit::new()
        .entry(args.entry.clone())
        .default_libraries(!args.nostdlib)
        .export_dynamic(args.export_dynamic);
    for input in inputs {
        match input {
            InputArg::Path(path) => unit.add_path(path),
            InputArg::Library(name) => unit.add_library(name),
            InputArg::Compiled { source, object } => unit.add_bytes(source, object),
        };
    }
    for dir in &args.library_dirs {
        unit.add_search_dir(dir);
    }
    let mut plugins = PluginSwitches::default();
    // Names for crash reports, and the reporter as the program runs: with --noexec nothing
    // runs, so nothing can crash, and the names would cost a large link several percent of
    // its time for nothing.
    plugins.crash_reports = !args.no_crash_report && !args.noexec;
    plugins.perf_map = args.perf_map;
    plugins.jitdump = args.jitdump.is_some();
    plugins.debugger = !args.no_debugger_support;
    // A one-shot link: its definitions are not looked up again.
    let mut builder = Session::builder()
        .plugins(plugins)
        .keep_symbols(false)
        .slab_size(args.slab_size.0);
    if let Some(address) = args.slab_address {
        builder = builder.slab_address(TargetAddr(address));
    }
    if let Some(directory) = args.jitdump.as_ref().filter(|d| !d.is_empty()) {
        builder = builder.jitdump_directory(directory);
    }
    builder = match &args.executor {
        ExecutorChoice::InProcess if args.memory.is_some() => {
            anyhow::bail!("--memory applies to remote executors (--executor=remote or tcp:...)")
        }
        ExecutorChoice::InProcess => builder.in_process(),
        ExecutorChoice::Remote => builder.spawn_self(),
        ExecutorChoice::Tcp(address) => {
            let Some(token) = token_from_environment()? else {
                anyhow::bail!(
                    "RJITLINK_TOKEN is not set: --executor=tcp needs the token of the executor (it prints one at start if it was given none)"
                );
            };
            // The program is the user's, as if it ran here: it reads rjitlink's input.
            builder.tcp(address, token.as_bytes()).forward_stdin(true)
        }
    };
    if args.executor != ExecutorChoice::InProcess {
        // Unset, the session chooses: shared where possible, copied for a perf map.
        builder = builder.remote_memory(match args.memory.as_deref() {
            None => RemoteMemory::Auto,
            Some("shared") => RemoteMemory::Shared,
            Some(_) => RemoteMemory::Copy,
        });
    }
    let mut session = builder.build()?;
    let linked = session.link(&unit)?;
    for warning in &linked.warnings {
        eprintln!("rjitlink: warning: {}", escape_bytes(warning.as_bytes()));
    }
    if args.show_times {
        eprint!("{}", session.link_times().report());
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
    let argv: Vec<Vec<u8>> = std::iter::once(argv0)
        .chain(args.args)
        .map(std::os::unix::ffi::OsStringExt::into_vec)
        .collect();
    let status = session.run_program(linked.id, &argv)?;
    // The program has exited (remotely; in process `run_program` does not return): its
    // memory needs no freeing, and the executor is gone.
    std::mem::forget(session);
    Ok(status as u8)
}

fn executor(args: ExecutorArgs) -> Result<u8> {
    if let Some(fd) = args.fd {
        // The spawning linker reports what went wrong on its side of the connection; a second
        // message from here would only repeat it.
        return Ok(match serve::serve_spawned(fd, args.parent.unwrap_or(0)) {
            Ok(()) => 0,
            Err(_) => EXIT_LINKER_ERROR,
        });
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
            let token =
                Token::generate().map_err(|e| anyhow::anyhow!("cannot generate a token: {e}"))?;
            println!(
                "RJITLINK_TOKEN={}",
                String::from_utf8_lossy(token.as_bytes())
            );
            token
        }
    };
    // The programs it runs get this process's environment: not the secret.
    std::env::remove_var("RJITLINK_TOKEN");
    let options = serve::ListenOptions {
        max_clients: args.max_clients,
        exit_with_stdin: args.exit_with_stdin,
    };
    serve::listen(&address, &token, &options)?;
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

/// rjitlink(1): the main form's synopsis and options (`run`'s, as `run` may be left out),
/// then the subcommands; clap_mangen's whole-command page would list only `--help` and
/// `--version` as options and refer to a separate page for `run`.
fn man_page(page: &mut Vec<u8>) -> std::io::Result<()> {
    let top = Cli::command();
    let run = top
        .find_subcommand("run")
        .cloned()
        .expect("the command line has a run subcommand")
        .name("rjitlink")
        .bin_name("rjitlink [run]");
    // The help's notes on sources and cc's options are laid out by hand: kept as they are
    // (roff would fill them into one paragraph).
    let notes = run.get_after_help().map(|notes| notes.to_string());
    let top = clap_mangen::Man::new(top);
    let run = clap_mangen::Man::new(run);
    top.render_title(page)?;
    top.render_name_section(page)?;
    run.render_synopsis_section(page)?;
    top.render_description_section(page)?;
    run.render_options_section(page)?;
    if let Some(notes) = notes {
        page.extend_from_slice(b".SH NOTES\n.nf\n");
        for line in notes.lines() {
            // roff: a backslash is escaped, and a line must not start with a control character.
            page.extend_from_slice(b"\\&");
            page.extend_from_slice(line.replace('\\', "\\e").as_bytes());
            page.push(b'\n');
        }
        page.extend_from_slice(b".fi\n");
    }
    top.render_subcommands_section(page)?;
    top.render_version_section(page)
}

/// What to print for an error, one line per problem, with the command line's hints.
fn error_lines(error: &anyhow::Error) -> Vec<String> {
    // Names from inputs reach the messages of the target's errors too (a library's path in
    // the loader's message): every line is escaped for the terminal, which leaves the
    // linker's own escaped names as they are.
    error_text(error)
        .iter()
        .map(|line| escape_bytes(messages::demangle_line(line).as_bytes()))
        .collect()
}

fn error_text(error: &anyhow::Error) -> Vec<String> {
    let Some(library_error) = error.downcast_ref::<rjitlink::Error>() else {
        return vec![format!("{error:#}")];
    };
    // The remote executor's errors about shared memory are what --memory=shared asked for.
    if let rjitlink::Error::Target(TargetError::NoSharedMemory | TargetError::SharedMemory(_)) =
        library_error
    {
        return vec![format!("--memory=shared cannot be honoured: {error:#}")];
    }
    if let Some(symbols) = library_error.undefined_symbols() {
        return symbols.iter().map(messages::undefined_line).collect();
    }
    let hint = match library_error.memory_error() {
        Some(MapError::SlabExhausted { .. }) => "; raise --slab-size",
        Some(MapError::SlabAddressNotLow { .. }) => " (see --slab-address and --slab-size)",
        Some(MapError::SlabNotLow { .. }) => {
            "; pass --slab-address below 2 GiB, or link such code first"
        }
        _ => "",
    };
    vec![format!("{error:#}{hint}")]
}

/// The library's error in `error`, if it is one.
fn library_error(error: &anyhow::Error) -> Option<&rjitlink::Error> {
    error.downcast_ref::<rjitlink::Error>()
}

fn main() -> ExitCode {
    // A spawned executor (`executor --fd N --parent PID`, as the linker starts it) serves its
    // linker at once: the linker waits for its hello, and building the command line's parser
    // would cost it a millisecond of start-up. (`serve_executor_if_asked` does what the
    // `executor` subcommand would, and returns for anything else.)
    rjitlink::serve_executor_if_asked();
    // First, while this process has one thread: a run started with a larger static TLS
    // surplus gets the user's GLIBC_TUNABLES back, so the program sees the environment the
    // user gave (the loader has sized the surplus already).
    // Likewise the signals and standard descriptors the user started the first rjitlink with,
    // which the program gets back before it runs.
    // And the descriptor table grown, which costs a wait once threads exist.
    let has_surplus = process::adopt_restart_state();
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
            process_tuning::for_linking(in_process && !args.noexec);
            let result = run(run_matches, args, &prepared.compiler_flags);
            // Linked code needs more static TLS than this process was started with, and
            // only a new process can have more: nothing of the program has run yet, so run
            // again with the surplus an executor gets. A second failure is reported as is.
            if let Err(error) = &result {
                let exhausted =
                    library_error(error).is_some_and(rjitlink::Error::is_static_tls_exhausted);
                if in_process && !has_surplus && exhausted {
                    if let Some(e) = process::restart_with_static_tls_surplus() {
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
                if let Some(e) = process::restart_with_static_tls_surplus() {
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
            man_page(&mut page)
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
            match library_error(&e).and_then(rjitlink::Error::terminated_by) {
                Some(signal) => ExitCode::from(128u8.wrapping_add(signal as u8)),
                None => ExitCode::from(EXIT_LINKER_ERROR),
            }
        }
    }
}
