## expect-error: .text+0x2: R_X86_64_PC32 against `counter`: the symbol is thread-local and has no address of its own
# A RIP-relative load (PC32) of a thread-local variable: .tbss has no single address, each
# thread has its own copy, so only TLS relocations may name it.
    .text
    .globl main
main:
    movl counter(%rip), %eax
    ret

    .section .tbss,"awT",@nobits
    .p2align 2
    .globl counter
    .type counter, @object
    .size counter, 4
counter:
    .zero 4

    .section .note.GNU-stack,"",@progbits
