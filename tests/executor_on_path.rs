//! A spawned executor named without a directory is found on `PATH`, as a command is. (A test
//! binary of its own: it sets `PATH`, which no other test may read meanwhile.)

use rjitlink_remote::{MemoryMode, Remote};
use rjitlink_target::Executor;
use std::path::Path;

#[test]
fn an_executor_named_without_a_directory_is_found_on_path() {
    let binary = Path::new(env!("CARGO_BIN_EXE_rjitlink"));
    let directory = binary.parent().unwrap();
    let name = binary.file_name().unwrap();
    let mut path = directory.as_os_str().to_owned();
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    // The only test here: nothing else reads the environment while it changes.
    std::env::set_var("PATH", path);
    let mut remote = Remote::spawn_program(Path::new(name), MemoryMode::Shared).unwrap();
    assert_eq!(remote.lookup(&[b"no_symbol_by_this_name"]).unwrap(), [None]);
    assert!(remote.pid().is_some());
    // A name found nowhere on PATH is the error starting it would be.
    let error = Remote::spawn_program(Path::new("no-such-rjitlink-anywhere"), MemoryMode::Shared)
        .unwrap_err();
    assert_eq!(
        rjitlink_target::full_message(&error),
        "cannot start the executor: No such file or directory (os error 2)"
    );
}
