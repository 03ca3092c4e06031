//! The command line as people type it, turned into what the clap definitions parse: `run` is
//! optional, cc's options are sorted out (compiler options kept for the sources, linker options
//! mapped to rjitlink's own, options that would write a file refused with the reason), and a
//! `#!` script's own arguments are put after `--`.

use crate::compile;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The arguments for clap, and the options meant for the compiler of the sources.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Prepared {
    /// The command line clap parses (`run` inserted where it was left out).
    pub args: Vec<OsString>,
    /// Compiler options (`-O2`, `-g`, `-I dir`, `-DX=1`, `-std=c11`, `-pthread`, ...), in
    /// their order, for every source given.
    pub compiler_flags: Vec<OsString>,
}

/// Whether `word` names one of `subcommands` (or asks for help or the version), so that no
/// `run` is inserted before it.
fn is_subcommand_or_top_level(word: &OsStr, subcommands: &[String]) -> bool {
    let word = word.as_bytes();
    subcommands.iter().any(|name| name.as_bytes() == word)
        || matches!(word, b"-h" | b"--help" | b"-V" | b"--version")
}

/// Turn the process's arguments into clap's. `run` describes `rjitlink run`'s options (to know
/// which take a value); `subcommands` names every subcommand. Err: a one-line message for an
/// option rjitlink refuses (`-o`, `-static`, an unknown `-Wl,` option).
pub fn prepare(
    raw: Vec<OsString>,
    run: &clap::Command,
    subcommands: &[String],
) -> Result<Prepared, String> {
    let mut raw = raw.into_iter();
    let mut prepared = Prepared::default();
    prepared.args.extend(raw.next());
    let rest: Vec<OsString> = raw.collect();
    match rest.first() {
        // No arguments at all: clap's own message says what is missing.
        None => return Ok(prepared),
        Some(first) if first == "run" => {
            prepared.args.push(first.clone());
            prepare_run(&rest[1..], run, &mut prepared)?;
        }
        Some(first) if is_subcommand_or_top_level(first, subcommands) => {
            prepared.args.extend(rest);
        }
        Some(_) => {
            prepared.args.push("run".into());
            prepare_run(&rest, run, &mut prepared)?;
        }
    }
    Ok(prepared)
}

/// Whether `run` has an option written `word` (`--entry`, `-l`) that takes a separate value.
/// One whose value must follow an `=` (`--jitdump[=DIR]`) never takes the next word.
fn takes_value(run: &clap::Command, word: &str) -> bool {
    run.get_arguments().any(|arg| {
        let named = match word.strip_prefix("--") {
            Some(long) => arg.get_long() == Some(long),
            None => {
                let mut chars = word.chars();
                chars.next() == Some('-')
                    && chars.next().is_some_and(|c| arg.get_short() == Some(c))
                    && chars.next().is_none()
            }
        };
        named && arg.get_action().takes_values() && !arg.is_require_equals_set()
    })
}

fn prepare_run(
    args: &[OsString],
    run: &clap::Command,
    prepared: &mut Prepared,
) -> Result<(), String> {
    let mut i = 0;
    // A linker option whose value is in the next `-Wl,` or `-Xlinker` (cc hands the linker
    // its words in order: `-Xlinker -rpath -Xlinker DIR`).
    let mut pending = None;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let Some(text) = arg.to_str() else {
            // Not UTF-8: no option of ours or cc's, so a path.
            prepared.args.push(arg.clone());
            continue;
        };
        if text == "--" {
            no_value_missing(&pending)?;
            prepared.args.extend(args[i - 1..].iter().cloned());
            return Ok(());
        }
        if !text.starts_with('-') || text == "-" {
            prepared.args.push(arg.clone());
            // A `#!` script takes every argument after it as its own, as a shell script does:
            // the kernel runs `rjitlink run SCRIPT ARGS...` for `#!/usr/bin/env -S rjitlink run`.
            if compile::is_script(Path::new(arg)) {
                no_value_missing(&pending)?;
                prepared.args.push("--".into());
                prepared.args.extend(args[i..].iter().cloned());
                return Ok(());
            }
            continue;
        }
        // An option of rjitlink's own that takes its value as the next word: both go to clap
        // as they are (the value may look like anything, `--argv0 -x`).
        if takes_value(run, text) {
            prepared.args.push(arg.clone());
            if let Some(value) = args.get(i) {
                prepared.args.push(value.clone());
                i += 1;
            }
            continue;
        }
        match cc_option(text, args.get(i).map(OsString::as_os_str), &mut pending)? {
            CcOption::Compiler { takes_next } => {
                prepared.compiler_flags.push(arg.clone());
                if takes_next {
                    if let Some(value) = args.get(i) {
                        prepared.compiler_flags.push(value.clone());
                        i += 1;
                    }
                }
            }
            CcOption::Linker(words) => {
                prepared.args.extend(words.into_iter().map(OsString::from));
                // `-Xlinker WORD` used the next word.
                if text == "-Xlinker" {
                    i += 1;
                }
            }
            CcOption::Ignored => {}
            CcOption::NotCc => prepared.args.push(arg.clone()),
        }
    }
    no_value_missing(&pending)
}

