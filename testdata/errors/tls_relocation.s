## expect-error: .text+0x1: unsupported relocation R_X86_64_TPOFF32 against `main`
# A relocation type rjitlink does not implement (thread-local storage) is an error naming the
# place and the symbol, never skipped.
    .text
    .globl main
main:
    ret
    .reloc ., R_X86_64_TPOFF32, main
    .long 0
    .section .note.GNU-stack,"",@progbits
