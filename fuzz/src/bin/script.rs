//! Fuzz target: the GNU ld script parser (what is taken for a script, and what it names).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let _ = rjitlink_link::fuzzing::parse_linker_script(data);
    });
}
