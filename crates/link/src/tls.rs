//! Thread-local storage: the unit's `.tdata`/`.tbss` become one thread-local block that
//! glibc's dynamic loader owns, and every TLS access model reaches it.
//!
//! Why the loader: every thread — the main thread, threads running before the link, threads
//! started later — needs its own copy of the block, initialized from the unit's image, and
//! only the loader knows every thread and allocates their blocks (`__tls_get_addr`, the static
//! TLS area next to the thread pointer). So the link generates a small shared object, the
//! *TLS module*: a PT_TLS segment with the block's initial image, and a word table of dynamic
//! relocations asking the loader for what only it can compute — the module id, offsets from
//! the thread pointer, TLS descriptors, and the same for TLS symbols of shared libraries. The
//! target loads it privately and sends the resolved words back (`Executor::load_module`);
//! apply copies them into the image's TLS GOT entries, so the code's accesses need no
//! rewriting:
//!
//! | model | relocations | reaches the block through |
//! |---|---|---|
//! | general dynamic | TLSGD | entry (module id, offset) → `__tls_get_addr` |
//! | local dynamic | TLSLD, DTPOFF32/64 | entry (module id, 0) → `__tls_get_addr`, + offset |
//! | initial exec | GOTTPOFF | entry (offset from the thread pointer) |
//! | local exec | TPOFF32/64 | the block's offset from the thread pointer, in the code |
//! | descriptors | GOTPC32_TLSDESC, TLSDESC_CALL | entry (the loader's resolver, argument) |
//!
//! Initial and local exec need the block at one offset from the thread pointer in every
//! thread: the loader then puts the module in its static TLS area, whose surplus for modules
//! loaded late is small (see README). General dynamic, local dynamic and descriptors work
//! with a block of any size.

use crate::addresses::{Addresses, UNLOADED};
use crate::apply::{apply_section, ApplyContext};
use crate::elf::LE;
use crate::error::{escape_bytes, LinkError, UndefinedSymbol};
use crate::ids::{ImageOffset, ObjectId, TlsOffset};
use crate::layout::Layout;
use crate::resolve::{LinkerSymbol, Resolution, SymbolDb};
use crate::sections::InputSection;
use crate::shared_object::{DynamicRelocation, ExportedSymbol, SharedObject, Stack, TlsSegment};
use crate::symbols::SymbolRef;
use crate::timing::PhaseTimes;
use foldhash::HashMap;
use object::elf;
use object::read::elf::Sym as _;
use rjitlink_arch::{Arch, HostArch};
use rjitlink_memory::TargetAddr;
use rjitlink_target::{Executor, ModuleHandle, TargetError, WordTable};

/// The name the TLS module is loaded under (for messages).
pub const MODULE_NAME: &str = "rjitlink-tls.so";

/// A TLS GOT entry: words the loader's values fill.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsEntry {
    /// (module id, offset in its block) of the symbol, for `__tls_get_addr`.
    GeneralDynamic(SymbolRef),
    /// (module id of this unit, 0): local dynamic's argument to `__tls_get_addr`.
    LocalDynamic,
    /// The symbol's offset from the thread pointer.
    InitialExec(SymbolRef),
    /// A TLS descriptor for the symbol: (resolver, argument).
    Descriptor(SymbolRef),
    /// This unit's block's offset from the thread pointer, for local exec.
    BlockOffset,
}

impl TlsEntry {
    fn words(self) -> u64 {
        match self {
            TlsEntry::GeneralDynamic(_) | TlsEntry::LocalDynamic | TlsEntry::Descriptor(_) => 2,
            TlsEntry::InitialExec(_) | TlsEntry::BlockOffset => 1,
        }
    }

    /// Whether it needs the block at a fixed offset from the thread pointer (static TLS).
    fn is_static(self) -> bool {
        matches!(self, TlsEntry::InitialExec(_) | TlsEntry::BlockOffset)
    }
}

/// The TLS GOT entries of a link, in the order of the word table.
#[derive(Default)]
pub struct TlsGotPlan {
    pub entries: Vec<TlsEntry>,
    word_of: HashMap<TlsEntry, u64>,
    words: u64,
}

impl TlsGotPlan {
    pub fn add(&mut self, entry: TlsEntry) {
        if let std::collections::hash_map::Entry::Vacant(vacant) = self.word_of.entry(entry) {
            vacant.insert(self.words);
            self.entries.push(entry);
            self.words += entry.words();
        }
    }

