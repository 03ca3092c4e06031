//! perf support (testdata/perf): the perf map and the jitdump written by the process that runs
//! the code, checked against what the program says of itself (its pid, where its functions
//! are, the bytes of one) and against the sizes `nm -S` gives for the object's functions; the
//! jitdump parsed back (header, records, code, line rows). Where perf can record, a
//! `perf record`/`perf report` round trip must name the hot function, with the perf map and
//! through `perf inject --jit` with the jitdump; where it cannot, the trial says why.

use crate::harness::case::{Build, Case};
use crate::harness::mode::Mode;
use crate::harness::process::{checked, expect_error, run_with_timeout};
use crate::harness::scratch::scratch_dir;
use libtest_mimic::{Failed, Trial};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn perf_case() -> Result<Case, Failed> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/perf/functions.c");
    Case::new(&source, Build::O0)
}

/// What the program printed: its pid, its functions' addresses, `work`'s first bytes.
struct Printed {
    pid: u32,
    addresses: HashMap<String, u64>,
    bytes: Vec<u8>,
}

fn printed(output: &Output) -> Result<Printed, Failed> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut printed = Printed {
        pid: 0,
        addresses: HashMap::new(),
        bytes: Vec::new(),
    };
    for line in stdout.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("pid"), Some(pid)) => printed.pid = pid.parse()?,
            (Some(name @ ("work" | "helper" | "main")), Some(address)) => {
                let hex = address.trim_start_matches("0x");
                printed
                    .addresses
                    .insert(name.to_owned(), u64::from_str_radix(hex, 16)?);
            }
            (Some("bytes"), Some(first)) => {
                printed.bytes = std::iter::once(first)
                    .chain(words)
                    .map(|byte| u8::from_str_radix(byte, 16))
                    .collect::<Result<_, _>>()?;
            }
            _ => {}
        }
    }
    if printed.pid == 0 || printed.addresses.len() != 3 || printed.bytes.len() != 16 {
        return Err(format!("the program did not say what it should: {output:?}").into());
    }
    Ok(printed)
}

/// The object's functions and their sizes, from `nm -S`.
fn function_sizes(object: &Path) -> Result<HashMap<String, u64>, Failed> {
    let output = checked(Command::new("nm").arg("-S").arg(object))?;
    let mut sizes = HashMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [_, size, kind, name] = fields[..] {
            if kind == "T" || kind == "t" {
                sizes.insert(name.to_owned(), u64::from_str_radix(size, 16)?);
            }
        }
    }
    Ok(sizes)
}

/// The size of `object`'s section `name`, from `size -A`.
fn section_size(object: &Path, name: &str) -> Result<u64, Failed> {
    let output = checked(Command::new("size").arg("-A").arg(object))?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| {
            let mut fields = line.split_whitespace();
            (fields.next() == Some(name))
                .then(|| fields.next()?.parse().ok())
                .flatten()
        })
        .ok_or_else(|| format!("size -A {}: no section {name}", object.display()).into())
}

/// The pid a program printed as `pid N`, if it ran and said it.
fn printed_pid(output: &Output) -> Option<u32> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("pid ")?.trim().parse().ok())
}

/// The line of testdata/perf/functions.c marked `// WORK`.
fn work_line() -> Result<u32, Failed> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/perf/functions.c");
    let text = std::fs::read_to_string(source)?;
    let index = text
        .lines()
        .position(|line| line.contains("// WORK"))
        .ok_or("no line marked WORK")?;
    Ok(index as u32 + 1)
}

/// Removes a file when dropped: the perf maps the trials make.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The entries of a perf map: name to (address, size).
fn read_perf_map(pid: u32) -> Result<HashMap<String, (u64, u64)>, Failed> {
    let path = format!("/tmp/perf-{pid}.map");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let mut entries = HashMap::new();
    for line in text.lines() {
        let mut fields = line.splitn(3, ' ');
        let (Some(start), Some(size), Some(name)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(format!("{path}: malformed line {line:?}").into());
        };
        entries.insert(
            name.to_owned(),
            (
                u64::from_str_radix(start, 16)?,
                u64::from_str_radix(size, 16)?,
            ),
        );
    }
    Ok(entries)
}

/// A debug-info record: the code's address, and its rows (address, line, file).
type DebugInfo = (u64, Vec<(u64, u32, String)>);

/// A jitdump read back.
#[derive(Default)]
struct JitDumpFile {
    pid: u32,
    /// Code loads: name, address, size, code.
    loads: Vec<(String, u64, u64, Vec<u8>)>,
    /// The pid each code load names.
    load_pids: Vec<u32>,
    /// Debug info: code address, rows (address, line, file).
    debug: Vec<DebugInfo>,
}

