//! A quick check of the unwind records compilers emit for x86-64, without gimli: CIEs of version
//! 1 or 3 whose augmentation is empty or `z` followed by `L`, `P`, `R` and `S` (GCC's "zR" and
//! "zPLR", Clang's likewise), and pointers absolute or PC-relative, in 4 or 8 bytes.
//!
//! It only ever accepts. A table it cannot vouch for, valid or not, goes to the full check in
//! `eh_frame.rs` (gimli), which then says what is wrong: so this check must accept nothing the
//! full one refuses, and checks each field the full one reads, the same way. Its tests compare
//! the two on every single-byte change of typical tables, and the `eh_frame` fuzz target
//! (fuzz/) on arbitrary bytes. In the CPython link the full check cost 7% of all instructions,
//! most of it in building gimli's entries and copying CIEs; this one a fifth of that.

/// `DW_EH_PE_pcrel`: relative to the field's own address.
const PC_RELATIVE: u8 = 0x10;

/// A pointer encoding (`DW_EH_PE_*`) of the forms this check reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Encoding {
    pc_relative: bool,
    /// Bytes in the field: 4 or 8.
    width: usize,
    /// Sign-extended (sdata4) rather than zero-extended (udata4).
    signed: bool,
}

/// The absolute 8-byte address of FDEs whose CIE names no encoding (`DW_EH_PE_absptr` with
/// the 8-byte addresses of x86-64).
const ABSOLUTE_ADDRESS: Encoding = Encoding {
    pc_relative: false,
    width: 8,
    signed: false,
};

/// `byte` as an encoding of the forms read here; `None` for every other, valid or not. The
/// indirect bit (0x80) is allowed: gimli keeps it with the pointer and the check ignores it.
fn encoding(byte: u8) -> Option<Encoding> {
    let pc_relative = match byte & 0x70 {
        0x00 => false,
        PC_RELATIVE => true,
        _ => return None,
    };
    let (width, signed) = match byte & 0x0f {
        0x00 | 0x04 => (8, false), // absptr (8-byte addresses), udata8
        0x03 => (4, false),        // udata4
        0x0b => (4, true),         // sdata4
        0x0c => (8, true),         // sdata8
        _ => return None,
    };
    Some(Encoding {
        pc_relative,
        width,
        signed,
    })
}

/// The value of the field at `at` in `bytes`, extended to 64 bits as `encoding` says.
fn read_value(bytes: &[u8], at: usize, encoding: Encoding) -> Option<u64> {
    let field = bytes.get(at..at.checked_add(encoding.width)?)?;
    Some(match (field.len(), encoding.signed) {
        (4, false) => u64::from(u32::from_le_bytes(field.try_into().ok()?)),
        (4, true) => i32::from_le_bytes(field.try_into().ok()?) as i64 as u64,
        _ => u64::from_le_bytes(field.try_into().ok()?),
    })
}

/// An unsigned LEB128 of at most 9 bytes at `*at` (63 bits: it cannot overflow), advancing
/// `*at` past it. `None` for a longer one (gimli reads up to 10) or one cut short.
fn uleb128(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..63).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// What a CIE tells about its FDEs.
#[derive(Clone, Copy, Debug)]
struct Cie {
    /// Where the CIE's record starts in the table.
    offset: usize,
    /// How the FDEs' pc_begin and range are encoded.
    addresses: Encoding,
    /// Whether the FDEs carry augmentation data (the CIE's augmentation is not empty).
    augmented: bool,
    /// The encoding of the FDEs' LSDA pointer, in their augmentation data.
    lsda: Option<Encoding>,
}

