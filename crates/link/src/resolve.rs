//! Symbol resolution: one global symbol table for the link; archive members pulled in until no
//! reference they could satisfy is left; COMDAT groups deduplicated; strong, weak, common and
//! undefined symbols merged as ld merges them; linker-defined symbols; and everything still
//! undefined looked up in the target's libraries in one batch.

use crate::archive::{Archive, MemberRef};
use crate::elf::{is_c_identifier, ObjectFile, LE};
use crate::error::{escape_bytes, escape_path, EntryProblem, LinkError, UndefinedSymbol};
use crate::ids::{GlobalId, ObjectId};
use crate::input::{FileKind, LinkInputs, SharedLibrary};
use crate::timing::PhaseTimes;
use foldhash::HashSet;
use hashbrown::HashTable;
use object::elf;
use object::read::archive::ArchiveOffset;
use object::read::elf::SectionHeader;
use object::read::elf::Sym as _;
use rayon::prelude::*;
use rjitlink_memory::TargetAddr;
use rjitlink_target::Executor;
use std::path::Path;

type Result<T, E = LinkError> = std::result::Result<T, E>;

/// Symbols the linker itself defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkerSymbol {
    /// `_GLOBAL_OFFSET_TABLE_`: the GOT's base.
    GotBase,
    /// `__dso_handle`: identifies the linked unit to `__cxa_atexit`.
    DsoHandle,
    /// `__start_SECNAME` / `__stop_SECNAME`: bounds of the sections named SECNAME.
    SectionStart,
    SectionStop,
    /// `_TLS_MODULE_BASE_`: the start of the unit's thread-local block (local dynamic with
    /// TLS descriptors names it).
    TlsModuleBase,
}

/// What a global name resolved to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Nothing defines it (yet).
    Undefined,
    /// Defined by symbol `symbol` of `object`, in a section or absolute (SHN_ABS).
    Defined {
        object: ObjectId,
        symbol: u32,
        weak: bool,
    },
    /// A common symbol: the largest size and alignment of all its declarations, zero-filled.
    Common {
        object: ObjectId,
        symbol: u32,
        size: u64,
        align: u64,
    },
    /// Defined by a library loaded in the target.
    External(TargetAddr),
    /// Referenced only weakly and defined nowhere: its value is 0.
    UndefinedWeak,
    Linker(LinkerSymbol),
}

/// Where a symbol's value lies, which decides GOT, stub and relaxation choices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymbolLocation {
    /// In the linked image: always within reach of the image's own code.
    InImage,
    /// An absolute value (SHN_ABS, or symbol index 0).
    Absolute,
    /// In a library loaded in the target (or an earlier unit): possibly far away.
    External,
    /// An undefined weak symbol: 0.
    UndefinedWeak,
    /// An IFUNC defined in the image: its value is what its resolver returns at run time, so
    /// it is reached through a GOT slot the target fills and a stub that stands for it.
    Ifunc,
    /// In the unit's thread-local block: its value is an offset in the block, which every
    /// thread has a copy of.
    ThreadLocal,
}

/// A global (or weak) symbol name and what it resolved to.
#[derive(Debug)]
pub struct Global<'data> {
    pub name: &'data [u8],
    /// `hash_name(name)`, computed once, in parallel, when the name is first read.
    hash: u64,
    pub resolution: Resolution,
    /// Some reference is not weak: an undefined result is an error, and archives are searched.
    pub strong_reference: bool,
    /// The first object that referenced it, for error messages.
    pub referenced_by: Option<ObjectId>,
    /// Some reference is typed thread-local (STT_TLS).
    pub thread_local_reference: bool,
}

/// The result of resolution: every object in the link and every global name.
pub struct SymbolDb<'data> {
    pub objects: Vec<ObjectFile<'data>>,
    /// Per object: the global id of each symbol from `first_global` on.
    pub object_globals: Vec<Vec<GlobalId>>,
    /// Per object, per section: dropped because another object's COMDAT group won.
    pub discarded: Vec<Vec<bool>>,
    pub globals: Vec<Global<'data>>,
    /// Every global's id, keyed by its name (hashes are stored in `globals`).
    names: HashTable<GlobalId>,
    /// Where each global's value lies, once resolution is complete.
    pub locations: Vec<SymbolLocation>,
    /// Globals resolved to data the session was given an absolute address for (a host's
    /// variable), in id order: such data is not a library's, so it can neither be copied
    /// nor stood for by a stub, and a direct reference must reach it where it is.
    pub absolute_data: Vec<GlobalId>,
}