    /// The index of the entry's first word in the table (and the TLS GOT).
    pub fn word(&self, entry: TlsEntry) -> Option<u64> {
        self.word_of.get(&entry).copied()
    }

    /// Words of the table.
    pub fn words(&self) -> u64 {
        self.words
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The largest alignment of a TLS block: the module's file pads its initial image to it, and
/// glibc aligns every thread's copy to it.
const MAX_BLOCK_ALIGN: u64 = 1 << 16;

/// The unit's thread-local block: `.tdata` sections (the initial image), then `.tbss`.
#[derive(Default)]
pub struct TlsBlock {
    /// Sections in block order, with their offsets.
    pub sections: Vec<(InputSection, TlsOffset)>,
    section_offsets: HashMap<(ObjectId, u32), TlsOffset>,
    /// Bytes of the initial image: the block up to the end of the last `.tdata` section.
    pub initial_size: u64,
    pub size: u64,
    /// A power of two.
    pub align: u64,
}

impl TlsBlock {
    /// Lay out `sections` (all thread-local), `.tdata` first, in input order otherwise. Err if
    /// the block would be larger than the code model reaches.
    pub fn layout(
        db: &SymbolDb<'_>,
        mut sections: Vec<InputSection>,
    ) -> Result<TlsBlock, LinkError> {
        sections.sort_by_key(|section| section.nobits);
        if let Some(section) = sections.iter().find(|s| s.align > MAX_BLOCK_ALIGN) {
            let object = &db.objects[section.object.index()];
            return Err(LinkError::Section {
                file: object.name.clone(),
                section: escape_bytes(object.section_name(section.index as usize)),
                problem: format!(
                    "is thread-local with alignment {:#x}, more than the {MAX_BLOCK_ALIGN:#x} rjitlink gives a TLS block",
                    section.align
                ),
            });
        }
        let mut block = TlsBlock {
            align: 1,
            ..TlsBlock::default()
        };
        let mut offset = 0u64;
        for section in sections {
            let end = offset
                .checked_next_multiple_of(section.align)
                .and_then(|at| Some((at, at.checked_add(section.size)?)))
                .filter(|&(_, end)| end < HostArch::MAX_IMAGE_SIZE);
            let Some((at, end)) = end else {
                let object = &db.objects[section.object.index()];
                return Err(LinkError::Section {
                    file: object.name.clone(),
                    section: escape_bytes(object.section_name(section.index as usize)),
                    problem: format!(
                        "of {:#x} bytes (alignment {:#x}) does not fit in the {} MiB the code model allows for a thread-local block",
                        section.size,
                        section.align,
                        HostArch::MAX_IMAGE_SIZE >> 20
                    ),
                });
            };
            offset = end;
            if !section.nobits {
                block.initial_size = offset;
            }
            block.align = block.align.max(section.align);
            block
                .section_offsets
                .insert((section.object, section.index), TlsOffset(at));
            block.sections.push((section, TlsOffset(at)));
        }
        block.size = offset;
        Ok(block)
    }

    pub fn section_offset(&self, object: ObjectId, section: usize) -> Option<TlsOffset> {
        let section = u32::try_from(section).ok()?;
        self.section_offsets.get(&(object, section)).copied()
    }

    pub fn is_empty(&self) -> bool {
        self.sections.is_empty()
    }
}

/// A thread-local symbol's offset in the unit's block; `None` if it is not defined in one of
/// the block's sections.
pub fn symbol_offset(db: &SymbolDb<'_>, layout: &Layout, symbol: SymbolRef) -> Option<TlsOffset> {
    let (object, index) = match symbol {
        SymbolRef::Local { object, symbol } => (object, symbol as usize),
        SymbolRef::Global(id) => match db.global(id).resolution {
            Resolution::Defined { object, symbol, .. } => (object, symbol as usize),
            Resolution::Linker(LinkerSymbol::TlsModuleBase) => return Some(TlsOffset(0)),
            _ => return None,
        },
    };
    let file = &db.objects[object.index()];
    let sym = file.symbol(index)?;
    let section = file.symbol_section(index, sym)?;
    let start = layout.tls.section_offset(object, section)?;
    start.get().checked_add(sym.st_value(LE)).map(TlsOffset)
}

/// What the loader computed for the unit's TLS.
pub struct TlsValues {
    /// The TLS GOT's words, in table order.
    pub words: Vec<u64>,
    /// This unit's module id, when some access needs it (its local-dynamic entry's).
    pub module_id: Option<u64>,
    /// This unit's block's offset from the thread pointer, when local exec needs it.
    pub block_offset: Option<u64>,
}

/// The unit's TLS module, loaded in the target.
pub struct LoadedTls {
    pub values: TlsValues,
    pub module: ModuleHandle,
}

/// The TLS phase: build the TLS module — the block's initial image relocated at the image's
/// final addresses, the word table — and load it in the target. `None` when the unit has no
/// thread-local storage.
pub fn load_thread_locals(
    db: &SymbolDb<'_>,
    layout: &Layout,
    addresses: &Addresses,
    executor: &mut dyn Executor,
    times: &PhaseTimes,
) -> Result<Option<LoadedTls>, LinkError> {
    let plan = &layout.got_plan.tls;
    if layout.tls.is_empty() && plan.is_empty() {
        return Ok(None);
    }
    let _span = times.span("tls");
    let context = ApplyContext {
        db,
        layout,
        addresses,
        tls: None,
    };
    let initial_image = initial_image(&context)?;
    let (symbols, relocations) = table_relocations(db, layout)?;
    let module = SharedObject {
        soname: MODULE_NAME.as_bytes(),
        symbols: &symbols,
        stack: Stack::NotExecutable,
        tls: (!layout.tls.is_empty()).then_some(TlsSegment {
            initial_image: &initial_image,
            size: layout.tls.size,
            align: layout.tls.align,
        }),
        table_words: plan.words(),
        relocations: &relocations,
        static_tls: plan.entries.iter().any(|entry| entry.is_static()),
    }
    .generate();
    let table = WordTable {
        offset: module.table_offset,
        count: plan.words(),
    };
    let loaded = executor
        .load_module(MODULE_NAME, &module.bytes, table)
        .map_err(|error| match undefined_library_symbol(db, &error) {
            Some(undefined) => LinkError::Undefined(vec![undefined]),
            None => LinkError::target("cannot set up thread-local storage")(error),
        })?;
    if loaded.words.len() as u64 != plan.words() {
        let _ = executor.unload_module(loaded.handle);
        return Err(LinkError::Internal(
            "the target returned a TLS word table of the wrong size",
        ));
    }
    let word = |entry| Some(loaded.words[plan.word(entry)? as usize]);
    let (module_id, block_offset) = (word(TlsEntry::LocalDynamic), word(TlsEntry::BlockOffset));
    let values = TlsValues {
        words: loaded.words,
        module_id,
        block_offset,
    };
    Ok(Some(LoadedTls {
        values,
        module: loaded.handle,
    }))
}

/// The library thread-local variable the loader could not find, if that is why the module
/// did not load (resolve left such names to the loader: see `resolve_externals`).
fn undefined_library_symbol(db: &SymbolDb<'_>, error: &TargetError) -> Option<UndefinedSymbol> {
    let message = error.to_string();
    let name = message.rsplit_once("undefined symbol: ")?.1.trim();
    let id = db.lookup(name.as_bytes())?;
    Some(db.undefined_symbol(id))
}

/// The block's initialized part: the `.tdata` sections, relocated (absolute addresses in the
/// image and offsets in the block; scan refused everything else).
fn initial_image(context: &ApplyContext<'_, '_>) -> Result<Vec<u8>, LinkError> {
    let block = &context.layout.tls;
    let mut image = vec![0u8; block.initial_size as usize];
    for (section, offset) in &block.sections {
        if section.nobits || section.size == 0 {
            continue;
        }
        let start = offset.get() as usize;
        let out = &mut image[start..start + section.size as usize];
        // The initial image has no address of its own: scan allows no PC-relative
        // relocation here, so the place is never used.
        apply_section(context, section, TargetAddr::NULL, out)?;
    }
    Ok(image)
}

/// The word table's dynamic relocations, and the library symbols they name.
fn table_relocations<'data>(
    db: &SymbolDb<'data>,
    layout: &Layout,
) -> Result<(Vec<ExportedSymbol<'data>>, Vec<DynamicRelocation>), LinkError> {
    let plan = &layout.got_plan.tls;
    let relocs = HostArch::TLS_DYNAMIC_RELOCS;
    let mut symbols: Vec<ExportedSymbol<'data>> = Vec::new();
    let mut symbol_index: HashMap<SymbolRef, u32> = HashMap::default();
    let mut relocations = Vec::new();
    // A symbol as a relocation names it: this unit's by its offset from the module's own
    // block (symbol 0), a library's by name for the loader to look up.
    let mut target = |symbol: SymbolRef| -> Result<(u32, i64), LinkError> {
        if let Some(offset) = symbol_offset(db, layout, symbol) {
            return Ok((0, offset.get() as i64));
        }
        if let Some(&index) = symbol_index.get(&symbol) {
            return Ok((index, 0));
        }
        let global = match symbol {
            SymbolRef::Global(id) => Some(db.global(id)),
            SymbolRef::Local { .. } => None,
        };
        let Some(global) = global.filter(|g| matches!(g.resolution, Resolution::External(_)))
        else {
            return Err(outside_block(db, symbol));
        };
        symbols.push(ExportedSymbol {
            name: global.name,
            address: 0,
            size: 0,
            kind: elf::STT_TLS,
            weak: false,
            defined: false,
        });
        let index = symbols.len() as u32;
        symbol_index.insert(symbol, index);
        Ok((index, 0))
    };
    for &entry in &plan.entries {
        let word = plan.word(entry).expect("planned");
        let mut push = |word: u64, r_type: u32, (symbol, addend): (u32, i64)| {
            relocations.push(DynamicRelocation {
                word,
                r_type,
                symbol,
                addend,
            })
        };
        match entry {
            TlsEntry::GeneralDynamic(symbol) => {
                let named = target(symbol)?;
                push(word, relocs.module_id, named);
                push(word + 1, relocs.offset_in_block, named);
            }
            // The second word stays 0: the offset is added by the code.
            TlsEntry::LocalDynamic => push(word, relocs.module_id, (0, 0)),
            TlsEntry::InitialExec(symbol) => {
                push(word, relocs.thread_pointer_offset, target(symbol)?)
            }
            TlsEntry::Descriptor(symbol) => push(word, relocs.descriptor, target(symbol)?),
            TlsEntry::BlockOffset => push(word, relocs.thread_pointer_offset, (0, 0)),
        }
    }
    Ok((symbols, relocations))
}

/// The error for a thread-local symbol that neither the block nor a library holds: it lies in
/// a section that is not loaded, or is typed STT_TLS outside a thread-local section.
fn outside_block(db: &SymbolDb<'_>, symbol: SymbolRef) -> LinkError {
    let (object, index) = match symbol {
        SymbolRef::Local { object, symbol } => (Some(object), symbol as usize),
        SymbolRef::Global(id) => match db.global(id).resolution {
            Resolution::Defined { object, symbol, .. } => (Some(object), symbol as usize),
            _ => (None, 0),
        },
    };
    let (file, name) = match (object, symbol) {
        (Some(object), _) => {
            let file = &db.objects[object.index()];
            (Some(file.name.clone()), file.describe_symbol(index))
        }
        (None, SymbolRef::Global(id)) => (None, db.global_name(id)),
        (None, SymbolRef::Local { .. }) => (None, String::new()),
    };
    LinkError::Symbol {
        file,
        symbol: name,
        problem: "is accessed as thread-local but lies in no loaded thread-local section".into(),
    }
}

/// Where the entry's first word lies in the image.
pub fn entry_offset(layout: &Layout, entry: TlsEntry) -> Option<ImageOffset> {
    let word = layout.got_plan.tls.word(entry)?;
    Some(ImageOffset(layout.tls_got.get() + word * 8))
}

/// Whether `value` (from `Addresses::symbol_values`) marks a thread-local symbol.
pub fn is_thread_local_value(value: u64) -> bool {
    value == THREAD_LOCAL
}

/// Marks a thread-local symbol in `Addresses::symbol_values`: it has no address, only an
/// offset in the block.
pub const THREAD_LOCAL: u64 = UNLOADED - 1;

/// Whether symbol `index` of `object` lies in a thread-local section the block holds.
pub fn in_block(layout: &Layout, db: &SymbolDb<'_>, object: ObjectId, index: usize) -> bool {
    let file = &db.objects[object.index()];
    file.symbol(index)
        .and_then(|sym| file.symbol_section(index, sym))
        .is_some_and(|section| layout.tls.section_offset(object, section).is_some())
}
