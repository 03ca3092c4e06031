## expect-error: tbss_huge.o: section .tbss of 0xfffffffffffff000 bytes (alignment 0x1) does not fit in the 2048 MiB the code model allows for a thread-local block
# A .tbss of 2^64 - 4 KiB (two halves: the assembler takes one count as negative): refused,
# naming the section, before the TLS module is built.
    .section .tbss,"awT",@nobits
    .globl huge_tls
huge_tls:
    .skip 0x7ffffffffffff800
    .skip 0x7ffffffffffff800
    .text
    .globl main
main:
    movl %fs:huge_tls@tpoff, %eax
    xorl %eax, %eax
    ret
    .section .note.GNU-stack,"",@progbits
