//! gdb's JIT interface, in the process linked code runs in: `__jit_debug_descriptor` heads a
//! doubly linked list of in-memory object files, and `__jit_debug_register_code` is the
//! function a debugger sets a breakpoint on to hear of every change to it (gdb manual, "JIT
//! Compilation Interface"). Both are in this binary's symbol table, so that gdb finds them
//! in `rjitlink run` and in `rjitlink executor` alike; a debugger that attaches later reads
//! the whole list. `InProcess` and the executor service share this one registry, as the
//! process has one descriptor.
//!
//! The list is changed only under a lock, one entry at a time, each change announced by a
//! call: gdb reads one `relevant_entry` per call.

use rjitlink_target::{check_debug_image, DebugObject, DebugObjectHandle, TargetError};
use std::collections::BTreeMap;
use std::ptr::null_mut;
use std::sync::atomic::{compiler_fence, Ordering};
use std::sync::Mutex;

/// One object file in the list (gdb's `struct jit_code_entry`).
#[repr(C)]
struct CodeEntry {
    next_entry: *mut CodeEntry,
    prev_entry: *mut CodeEntry,
    symfile_addr: *const u8,
    symfile_size: u64,
}

/// The list's head and the change being announced (gdb's `struct jit_descriptor`).
#[repr(C)]
struct Descriptor {
    /// 1: the only version gdb knows.
    version: u32,
    /// What the call announces: one of the `JIT_*` actions.
    action_flag: u32,
    relevant_entry: *mut CodeEntry,
    first_entry: *mut CodeEntry,
}

const JIT_NOACTION: u32 = 0;
const JIT_REGISTER_FN: u32 = 1;
const JIT_UNREGISTER_FN: u32 = 2;

/// Read by the debugger, by name, from this process's memory; written only under
/// `REGISTRY`'s lock.
#[no_mangle]
#[used]
#[allow(non_upper_case_globals)]
static mut __jit_debug_descriptor: Descriptor = Descriptor {
    version: 1,
    action_flag: JIT_NOACTION,
    relevant_entry: null_mut(),
    first_entry: null_mut(),
};

/// The debugger's breakpoint: called after each change to the list. Never inlined, and its
/// empty `asm!` (which may read any memory, for all the compiler knows) keeps it and every
/// call to it, with the descriptor written before the call.
#[no_mangle]
#[inline(never)]
extern "C" fn __jit_debug_register_code() {
    // SAFETY: an empty instruction sequence.
    unsafe { std::arch::asm!("", options(nostack, preserves_flags)) };
}

/// A registered object: its list entry (owned: from `Box::into_raw`) and the image it points
/// into, which never moves while registered.
struct Registered {
    entry: *mut CodeEntry,
    image: Vec<u8>,
}

/// Every object registered in this process, by handle.
struct Registry {
    next_handle: u64,
    objects: BTreeMap<u64, Registered>,
}

// SAFETY: the entries' pointers are only followed under the registry's lock (and by the
// debugger, which stops the process to read them).
unsafe impl Send for Registry {}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    next_handle: 1,
    objects: BTreeMap::new(),
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Put every image in the list, announcing each. Err (registering nothing) if one is not an
/// ELF file.
pub fn register(objects: Vec<DebugObject>) -> Result<Vec<DebugObjectHandle>, TargetError> {
    for object in &objects {
        check_debug_image(&object.image).map_err(|problem| {
            TargetError::Refused(format!(
                "cannot register the debug object {}: {problem}",
                object.name
            ))
        })?;
    }
    let mut registry = registry();
    let mut handles = Vec::with_capacity(objects.len());
    for DebugObject { image, .. } in objects {
        let entry = Box::into_raw(Box::new(CodeEntry {
            next_entry: null_mut(),
            prev_entry: null_mut(),
            symfile_addr: image.as_ptr(),
            symfile_size: image.len() as u64,
        }));
        // SAFETY: the descriptor and the entries are changed only here and in `unregister`,
        // under the lock; `entry` is fresh and every entry in the list is live.
        unsafe {
            let descriptor = &raw mut __jit_debug_descriptor;
            let first = (*descriptor).first_entry;
            (*entry).next_entry = first;
            if !first.is_null() {
                (*first).prev_entry = entry;
            }
            // A debugger may attach, stopping this thread, between any two instructions, and
            // then reads the list from the head: the entry is complete before the head points
            // to it (the compiler could otherwise order the plain stores either way).
            compiler_fence(Ordering::SeqCst);
            (*descriptor).first_entry = entry;
            announce(entry, JIT_REGISTER_FN);
        }
        let handle = registry.next_handle;
        registry.next_handle += 1;
        registry.objects.insert(handle, Registered { entry, image });
        handles.push(DebugObjectHandle(handle));
    }
    Ok(handles)
}

