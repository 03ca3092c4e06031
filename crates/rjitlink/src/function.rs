//! [`FunctionPointer`]: the C function pointer types a looked-up address may be turned into,
//! so that [`Session::lookup_fn`](crate::Session::lookup_fn) cannot make a reference, an
//! integer or a Rust-ABI function out of an address.

use std::ffi::c_void;

mod sealed {
    pub trait Sealed {}
}

/// An `extern "C" fn` (or `unsafe extern "C" fn`) pointer type of up to eight arguments.
/// Implemented for those types only (the trait is sealed): what linked C code can be called
/// as.
pub trait FunctionPointer: Copy + sealed::Sealed {
    /// The function at `address`.
    ///
    /// # Safety
    /// `address` must be the address of a function whose C signature is `Self`'s.
    unsafe fn from_address(address: *const c_void) -> Self;

    /// The function's address.
    fn address(self) -> *const c_void;
}

macro_rules! function_pointers {
    ($($arg:ident),*) => {
        impl<R, $($arg),*> sealed::Sealed for extern "C" fn($($arg),*) -> R {}
        impl<R, $($arg),*> FunctionPointer for extern "C" fn($($arg),*) -> R {
            unsafe fn from_address(address: *const c_void) -> Self {
                // SAFETY: the caller promises a function of this signature at `address`;
                // function pointers and data pointers have one size on every target
                // rjitlink supports.
                unsafe { std::mem::transmute::<*const c_void, Self>(address) }
            }
            fn address(self) -> *const c_void {
                self as *const c_void
            }
        }
        impl<R, $($arg),*> sealed::Sealed for unsafe extern "C" fn($($arg),*) -> R {}
        impl<R, $($arg),*> FunctionPointer for unsafe extern "C" fn($($arg),*) -> R {
            unsafe fn from_address(address: *const c_void) -> Self {
                // SAFETY: as above.
                unsafe { std::mem::transmute::<*const c_void, Self>(address) }
            }
            fn address(self) -> *const c_void {
                self as *const c_void
            }
        }
    };
}

function_pointers!();
function_pointers!(A);
function_pointers!(A, B);
function_pointers!(A, B, C);
function_pointers!(A, B, C, D);
function_pointers!(A, B, C, D, E);
function_pointers!(A, B, C, D, E, F);
function_pointers!(A, B, C, D, E, F, G);
function_pointers!(A, B, C, D, E, F, G, H);
