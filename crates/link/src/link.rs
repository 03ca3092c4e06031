//! The link, as the list of its phases.

use crate::apply::{addresses, apply, ApplyContext};
use crate::input::{default_inputs, InputArg, LinkInputs, SearchPath};
use crate::layout::{input_sections, layout, InitKind, Layout, SegmentKind};
use crate::resolve::{resolve, Resolution};
use crate::scan::scan;
use crate::timing::PhaseTimes;
use anyhow::{anyhow, bail, Result};
use rjitlink_executor::{Executor, Program};
use rjitlink_memory::{Placement, SegmentProtection, TargetAddr, TargetRange};

/// What to link.
#[derive(Clone, Debug)]
pub struct LinkOptions {
    pub inputs: Vec<InputArg>,
    pub search: SearchPath,
    /// The symbol the program starts at (`main` unless `--entry`).
    pub entry: String,
    /// Add what cc links by default: libc and libgcc.
    pub default_libraries: bool,
}

/// A linked image, live in the target.
#[derive(Debug)]
pub struct LinkedImage {
    /// Entry, init and fini functions; `args` is left for the caller to fill.
    pub program: Program,
    /// The target memory holding the image.
    pub range: TargetRange,
    /// Bytes of code and data linked (not counting page padding).
    pub linked_bytes: u64,
}

/// Link `options.inputs` into the target behind `executor`, ready to run.
pub fn link(
    options: &LinkOptions,
    executor: &mut dyn Executor,
    times: &mut PhaseTimes,
) -> Result<LinkedImage> {
    let mut args = options.inputs.clone();
    if options.default_libraries {
        args.extend(default_inputs(&options.search));
    }
    let inputs = times.time("inputs", || LinkInputs::open(&args, &options.search))?;
    let db = times.time("resolve", || resolve(&inputs, &options.entry, executor))?;
    let entry_id = db.by_name[options.entry.as_bytes()];
    match db.global(entry_id).resolution {
        Resolution::Defined { .. } => {}
        Resolution::External(_) => bail!(
            "entry symbol `{}` is defined only in a shared library, not by the linked objects",
            options.entry
        ),
        _ => bail!(
            "entry symbol `{}` is not defined by any input",
            options.entry
        ),
    }
    let (sections, plan) = times.time("scan", || -> Result<_> {
        let sections = input_sections(&db)?;
        let plan = scan(&db, &sections)?;
        Ok((sections, plan))
    })?;
    let mapper = executor.memory();
    let page_size = mapper.page_size() as u64;
    let layout = times.time("layout", || layout(&db, sections, &plan, page_size))?;
    // The small code model: every PC32 inside the image must reach.
    if layout.total_size >= 1 << 31 {
        bail!(
            "the linked image needs {:#x} bytes, more than the 2 GiB the small code model allows",
            layout.total_size
        );
    }

    let placement = if plan.needs_low_addresses {
        Placement::Below2GiB
    } else {
        Placement::Anywhere
    };
    let (range, working) = times.time("allocate", || -> Result<_> {
        let range = mapper.reserve(layout.total_size as usize, placement)?;
        let working = mapper.prepare(range)?;
        Ok((range, working))
    })?;
    // SAFETY: the mapper guarantees `working` is valid, zeroed and ours alone until release.
    let image = unsafe { std::slice::from_raw_parts_mut(working.ptr, working.len) };
    let addresses = addresses(&db, &layout, range.start);
    let context = ApplyContext {
        db: &db,
        layout: &layout,
        plan: &plan,
        addresses: &addresses,
    };
    times.time("apply", || apply(&context, image))?;

    let entry = addresses.globals[entry_id.index()].ok_or_else(|| {
        anyhow!(
            "entry symbol `{}` lies in a section that is not loaded",
            options.entry
        )
    })?;
    let program = Program {
        entry,
        init: init_functions(&layout, image, false),
        fini: init_functions(&layout, image, true),
        args: Vec::new(),
    };
    let segments: Vec<SegmentProtection> = SegmentKind::ALL
        .iter()
        .map(|&kind| {
            let (start, size) = layout.segments[kind as usize];
            SegmentProtection {
                range: TargetRange {
                    start: range.start + start.get(),
                    len: (size as usize).next_multiple_of(page_size as usize),
                },
                protection: kind.protection(),
            }
        })
        .collect();
    times.time("finalize", || mapper.initialize(&segments))?;
    let linked_bytes = layout.placed.iter().map(|(s, _)| s.size).sum();
    Ok(LinkedImage {
        program,
        range,
        linked_bytes,
    })
}

/// The functions of the init tables (or, with `fini`, the fini tables) in call order, read
/// from the relocated image. Priorities ascend for init; fini runs in the reverse order.
fn init_functions(layout: &Layout, image: &[u8], fini: bool) -> Vec<TargetAddr> {
    let mut tables: Vec<(u32, u32, usize, bool, u64, u64)> = Vec::new();
    for (order, (section, at)) in layout.placed.iter().enumerate() {
        let key = match (section.init, fini) {
            (Some(InitKind::PreInit), false) => (0, 0, false),
            (Some(InitKind::Init { priority, reversed }), false) => (1, priority, reversed),
            (Some(InitKind::Fini { priority, reversed }), true) => (1, priority, reversed),
            _ => continue,
        };
        tables.push((key.0, key.1, order, key.2, at.get(), section.size));
    }
    tables.sort_unstable();
    let mut functions = Vec::new();
    for (_, _, _, reversed, offset, size) in tables {
        let bytes = &image[offset as usize..(offset + size) as usize];
        let mut entries: Vec<TargetAddr> = bytes
            .chunks_exact(8)
            .map(|chunk| TargetAddr(u64::from_le_bytes(chunk.try_into().unwrap())))
            // .ctors/.dtors tables may hold 0 and -1 as terminators.
            .filter(|address| address.get() != 0 && address.get() != u64::MAX)
            .collect();
        if reversed {
            entries.reverse();
        }
        functions.extend(entries);
    }
    if fini {
        functions.reverse();
    }
    functions
}