/// A definition from outside the link: an earlier unit's, or an absolute one.
#[derive(Clone, Copy, Debug)]
pub struct OutsideDefinition {
    /// Its address in the target.
    pub address: TargetAddr,
    /// Known to be data that is not a library's (see `SymbolDb::absolute_data`).
    pub absolute_data: bool,
}

/// The hash the symbol table uses; fixed-seeded so links are reproducible.
pub fn hash_name(name: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x5eed_1ab5).hash_one(name)
}

/// A parsed object with what it contributes to the symbol table.
struct PreparedObject<'data> {
    object: ObjectFile<'data>,
    contributions: Vec<Contribution>,
    /// Each global symbol's name and its `hash_name`, in `contributions` order: read (a
    /// string-table scan) and hashed in the parallel half, so that registering only probes.
    names: Vec<(&'data [u8], u64)>,
    /// In `contributions` order: the global of each name already in the symbol table when
    /// the batch was prepared, looked up in the parallel half. Most names of a round of
    /// archive members are (the definitions that pulled them in, and references to what
    /// earlier rounds named), and registering them then needs no probe and no comparison
    /// of names, which were most of the serial registration's time.
    known: Vec<Option<GlobalId>>,
    /// Per section: lost to another object's COMDAT group.
    discarded: Vec<bool>,
}

/// How one global symbol of an object contributes to its name's resolution.
#[derive(Clone, Copy)]
enum Contribution {
    /// `thread_local`: the reference is typed STT_TLS.
    Reference {
        weak: bool,
        thread_local: bool,
    },
    Definition {
        weak: bool,
    },
    Common {
        size: u64,
        align: u64,
    },
}

impl<'data> SymbolDb<'data> {
    /// The error line's value for the undefined global `id`: its name, an object that refers
    /// to it and the function there whose code does (found only now, on the error path).
    pub(crate) fn undefined_symbol(&self, id: GlobalId) -> UndefinedSymbol {
        let global = self.global(id);
        let object = global
            .referenced_by
            .map(|object| &self.objects[object.index()]);
        UndefinedSymbol {
            symbol: escape_bytes(global.name),
            referenced_by: object.map(|object| object.name.clone()),
            function: object
                .and_then(|object| object.referring_function(global.name))
                .map(escape_bytes),
        }
    }

    pub fn global(&self, id: GlobalId) -> &Global<'data> {
        &self.globals[id.index()]
    }

    /// The global a symbol of an object names, if it is not local.
    pub fn global_of(&self, object: ObjectId, symbol: usize) -> Option<GlobalId> {
        let first = self.objects[object.index()].first_global();
        symbol
            .checked_sub(first)
            .and_then(|i| self.object_globals[object.index()].get(i).copied())
    }

    /// Err unless `entry` is defined by an object of this link.
    fn check_entry(&self, entry: &str) -> Result<()> {
        let id = self
            .lookup(entry.as_bytes())
            .expect("the entry is always interned");
        let problem = match self.global(id).resolution {
            Resolution::Defined { .. } => return Ok(()),
            Resolution::External(_) => EntryProblem::NotInUnit,
            _ => EntryProblem::Undefined,
        };
        Err(LinkError::Entry {
            symbol: entry.to_owned(),
            problem,
        })
    }

    pub fn global_name(&self, id: GlobalId) -> String {
        escape_bytes(self.global(id).name)
    }

    /// The global named `name`, if any object mentions it.
    pub fn lookup(&self, name: &[u8]) -> Option<GlobalId> {
        self.find(name, hash_name(name))
    }

    /// `lookup` for a name already hashed (`hash_name(name)`).
    fn find(&self, name: &[u8], hash: u64) -> Option<GlobalId> {
        if self.names.is_empty() {
            return None;
        }
        self.names
            .find(hash, |&id| self.globals[id.index()].name == name)
            .copied()
    }

    fn intern(&mut self, name: &'data [u8], hash: u64) -> GlobalId {
        let globals = &mut self.globals;
        let entry = self.names.entry(
            hash,
            |&id| globals[id.index()].name == name,
            |&id| globals[id.index()].hash,
        );
        match entry {
            hashbrown::hash_table::Entry::Occupied(entry) => *entry.get(),
            hashbrown::hash_table::Entry::Vacant(entry) => {
                let id = GlobalId::from_index(globals.len());
                globals.push(Global {
                    name,
                    hash,
                    resolution: Resolution::Undefined,
                    strong_reference: false,
                    referenced_by: None,
                    thread_local_reference: false,
                });
                entry.insert(id);
                id
            }
        }
    }
}

