## expect-error: bss_huge.o: section .bss of 0xffffffffffffff00 bytes (alignment 0x1) does not fit in the 2048 MiB
# A .bss of 2^64 - 256 bytes (two halves: the assembler takes one count as negative). The
# layout must refuse it rather than let the offsets after it wrap around.
    .text
    .globl main
main:
    xorl %eax, %eax
    ret
    .bss
    .skip 0x7fffffffffffff80
    .skip 0x7fffffffffffff80
    .section .note.GNU-stack,"",@progbits
