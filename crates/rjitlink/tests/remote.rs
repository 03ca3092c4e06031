//! The facade with the code in another process: this test binary spawns itself as the
//! executor (`SessionBuilder::spawn_self`, served by `serve_executor_if_asked`), with shared
//! and copied memory; and, for TCP, as a listener and as a host whose standard input the
//! test controls. Its own harness (`harness = false`): those roles' arguments and environment
//! are not test filters.

mod common;

use common::Scratch;
use rjitlink::{Error, RemoteMemory, Session, TargetError, Unit};

/// A program whose exit status says that it ran with its arguments, and used an earlier unit.
const LIBRARY: &str = "int forty(void) { return 40; }\n";
const PROGRAM: &str = "#include <string.h>\nint forty(void);\n\
    int main(int argc, char **argv) { return forty() + argc + (int)strlen(argv[1]); }\n";

fn runs_a_program_linked_in_two_units(memory: RemoteMemory) {
    let scratch = Scratch::new("remote");
    let library = scratch.compile("library", LIBRARY, &[]);
    let program = scratch.compile("program", PROGRAM, &[]);
    let mut session = Session::builder()
        .spawn_self()
        .remote_memory(memory)
        .build()
        .unwrap();
    assert!(!session.is_in_process());
    session.link(&Unit::new().path(&library)).unwrap();
    let unit = session
        .link(
            &Unit::new()
                .bytes("program.o", std::fs::read(&program).unwrap())
                .entry("main"),
        )
        .unwrap();
    // Lookup gives the target's address; this process cannot call it.
    let address = session.lookup("forty").unwrap();
    assert!(address.get() != 0);
    assert!(matches!(
        unsafe { session.lookup_fn::<extern "C" fn() -> i32>("forty") },
        Err(Error::InProcessOnly { .. })
    ));
    assert!(matches!(
        session.run_main(unit.id, &["prog"]),
        Err(Error::InProcessOnly { .. })
    ));
    assert!(matches!(
        session.define_host_function("f", runs_in_process as extern "C" fn()),
        Err(Error::InProcessOnly { .. })
    ));
    let stats = session.transport_stats().unwrap();
    assert!(stats.round_trips > 0);
    // 40 + argc 2 + strlen("abc") 3.
    assert_eq!(session.run_program(unit.id, &["prog", "abc"]).unwrap(), 45);
}

extern "C" fn runs_in_process() {}

/// A unit whose constructor adds 1 and destructor 100 to `state`; a program that returns it.
const COUNTED: &str = "int state;\n\
    __attribute__((constructor)) static void up(void) { state += 1; }\n\
    __attribute__((destructor)) static void down(void) { state += 100; }\n";
const READS_STATE: &str = "extern int state;\nint main(void) { return state; }\n";

/// A unit's initializers and finalizers run in the executor, once each, on its memory: the
/// program linked after them reads what they did (a run there of neither would give 0, of
/// both twice 202).
fn initializers_and_finalizers_run_in_the_executor(memory: RemoteMemory) {
    let scratch = Scratch::new("remote-init");
    let counted = scratch.compile("counted", COUNTED, &[]);
    let reads = scratch.compile("reads", READS_STATE, &[]);
    let mut session = Session::builder()
        .spawn_self()
        .remote_memory(memory)
        .build()
        .unwrap();
    let unit = session.link(&Unit::new().path(&counted)).unwrap();
    session.run_initializers(unit.id).unwrap();
    assert!(matches!(
        session.run_initializers(unit.id),
        Err(Error::AlreadyRan { .. })
    ));
    session.run_finalizers(unit.id).unwrap();
    assert!(matches!(
        session.run_finalizers(unit.id),
        Err(Error::AlreadyRan { .. })
    ));
    // A second unit, linked after they ran (its pieces may share the first one's pages:
    // copied memory must not write the first's data back as the linker saw it).
    let program = session
        .link(&Unit::new().path(&reads).entry("main"))
        .unwrap();
    assert_eq!(session.run_program(program.id, &["reads"]).unwrap(), 101);
}

/// A program whose initializers ran already (`run_initializers`) does not run them again.
fn a_program_runs_its_initializers_once() {
    let scratch = Scratch::new("remote-init-once");
    let program = scratch.compile(
        "program",
        &format!("{COUNTED}int main(void) {{ return state; }}\n"),
        &[],
    );
    let mut session = Session::builder().spawn_self().build().unwrap();
    let unit = session
        .link(&Unit::new().path(&program).entry("main"))
        .unwrap();
    session.run_initializers(unit.id).unwrap();
    assert_eq!(session.run_program(unit.id, &["program"]).unwrap(), 1);
}

