#!/bin/sh
# Build the seed corpora of every fuzz target into $1 (default: fuzz/seeds, not committed):
# objects compiled from testdata/, archives of them (indexed, unindexed, thin), the system's
# linker scripts and hand-written ones, and the protocol's messages.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out=${1:-$here/seeds}
target=${CARGO_TARGET_DIR:-$root/target}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out/link" "$out/archive" "$out/script" "$out/protocol" "$out/eh_frame"

# Objects: small C programs in two code models, and assembly covering the relocation kinds.
for c in hello pointer_tables common_symbols tls_models ifunc section_bounds constructors; do
    f=$(ls "$root"/testdata/c/$c*.c 2>/dev/null | head -1) || continue
    [ -n "$f" ] || continue
    cc -c -O2 -fPIC "$f" -o "$work/$c-pic.o"
    cc -c -O2 -fno-pic -fno-pie "$f" -o "$work/$c-nopic.o"
done
for s in "$root"/testdata/asm/*.s; do
    as "$s" -o "$work/$(basename "$s" .s)-asm.o" 2>/dev/null || true
done
sep() { printf '\n--rjitlink-fuzz-file--\n'; }
for o in "$work"/*.o; do
    # Small objects only: afl mutates large seeds slowly.
    [ "$(stat -c %s "$o")" -le 16384 ] && cp "$o" "$out/link/$(basename "$o")"
done
# Unwind tables as compilers write them (C: "zR"; C++: "zPLR"), from the objects above and a
# C++ source that throws: as in the object, where every pc_begin is zero (code not loaded, so
# both checks skip each FDE), and as linked where the fuzz target links them (code at
# 0x400000, the table at 0x410000: crates/link/src/fuzzing.rs), so that every field is read.
c++ -c -O2 "$root"/testdata/cpp/exceptions.cc -o "$work/exceptions-cxx.o" 2>/dev/null || true
cat > "$work/place.ld" <<'EOF'
SECTIONS {
  .text 0x400000 : { *(.text .text.*) }
  .eh_frame 0x410000 : { *(.eh_frame) }
  .rest 0x420000 : { *(.rodata* .data* .bss* .gcc_except_table* .tdata* .tbss*) }
}
EOF
for o in "$work"/*-pic.o "$work"/*-nopic.o "$work"/*-cxx.o; do
    [ -f "$o" ] || continue
    name=$(basename "$o" .o)
    objcopy -O binary --only-section=.eh_frame "$o" "$work/eh_frame.bin" 2>/dev/null || continue
    [ -s "$work/eh_frame.bin" ] && cp "$work/eh_frame.bin" "$out/eh_frame/$name"
    ld -T "$work/place.ld" --unresolved-symbols=ignore-all -o "$work/placed" "$o" 2>/dev/null &&
        objcopy -O binary --only-section=.eh_frame "$work/placed" "$work/eh_frame.bin" &&
        [ -s "$work/eh_frame.bin" ] && cp "$work/eh_frame.bin" "$out/eh_frame/$name-linked"
done
# An object and an archive that defines what it needs; and a script naming the archive.
printf 'int helper(int x) { return x * 3; }\nint counter;\n' > "$work/helper.c"
printf 'extern int helper(int); extern int counter;\nint main(void) { return helper(counter); }\n' > "$work/main.c"
cc -c -O2 -fPIC "$work/helper.c" -o "$work/helper.o"
cc -c -O2 -fPIC "$work/main.c" -o "$work/main.o"
ar rcs "$work/indexed.a" "$work/helper.o"
ar rcS "$work/unindexed.a" "$work/helper.o"
(cd "$work" && ar rcT thin.a helper.o)
{ cat "$work/main.o"; sep; cat "$work/indexed.a"; } > "$out/link/main-archive"
{ cat "$work/main.o"; sep; printf 'GROUP ( lib2.a AS_NEEDED ( -l2 ) )\n'; sep; cat "$work/indexed.a"; } > "$out/link/main-script-archive"
cp "$work/indexed.a" "$work/unindexed.a" "$work/thin.a" "$out/archive/"
ar rcs "$work/several.a" "$work/helper.o" "$work/main.o"
# A member name longer than 15 bytes goes to the GNU long-name table.
cp "$work/helper.o" "$work/a_member_with_a_long_name.o"
ar rcs "$work/long-names.a" "$work/a_member_with_a_long_name.o" "$work/main.o"
cp "$work/several.a" "$work/long-names.a" "$out/archive/"

# Linker scripts.
for s in /usr/lib/x86_64-linux-gnu/libc.so /usr/lib/x86_64-linux-gnu/libm.so; do
    [ -f "$s" ] && cp "$s" "$out/script/$(basename "$s").script"
done
printf 'INPUT(-lfoo, bar.o)\n' > "$out/script/input"
printf '/* c */ GROUP ( a.o AS_NEEDED ( -lb c.so ) ) SEARCH_DIR(/x)\n' > "$out/script/group"
for s in "$root"/testdata/errors/*.ld "$root"/testdata/errors/lib/cycle_a.ld; do
    [ -f "$s" ] && cp "$s" "$out/script/"
done

# Protocol messages.
"$target/release/protocol-seeds" "$out/protocol"
echo "seeds in $out: $(ls "$out/link" | wc -l) link, $(ls "$out/archive" | wc -l) archive, $(ls "$out/script" | wc -l) script, $(ls "$out/protocol" | wc -l) protocol, $(ls "$out/eh_frame" | wc -l) eh_frame"
