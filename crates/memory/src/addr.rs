//! Addresses in the target process. They are never dereferenced on the linker side: the linker
//! writes through `WorkingMemory`, which may live at a different address.

use std::fmt;
use std::ops::{Add, Sub};

/// An address in the target (executor) process.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TargetAddr(pub u64);

impl TargetAddr {
    /// The null address (an undefined weak symbol's value).
    pub const NULL: TargetAddr = TargetAddr(0);

    /// The address as a number.
    pub fn get(self) -> u64 {
        self.0
    }

    /// `self + delta` with two's-complement wrapping, as relocation arithmetic wants.
    pub fn wrapping_offset(self, delta: i64) -> TargetAddr {
        TargetAddr(self.0.wrapping_add(delta as u64))
    }

    /// `self - other` as a signed 64-bit difference (wrapping, as the psABI's formulas do).
    pub fn signed_diff(self, other: TargetAddr) -> i64 {
        self.0.wrapping_sub(other.0) as i64
    }
}

impl Add<u64> for TargetAddr {
    type Output = TargetAddr;
    fn add(self, rhs: u64) -> TargetAddr {
        TargetAddr(self.0.wrapping_add(rhs))
    }
}

impl Sub for TargetAddr {
    type Output = u64;
    /// Distance from `rhs` up to `self`; callers subtract only addresses they know are ordered.
    fn sub(self, rhs: TargetAddr) -> u64 {
        self.0.wrapping_sub(rhs.0)
    }
}

impl fmt::Debug for TargetAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::Display for TargetAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// A half-open range `[start, start + len)` of target addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetRange {
    /// The first address.
    pub start: TargetAddr,
    /// Its length in bytes.
    pub len: usize,
}

impl TargetRange {
    /// The first address past the range.
    pub fn end(&self) -> TargetAddr {
        self.start + self.len as u64
    }

    /// Whether `other` lies wholly inside this range.
    pub fn contains(&self, other: TargetRange) -> bool {
        other.start >= self.start && other.end() <= self.end()
    }
}
