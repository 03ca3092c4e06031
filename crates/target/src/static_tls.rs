//! The static TLS surplus of the processes linked code runs in.
//!
//! Initial- and local-exec TLS code finds its variables at a fixed offset from the thread
//! pointer in every thread, so a module with such code that is loaded after start gets its
//! block from glibc's static TLS surplus, which is sized once, at process start, by the
//! tunable `glibc.rtld.optional_static_tls` (512 bytes by default). A process that runs linked
//! code is therefore started with [`STATIC_TLS_SURPLUS`] bytes unless the user's own
//! `GLIBC_TUNABLES` sets the tunable: the starter appends the tunable to `GLIBC_TUNABLES` and
//! saves the user's value in [`SAVED_TUNABLES_VAR`]; the started process puts the user's value
//! back first thing ([`restore_user_tunables`]), so that the program and whatever it starts
//! see the user's environment unchanged (the loader has read the tunable by then).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::process::Command;

/// The loader's tunables, `name=value` pairs separated by `:`.
pub const TUNABLES_VAR: &str = "GLIBC_TUNABLES";

/// Set, alongside the larger surplus, for a process rjitlink starts: `unset` if the user had no
/// `GLIBC_TUNABLES`, or `set:` followed by the user's value. Its presence also says that the
/// process was started with the surplus, so it is not restarted again.
pub const SAVED_TUNABLES_VAR: &str = "RJITLINK_USER_GLIBC_TUNABLES";

/// The tunable that sizes the static TLS surplus for modules loaded late.
pub const SURPLUS_TUNABLE: &str = "glibc.rtld.optional_static_tls";

/// The surplus, in bytes, rjitlink gives the processes it starts to run linked code.
pub const STATIC_TLS_SURPLUS: u64 = 16384;

/// The environment that starts a process with the larger surplus, given the user's
/// `GLIBC_TUNABLES`: its new value, then the value of [`SAVED_TUNABLES_VAR`]. `None` when the
/// user's value sets the surplus already: theirs is kept as it is.
pub fn surplus_environment_for(user: Option<&OsStr>) -> Option<(OsString, OsString)> {
    if user.is_some_and(sets_surplus) {
        return None;
    }
    let tunable = format!("{SURPLUS_TUNABLE}={STATIC_TLS_SURPLUS}");
    let (tunables, saved) = match user {
        None => (OsString::from(tunable), OsString::from("unset")),
        Some(user) => {
            let mut tunables = user.as_bytes().to_vec();
            if !tunables.is_empty() {
                tunables.push(b':');
            }
            tunables.extend_from_slice(tunable.as_bytes());
            let mut saved = b"set:".to_vec();
            saved.extend_from_slice(user.as_bytes());
            (OsString::from_vec(tunables), OsString::from_vec(saved))
        }
    };
    Some((tunables, saved))
}

/// Whether a `GLIBC_TUNABLES` value sets the surplus tunable.
fn sets_surplus(tunables: &OsStr) -> bool {
    tunables
        .as_bytes()
        .split(|&b| b == b':')
        .any(|item| item.split(|&b| b == b'=').next() == Some(SURPLUS_TUNABLE.as_bytes()))
}

/// The user's `GLIBC_TUNABLES` as saved in [`SAVED_TUNABLES_VAR`]: `Some(None)` for unset,
/// `None` if `saved` is not a value rjitlink wrote.
pub fn saved_tunables(saved: &OsStr) -> Option<Option<OsString>> {
    match saved.as_bytes() {
        b"unset" => Some(None),
        bytes => bytes
            .strip_prefix(b"set:")
            .map(|user| Some(OsString::from_vec(user.to_vec()))),
    }
}

/// Start `command` with the larger surplus (unless this process's `GLIBC_TUNABLES`, taken to
/// be the user's, sets it). Returns whether the environment was changed.
pub fn add_surplus(command: &mut Command) -> bool {
    match surplus_environment_for(std::env::var_os(TUNABLES_VAR).as_deref()) {
        Some((tunables, saved)) => {
            command
                .env(TUNABLES_VAR, tunables)
                .env(SAVED_TUNABLES_VAR, saved);
            true
        }
        None => false,
    }
}

/// At the start of a process that may have been started by [`add_surplus`]: put the user's
/// `GLIBC_TUNABLES` back (or unset it) and remove [`SAVED_TUNABLES_VAR`]. Returns whether this
/// process was started so, i.e. already has the larger surplus unless the user set another.
///
/// Call before any other thread exists: it changes the environment. A marker rjitlink did not
/// write is removed and otherwise ignored.
pub fn restore_user_tunables() -> bool {
    let Some(saved) = std::env::var_os(SAVED_TUNABLES_VAR) else {
        return false;
    };
    std::env::remove_var(SAVED_TUNABLES_VAR);
    match saved_tunables(&saved) {
        Some(Some(user)) => std::env::set_var(TUNABLES_VAR, user),
        Some(None) => std::env::remove_var(TUNABLES_VAR),
        None => return false,
    }
    true
}

/// Whether this process's `GLIBC_TUNABLES` sets the surplus: then it is the user's choice, and
/// rjitlink neither changes it nor restarts a process for a larger one.
pub fn user_sets_surplus() -> bool {
    std::env::var_os(TUNABLES_VAR).is_some_and(|tunables| sets_surplus(&tunables))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn environment(user: Option<&str>) -> Option<(String, String)> {
        surplus_environment_for(user.map(OsStr::new)).map(|(tunables, saved)| {
            (
                tunables.into_string().unwrap(),
                saved.into_string().unwrap(),
            )
        })
    }

    #[test]
    fn the_surplus_is_appended_to_the_users_tunables() {
        let tunable = "glibc.rtld.optional_static_tls=16384";
        assert_eq!(
            environment(None),
            Some((tunable.to_owned(), "unset".to_owned()))
        );
        assert_eq!(
            environment(Some("")),
            Some((tunable.to_owned(), "set:".to_owned()))
        );
        assert_eq!(
            environment(Some("glibc.malloc.arena_max=2")),
            Some((
                format!("glibc.malloc.arena_max=2:{tunable}"),
                "set:glibc.malloc.arena_max=2".to_owned()
            ))
        );
    }

    #[test]
    fn a_users_surplus_is_kept() {
        for user in [
            "glibc.rtld.optional_static_tls=0",
            "glibc.malloc.arena_max=2:glibc.rtld.optional_static_tls=99999",
        ] {
            assert_eq!(environment(Some(user)), None, "{user}");
        }
        // Only that exact tunable counts.
        assert!(environment(Some("glibc.rtld.optional_static_tls_x=1")).is_some());
    }

    #[test]
    fn saved_values_round_trip() {
        for user in [None, Some(""), Some("a=1:b=2"), Some("set:odd")] {
            let (_, saved) = surplus_environment_for(user.map(OsStr::new)).unwrap();
            assert_eq!(
                saved_tunables(&saved),
                Some(user.map(OsString::from)),
                "{user:?}"
            );
        }
        assert_eq!(saved_tunables(OsStr::new("garbage")), None);
    }
}
