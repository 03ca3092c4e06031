## with: lib/far_away.s
## expect-error: .text+0x3: R_X86_64_PC32 against `FAR_AWAY`: value
# A RIP-relative reference to an absolute address more than 2 GiB from the code.
    .text
    .globl main
main:
    leaq FAR_AWAY(%rip), %rax
    xorl %eax, %eax
    ret
    .section .note.GNU-stack,"",@progbits
