## expect-error: section .eh_frame record at 0x0: invalid unwind record
# A CIE whose augmentation names a pointer encoding that does not exist (0x0d).
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
    .byte 0x0d
    .balign 4, 0
cie_end:
fde:
    .long fde_end - fde_start
fde_start:
    .long fde_start - cie
    .long main - .
    .long 3
    .uleb128 0
    .balign 4, 0
fde_end:
    .section .note.GNU-stack,"",@progbits