/// Err if a linker option that needs a value (`-Wl,-e`) was given none.
fn no_value_missing(pending: &Option<String>) -> Result<(), String> {
    match pending.as_deref() {
        Some(option @ ("-e" | "--entry")) => Err(format!("-Wl,{option} needs a symbol")),
        // `-z`, `-rpath` without a value: what they would say changes nothing.
        _ => Ok(()),
    }
}

/// What one of cc's options becomes.
#[derive(Debug, PartialEq, Eq)]
enum CcOption {
    /// For the compiler of the sources; `takes_next`: its value is the next word (`-I dir`).
    Compiler { takes_next: bool },
    /// rjitlink's own options that do what the linker option asks.
    Linker(Vec<String>),
    /// Accepted, and nothing to do (`-no-pie`: code is placed where it can run anyway).
    Ignored,
    /// Not one of cc's: clap parses it (and says so if it is no option of rjitlink's either).
    NotCc,
}

/// Sort one of cc's options; `next` is the word after it; `pending` carries a linker option
/// whose value comes in a later `-Wl,`/`-Xlinker`. Err for options rjitlink refuses, with the
/// reason.
fn cc_option(
    text: &str,
    next: Option<&OsStr>,
    pending: &mut Option<String>,
) -> Result<CcOption, String> {
    Ok(match text {
        "-pthread" | "-pedantic" | "-pedantic-errors" | "-ansi" | "-w" => {
            CcOption::Compiler { takes_next: false }
        }
        "-I" | "-D" | "-U" | "-include" | "-isystem" | "-iquote" | "-idirafter" => {
            CcOption::Compiler { takes_next: true }
        }
        "-rdynamic" => CcOption::Linker(vec!["--export-dynamic".into()]),
        "-no-pie" | "-pie" | "-static-libgcc" => CcOption::Ignored,
        "-static" | "-static-pie" => {
            return Err(format!(
                "{text}: rjitlink links into a running process that has the shared libc loaded, and writes no program file; drop {text}"
            ))
        }
        "-shared" => {
            return Err(
                "-shared: rjitlink runs programs and writes no shared library; build one with `cc -shared -fPIC -o libNAME.so ...`"
                    .into(),
            )
        }
        "-c" | "-S" => {
            return Err(format!(
                "{text}: rjitlink compiles sources only to run them and writes no file; use `cc {text}` for that"
            ))
        }
        "-Xlinker" => {
            let word = next.and_then(OsStr::to_str).ok_or("-Xlinker needs an option after it")?;
            CcOption::Linker(linker_options(&[word], pending)?)
        }
        _ if text.starts_with("-o") => {
            return Err(
                "-o: rjitlink links in memory and runs the program, writing no file; use `cc -o` to write one"
                    .into(),
            )
        }
        _ if text.starts_with("-Wl,") => {
            let words: Vec<&str> = text["-Wl,".len()..].split(',').collect();
            CcOption::Linker(linker_options(&words, pending)?)
        }
        _ if ["-I", "-D", "-U", "-O", "-g", "-f", "-m", "-W", "-std="]
            .iter()
            .any(|prefix| text.starts_with(prefix)) =>
        {
            CcOption::Compiler { takes_next: false }
        }
        _ => CcOption::NotCc,
    })
}

