//! Unwinding through linked code (C++ exceptions, `_Unwind_Backtrace`, thread cancellation):
//! the unit's unwind tables are checked, then registered with the target's unwinder
//! (libgcc's `__register_frame`) as its memory goes live, and deregistered when it is freed.
//!
//! Layout puts each segment's `.eh_frame` sections back to back, followed by a zero length,
//! which is the table `__register_frame` reads. Records of code that is not loaded (discarded
//! COMDAT copies) have their address zeroed by apply; libgcc skips such records.

use super::{eh_frame_fast, LinkContext, Plugin};
use crate::error::LinkError;
use crate::layout::PlacedSection;
use crate::resolve::Resolution;
use crate::sections::SegmentKind;
use gimli::{
    BaseAddresses, CieOrFde, CommonInformationEntry, EhFrame, EhFrameOffset, UnwindSection,
};
use rayon::prelude::*;
use rjitlink_memory::{AllocAction, TargetAddr, TargetCall};
use rjitlink_target::Executor;
use std::path::Path;

/// The unwinder's registration functions, `void f(void *table)`.
const REGISTER: &[u8] = b"__register_frame";
const DEREGISTER: &[u8] = b"__deregister_frame";
/// Where they live when no library the program loaded brings them.
const UNWINDER_LIBRARY: &str = "libgcc_s.so.1";

/// Registers the unit's unwind tables with the target's unwinder.
#[derive(Default)]
pub struct EhFrames;

impl Plugin for EhFrames {
    fn after_apply(
        &mut self,
        link: &LinkContext<'_, '_>,
        image: &[u8],
        target: &mut dyn Executor,
    ) -> Result<Vec<AllocAction>, LinkError> {
        if link.layout.eh_frames.is_empty() {
            return Ok(Vec::new());
        }
        link.layout
            .placed
            .par_iter()
            .filter(|placed| placed.section.eh_frame)
            .try_for_each(|placed| check_unwind_records(link, image, placed))?;
        let Some((register, deregister)) = unwinder(link, target)? else {
            // No unwinder in the target (a --nostdlib link): nothing could unwind anyway.
            return Ok(Vec::new());
        };
        let call = |function, table: TargetAddr| TargetCall {
            function,
            args: [table.get(), 0],
        };
        Ok(link
            .layout
            .eh_frames
            .iter()
            .map(|&table| {
                let address = link.addresses.at(table);
                AllocAction {
                    finalize: Some(call(register, address)),
                    deallocate: Some(call(deregister, address)),
                }
            })
            .collect())
    }
}

/// `__register_frame` and `__deregister_frame` of the unwinder that will unwind the unit: the
/// image's own (libgcc_eh.a linked in), else the loaded libraries' (a C++ program's libstdc++
/// brings libgcc_s), else libgcc_s itself. `None` where there is none at all.
fn unwinder(
    link: &LinkContext<'_, '_>,
    target: &mut dyn Executor,
) -> Result<Option<(TargetAddr, TargetAddr)>, LinkError> {
    let in_image = |name: &[u8]| {
        let id = link.db.lookup(name)?;
        match link.db.global(id).resolution {
            Resolution::Defined { .. } => link.addresses.globals[id.index()],
            _ => None,
        }
    };
    if let (Some(register), Some(deregister)) = (in_image(REGISTER), in_image(DEREGISTER)) {
        return Ok(Some((register, deregister)));
    }
    let names = [REGISTER, DEREGISTER];
    let mut found = target.lookup(&names)?;
    if found.iter().any(Option::is_none) && target.load_library(Path::new(UNWINDER_LIBRARY)).is_ok()
    {
        found = target.lookup(&names)?;
    }
    Ok(match found[..] {
        [Some(register), Some(deregister)] => Some((register, deregister)),
        _ => None,
    })
}