/// One COMDAT group of an object: its signature (with the signature's `hash_name`, computed
/// in the parallel half) and its member sections.
struct ComdatGroup<'data> {
    signature: &'data [u8],
    hash: u64,
    members: &'data [object::U32<object::LittleEndian>],
}

/// The COMDAT groups of `object`, in section order. Independent of other objects, so it runs
/// in parallel: reading and hashing the signatures is most of the work at LLVM's scale (C++
/// objects with thousands of groups each).
fn comdat_groups<'data>(object: &ObjectFile<'data>) -> Result<Vec<ComdatGroup<'data>>> {
    let mut groups = Vec::new();
    for (index, section) in object.sections.enumerate() {
        if section.sh_type(LE) != elf::SHT_GROUP {
            continue;
        }
        let words: &[object::U32<object::LittleEndian>] = section
            .data_as_array(LE, object.data)
            .map_err(|e| LinkError::input(&object.name, format!("invalid section group: {e}")))?;
        let Some((flags, members)) = words.split_first() else {
            continue;
        };
        if flags.get(LE) & elf::GRP_COMDAT == 0 {
            continue;
        }
        let signature = object
            .symbol(section.sh_info(LE) as usize)
            .map(|symbol| object.symbol_name(symbol))
            .ok_or_else(|| LinkError::Section {
                file: object.name.clone(),
                section: format!("group {}", index.0),
                problem: "has an invalid signature symbol".into(),
            })?;
        groups.push(ComdatGroup {
            signature,
            hash: hash_name(signature),
            members,
        });
    }
    Ok(groups)
}

