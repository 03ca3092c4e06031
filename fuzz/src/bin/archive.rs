//! Fuzz target: the archive reader (symbol index, members, members' objects).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let _ = rjitlink_link::fuzzing::read_archive(data);
    });
}
