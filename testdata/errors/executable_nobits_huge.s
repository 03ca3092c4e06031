## expect-error: executable_nobits_huge.o: section .xbss of 0xfffffffffffff000 bytes (alignment 0x1) does not fit in the 2048 MiB
# An executable zero-fill section so large that the segments after it would wrap around to
# offsets inside the code segment (which split the image's memory at a point past its end).
    .text
    .globl main
main:
    xorl %eax, %eax
    ret
    .section .xbss,"awx",@nobits
    .skip 0x7ffffffffffff800
    .skip 0x7ffffffffffff800
    .section .rodata
    .long 1
    .data
    .long 2
    .section .note.GNU-stack,"",@progbits
