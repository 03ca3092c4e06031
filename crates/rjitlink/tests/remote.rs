//! The facade with the code in another process: this test binary spawns itself as the
//! executor (`SessionBuilder::spawn_self`, served by `serve_executor_if_asked`), with shared
//! and copied memory. Its own harness (`harness = false`): the executor's arguments are not a
//! test filter.

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
        session.run_initializers(unit.id),
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

fn main() {
    rjitlink::serve_executor_if_asked();
    let tests: [(&str, fn()); 5] = [
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