/// Which of an object's `section_count` sections lose to COMDAT groups already seen: the
/// serial half, in link order, which only probes `winners` with precomputed hashes.
fn comdat_discards<'data>(
    section_count: usize,
    groups: &[ComdatGroup<'data>],
    winners: &mut HashTable<(&'data [u8], u64)>,
) -> Vec<bool> {
    let mut discarded = vec![false; section_count];
    for group in groups {
        let entry = winners.entry(
            group.hash,
            |&(name, _)| name == group.signature,
            |&(_, hash)| hash,
        );
        match entry {
            hashbrown::hash_table::Entry::Vacant(entry) => {
                entry.insert((group.signature, group.hash));
            }
            hashbrown::hash_table::Entry::Occupied(_) => {
                for member in group.members {
                    let member = member.get(LE) as usize;
                    if let Some(slot) = discarded.get_mut(member) {
                        *slot = true;
                    }
                }
            }
        }
    }
    discarded
}

/// Classify an object's global symbols: the parallel half of registering an object.
fn contributions(object: &ObjectFile<'_>, discarded: &[bool]) -> Result<Vec<Contribution>> {
    let first = object.first_global();
    object.symbols.symbols()[first..]
        .iter()
        .enumerate()
        .map(|(i, symbol)| {
            let index = first + i;
            let weak = symbol.st_bind() == elf::STB_WEAK;
            Ok(match symbol.st_shndx(LE) {
                elf::SHN_UNDEF => Contribution::Reference {
                    weak,
                    thread_local: symbol.st_type() == elf::STT_TLS,
                },
                elf::SHN_COMMON if symbol.st_type() == elf::STT_TLS => {
                    return Err(LinkError::Symbol {
                        file: Some(object.name.clone()),
                        symbol: object.describe_symbol(index),
                        problem: "is a thread-local common symbol, which rjitlink does not lay out (compile with -fno-common)".into(),
                    })
                }
                elf::SHN_COMMON => Contribution::Common {
                    size: symbol.st_size(LE),
                    align: symbol.st_value(LE).max(1),
                },
                elf::SHN_ABS => Contribution::Definition { weak },
                _ => {
                    let symbol_error = |problem: &str| LinkError::Symbol {
                        file: Some(object.name.clone()),
                        symbol: object.describe_symbol(index),
                        problem: problem.to_owned(),
                    };
                    let section = object
                        .symbol_section(index, symbol)
                        .filter(|&s| s < object.sections.len())
                        .ok_or_else(|| symbol_error("has an invalid section index"))?;
                    if discarded[section] {
                        // The winning copy of the group defines it.
                        Contribution::Reference {
                            weak: false,
                            thread_local: false,
                        }
                    } else {
                        Contribution::Definition { weak }
                    }
                }
            })
        })
        .collect()
}

/// Builds the symbol table object by object, in a fixed order so results never depend on
/// thread timing.
struct Resolver<'data> {
    db: SymbolDb<'data>,
    /// Signatures (and their hashes) of the COMDAT groups kept so far.
    comdat_winners: HashTable<(&'data [u8], u64)>,
    /// Undefined, strongly referenced globals not yet searched for in archives.
    pending: Vec<GlobalId>,
    duplicates: Vec<Duplicate>,
}

/// A global defined strongly by two objects.
struct Duplicate {
    global: GlobalId,
    first: ObjectId,
    second: ObjectId,
}

impl<'data> Resolver<'data> {
    /// Add parsed objects (with their precomputed contributions) in order.
    fn register(&mut self, batch: Vec<PreparedObject<'data>>) {
        // Room for every name the batch could add, made once: growing the table as it fills
        // rehashes everything interned so far, several times over at LLVM's scale.
        let most: usize = batch.iter().map(|prepared| prepared.names.len()).sum();
        let globals = &self.db.globals;
        self.db.names.reserve(most, |&id| globals[id.index()].hash);
        self.db.globals.reserve(most);
        self.db.objects.reserve(batch.len());
        self.db.object_globals.reserve(batch.len());
        self.db.discarded.reserve(batch.len());
        for PreparedObject {
            object,
            contributions,
            names,
            known,
            discarded,
        } in batch
        {
            let object_id = ObjectId::from_index(self.db.objects.len());
            let first = object.first_global();
            let mut ids = Vec::with_capacity(contributions.len());
            for (i, ((contribution, (name, hash)), known)) in
                contributions.into_iter().zip(names).zip(known).enumerate()
            {
                let id = match known {
                    Some(id) => id,
                    None => self.db.intern(name, hash),
                };
                ids.push(id);
                self.merge(id, object_id, (first + i) as u32, contribution);
            }
            self.db.objects.push(object);
            self.db.object_globals.push(ids);
            self.db.discarded.push(discarded);
        }
    }

    fn merge(&mut self, id: GlobalId, object: ObjectId, symbol: u32, contribution: Contribution) {
        let global = &mut self.db.globals[id.index()];
        let current = global.resolution;
        match contribution {
            Contribution::Reference { weak, thread_local } => {
                global.referenced_by.get_or_insert(object);
                global.thread_local_reference |= thread_local;
                if !weak && !global.strong_reference {
                    global.strong_reference = true;
                    if current == Resolution::Undefined {
                        self.pending.push(id);
                    }
                }
            }
            Contribution::Definition { weak } => match current {
                Resolution::Defined {
                    weak: false,
                    object: other,
                    ..
                } => {
                    if !weak {
                        self.duplicates.push(Duplicate {
                            global: id,
                            first: other,
                            second: object,
                        });
                    }
                }
                Resolution::Defined { weak: true, .. } if weak => {}
                Resolution::Common { .. } if weak => {}
                _ => {
                    global.resolution = Resolution::Defined {
                        object,
                        symbol,
                        weak,
                    }
                }
            },
            Contribution::Common { size, align } => match current {
                Resolution::Common {
                    size: old_size,
                    align: old_align,
                    object: old_object,
                    symbol: old_symbol,
                } => {
                    global.resolution = Resolution::Common {
                        object: old_object,
                        symbol: old_symbol,
                        size: size.max(old_size),
                        align: align.max(old_align),
                    }
                }
                Resolution::Defined { weak: false, .. } => {}
                _ => {
                    global.resolution = Resolution::Common {
                        object,
                        symbol,
                        size,
                        align,
                    }
                }
            },
        }
    }
}

/// Parse objects in parallel, then find their COMDAT losers and contributions.
fn parse_batch<'data>(named: Vec<(String, &'data [u8])>) -> Result<Vec<ObjectFile<'data>>> {
    named
        .into_par_iter()
        .map(|(name, data)| ObjectFile::parse(name, data))
        .collect()
}