/// The CIE whose record (length field first) starts at `offset` and holds `record` after its
/// length field, if it is of the forms read here and valid.
fn parse_cie(record: &[u8], offset: usize) -> Option<Cie> {
    // After the CIE id (0).
    let mut at = 4;
    let version = *record.get(at)?;
    at += 1;
    // gimli takes 1, 3 and 4; 4 reads as 3 in .eh_frame. Compilers write 1 (and 3).
    if !matches!(version, 1 | 3) {
        return None;
    }
    let terminator = record.get(at..)?.iter().position(|&b| b == 0)?;
    let augmentation = &record[at..at + terminator];
    at += terminator + 1;
    // The code and data alignment factors: read, not used.
    uleb128(record, &mut at)?;
    uleb128(record, &mut at)?;
    if version == 1 {
        record.get(at)?;
        at += 1;
    } else if uleb128(record, &mut at)? > u64::from(u16::MAX) {
        // gimli refuses a return-address register past u16.
        return None;
    }
    let mut cie = Cie {
        offset,
        addresses: ABSOLUTE_ADDRESS,
        augmented: !augmentation.is_empty(),
        lsda: None,
    };
    let Some((&b'z', letters)) = augmentation.split_first() else {
        return augmentation.is_empty().then_some(cie);
    };
    let length = usize::try_from(uleb128(record, &mut at)?).ok()?;
    let data = record.get(at..at.checked_add(length)?)?;
    let mut next = 0usize;
    let encoding_byte = |next: &mut usize| {
        let byte = *data.get(*next)?;
        *next += 1;
        encoding(byte)
    };
    for &letter in letters {
        match letter {
            b'L' => cie.lsda = Some(encoding_byte(&mut next)?),
            b'R' => cie.addresses = encoding_byte(&mut next)?,
            b'P' => {
                // The personality routine's pointer: it must be there, its value is not used.
                let personality = encoding_byte(&mut next)?;
                next = next.checked_add(personality.width)?;
                if next > data.len() {
                    return None;
                }
            }
            b'S' => {}
            // Anything else, a second 'z' included, is gimli's to judge.
            _ => return None,
        }
    }
    Some(cie)
}

/// Whether the unwind table `bytes`, as linked at `address`, is of the common forms and valid:
/// its records fill it exactly (with 32-bit lengths, none zero, its size a multiple of 4),
/// each FDE's CIE is a CIE of the table, its fields and augmentation data lie within its
/// record, and the code it describes lies where `within` (start, end) says it may. An FDE
/// whose pc_begin field is zero (code not loaded) is skipped, as the full check skips it.
/// False: the full check must decide.
pub(super) fn accepts(bytes: &[u8], address: u64, within: impl Fn(u64, u64) -> bool) -> bool {
    bytes.len().is_multiple_of(4) && check(bytes, address, within).is_some()
}

