//! Pseudo-random bytes for the tests that damage inputs or attack the executor, from a fixed
//! seed so that a failure reproduces.

/// A deterministic xorshift generator: failures reproduce.
pub fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