/// Check one input `.eh_frame` section as linked: records that end exactly at its end, CIEs
/// and FDEs that parse (lengths, augmentations, pointer encodings), and FDEs that describe
/// code in the image (or none, for records of code that is not loaded). Tables of the forms
/// compilers write are checked quickly (`eh_frame_fast`); gimli checks any other, and says
/// what is wrong.
fn check_unwind_records(
    link: &LinkContext<'_, '_>,
    image: &[u8],
    placed: &PlacedSection,
) -> Result<(), LinkError> {
    let PlacedSection { section, offset } = placed;
    let object = &link.db.objects[section.object.index()];
    let start = offset.get() as usize;
    let bytes = &image[start..start + section.size as usize];
    let fail = |(at, problem): (u64, String)| LinkError::Section {
        file: object.name.clone(),
        section: ".eh_frame".to_owned(),
        problem: format!("record at {at:#x}: {problem}"),
    };
    let address = link.addresses.at(*offset).get();
    let within = |begin, end| link.addresses.placement.contains(begin, end);
    // What the quick check accepts passes the length check too.
    if eh_frame_fast::accepts(bytes, address, within) {
        return Ok(());
    }
    check_record_lengths(bytes).map_err(|(at, problem)| fail((at, problem.to_owned())))?;
    let text = link.addresses.placement.segment(SegmentKind::Code).get();
    let got = link.addresses.at(link.layout.got).get();
    check_with_gimli(bytes, address, text, got, within).map_err(fail)
}

/// The quick check's and the full check's (record lengths, then gimli) verdicts on one
/// unwind table linked at `address`, with its code at `text`: for the fuzz target, which
/// holds that the quick check accepts nothing the full one refuses.
#[cfg(feature = "fuzzing")]
pub(crate) fn both_checks(
    bytes: &[u8],
    address: u64,
    text: u64,
    within: impl Fn(u64, u64) -> bool + Copy,
) -> (bool, Result<(), (u64, String)>) {
    let quick = eh_frame_fast::accepts(bytes, address, within);
    let full = check_record_lengths(bytes)
        .map_err(|(at, problem)| (at, problem.to_owned()))
        .and_then(|()| check_with_gimli(bytes, address, text, 0, within));
    (quick, full)
}

/// The full check of an unwind table whose record lengths are checked, linked at `address`,
/// with gimli (see `check_unwind_records`): text- and data-relative pointers are relative to
/// `text` and `got`, and `within` (start, end) says where described code may lie. Err gives
/// the offset of the record at fault and the problem.
pub(super) fn check_with_gimli(
    bytes: &[u8],
    address: u64,
    text: u64,
    got: u64,
    within: impl Fn(u64, u64) -> bool,
) -> Result<(), (u64, String)> {
    let bases = BaseAddresses::default()
        .set_eh_frame(address)
        .set_text(text)
        .set_got(got);
    let mut eh_frame = EhFrame::new(bytes, gimli::LittleEndian);
    eh_frame.set_address_size(8);
    let mut entries = eh_frame.entries(&bases);
    // Parsed CIEs by offset: a section has one or two, shared by all its FDEs.
    let mut cies: Vec<(EhFrameOffset, CommonInformationEntry<_>)> = Vec::new();
    loop {
        let entry = match entries.next() {
            Ok(Some(entry)) => entry,
            Ok(None) => return Ok(()),
            Err(error) => return Err((0, format!("invalid unwind record: {error}"))),
        };
        let CieOrFde::Fde(partial) = entry else {
            continue;
        };
        let at = partial.offset() as u64;
        let invalid = |error: gimli::Error| (at, format!("invalid unwind record: {error}"));
        let cie_offset = partial.cie_offset();
        let cie = match cies.iter().find(|(known, _)| *known == cie_offset) {
            Some((_, cie)) => cie.clone(),
            None => {
                let cie = eh_frame
                    .cie_from_offset(&bases, cie_offset)
                    .map_err(invalid)?;
                cies.push((cie_offset, cie.clone()));
                cie
            }
        };
        // A record of code that is not loaded has a raw pc_begin of zero, which the unwinder
        // skips, reading nothing after it; so is it left unparsed here (gimli would decode
        // the zero relative to the record's own address). In the LLVM-static link these
        // are the records of discarded COMDAT copies, a large share of all.
        if raw_pc_begin(bytes, at as usize, &cie) == Some(0) {
            continue;
        }
        let fde = partial.parse(|_, _, _| Ok(cie.clone())).map_err(invalid)?;
        let begin = fde.initial_address();
        let inside = begin
            .checked_add(fde.len())
            .is_some_and(|end| within(begin, end));
        if !inside {
            return Err((
                at,
                format!(
                    "describes code at {begin:#x}..+{:#x}, outside the linked image",
                    fde.len()
                ),
            ));
        }
    }
}