/// Map the linker options of one `-Wl,A,B,C` (or `-Xlinker A`) to rjitlink's options. Options
/// that only shape an output file are accepted and do nothing; others are refused by name.
/// `pending` is an option still waiting for its value, from an earlier group or for a later
/// one (`-Wl,-rpath -Wl,DIR`).
fn linker_options(words: &[&str], pending: &mut Option<String>) -> Result<Vec<String>, String> {
    let mut mapped = Vec::new();
    for &word in words {
        if let Some(option) = pending.take() {
            if option == "-e" || option == "--entry" {
                mapped.push("--entry".to_owned());
                mapped.push(word.to_owned());
            }
            continue;
        }
        match word {
            "-E" | "--export-dynamic" | "-export-dynamic" => {
                mapped.push("--export-dynamic".to_owned())
            }
            // rjitlink loads every library it is given, once: either way the same symbols are
            // found. Archives are searched to a fixpoint, so groups change nothing either.
            "--as-needed" | "--no-as-needed" | "--start-group" | "--end-group" | "-(" | "-)"
            | "--no-undefined" | "--gc-sections" | "--no-gc-sections" | "--eh-frame-hdr"
            | "--sort-common" | "--enable-new-dtags" | "--disable-new-dtags" | "-O0" | "-O1"
            | "-O2" | "--warn-common" | "--fatal-warnings" | "-s" | "--strip-all" | "-S"
            | "--strip-debug" | "--build-id" | "--no-copy-dt-needed-entries" | "-znow"
            | "-zrelro" | "-znoexecstack" | "-zdefs" | "--push-state" | "--pop-state" => {}
            _ if word.starts_with("--build-id=")
                || word.starts_with("--hash-style=")
                || word.starts_with("-rpath=")
                || word.starts_with("--rpath=")
                || word.starts_with("-z,") => {}
            // Each takes the next word: `-z relro`, `-rpath DIR` (libraries are loaded by
            // their full path, so a run path changes nothing), `-e SYMBOL`.
            "-z" | "-rpath" | "--rpath" | "-rpath-link" | "-e" | "--entry" => {
                *pending = Some(word.to_owned());
            }
            _ if word.starts_with("--entry=") => {
                mapped.push("--entry".to_owned());
                mapped.push(word["--entry=".len()..].to_owned());
            }
            _ => {
                return Err(format!(
                    "-Wl,{word}: a linker option rjitlink does not know; it maps -E/--export-dynamic and --entry, and accepts --as-needed, --no-as-needed, groups, -z and -rpath options, which change nothing in memory"
                ))
            }
        }
    }
    Ok(mapped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<OsString> {
        text.split_whitespace().map(OsString::from).collect()
    }

    fn run_command() -> clap::Command {
        clap::Command::new("run")
            .arg(
                clap::Arg::new("l")
                    .short('l')
                    .action(clap::ArgAction::Append),
            )
            .arg(clap::Arg::new("entry").long("entry"))
            .arg(
                clap::Arg::new("noexec")
                    .long("noexec")
                    .action(clap::ArgAction::SetTrue),
            )
    }

    fn prepare_words(text: &str) -> Result<Prepared, String> {
        prepare(
            words(text),
            &run_command(),
            &["run".into(), "executor".into()],
        )
    }

    #[test]
    fn run_is_optional() {
        let prepared = prepare_words("rjitlink a.o -lm").unwrap();
        assert_eq!(prepared.args, words("rjitlink run a.o -lm"));
        let prepared = prepare_words("rjitlink --noexec a.o").unwrap();
        assert_eq!(prepared.args, words("rjitlink run --noexec a.o"));
        let prepared = prepare_words("rjitlink executor --listen 7000").unwrap();
        assert_eq!(prepared.args, words("rjitlink executor --listen 7000"));
        let prepared = prepare_words("rjitlink --help").unwrap();
        assert_eq!(prepared.args, words("rjitlink --help"));
    }

    #[test]
    fn cc_options_are_sorted() {
        let prepared =
            prepare_words("rjitlink run -O2 -g a.c -I inc -DX=1 -pthread -rdynamic -Wl,-E,--no-as-needed -lm -- -O2")
                .unwrap();
        assert_eq!(
            prepared.args,
            words("rjitlink run a.c --export-dynamic --export-dynamic -lm -- -O2")
        );
        assert_eq!(
            prepared.compiler_flags,
            words("-O2 -g -I inc -DX=1 -pthread")
        );
        // A value of rjitlink's own options is never taken for an option of cc's.
        let prepared = prepare_words("rjitlink run --entry -O2 a.o").unwrap();
        assert_eq!(prepared.args, words("rjitlink run --entry -O2 a.o"));
        let prepared = prepare_words("rjitlink run -Wl,-e,start a.o").unwrap();
        assert_eq!(prepared.args, words("rjitlink run --entry start a.o"));
    }

    #[test]
    fn linker_options_take_their_value_from_the_next_group() {
        // cc hands the linker its words in order: `-Wl,-rpath -Wl,DIR` is `-rpath DIR`.
        let prepared = prepare_words(
            "rjitlink a.c -Wl,-rpath -O2 -Wl,/dir -Xlinker -z -Xlinker now -Xlinker -e -Xlinker start -Wl,-E",
        )
        .unwrap();
        assert_eq!(
            prepared.args,
            words("rjitlink run a.c --entry start --export-dynamic")
        );
        assert_eq!(prepared.compiler_flags, words("-O2"));
        for line in ["rjitlink a.o -Wl,-e", "rjitlink a.o -Xlinker --entry -- x"] {
            let error = prepare_words(line).unwrap_err();
            assert!(error.ends_with(" needs a symbol"), "{line}: {error}");
        }
    }

    #[test]
    fn an_option_whose_value_follows_an_equals_sign_takes_no_next_word() {
        // rjitlink's own `run`: `--jitdump[=DIR]` takes no value from the next word, which is
        // then the compiler's option, or an input.
        let command = <crate::Cli as clap::CommandFactory>::command();
        let run = command.find_subcommand("run").unwrap();
        let prepared = prepare(words("rjitlink --jitdump -O2 a.c"), run, &["run".into()]).unwrap();
        assert_eq!(prepared.args, words("rjitlink run --jitdump a.c"));
        assert_eq!(prepared.compiler_flags, words("-O2"));
    }

    #[test]
    fn output_options_are_refused() {
        for (line, expected) in [
            ("rjitlink a.o -o a", "-o: "),
            ("rjitlink a.o -oa", "-o: "),
            ("rjitlink a.o -static", "-static: "),
            ("rjitlink a.o -shared", "-shared: "),
            ("rjitlink a.c -c", "-c: "),
            ("rjitlink a.o -Wl,--defsym=x=1", "-Wl,--defsym=x=1: "),
        ] {
            let error = prepare_words(line).unwrap_err();
            assert!(error.starts_with(expected), "{line}: {error}");
        }
    }
}
