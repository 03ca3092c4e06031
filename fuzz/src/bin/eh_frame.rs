//! Fuzz target: the quick check of unwind tables against the full one (gimli). A crash is a
//! table the quick check accepts and the full check refuses.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let _ = rjitlink_link::fuzzing::check_unwind_table(data);
    });
}
