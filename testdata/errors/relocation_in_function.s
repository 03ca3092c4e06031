## with: lib/far_away.s
## expect-error: .text+0x7 in function 'reach_far': R_X86_64_PC32 against `FAR_AWAY`: value
# A relocation error names the function whose code holds it, from the object's symbol table
# (the STT_FUNC symbol whose [value, value + size) covers the offset), as ld's "in function"
# does: the field is at 0x7, past main (xorl, 2 bytes; ret, 1), reach_far's nop (1) and leaq's
# REX prefix, opcode and ModRM (3).
    .text
    .globl main
    .type main, @function
main:
    xorl %eax, %eax
    ret
    .size main, .-main
    .type reach_far, @function
reach_far:
    nop
    leaq FAR_AWAY(%rip), %rax
    ret
    .size reach_far, .-reach_far
    .section .note.GNU-stack,"",@progbits
