## expect-error: section_name_escapes.o: \x1b]0;pwned\x07+0x0: R_X86_64_8 against `\x1b[2J\x0dgotcha`: value
# A section and a symbol whose names hold terminal escapes (set the window title, clear the
# screen, return to the line start), in a relocation error: both shown as \xNN.
    .text
    .globl main
main:
    xorl %eax, %eax
    ret
    .section "]0;pwned","aw",@progbits
    .byte "[2Jgotcha"
    .data
    .globl "[2Jgotcha"
"[2Jgotcha":
    .quad 0
    .section .note.GNU-stack,"",@progbits
