## expect-error: section .eh_frame record at 0x14: describes code at 0x1000..+0x10, outside the linked image
# An FDE with an absolute (udata8) address that lies nowhere near the linked code.
    .text
    .globl main
main:
    xorl %eax, %eax
    ret
    .section .eh_frame,"a",@progbits
cie:
    .long cie_end - cie_start
cie_start:
    .long 0
    .byte 1
    .asciz "zR"
    .uleb128 1
    .sleb128 -8
    .uleb128 16
    .uleb128 1
    .byte 0x04
    .balign 4, 0
cie_end:
fde:
    .long fde_end - fde_start
fde_start:
    .long fde_start - cie
    .quad 0x1000
    .quad 0x10
    .uleb128 0
    .balign 4, 0
fde_end:
    .section .note.GNU-stack,"",@progbits