/// `db` is the symbol table as the batch finds it, which the parallel half reads.
fn prepare_batch<'data>(
    objects: Vec<ObjectFile<'data>>,
    comdat_winners: &mut HashTable<(&'data [u8], u64)>,
    db: &SymbolDb<'data>,
) -> Result<Vec<PreparedObject<'data>>> {
    // COMDAT winners depend on order, so groups are claimed sequentially, from signatures
    // read and hashed in parallel.
    let groups = objects
        .par_iter()
        .map(comdat_groups)
        .collect::<Result<Vec<_>>>()?;
    let discards: Vec<Vec<bool>> = objects
        .iter()
        .zip(&groups)
        .map(|(object, groups)| comdat_discards(object.sections.len(), groups, comdat_winners))
        .collect();
    drop(groups);
    objects
        .into_par_iter()
        .zip(discards)
        .map(|(object, discarded)| {
            let contributions = contributions(&object, &discarded)?;
            let first = object.first_global();
            let names: Vec<(&[u8], u64)> = object.symbols.symbols()[first..]
                .iter()
                .map(|symbol| {
                    let name = object.symbol_name(symbol);
                    (name, hash_name(name))
                })
                .collect();
            let known = names
                .iter()
                .map(|&(name, hash)| db.find(name, hash))
                .collect();
            Ok(PreparedObject {
                object,
                contributions,
                names,
                known,
                discarded,
            })
        })
        .collect()
}