/// An initializer that kills the executor ends the session's target, with the signal.
fn an_initializer_that_crashes_ends_the_executor() {
    let scratch = Scratch::new("remote-init-crash");
    let crashing = scratch.compile(
        "crashing",
        "#include <stdlib.h>\n__attribute__((constructor)) static void up(void) { abort(); }\n",
        &[],
    );
    let mut session = Session::builder()
        .spawn_self()
        .remote_memory(RemoteMemory::Copy)
        .build()
        .unwrap();
    let unit = session.link(&Unit::new().path(&crashing)).unwrap();
    let error = session.run_initializers(unit.id).unwrap_err();
    assert_eq!(error.terminated_by(), Some(libc::SIGABRT), "{error}");
}

fn a_program_killed_by_a_signal_is_a_target_error() {
    let scratch = Scratch::new("remote-signal");
    let program = scratch.compile(
        "abort",
        "#include <stdlib.h>\nint main(void) { abort(); }\n",
        &[],
    );
    let mut session = Session::builder().spawn_self().build().unwrap();
    let unit = session
        .link(&Unit::new().path(&program).entry("main"))
        .unwrap();
    match session.run_program(unit.id, &["abort"]) {
        Err(Error::Target(TargetError::Terminated { signal })) => {
            assert_eq!(signal, libc::SIGABRT)
        }
        other => panic!("expected SIGABRT, got {other:?}"),
    }
}

fn a_link_error_leaves_the_session_usable() {
    let scratch = Scratch::new("remote-error");
    let broken = scratch.compile(
        "broken",
        "int nowhere(void);\nint main(void) { return nowhere(); }\n",
        &[],
    );
    let good = scratch.compile("good", "int main(void) { return 7; }\n", &[]);
    let mut session = Session::builder()
        .spawn_self()
        .remote_memory(RemoteMemory::Copy)
        .build()
        .unwrap();
    let error = session
        .link(&Unit::new().path(&broken).entry("main"))
        .unwrap_err();
    assert!(
        error.message().starts_with("undefined symbol `nowhere`"),
        "{error}"
    );
    let unit = session
        .link(&Unit::new().path(&good).entry("main"))
        .unwrap();
    assert_eq!(session.run_program(unit.id, &["good"]).unwrap(), 7);
}

/// C++ exceptions cross linked frames only while the eh_frame plugin registers them: off,
/// the throw finds no handler and the program aborts (in the executor, not in this test).
fn exception_frames_can_be_switched_off() {
    let scratch = Scratch::new("remote-eh");
    let program = scratch.compile_cpp(
        "throws",
        "static int thrower(int x) { if (x > 0) throw x; return 0; }\n\
         int main(int argc, char **) { try { return thrower(argc); } catch (int caught) {\n\
         return 40 + caught; } }\n",
    );
    let unit = Unit::new().path(&program).library("stdc++").entry("main");
    let run = |plugins: rjitlink::PluginSwitches| {
        let mut session = Session::builder()
            .spawn_self()
            .plugins(plugins)
            .build()
            .unwrap();
        let linked = session.link(&unit).unwrap();
        session.run_program(linked.id, &["throws", "x"])
    };
    assert_eq!(run(rjitlink::PluginSwitches::default()).unwrap(), 42);
    let mut off = rjitlink::PluginSwitches::default();
    off.eh_frames = false;
    match run(off) {
        Err(Error::Target(TargetError::Terminated { signal })) => assert_eq!(signal, libc::SIGABRT),
        other => panic!("expected the program to abort, got {other:?}"),
    }
}

/// The token of the test's TCP listener (any 16 bytes or more).
const TOKEN: &str = "facade-test-token-0123456789";

/// Role: a TCP listener on a free loopback port (printed on stdout by `listen`), ending when
/// its stdin does.
fn listener_role() -> ! {
    let token = rjitlink::Token::new(TOKEN.as_bytes()).unwrap();
    let options = rjitlink::serve::ListenOptions {
        max_clients: 4,
        exit_with_stdin: true,
    };
    let result = rjitlink::serve::listen("127.0.0.1:0", &token, &options);
    std::process::exit(i32::from(result.is_err()))
}

/// Role: a host linking `object` on the TCP executor at `address`, the program's stdin
/// forwarded or not; it says how the program ended, then reads its own stdin to the end and
/// says how much it got.
fn host_role(address: &str, object: &str, forward: bool) -> ! {
    use std::io::{Read, Write};
    let mut session = Session::builder()
        .tcp(address, TOKEN)
        .forward_stdin(forward)
        .build()
        .unwrap();
    let unit = session
        .link(&Unit::new().path(object).entry("main"))
        .unwrap();
    let status = session.run_program(unit.id, &["reader"]).unwrap();
    println!("program read {status}");
    std::io::stdout().flush().unwrap();
    // The test writes the rest of the input now: a reader of stdin left over from the run
    // would take it meanwhile.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut rest = Vec::new();
    std::io::stdin().read_to_end(&mut rest).unwrap();
    println!("host read {:?}", String::from_utf8_lossy(&rest));
    std::process::exit(0)
}