fn check(bytes: &[u8], address: u64, within: impl Fn(u64, u64) -> bool) -> Option<()> {
    // A table has one or two CIEs (C, C++): a short list is searched.
    let mut cies: Vec<Cie> = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let length = u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?);
        // 64-bit lengths, gimli's reserved values and the zero terminator: the full check's.
        if length == 0 || length >= 0xffff_fff0 {
            return None;
        }
        let end = (at + 4).checked_add(length as usize)?;
        let record = bytes.get(at + 4..end)?;
        let id = u32::from_le_bytes(record.get(..4)?.try_into().ok()?);
        if id == 0 {
            cies.push(parse_cie(record, at)?);
            at = end;
            continue;
        }
        // An FDE: its CIE pointer counts back from the pointer's own field.
        let cie_offset = (at + 4).checked_sub(id as usize)?;
        let cie = *cies.iter().find(|cie| cie.offset == cie_offset)?;
        let encoding = cie.addresses;
        // Field offsets in the table; each must end within the record.
        let pc_begin = at + 8;
        let range = pc_begin + encoding.width;
        let after = range + encoding.width;
        if after > end {
            return None;
        }
        let raw = read_value(bytes, pc_begin, encoding)?;
        if raw == 0 {
            // Code that is not loaded: the unwinder skips the record.
            at = end;
            continue;
        }
        let begin = match encoding.pc_relative {
            true => address.wrapping_add(pc_begin as u64).wrapping_add(raw),
            false => raw,
        };
        let length = read_value(bytes, range, encoding)?;
        if cie.augmented {
            let mut data = after;
            let size = usize::try_from(uleb128(&bytes[..end], &mut data)?).ok()?;
            if data.checked_add(size)? > end {
                return None;
            }
            if cie.lsda.is_some_and(|lsda| lsda.width > size) {
                return None;
            }
        }
        if !within(begin, begin.checked_add(length)?) {
            return None;
        }
        at = end;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::super::eh_frame::{check_record_lengths, check_with_gimli};
    use super::*;

    /// Where the tables below are linked, and the code their FDEs may describe.
    const TABLE: u64 = 0x40_2000;
    const CODE: std::ops::Range<u64> = 0x40_0000..0x40_2000;

    fn within(start: u64, end: u64) -> bool {
        start >= CODE.start && end <= CODE.end
    }

    /// A table as GCC writes it for C: a CIE "zR" (pc-relative sdata4 addresses) and FDEs
    /// describing `functions` (start, size) of the code.
    fn gcc_c_table(functions: &[(u64, u32)]) -> Vec<u8> {
        let mut table = vec![
            0x14, 0, 0, 0, // length
            0, 0, 0, 0, // CIE id
            1, b'z', b'R', 0, // version, augmentation
            1, 0x78, 0x10, // code alignment 1, data alignment -8, return address r16
            1, 0x1b, // augmentation data: FDE addresses pcrel|sdata4
            0x0c, 7, 8, 0x90, 1, 0, 0, // initial instructions, padding
        ];
        for &(start, size) in functions {
            let at = table.len();
            let field = TABLE + at as u64 + 8;
            table.extend_from_slice(&0x14u32.to_le_bytes());
            table.extend_from_slice(&(at as u32 + 4).to_le_bytes());
            table.extend_from_slice(&(start.wrapping_sub(field) as u32).to_le_bytes());
            table.extend_from_slice(&size.to_le_bytes());
            table.extend_from_slice(&[0, 0x0e, 0x10, 0x46, 0x0e, 0x08, 0, 0]);
        }
        table
    }

    /// A table as GCC writes it for C++: a CIE "zPLR" (personality indirect pcrel sdata4, LSDA
    /// and addresses pcrel sdata4) and one FDE with an LSDA pointer.
    fn gcc_cxx_table() -> Vec<u8> {
        let mut table = vec![
            0x1c, 0, 0, 0, // length
            0, 0, 0, 0, // CIE id
            1, b'z', b'P', b'L', b'R', 0, // version, augmentation
            1, 0x78, 0x10, // code alignment 1, data alignment -8, return address r16
            7, 0x9b, 0x10, 0, 0, 0, 0x1b, 0x1b, // augmentation data: P, L, R
            0x0c, 7, 8, 0x90, 1, 0, 0, // initial instructions, padding
        ];
        let at = table.len();
        let field = TABLE + at as u64 + 8;
        table.extend_from_slice(&0x1cu32.to_le_bytes());
        table.extend_from_slice(&(at as u32 + 4).to_le_bytes());
        table.extend_from_slice(&((CODE.start + 0x40).wrapping_sub(field) as u32).to_le_bytes());
        table.extend_from_slice(&0x30u32.to_le_bytes());
        table.extend_from_slice(&[4, 0x20, 0, 0, 0]); // augmentation data: the LSDA
        table.extend_from_slice(&[0x0e, 0x10, 0x46, 0x0e, 0x08, 0, 0, 0, 0, 0, 0]);
        table
    }

    /// The quick check accepts only what the full check (the record lengths, then gimli)
    /// accepts. Whether it accepts.
    fn agree(table: &[u8]) -> bool {
        let quick = accepts(table, TABLE, within);
        let full = check_record_lengths(table)
            .map_err(|(at, problem)| (at, problem.to_owned()))
            .and_then(|()| check_with_gimli(table, TABLE, CODE.start, 0, within));
        assert!(
            !quick || full.is_ok(),
            "the quick check accepts what the full one refuses ({full:?}): {table:02x?}"
        );
        quick
    }

    #[test]
    fn typical_tables_are_accepted() {
        let c = gcc_c_table(&[(0x40_0000, 0x20), (0x40_0100, 0x1f00)]);
        assert!(agree(&c));
        assert!(agree(&gcc_cxx_table()));
        // A record of code that is not loaded (pc_begin zeroed) is skipped.
        let mut skipped = gcc_c_table(&[(0x40_0000, 0x20)]);
        skipped[0x20..0x24].fill(0);
        assert!(agree(&skipped));
    }

    #[test]
    fn what_gimli_refuses_is_left_to_it() {
        let table = gcc_c_table(&[(0x40_0000, 0x20)]);
        let refused = |table: &[u8]| {
            assert!(!accepts(table, TABLE, within), "{table:02x?}");
            let lengths = check_record_lengths(table);
            assert!(
                lengths.is_err() || check_with_gimli(table, TABLE, CODE.start, 0, within).is_err()
            );
        };
        // A CIE cut short: its length leaves out its augmentation data.
        let mut short_cie = table.clone();
        short_cie.splice(0..4, 0x0cu32.to_le_bytes());
        refused(&short_cie[..0x10]);
        // An FDE cut short: no room for its range.
        let mut short_fde = table.clone();
        short_fde[0x18..0x1c].copy_from_slice(&8u32.to_le_bytes());
        refused(&short_fde[..0x18 + 12]);
        // A length past the end of the table.
        let mut past = table.clone();
        past[0x18..0x1c].copy_from_slice(&0x100u32.to_le_bytes());
        refused(&past);
        // A CIE pointer before the table's start, and one to an FDE.
        let mut before = table.clone();
        before[0x1c..0x20].copy_from_slice(&0x1000u32.to_le_bytes());
        refused(&before);
        let mut two = gcc_c_table(&[(0x40_0000, 0x20), (0x40_0100, 0x20)]);
        two[0x34..0x38].copy_from_slice(&0x1cu32.to_le_bytes());
        refused(&two);
        // Code outside the image, or a range that wraps.
        refused(&gcc_c_table(&[(0x40_1ff0, 0x20)]));
        refused(&gcc_c_table(&[(0x10_0000, 0x20)]));
        let mut wrapping = gcc_c_table(&[(0x40_0000, 0x20)]);
        wrapping[0x24..0x28].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        refused(&wrapping);
        // An encoding that does not exist, and an augmentation gimli does not know.
        let mut bad_encoding = table.clone();
        bad_encoding[0x10] = 0x0d;
        refused(&bad_encoding);
        let mut unknown = table.clone();
        unknown[0x0a] = b'Q';
        refused(&unknown);
        // FDE augmentation data longer than its record.
        let mut augmentation = table.clone();
        augmentation[0x28] = 0x20;
        refused(&augmentation);
    }

    #[test]
    fn the_lsda_pointer_must_fit_its_augmentation_data() {
        let mut table = gcc_cxx_table();
        let data = 0x20 + 16;
        assert_eq!(table[data], 4);
        table[data] = 3;
        assert!(!accepts(&table, TABLE, within));
        assert!(check_with_gimli(&table, TABLE, CODE.start, 0, within).is_err());
    }

    /// Every single-byte change of the typical tables, and every cut: the quick check never
    /// accepts what gimli refuses.
    #[test]
    fn every_byte_changed_agrees_with_gimli() {
        let tables = [
            gcc_c_table(&[(0x40_0000, 0x20), (0x40_0100, 0x100)]),
            gcc_cxx_table(),
        ];
        for table in tables {
            let mut accepted = 0;
            for at in 0..table.len() {
                for value in 0..=255u8 {
                    let mut changed = table.clone();
                    changed[at] = value;
                    accepted += usize::from(agree(&changed));
                }
            }
            // Most changes (in instructions, addresses, sizes) leave it valid, and the quick
            // check takes them.
            assert!(accepted > table.len() * 64, "{accepted}");
            for cut in 0..table.len() {
                agree(&table[..cut]);
            }
        }
    }

    /// An unwind table of any of the forms the quick check reads, built record by record, as
    /// linked at `TABLE`.
    #[derive(Default)]
    struct Table {
        bytes: Vec<u8>,
        /// Each CIE's offset, and the encoding its FDEs' addresses use.
        cies: Vec<(usize, u8)>,
    }

    impl Table {
        /// Append `body` as a record, padded to 4 bytes as compilers do.
        fn record(&mut self, mut body: Vec<u8>) {
            body.resize(body.len().next_multiple_of(4), 0);
            self.bytes
                .extend_from_slice(&(body.len() as u32).to_le_bytes());
            self.bytes.extend_from_slice(&body);
        }

        /// A CIE of `version` (its return-address register 16, one byte or a LEB128 by
        /// version) with `augmentation` and, if that starts with 'z', `data`; `addresses` is
        /// the encoding of its FDEs' addresses (0, absolute 8 bytes, without an 'R').
        fn cie(mut self, version: u8, augmentation: &[u8], data: &[u8], addresses: u8) -> Self {
            let mut body = vec![0, 0, 0, 0, version];
            body.extend_from_slice(augmentation);
            body.extend_from_slice(&[0, 1, 0x78, 0x10]);
            if augmentation.first() == Some(&b'z') {
                body.push(data.len() as u8);
                body.extend_from_slice(data);
            }
            body.extend_from_slice(&[0x0c, 7, 8, 0x90, 1]);
            self.cies.push((self.bytes.len(), addresses));
            self.record(body);
            self
        }

        /// An FDE of CIE number `cie` describing `size` bytes at `start`, with augmentation
        /// `data` if its CIE has an augmentation.
        fn fde(mut self, cie: usize, start: u64, size: u64, data: Option<&[u8]>) -> Self {
            let (cie_at, encoding) = self.cies[cie];
            let at = self.bytes.len();
            let width = match encoding & 0x0f {
                0x03 | 0x0b => 4,
                _ => 8,
            };
            let value = match encoding & 0x70 {
                0x10 => start.wrapping_sub(TABLE + at as u64 + 8),
                _ => start,
            };
            let mut body = ((at + 4 - cie_at) as u32).to_le_bytes().to_vec();
            body.extend_from_slice(&value.to_le_bytes()[..width]);
            body.extend_from_slice(&size.to_le_bytes()[..width]);
            if let Some(data) = data {
                body.push(data.len() as u8);
                body.extend_from_slice(data);
            }
            body.extend_from_slice(&[0x0e, 0x10, 0x46, 0x0e, 0x08]);
            self.record(body);
            self
        }
    }

    /// Tables of the other forms the quick check reads, which GCC's C and C++ tables above do
    /// not show: no augmentation (8-byte absolute addresses, no augmentation data), version 3
    /// (a LEB128 return-address register), 4- and 8-byte absolute and 8-byte pc-relative
    /// addresses, an 8-byte and an indirect personality pointer, 'S', two CIEs.
    fn other_tables() -> Vec<Vec<u8>> {
        let code = CODE.start;
        let personality = |encoding: u8| {
            let mut data = vec![encoding];
            data.extend_from_slice(&0x40_1234u64.to_le_bytes());
            data
        };
        let mut absolute = personality(0x00);
        absolute.extend_from_slice(&[0x00, 0x00]);
        let mut indirect = personality(0x94);
        indirect.extend_from_slice(&[0x1b, 0x1b]);
        [
            Table::default()
                .cie(3, b"", &[], 0x00)
                .fde(0, code + 0x10, 0x20, None),
            Table::default()
                .cie(1, b"", &[], 0x00)
                .fde(0, code + 0x10, 0x20, None)
                .fde(0, 0, 0x20, None),
            Table::default()
                .cie(1, b"zR", &[0x03], 0x03)
                .fde(0, code + 0x40, 0x20, Some(&[])),
            Table::default()
                .cie(3, b"zRS", &[0x1c], 0x1c)
                .fde(0, code + 0x40, 0x20, Some(&[])),
            Table::default().cie(1, b"zPLR", &absolute, 0x00).fde(
                0,
                code + 0x80,
                0x30,
                Some(&0x40_2000u64.to_le_bytes()),
            ),
            Table::default().cie(1, b"zPLR", &indirect, 0x1b).fde(
                0,
                code + 0x80,
                0x30,
                Some(&[0, 1, 0, 0]),
            ),
            Table::default()
                .cie(1, b"zR", &[0x1b], 0x1b)
                .fde(0, code, 0x10, Some(&[]))
                .cie(1, b"zPLR", &[0x9b, 0, 0, 0, 0, 0x1b, 0x1b], 0x1b)
                .fde(1, code + 0x100, 0x10, Some(&[0, 0, 0, 0]))
                .fde(0, code + 0x200, 0x10, Some(&[])),
        ]
        .into_iter()
        .map(|table| table.bytes)
        .collect()
    }

    /// The other forms are accepted as they are, and every single-byte change of them, and
    /// every cut, agrees with gimli.
    #[test]
    fn other_forms_agree_with_gimli() {
        for table in other_tables() {
            assert!(agree(&table), "{table:02x?}");
            for at in 0..table.len() {
                for value in 0..=255u8 {
                    let mut changed = table.clone();
                    changed[at] = value;
                    agree(&changed);
                }
            }
            for cut in 0..table.len() {
                agree(&table[..cut]);
            }
        }
    }

    /// Changes of several bytes at once, and of whole fields to the values at the edges
    /// (lengths, CIE pointers, addresses and sizes that wrap or land on a boundary), which
    /// single-byte changes do not reach: from a fixed seed, so that a failure repeats.
    #[test]
    fn many_bytes_changed_agree_with_gimli() {
        let mut tables = other_tables();
        tables.push(gcc_c_table(&[(0x40_0000, 0x20), (0x40_0100, 0x100)]));
        tables.push(gcc_cxx_table());
        // xorshift64: no dependency for a test's random numbers.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let edges: [u64; 10] = [
            0,
            1,
            4,
            0x7f,
            0x80,
            0xffff_fff0,
            0xffff_ffff,
            CODE.start,
            CODE.end,
            u64::MAX,
        ];
        for table in &tables {
            for _ in 0..4000 {
                let mut changed = table.clone();
                for _ in 0..1 + next() % 3 {
                    let at = next() as usize % changed.len();
                    match next() % 4 {
                        0 => changed[at] = next() as u8,
                        1 => changed[at] ^= 1 << (next() % 8),
                        _ => {
                            let width = [4, 8][next() as usize % 2].min(changed.len() - at);
                            let mut value = edges[next() as usize % edges.len()];
                            if next() % 2 == 0 {
                                value = value.wrapping_add(next() % 9).wrapping_sub(4);
                            }
                            changed[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
                        }
                    }
                }
                agree(&changed);
            }
        }
    }

    /// Edges no change of one to three bytes of the tables above reaches: each pair is a
    /// table both checks accept and one just past the edge, which gimli refuses.
    #[test]
    fn edges_of_the_fields_agree_with_gimli() {
        let both = |accepted: &[u8], refused: &[u8]| {
            assert!(agree(accepted), "{accepted:02x?}");
            assert!(!agree(refused), "{refused:02x?}");
            let full = check_record_lengths(refused)
                .map_err(|(at, problem)| (at, problem.to_owned()))
                .and_then(|()| check_with_gimli(refused, TABLE, CODE.start, 0, within));
            assert!(full.is_err(), "{refused:02x?}");
        };
        // A CIE without augmentation, version 3, whose fields after its version are
        // `fields`; then an FDE of 8-byte absolute addresses.
        let table = |fields: &[u8]| {
            let mut body = vec![0, 0, 0, 0, 3, 0];
            body.extend_from_slice(fields);
            body.extend_from_slice(&[0x0c, 7, 8]);
            let mut table = Table::default();
            table.record(body);
            table.cies.push((0, 0x00));
            table.fde(0, CODE.start, 0x10, None).bytes
        };
        // The return-address register (a LEB128 in version 3): gimli takes up to u16::MAX.
        both(
            &table(&[1, 0x78, 0xff, 0xff, 0x03]),
            &table(&[1, 0x78, 0x80, 0x80, 0x04]),
        );
        // The code alignment factor as a LEB128 of 9 bytes, and of 10 whose last holds more
        // than the 64th bit, which gimli refuses. (The quick check reads at most 9.)
        let mut long = vec![0x81];
        long.extend_from_slice(&[0x80; 7]);
        long.push(0x00);
        long.extend_from_slice(&[0x78, 0x10]);
        let mut longer = vec![0x81];
        longer.extend_from_slice(&[0x80; 8]);
        longer.push(0x02);
        longer.extend_from_slice(&[0x78, 0x10]);
        both(&table(&long), &table(&longer));
        // An FDE whose length leaves out its address range, followed by a CIE whose length
        // and id read as a small range: the range must lie within the FDE's own record.
        let cie = || Table::default().cie(1, b"", &[], 0x00);
        let whole = cie()
            .fde(0, CODE.start, 0x10, None)
            .cie(1, b"", &[], 0x00)
            .bytes;
        let fde = cie().bytes.len();
        let mut short = whole[..fde].to_vec();
        short.extend_from_slice(&12u32.to_le_bytes());
        short.extend_from_slice(&whole[fde + 4..fde + 16]);
        short.extend_from_slice(&cie().bytes);
        both(&whole, &short);
    }

    #[test]
    fn long_and_short_leb128() {
        let mut at = 0;
        assert_eq!(uleb128(&[0xe5, 0x8e, 0x26], &mut at), Some(624_485));
        assert_eq!(at, 3);
        let mut at = 0;
        assert_eq!(uleb128(&[0x80; 9], &mut at), None);
        let mut at = 0;
        assert_eq!(uleb128(&[0x80, 0x80], &mut at), None);
    }
}