/// The undecoded pc_begin field of the FDE at `offset` (after its 4-byte length and CIE
/// pointer), as wide as the encoding of its CIE (`cie`) says.
fn raw_pc_begin<R: gimli::Reader>(
    bytes: &[u8],
    offset: usize,
    cie: &CommonInformationEntry<R>,
) -> Option<u64> {
    let encoding = cie
        .fde_address_encoding()
        .unwrap_or(gimli::constants::DW_EH_PE_absptr);
    let width = match encoding.format() {
        gimli::constants::DW_EH_PE_udata2 | gimli::constants::DW_EH_PE_sdata2 => 2,
        gimli::constants::DW_EH_PE_udata4 | gimli::constants::DW_EH_PE_sdata4 => 4,
        _ => 8,
    };
    let start = offset.checked_add(8)?;
    let field = bytes.get(start..start.checked_add(width)?)?;
    let mut value = [0u8; 8];
    value[..width].copy_from_slice(field);
    Some(u64::from_le_bytes(value))
}

/// Walk the records' length fields: each must lie inside the section, and the last must end
/// exactly at its end (a zero length before it would end the unwinder's table early).
/// Err gives the offset and the problem.
pub(super) fn check_record_lengths(bytes: &[u8]) -> Result<(), (u64, &'static str)> {
    let read_u32 = |at: usize| -> Option<u64> {
        let field = bytes.get(at..at.checked_add(4)?)?;
        Some(u64::from(u32::from_le_bytes(field.try_into().ok()?)))
    };
    if !bytes.len().is_multiple_of(4) {
        return Err((0, "unwind table size is not a multiple of 4"));
    }
    let mut at = 0usize;
    while at < bytes.len() {
        let position = at as u64;
        let length = read_u32(at).ok_or((position, "truncated unwind record length"))?;
        let (header, length) = match length {
            0 => return Err((position, "a zero length ends the unwind table early")),
            0xffff_ffff => {
                let high = read_u32(at + 8).ok_or((position, "truncated unwind record length"))?;
                let low = read_u32(at + 4).ok_or((position, "truncated unwind record length"))?;
                (12, high << 32 | low)
            }
            length => (4, length),
        };
        at = usize::try_from(length)
            .ok()
            .and_then(|length| at.checked_add(header)?.checked_add(length))
            .filter(|&end| end <= bytes.len())
            .ok_or((position, "unwind record runs past the end of its section"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_record_lengths;

    #[test]
    fn record_lengths_must_tile_the_section() {
        // Two records of 4 + 4 and 4 + 8 bytes.
        let mut bytes = vec![4, 0, 0, 0, 1, 2, 3, 4, 8, 0, 0, 0];
        bytes.extend_from_slice(&[0; 8]);
        assert_eq!(check_record_lengths(&bytes), Ok(()));
        // Past the end.
        bytes[8] = 9;
        assert_eq!(
            check_record_lengths(&bytes),
            Err((8, "unwind record runs past the end of its section"))
        );
        // A zero length before the end.
        bytes[8] = 0;
        assert_eq!(
            check_record_lengths(&bytes),
            Err((8, "a zero length ends the unwind table early"))
        );
        // A size that records of 4-byte lengths cannot fill.
        assert_eq!(
            check_record_lengths(&[4, 0, 0, 0, 1, 2, 3, 4, 8, 0]),
            Err((0, "unwind table size is not a multiple of 4"))
        );
        // A 64-bit length field cut short.
        assert_eq!(
            check_record_lengths(&[0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0]),
            Err((0, "truncated unwind record length"))
        );
        // A 64-bit length that wraps.
        let wrapping = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        assert!(check_record_lengths(&wrapping).is_err());
    }
}
