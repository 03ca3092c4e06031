# An absolute symbol far from any code.
    .globl FAR_AWAY
    .set FAR_AWAY, 0x700000000000
    .section .note.GNU-stack,"",@progbits
