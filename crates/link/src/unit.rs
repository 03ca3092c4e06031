//! The finalize phase: from a relocated image to a live unit. Reads the constructor and
//! destructor tables, makes the memory live with its protections (and the plugins' target
//! calls), lets the plugins do their work in the target, and collects the unit's global
//! definitions for later links.

use crate::error::{EntryProblem, LinkError};
use crate::image::image_bytes;
use crate::layout::{Layout, PlacedSection};
use crate::plugins::{free_all, LinkContext, Plugin};
use crate::resolve::Resolution;
use crate::sections::InitKind;
use crate::timing::PhaseTimes;
use rjitlink_memory::{AllocAction, Finalized, InFlight, TargetAddr};
use rjitlink_target::Executor;

/// A linked unit, live in the target.
pub struct Unit {
    pub memory: Finalized,
    /// The entry symbol's address, if one was asked for.
    pub entry: Option<TargetAddr>,
    /// Init (preinit first) and fini functions, in call order.
    pub init: Vec<TargetAddr>,
    pub fini: Vec<TargetAddr>,
    /// The unit's global definitions, when asked for.
    pub definitions: Vec<Definition>,
    /// What the plugins had to say about the link (ld's warnings).
    pub warnings: Vec<String>,
    /// The plugins that finalized it, to undo their work when it is freed.
    pub plugins: Vec<Box<dyn Plugin>>,
}

/// A global the unit defines, and its address.
pub struct Definition {
    pub name: Vec<u8>,
    pub address: TargetAddr,
}

/// What finalize is asked to do beyond making the unit live.
pub struct FinalizeRequest<'a> {
    /// The entry symbol, whose address the unit reports.
    pub entry: Option<&'a str>,
    /// Collect the unit's global definitions.
    pub definitions: bool,
}

/// The finalize phase. On Err every plugin's work in the target is undone (the TLS module
/// too) and the memory goes back to the slab, unless the target still refers into it.
pub fn finalize(
    link: &LinkContext<'_, '_>,
    memory: InFlight,
    actions: &[AllocAction],
    mut plugins: Vec<Box<dyn Plugin>>,
    request: FinalizeRequest<'_>,
    target: &mut dyn Executor,
    times: &PhaseTimes,
) -> Result<Unit, LinkError> {
    let _span = times.span("finalize");
    // Plugins may hold target state from before finalize (the TLS module), so every failure
    // undoes them all; `free` of a plugin that did nothing does nothing.
    let entry = match request.entry.map(|entry| entry_address(link, entry)) {
        Some(Err(error)) => {
            let _ = free_all(&mut plugins, target);
            return Err(error);
        }
        entry => entry.transpose().expect("errors handled above"),
    };
    // Read before finalizing: a copying mapper drops the working memory once it is sent.
    let init = table_functions(link.layout, image_bytes(&memory), Table::Init);
    let fini = table_functions(link.layout, image_bytes(&memory), Table::Fini);
    let memory = match memory.finalize(actions) {
        Ok(memory) => memory,
        Err(error) => {
            let _ = free_all(&mut plugins, target);
            return Err(error.into());
        }
    };
    for index in 0..plugins.len() {
        if let Err(error) = plugins[index].finalize(link, target) {
            // Undo what ran, the failed plugin's part too, last first; then free the memory
            // unless the target still refers into it.
            let (_, pinned) = free_all(&mut plugins, target);
            if pinned {
                memory.leak();
            }
            return Err(error);
        }
    }
    let definitions = match request.definitions {
        true => definitions(link),
        false => Vec::new(),
    };
    let warnings = plugins
        .iter_mut()
        .flat_map(|plugin| plugin.take_warnings())
        .collect();
    Ok(Unit {
        memory,
        entry,
        init,
        fini,
        definitions,
        warnings,
        plugins,
    })
}

fn entry_address(link: &LinkContext<'_, '_>, entry: &str) -> Result<TargetAddr, LinkError> {
    let id = link
        .db
        .lookup(entry.as_bytes())
        .expect("resolve checked the entry");
    link.addresses.globals[id.index()].ok_or_else(|| LinkError::Entry {
        symbol: entry.to_owned(),
        problem: EntryProblem::NotLoaded,
    })
}

/// The globals the unit defines, at their addresses.
fn definitions(link: &LinkContext<'_, '_>) -> Vec<Definition> {
    link.db
        .globals
        .iter()
        .zip(&link.addresses.globals)
        .filter_map(|(global, address)| match global.resolution {
            Resolution::Defined { .. } | Resolution::Common { .. } => Some(Definition {
                name: global.name.to_vec(),
                address: (*address)?,
            }),
            _ => None,
        })
        .collect()
}

/// Which functions a table lists.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Table {
    /// .preinit_array, then .init_array and .ctors.
    Init,
    /// .fini_array and .dtors.
    Fini,
}

/// Where one constructor or destructor table lies, and the order it sorts in.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct TableSection {
    /// preinit (0) before init (1).
    class: u32,
    priority: u32,
    /// Input order, for tables of equal priority.
    order: usize,
    /// A .ctors/.dtors table, called last entry first.
    reversed: bool,
    offset: u64,
    size: u64,
}

/// The functions of the init (or fini) tables in call order, read from the relocated image.
/// Priorities ascend for init; fini runs in the reverse order.
fn table_functions(layout: &Layout, image: &[u8], table: Table) -> Vec<TargetAddr> {
    let mut tables: Vec<TableSection> = Vec::new();
    for (order, PlacedSection { section, offset }) in layout.placed.iter().enumerate() {
        let (class, priority, reversed) = match (section.init, table) {
            (Some(InitKind::PreInit), Table::Init) => (0, 0, false),
            (Some(InitKind::Init { priority, reversed }), Table::Init) => (1, priority, reversed),
            (Some(InitKind::Fini { priority, reversed }), Table::Fini) => (1, priority, reversed),
            _ => continue,
        };
        tables.push(TableSection {
            class,
            priority,
            order,
            reversed,
            offset: offset.get(),
            size: section.size,
        });
    }
    tables.sort_unstable();
    let mut functions = Vec::new();
    for table in tables {
        let bytes = &image[table.offset as usize..(table.offset + table.size) as usize];
        let mut entries: Vec<TargetAddr> = bytes
            .chunks_exact(8)
            .map(|chunk| TargetAddr(u64::from_le_bytes(chunk.try_into().unwrap())))
            // .ctors/.dtors tables may hold 0 and -1 as terminators.
            .filter(|address| address.get() != 0 && address.get() != u64::MAX)
            .collect();
        if table.reversed {
            entries.reverse();
        }
        functions.extend(entries);
    }
    if table == Table::Fini {
        functions.reverse();
    }
    functions
}
