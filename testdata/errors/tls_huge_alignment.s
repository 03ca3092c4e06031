## expect-error: section .tbss is thread-local with alignment 0x100000000
# A thread-local section aligned to 4 GiB: the TLS module would pad its initial image to that,
# so it is refused rather than allocated.
    .section .tbss,"awT",@nobits
    .balign 0x100000000
    .globl huge
huge:
    .zero 4
    .text
    .globl main
main:
    movl %fs:huge@tpoff, %eax
    ret
    .section .note.GNU-stack,"",@progbits