/// Parse a jitdump as perf's specification describes it; Err on anything out of place.
fn parse_jitdump(bytes: &[u8]) -> Result<JitDumpFile, Failed> {
    let u32_at = |at: usize| -> Result<u32, Failed> {
        Ok(u32::from_le_bytes(
            bytes.get(at..at + 4).ok_or("truncated")?.try_into()?,
        ))
    };
    let u64_at = |at: usize| -> Result<u64, Failed> {
        Ok(u64::from_le_bytes(
            bytes.get(at..at + 8).ok_or("truncated")?.try_into()?,
        ))
    };
    let string_at = |at: usize| -> Result<(String, usize), Failed> {
        let rest = bytes.get(at..).ok_or("truncated")?;
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or("unterminated string")?;
        Ok((
            String::from_utf8_lossy(&rest[..end]).into_owned(),
            at + end + 1,
        ))
    };
    if u32_at(0)? != 0x4A69_5444 || u32_at(4)? != 1 || u32_at(8)? != 40 || u32_at(12)? != 62 {
        return Err("bad jitdump header (magic, version, size, machine)".into());
    }
    let mut dump = JitDumpFile {
        pid: u32_at(20)?,
        ..JitDumpFile::default()
    };
    let mut at = 40;
    while at < bytes.len() {
        let (kind, size) = (u32_at(at)?, u32_at(at + 4)? as usize);
        let end = at + size;
        if size < 16 || end > bytes.len() {
            return Err(format!("record at {at:#x}: size {size}").into());
        }
        match kind {
            0 => {
                let (address, code_size) = (u64_at(at + 32)?, u64_at(at + 40)?);
                let (name, code_start) = string_at(at + 56)?;
                if code_start + code_size as usize != end {
                    return Err(format!("code load of {name}: sizes disagree").into());
                }
                let code = bytes[code_start..end].to_vec();
                dump.loads.push((name, address, code_size, code));
                dump.load_pids.push(u32_at(at + 16)?);
            }
            2 => {
                let address = u64_at(at + 16)?;
                let count = u64_at(at + 24)?;
                let mut rows = Vec::new();
                let mut entry = at + 32;
                for _ in 0..count {
                    let (file, next) = string_at(entry + 16)?;
                    rows.push((u64_at(entry)?, u32_at(entry + 8)?, file));
                    entry = next;
                }
                if entry > end {
                    return Err("debug info runs past its record".into());
                }
                dump.debug.push((address, rows));
            }
            other => return Err(format!("unexpected record kind {other}").into()),
        }
        at = end;
    }
    Ok(dump)
}

