## expect-error: TODO
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
