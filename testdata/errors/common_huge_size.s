## expect-error: common_huge_size.o: symbol huge_common is a common symbol of 0xfffffffffffffff0 bytes (alignment 0x10), more than fits
# A common symbol of 2^64 - 16 bytes: the layout must refuse it, not wrap around and link.
    .text
    .globl main
main:
    movl huge_common(%rip), %eax
    ret
    .comm huge_common, 0xfffffffffffffff0, 16
    .section .note.GNU-stack,"",@progbits
