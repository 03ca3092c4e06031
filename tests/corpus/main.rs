//! The test corpus: every program in testdata/ is built with the system cc/as, linked natively
//! and with rjitlink, and both runs are compared. Each testdata file says what it expects in
//! directive comments (`//# key: value` in C, `## key: value` in assembly):
//!
//! - `with: FILE...`      more sources to compile and link as objects (paths relative to it)
//! - `archive: FILE...`   sources to compile into a static archive linked after the objects
//! - `libs: -lNAME...`    libraries, for both links
//! - `cflags: FLAGS`      extra compiler flags
//! - `asflags: FLAGS`     extra assembler flags
//! - `args: ARGS`         the program's arguments
//! - `native-ldflags: FLAGS`  extra flags for the native link only (e.g. -no-pie)
//! - `stdin: FILE`        the program's stdin (path relative to it; otherwise it has none)
//! - `expect-error: TEXT` (testdata/errors) rjitlink must fail with this in its one-line error
//!
//! C programs run in three builds: `-O0` (the compiler's default PIE code), `-O2 -fPIC`, and
//! `-O2 -fno-pic -fno-pie` (absolute addresses: linked natively with -no-pie, placed below
//! 2 GiB by rjitlink, with copy relocations for the library data it reads directly).
//! Assembly programs check their own relocated values and must exit 0 both ways. A program
//! killed by a signal natively must be killed by it in process too; a remote executor killed
//! by it makes rjitlink say so and exit with 128 + the signal's number, as shells report it.
//! Every program runs in every executor mode: in process, remote (socket pair) and TCP.
//!
//! The suites, one file each, are registered here in one binary so that all their trials
//! share one parallel pool:
//!
//! - `testdata_programs`: the programs of testdata/c, testdata/asm and testdata/errors
//! - `generated_errors`: errors on inputs made by damaging a good object
//! - `cli`: command-line behaviour
//! - `command_line`: the command line's forms (sources, cc's options, scripts, no `run`)
//!   against native builds, its messages, completions and the man page
//! - `crash_reports`: crash reports name the line of the fault (testdata/crash), in every mode
//! - `executor`: the remote and TCP executors
//! - `tcp_executor`: the TCP executor facing the network: authentication, hostile clients,
//!   limits, and programs' endings and streams over the connection
//! - `damaged_input`: randomly damaged objects never crash rjitlink; the inputs of
//!   testdata/damaged fail with the errors testdata/damaged/EXPECT names
//! - `native_behaviour`: programs behave as natively where a native run's output cannot say
//!   so (a reader that leaves, the user's signal state)
//! - `perf`: the perf map and the jitdump (testdata/perf), and a perf record/report round trip
//!
//! Their shared helpers are in tests/harness/.

#[path = "../harness/mod.rs"]
mod harness;

mod cli;
mod command_line;
mod crash_reports;
mod damaged_input;
mod executor;
mod generated_errors;
mod native_behaviour;
mod perf;
mod tcp_executor;
mod testdata_programs;

use libtest_mimic::Arguments;

fn main() {
    let args = Arguments::from_args();
    let mut trials = testdata_programs::trials();
    trials.extend(generated_errors::trials());
    trials.extend(cli::trials());
    trials.extend(command_line::trials());
    trials.extend(crash_reports::trials());
    trials.extend(executor::trials());
    trials.extend(tcp_executor::trials());
    trials.extend(damaged_input::trials());
    trials.extend(native_behaviour::trials());
    trials.extend(perf::trials());
    trials.extend(damaged_input::regression_trials());

    libtest_mimic::run(&args, trials).exit();
}