/// Take the objects out of the list, announcing each, and free them. Err (unregistering
/// nothing) if a handle is unknown or repeated. Returns the bytes their images held.
pub fn unregister(handles: &[DebugObjectHandle]) -> Result<u64, TargetError> {
    let mut registry = registry();
    for (index, handle) in handles.iter().enumerate() {
        if !registry.objects.contains_key(&handle.0) || handles[..index].contains(handle) {
            return Err(TargetError::Refused(format!(
                "no debug object with handle {} is registered",
                handle.0
            )));
        }
    }
    let mut freed = 0u64;
    for handle in handles {
        let Some(Registered { entry, image }) = registry.objects.remove(&handle.0) else {
            continue;
        };
        // SAFETY: as in `register`; `entry` is in the list, and is unlinked before it is freed.
        unsafe {
            let descriptor = &raw mut __jit_debug_descriptor;
            let (prev, next) = ((*entry).prev_entry, (*entry).next_entry);
            if prev.is_null() {
                (*descriptor).first_entry = next;
            } else {
                (*prev).next_entry = next;
            }
            if !next.is_null() {
                (*next).prev_entry = prev;
            }
            announce(entry, JIT_UNREGISTER_FN);
            drop(Box::from_raw(entry));
        }
        freed += image.len() as u64;
    }
    Ok(freed)
}

/// Tell a debugger of `entry`: it reads the descriptor while stopped in the call.
///
/// # Safety
/// Under the registry's lock, with `entry` live.
unsafe fn announce(entry: *mut CodeEntry, action: u32) {
    let descriptor = &raw mut __jit_debug_descriptor;
    (*descriptor).relevant_entry = entry;
    (*descriptor).action_flag = action;
    __jit_debug_register_code();
    (*descriptor).action_flag = JIT_NOACTION;
    (*descriptor).relevant_entry = null_mut();
}

/// The images in the list, first to last, as a debugger that attaches now would read them:
/// (address, size) of each.
#[cfg(test)]
fn listed() -> Vec<(usize, u64)> {
    let _registry = registry();
    let mut listed = Vec::new();
    // SAFETY: the list is read under the lock that guards every change to it.
    unsafe {
        let descriptor = &raw const __jit_debug_descriptor;
        let mut entry = (*descriptor).first_entry;
        while !entry.is_null() {
            listed.push(((*entry).symfile_addr as usize, (*entry).symfile_size));
            entry = (*entry).next_entry;
        }
    }
    listed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(name: &str, fill: u8) -> DebugObject {
        let mut image = b"\x7fELF".to_vec();
        image.resize(64, fill);
        DebugObject {
            name: name.to_owned(),
            image,
        }
    }

    #[test]
    fn the_list_follows_registrations() {
        // Other tests of this binary may register too: look only at these objects.
        let handles = register(vec![object("a", 1), object("b", 2), object("c", 3)]).unwrap();
        let images = |handles: &[DebugObjectHandle]| -> Vec<u8> {
            let registry = registry();
            let ours: Vec<usize> = handles
                .iter()
                .filter_map(|h| registry.objects.get(&h.0))
                .map(|object| object.image.as_ptr() as usize)
                .collect();
            drop(registry);
            listed()
                .into_iter()
                .filter(|(address, _)| ours.contains(address))
                // SAFETY: the images are registered, so live.
                .map(|(address, _)| unsafe { *(address as *const u8).add(4) })
                .collect()
        };
        // Newest first, as they were put at the head.
        assert_eq!(images(&handles), [3, 2, 1]);
        unregister(&handles[1..2]).unwrap();
        assert_eq!(images(&[handles[0], handles[2]]), [3, 1]);
        // Unknown, already gone or repeated: refused, and nothing is unregistered.
        for bad in [
            vec![handles[0], handles[1]],
            vec![handles[0], handles[0]],
            vec![DebugObjectHandle(u64::MAX)],
        ] {
            let error = unregister(&bad).unwrap_err().to_string();
            assert!(error.contains("no debug object with handle"), "{error}");
        }
        assert_eq!(images(&[handles[0], handles[2]]), [3, 1]);
        assert_eq!(unregister(&[handles[2], handles[0]]).unwrap(), 128);
        assert_eq!(images(&handles), []);
    }

    #[test]
    fn only_elf_images_are_registered() {
        let mut not_elf = object("not-elf", 0);
        not_elf.image[0] = b'!';
        let mut short = object("short", 0);
        short.image.truncate(63);
        for bad in [not_elf, short] {
            let error = register(vec![object("good", 0xa5), bad]).unwrap_err();
            assert!(
                error
                    .to_string()
                    .starts_with("cannot register the debug object "),
                "{error}"
            );
            // The good object before the bad one was not registered either (only this
            // test's images are filled with 0xa5).
            let registry = registry();
            let listed: Vec<u8> = registry
                .objects
                .values()
                .map(|object| object.image[4])
                .collect();
            assert!(!listed.contains(&0xa5), "{listed:?}");
        }
    }
}