/// Resolve every symbol of the link. `entry` is treated as referenced, so an archive can
/// provide it, and must be defined by the linked objects. Shared libraries are loaded into the
/// target here.
pub fn resolve<'data>(
    inputs: &'data LinkInputs,
    entry: Option<&'data str>,
    executor: &mut dyn Executor,
    earlier_units: &dyn Fn(&[u8]) -> Option<OutsideDefinition>,
    times: &PhaseTimes,
) -> Result<SymbolDb<'data>> {
    let _span = times.span("resolve");
    let mut resolver = Resolver {
        db: SymbolDb {
            objects: Vec::new(),
            object_globals: Vec::new(),
            discarded: Vec::new(),
            globals: Vec::new(),
            names: HashTable::with_capacity(4096),
            locations: Vec::new(),
            absolute_data: Vec::new(),
        },
        comdat_winners: HashTable::new(),
        pending: Vec::new(),
        duplicates: Vec::new(),
    };

    // Command-line objects, then archive members as they are needed.
    let mut archives = Vec::new();
    let mut objects = Vec::new();
    for file in &inputs.files {
        match file.kind {
            FileKind::Object => objects.push((escape_path(&file.path), file.data())),
            FileKind::Archive => archives.push(Archive::parse(file)?),
        }
    }
    if let Some(entry) = entry {
        let entry_id = resolver
            .db
            .intern(entry.as_bytes(), hash_name(entry.as_bytes()));
        resolver.db.globals[entry_id.index()].strong_reference = true;
        resolver.pending.push(entry_id);
    }

    // A remote executor loads the libraries while objects and archives are resolved here:
    // nothing needs them before the externals are looked up. In process, they are loaded
    // after (see `Executor::is_this_process`).
    let eager_libraries: Vec<&SharedLibrary> = inputs
        .shared_libraries
        .iter()
        .filter(|library| !library.as_needed)
        .collect();
    let concurrently = !executor.is_this_process();
    let (resolved, loaded) = std::thread::scope(|scope| {
        let loader = (concurrently && !eager_libraries.is_empty()).then(|| {
            let executor = &mut *executor;
            let libraries = &eager_libraries;
            scope.spawn(move || -> Result<()> {
                Ok(executor.load_libraries(&library_paths(libraries.iter().copied()))?)
            })
        });
        let resolved = resolve_objects(&mut resolver, objects, &archives);
        let loaded = loader.map_or(Ok(()), |thread| {
            thread
                .join()
                .unwrap_or(Err(LinkError::Internal("loading libraries panicked")))
        });
        (resolved, loaded)
    });
    resolved?;
    loaded?;
    if !concurrently {
        executor.load_libraries(&library_paths(eager_libraries.iter().copied()))?;
    }

    if let Some(duplicate) = resolver.duplicates.first() {
        let db = &resolver.db;
        return Err(LinkError::DuplicateSymbol {
            symbol: db.global_name(duplicate.global),
            first: db.objects[duplicate.first.index()].name.clone(),
            second: db.objects[duplicate.second.index()].name.clone(),
        });
    }
    let mut db = resolver.db;
    define_linker_symbols(&mut db);
    resolve_externals(&mut db, inputs, executor, earlier_units)?;
    if let Some(entry) = entry {
        db.check_entry(entry)?;
    }
    db.locations = db
        .globals
        .par_iter()
        .map(|global| match global.resolution {
            Resolution::Defined { object, symbol, .. } => {
                let sym = &db.objects[object.index()].symbols.symbols()[symbol as usize];
                if sym.st_shndx(LE) == elf::SHN_ABS {
                    SymbolLocation::Absolute
                } else if sym.st_type() == elf::STT_GNU_IFUNC {
                    SymbolLocation::Ifunc
                } else if sym.st_type() == elf::STT_TLS {
                    SymbolLocation::ThreadLocal
                } else {
                    SymbolLocation::InImage
                }
            }
            Resolution::Linker(LinkerSymbol::TlsModuleBase) => SymbolLocation::ThreadLocal,
            Resolution::Common { .. } | Resolution::Linker(_) => SymbolLocation::InImage,
            Resolution::External(_) => SymbolLocation::External,
            // Resolution leaves nothing undefined.
            Resolution::UndefinedWeak | Resolution::Undefined => SymbolLocation::UndefinedWeak,
        })
        .collect();
    Ok(db)
}

/// The names the link's archives offer and, for each, the member of the first archive (in
/// command-line order) that offers it: what pulls members into the link.
struct Offers<'data> {
    /// Each archive's symbol index, in its own order: name, `hash_name(name)`, member.
    indexes: Vec<Vec<(&'data [u8], u64, MemberRef)>>,
    /// The first offer of each name, as (archive, position) in `indexes`. Split by hash
    /// (`Offers::shard`) so that the shards fill in parallel, each in archive order, and so
    /// stay independent of thread timing: one table filled on one thread took as long as
    /// reading all of LLVM's indexes (56,000 names), serially.
    shards: Vec<HashTable<(usize, usize)>>,
}

