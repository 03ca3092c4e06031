//! The rjitlink command line: argument parsing, wiring the linker to an executor, messages and
//! exit codes. rjitlink's own failures exit with 125 so they are never mistaken for the status
//! of the program it runs.

use anyhow::Result;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use rjitlink_executor::{Executor, InProcess};
use rjitlink_link::{InputArg, LinkOptions, PhaseTimes, SearchPath};
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

fn run(matches: &ArgMatches, args: RunArgs) -> Result<u8> {
    let start = Instant::now();
    let options = LinkOptions {
        inputs: ordered_inputs(matches, &args),
        search: SearchPath::with_system_dirs(args.library_dirs.clone()),
        entry: args.entry.clone(),
        default_libraries: !args.nostdlib,
    };
    let mut executor = InProcess::new();
    let mut times = PhaseTimes::default();
    let mut linked = rjitlink_link::link(&options, &mut executor, &mut times)?;
    if args.show_times {
        eprint!("{}", times.report());
        eprintln!(
            "{:>10} {:>9.3} ms",
            "wall",
            start.elapsed().as_secs_f64() * 1e3
        );
    }
    if args.noexec {
        return Ok(0);
    }
    linked.program.args = std::iter::once(args.inputs[0].clone().into_os_string())
        .chain(args.args)
        .map(OsString::into_vec)
        .collect();
    let status = executor.run(&linked.program)?;
    Ok(status as u8)
}

fn main() -> ExitCode {
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
            run(run_matches, args)
        }
    };
    match result {
        Ok(status) => ExitCode::from(status),
        Err(e) => {
            eprintln!("rjitlink: error: {e:#}");
            ExitCode::from(EXIT_LINKER_ERROR)
        }
    }
}
