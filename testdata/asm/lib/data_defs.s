# Absolute symbols and a data symbol for data_relocs.s.
    .globl ABS8, ABS16, ABS32, ABSNEG
    .set ABS8, 0x7f
    .set ABS16, 0xbeef
    .set ABS32, 0xdeadbeef
    .set ABSNEG, -5

    .data
    .globl near_sym
near_sym:
    .quad 0

    .section .note.GNU-stack,"",@progbits