impl<'data> Offers<'data> {
    fn new(archives: &[Archive<'data>]) -> Result<Offers<'data>> {
        // Names read and hashed in parallel, archive by archive, with the symbol table's
        // hash, so that looking a global up needs no hashing.
        let indexes = archives
            .par_iter()
            .enumerate()
            .map(|(i, archive)| {
                Ok(archive
                    .symbol_index(i as u32)?
                    .into_iter()
                    .map(|(name, member)| (name, hash_name(name), member))
                    .collect::<Vec<_>>())
            })
            .collect::<Result<Vec<_>>>()?;
        // One shard per thread: each scans every hash but probes only its own names.
        let count = rayon::current_num_threads().max(1);
        let names: usize = indexes.iter().map(Vec::len).sum();
        let shards = (0..count)
            .into_par_iter()
            .map(|shard| {
                // Room for a shard's share with a margin, as hashes spread evenly.
                let mut table = HashTable::with_capacity(names / count + names / (8 * count) + 16);
                for (archive, index) in indexes.iter().enumerate() {
                    for (position, &(name, hash, _)) in index.iter().enumerate() {
                        if Offers::shard(hash, count) != shard {
                            continue;
                        }
                        let entry = table.entry(
                            hash,
                            |&(a, p): &(usize, usize)| indexes[a][p].0 == name,
                            |&(a, p)| indexes[a][p].1,
                        );
                        if let hashbrown::hash_table::Entry::Vacant(entry) = entry {
                            entry.insert((archive, position));
                        }
                    }
                }
                table
            })
            .collect();
        Ok(Offers { indexes, shards })
    }

    /// The shard of the name hashed `hash`, of `count`: from bits the tables themselves use
    /// least (hashbrown takes the low bits for the bucket and the top seven for the tag).
    fn shard(hash: u64, count: usize) -> usize {
        (hash >> 32) as usize % count
    }

    /// The member that provides `name` (hashed `hash`), if an archive offers it.
    fn find(&self, name: &[u8], hash: u64) -> Option<MemberRef> {
        let shard = &self.shards[Offers::shard(hash, self.shards.len())];
        shard
            .find(hash, |&(a, p)| self.indexes[a][p].0 == name)
            .map(|&(a, p)| self.indexes[a][p].2)
    }
}

/// Register the command-line objects, then pull archive members in rounds until no pending
/// reference is offered by an archive member not yet loaded.
fn resolve_objects<'data>(
    resolver: &mut Resolver<'data>,
    objects: Vec<(String, &'data [u8])>,
    archives: &[Archive<'data>],
) -> Result<()> {
    // The objects are parsed while the archives' indexes are read.
    let (comdat_winners, db) = (&mut resolver.comdat_winners, &resolver.db);
    let (batch, offers) = rayon::join(
        || prepare_batch(parse_batch(objects)?, comdat_winners, db),
        || Offers::new(archives),
    );
    resolver.register(batch?);
    let offers = offers?;

    let mut loaded_members: HashSet<MemberRef> = HashSet::default();
    loop {
        let mut wanted = Vec::new();
        for id in std::mem::take(&mut resolver.pending) {
            let global = &resolver.db.globals[id.index()];
            if global.resolution != Resolution::Undefined {
                continue;
            }
            if let Some(member) = offers.find(global.name, global.hash) {
                if loaded_members.insert(member) {
                    wanted.push(member);
                }
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let named = wanted
            .par_iter()
            .map(|m| archives[m.archive as usize].member(ArchiveOffset(m.offset)))
            .collect::<Result<Vec<_>>>()?;
        let batch = prepare_batch(
            parse_batch(named)?,
            &mut resolver.comdat_winners,
            &resolver.db,
        )?;
        resolver.register(batch);
    }
}

/// The paths of `libraries`, to be loaded together.
fn library_paths<'a>(libraries: impl Iterator<Item = &'a SharedLibrary>) -> Vec<&'a Path> {
    libraries.map(|library| library.path.as_path()).collect()
}

fn define_linker_symbols(db: &mut SymbolDb<'_>) {
    let mut wants_section_bounds = false;
    for global in &mut db.globals {
        if global.resolution != Resolution::Undefined {
            continue;
        }
        global.resolution = match global.name {
            b"_GLOBAL_OFFSET_TABLE_" => Resolution::Linker(LinkerSymbol::GotBase),
            b"__dso_handle" => Resolution::Linker(LinkerSymbol::DsoHandle),
            b"_TLS_MODULE_BASE_" => Resolution::Linker(LinkerSymbol::TlsModuleBase),
            name if name.starts_with(b"__start_") || name.starts_with(b"__stop_") => {
                wants_section_bounds = true;
                continue;
            }
            _ => continue,
        };
    }
    if !wants_section_bounds {
        return;
    }
    // __start_X/__stop_X exist only when some kept, loaded section is named X.
    let mut section_names: HashSet<&[u8]> = HashSet::default();
    for (object, discarded) in db.objects.iter().zip(&db.discarded) {
        for (index, section) in object.sections.enumerate() {
            let loaded = section.sh_flags(LE) & u64::from(elf::SHF_ALLOC) != 0;
            let name = object.section_name(index.0);
            if loaded && !discarded[index.0] && is_c_identifier(name) {
                section_names.insert(name);
            }
        }
    }
    for global in &mut db.globals {
        if global.resolution != Resolution::Undefined {
            continue;
        }
        let bound = if let Some(section) = global.name.strip_prefix(b"__start_") {
            Some((section, LinkerSymbol::SectionStart))
        } else {
            global
                .name
                .strip_prefix(b"__stop_")
                .map(|section| (section, LinkerSymbol::SectionStop))
        };
        if let Some((section, symbol)) = bound {
            if section_names.contains(section) {
                global.resolution = Resolution::Linker(symbol);
            }
        }
    }
}

/// Resolve undefined names against units linked earlier in the session, then load the shared
/// libraries and look the rest up in them, in one batch (plus one more for AS_NEEDED
/// libraries if anything is still missing). Still missing: one error line per strongly
/// referenced name, with an object that references it.
fn resolve_externals(
    db: &mut SymbolDb<'_>,
    inputs: &LinkInputs,
    executor: &mut dyn Executor,
    earlier_units: &dyn Fn(&[u8]) -> Option<OutsideDefinition>,
) -> Result<()> {
    let mut missing: Vec<GlobalId> = Vec::new();
    for (index, global) in db.globals.iter_mut().enumerate() {
        if global.resolution != Resolution::Undefined {
            continue;
        }
        match earlier_units(global.name) {
            Some(definition) => {
                global.resolution = Resolution::External(definition.address);
                if definition.absolute_data {
                    // In id order: the loop goes through the ids in order.
                    db.absolute_data.push(GlobalId::from_index(index));
                }
            }
            // A library's thread-local variable: looking it up (dlsym) would give its block
            // to the calling thread and fix it as dynamic for good, after which initial-exec
            // code cannot reach it. The TLS module names it to the loader instead, which
            // reports it if no library defines it.
            None if global.thread_local_reference && global.strong_reference => {
                global.resolution = Resolution::External(TargetAddr::NULL)
            }
            None => missing.push(GlobalId::from_index(index)),
        }
    }
    // The eager libraries are loaded: one batched lookup. AS_NEEDED libraries are loaded
    // only if that leaves names missing, then asked once more.
    for as_needed in [false, true] {
        if missing.is_empty() {
            break;
        }
        let mut libraries = inputs
            .shared_libraries
            .iter()
            .filter(|l| l.as_needed == as_needed)
            .peekable();
        // The eager round asks the target even when this link names no library: libraries
        // loaded for earlier units, and the host's symbols where the executor shows them,
        // are there too.
        if as_needed && libraries.peek().is_none() {
            continue;
        }
        if as_needed {
            executor.load_libraries(&library_paths(libraries))?;
        }
        let names: Vec<&[u8]> = missing.iter().map(|&id| db.global(id).name).collect();
        let addresses = executor
            .lookup(&names)
            .map_err(LinkError::target("cannot look up symbols in the target"))?;
        let mut still_missing = Vec::new();
        for (id, address) in missing.into_iter().zip(addresses) {
            match address {
                Some(address) => db.globals[id.index()].resolution = Resolution::External(address),
                None => still_missing.push(id),
            }
        }
        missing = still_missing;
    }

    let mut undefined = Vec::new();
    for id in missing {
        let global = &mut db.globals[id.index()];
        if !global.strong_reference {
            global.resolution = Resolution::UndefinedWeak;
            continue;
        }
        undefined.push(db.undefined_symbol(id));
    }
    match undefined.is_empty() {
        true => Ok(()),
        false => Err(LinkError::Undefined(undefined)),
    }
}