/// `perf record` works here: the binary is there and the kernel lets this user profile.
fn perf_usable() -> Result<(), String> {
    let dir = scratch_dir("perf-probe");
    let output = Command::new("perf")
        .args(["record", "-q", "-e", "cpu-clock", "-o"])
        .arg(dir.join("probe.data"))
        .args(["--", "true"])
        .env("HOME", &dir)
        .output()
        .map_err(|e| format!("perf cannot be run ({e}); install linux-perf"))?;
    if !output.status.success() {
        let paranoid =
            std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid").unwrap_or_default();
        return Err(format!(
            "perf record fails here (perf_event_paranoid {}): {}",
            paranoid.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(())
}

/// `perf report`'s symbols of `data`, as text.
fn perf_report(data: &Path, home: &Path) -> Result<String, Failed> {
    let output = checked(
        Command::new("perf")
            .args(["report", "--stdio", "--sort", "sym", "-i"])
            .arg(data)
            .env("HOME", home),
    )?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("perf::perf_map_names_every_function", || {
            let case = perf_case()?;
            let sizes = function_sizes(&case.inputs[0])?;
            for mode in Mode::ALL {
                let output = case.run_jit(mode, &["--perf-map"])?;
                let printed = printed(&output)?;
                let _cleanup = RemoveOnDrop(format!("/tmp/perf-{}.map", printed.pid).into());
                let entries = read_perf_map(printed.pid)
                    .map_err(|e| format!("{}: {}", mode.name(), e.message().unwrap_or("")))?;
                for (name, &size) in &sizes {
                    let Some(&(address, mapped_size)) = entries.get(name) else {
                        return Err(format!("{}: no entry for {name}", mode.name()).into());
                    };
                    if mapped_size != size
                        || printed.addresses.get(name).is_some_and(|&a| a != address)
                    {
                        return Err(format!(
                            "{}: {name} mapped at {address:#x}+{mapped_size:#x}, the program is at {:?}+{size:#x}",
                            mode.name(),
                            printed.addresses.get(name)
                        )
                        .into());
                    }
                }
            }
            Ok(())
        }),
        Trial::test("perf::no_perf_map_unless_asked", || {
            let case = perf_case()?;
            for mode in [Mode::InProcess, Mode::Remote] {
                let output = case.run_jit(mode, &[])?;
                let printed = printed(&output)?;
                let path = format!("/tmp/perf-{}.map", printed.pid);
                if Path::new(&path).exists() {
                    let _cleanup = RemoveOnDrop(path.clone().into());
                    return Err(format!("{}: {path} written unasked", mode.name()).into());
                }
            }
            Ok(())
        }),
        Trial::test("perf::jitdump_holds_the_code_and_lines", || {
            let case = perf_case()?;
            let sizes = function_sizes(&case.inputs[0])?;
            let line = work_line()?;
            for mode in Mode::ALL {
                let dir = scratch_dir(&format!("jitdump-{}", mode.name()));
                let flag = format!("--jitdump={}", dir.display());
                let output = case.run_jit(mode, &[&flag])?;
                let printed = printed(&output)?;
                let path = dir.join(format!("jit-{}.dump", printed.pid));
                let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                let dump = parse_jitdump(&bytes)
                    .map_err(|e| format!("{}: {}", mode.name(), e.message().unwrap_or("")))?;
                let fail = |what: String| -> Failed { format!("{}: {what}", mode.name()).into() };
                if dump.pid != printed.pid
                    || dump.loads.len() != sizes.len()
                    || dump.load_pids.iter().any(|&pid| pid != printed.pid)
                {
                    return Err(fail(format!(
                        "pid {} (program {}, code loads {:?}), {} code loads for {} functions",
                        dump.pid,
                        printed.pid,
                        dump.load_pids,
                        dump.loads.len(),
                        sizes.len()
                    )));
                }
                for (name, address, size, code) in &dump.loads {
                    if sizes.get(name) != Some(size)
                        || code.len() as u64 != *size
                        || printed.addresses.get(name).is_some_and(|a| a != address)
                    {
                        return Err(fail(format!("{name} at {address:#x}+{size:#x}")));
                    }
                }
                let work = &printed.addresses["work"];
                let (_, _, _, code) = dump
                    .loads
                    .iter()
                    .find(|load| load.0 == "work")
                    .ok_or_else(|| fail("no code load for work".into()))?;
                if code[..16] != printed.bytes[..] {
                    return Err(fail(format!(
                        "work's code {:02x?} differs from the program's {:02x?}",
                        &code[..16],
                        printed.bytes
                    )));
                }
                let rows = dump
                    .debug
                    .iter()
                    .find(|(address, _)| address == work)
                    .map(|(_, rows)| rows)
                    .ok_or_else(|| fail("no debug info for work".into()))?;
                if !rows
                    .iter()
                    .any(|(_, l, file)| *l == line && file.ends_with("functions.c"))
                {
                    return Err(fail(format!("no row for functions.c:{line}: {rows:?}")));
                }
            }
            Ok(())
        }),
        Trial::test("perf::a_bare_jitdump_goes_where_perf_looks", || {
            // `--jitdump` without a directory: $JITDUMPDIR/.debug/jit/rjitlink-PID/.
            let case = perf_case()?;
            let dir = scratch_dir("jitdump-default");
            let output = crate::harness::process::run_with_input(
                case.rjitlink_command(&["--jitdump"])
                    .env("JITDUMPDIR", &dir),
                None,
            )?;
            if !output.status.success() {
                return Err(format!("rjitlink --jitdump: {output:?}").into());
            }
            let pid = printed(&output)?.pid;
            let path = dir.join(format!(".debug/jit/rjitlink-{pid}/jit-{pid}.dump"));
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let dump = parse_jitdump(&bytes)?;
            if dump.pid != pid || !dump.loads.iter().any(|load| load.0 == "work") {
                return Err(format!(
                    "{}: pid {}, no code load for work",
                    path.display(),
                    dump.pid
                )
                .into());
            }
            Ok(())
        }),
        Trial::test("perf::function_sizes_past_their_section_are_cut", || {
            // `main` claims 1 GiB in a section of a few bytes: once the jitdump read that
            // much of memory in process (rjitlink died of SIGSEGV) and a remote executor
            // refused the dump (not live code); the perf map said 1 GiB.
            let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/perf/oversized.s");
            let case = Case::new(&source, Build::Asm)?;
            let text = section_size(&case.inputs[0], ".text")?;
            for mode in Mode::ALL {
                let fail = |what: String| -> Failed { format!("{}: {what}", mode.name()).into() };
                let dir = scratch_dir(&format!("oversized-{}", mode.name()));
                let flag = format!("--jitdump={}", dir.display());
                let output = case.run_jit(mode, &[&flag])?;
                let pid = printed_pid(&output)
                    .filter(|_| output.status.success())
                    .ok_or_else(|| fail(format!("--jitdump: {output:?}")))?;
                let path = dir.join(format!("jit-{pid}.dump"));
                let bytes =
                    std::fs::read(&path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
                let dump = parse_jitdump(&bytes)
                    .map_err(|e| fail(e.message().unwrap_or("").to_owned()))?;
                let sizes: Vec<(&str, u64)> = dump
                    .loads
                    .iter()
                    .map(|(name, _, size, _)| (name.as_str(), *size))
                    .collect();
                if sizes != [("main", text)] {
                    return Err(fail(format!(
                        "jitdump code loads {sizes:?}, .text holds {text}"
                    )));
                }

                let output = case.run_jit(mode, &["--perf-map"])?;
                let pid = printed_pid(&output)
                    .filter(|_| output.status.success())
                    .ok_or_else(|| fail(format!("--perf-map: {output:?}")))?;
                let _cleanup = RemoveOnDrop(format!("/tmp/perf-{pid}.map").into());
                let entries = read_perf_map(pid)?;
                if entries.get("main").map(|&(_, size)| size) != Some(text) || entries.len() != 1 {
                    return Err(fail(format!("perf map {entries:?}, .text holds {text}")));
                }
            }
            Ok(())
        }),
        Trial::test("perf::jitdump_in_a_directory_that_cannot_be_made", || {
            let case = perf_case()?;
            // A directory under a regular file cannot be made.
            let dir = scratch_dir("jitdump-error");
            let file = dir.join("file");
            std::fs::write(&file, b"")?;
            let flag = format!("--jitdump={}", file.join("sub").display());
            for extra in [&[][..], &["--executor=remote"][..]] {
                let mut command = case.rjitlink_command(&[&[flag.as_str()][..], extra].concat());
                expect_error(&mut command, "cannot write the jitdump")?;
                expect_error(&mut command, "Not a directory")?;
            }
            Ok(())
        }),
        Trial::test("perf::record_and_report_name_jit_functions", || {
            if let Err(reason) = perf_usable() {
                println!("skipped: {reason}");
                return Ok(());
            }
            let case = perf_case()?;
            for mode in [Mode::InProcess, Mode::Remote] {
                let dir = scratch_dir(&format!("perf-record-{}", mode.name()));
                // With the perf map: a plain `perf report` names the function.
                let data = dir.join("perf.data");
                let mut record = Command::new("perf");
                record
                    .args(["record", "-q", "-e", "cpu-clock", "-o"])
                    .arg(&data)
                    .arg("--")
                    .arg(crate::harness::rjitlink())
                    .arg("run")
                    .args(&case.inputs)
                    .arg("--perf-map");
                if let Mode::Remote = mode {
                    record.arg("--executor=remote");
                }
                record.args(["--", "200000000"]).env("HOME", &dir);
                let output = run_with_timeout(&mut record)?;
                let printed = printed(&output)?;
                let _cleanup = RemoveOnDrop(format!("/tmp/perf-{}.map", printed.pid).into());
                let report = perf_report(&data, &dir)?;
                if !report.contains("[.] work") {
                    return Err(format!("{}: perf report:\n{report}", mode.name()).into());
                }
                // With the jitdump, through perf inject.
                let data = dir.join("jit.data");
                let injected = dir.join("injected.data");
                let flag = format!("--jitdump={}", dir.display());
                let mut record = Command::new("perf");
                record
                    .args(["record", "-q", "-k", "mono", "-e", "cpu-clock", "-o"])
                    .arg(&data)
                    .arg("--")
                    .arg(crate::harness::rjitlink())
                    .arg("run")
                    .args(&case.inputs)
                    .arg(&flag);
                if let Mode::Remote = mode {
                    record.arg("--executor=remote");
                }
                record.args(["--", "200000000"]).env("HOME", &dir);
                checked(&mut record)?;
                checked(
                    Command::new("perf")
                        .args(["inject", "--jit", "-i"])
                        .arg(&data)
                        .arg("-o")
                        .arg(&injected)
                        .env("HOME", &dir),
                )?;
                let report = perf_report(&injected, &dir)?;
                if !report.contains("[.] work") {
                    return Err(format!("{}: after perf inject:\n{report}", mode.name()).into());
                }
            }
            Ok(())
        }),
    ]
}
