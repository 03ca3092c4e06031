## expect-error: common_huge_alignment.o: symbol huge_align is a common symbol with alignment 0x8000000000000001, which no image can satisfy
# A common symbol's value is its alignment; above 2^63 no power of two holds it (rounding it up
# used to wrap to 0 and divide by zero).
    .text
    .globl main
main:
    movl huge_align(%rip), %eax
    ret
    .comm huge_align, 8, 0x8000000000000001
    .section .note.GNU-stack,"",@progbits