/// A TCP executor's program reads the host's stdin only when asked, and never after it
/// ended: the host gets the rest of its input.
fn tcp_program_reads_the_hosts_stdin_only_when_asked() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    let scratch = Scratch::new("tcp-stdin");
    let reader = scratch.compile(
        "reader",
        "#include <unistd.h>\nint main(void) { char b[3]; int n = 0, r;\n\
         while (n < 3 && (r = read(0, b + n, 3 - n)) > 0) n += r; return n; }\n",
        &[],
    );
    let exe = std::env::current_exe().unwrap();
    let mut listener = Command::new(&exe)
        .env("RJITLINK_TEST_LISTEN", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(listener.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    let address = first
        .trim()
        .rsplit(' ')
        .next()
        .expect("the listener says where it listens")
        .to_owned();
    for (forward, expected) in [
        // Forwarded: the program takes its 3 bytes; what the host is sent after the run is
        // the host's.
        (true, ("program read 3", "host read \"defgh\"")),
        // Not forwarded: the program reads end of file; all of it is the host's.
        (false, ("program read 0", "host read \"abcdefgh\"")),
    ] {
        let mut host = Command::new(&exe)
            .env("RJITLINK_TEST_HOST", &address)
            .env("RJITLINK_TEST_OBJECT", &reader)
            .env("RJITLINK_TEST_FORWARD", if forward { "1" } else { "0" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = host.stdin.take().unwrap();
        stdin.write_all(b"abc").unwrap();
        let mut out = BufReader::new(host.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), expected.0);
        // Only now, with the run over, comes the rest.
        stdin.write_all(b"defgh").unwrap();
        drop(stdin);
        line.clear();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), expected.1);
        assert!(host.wait().unwrap().success());
    }
    // Its stdin closed, the listener ends.
    drop(listener.stdin.take());
    assert!(listener.wait().unwrap().success());
}

fn main() {
    rjitlink::serve_executor_if_asked();
    if std::env::var_os("RJITLINK_TEST_LISTEN").is_some() {
        listener_role();
    }
    if let Ok(address) = std::env::var("RJITLINK_TEST_HOST") {
        let object = std::env::var("RJITLINK_TEST_OBJECT").unwrap();
        let forward = std::env::var("RJITLINK_TEST_FORWARD").as_deref() == Ok("1");
        host_role(&address, &object, forward);
    }
    let tests: [(&str, fn()); 11] = [
        (
            "initializers_and_finalizers_run_in_the_executor_shared",
            || initializers_and_finalizers_run_in_the_executor(RemoteMemory::Shared),
        ),
        (
            "initializers_and_finalizers_run_in_the_executor_copied",
            || initializers_and_finalizers_run_in_the_executor(RemoteMemory::Copy),
        ),
        (
            "a_program_runs_its_initializers_once",
            a_program_runs_its_initializers_once,
        ),
        (
            "an_initializer_that_crashes_ends_the_executor",
            an_initializer_that_crashes_ends_the_executor,
        ),
        ("runs_a_program_linked_in_two_units_shared", || {
            runs_a_program_linked_in_two_units(RemoteMemory::Shared)
        }),
        ("runs_a_program_linked_in_two_units_copied", || {
            runs_a_program_linked_in_two_units(RemoteMemory::Copy)
        }),
        ("runs_a_program_linked_in_two_units_auto", || {
            runs_a_program_linked_in_two_units(RemoteMemory::Auto)
        }),
        (
            "a_program_killed_by_a_signal_is_a_target_error",
            a_program_killed_by_a_signal_is_a_target_error,
        ),
        (
            "a_link_error_leaves_the_session_usable",
            a_link_error_leaves_the_session_usable,
        ),
        (
            "exception_frames_can_be_switched_off",
            exception_frames_can_be_switched_off,
        ),
        (
            "tcp_program_reads_the_hosts_stdin_only_when_asked",
            tcp_program_reads_the_hosts_stdin_only_when_asked,
        ),
    ];
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut failed = 0;
    for (name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let passed = std::panic::catch_unwind(test).is_ok();
        println!("test {name} ... {}", if passed { "ok" } else { "FAILED" });
        failed += usize::from(!passed);
    }
    if failed > 0 {
        println!("{failed} failed");
        std::process::exit(1);
    }
}
