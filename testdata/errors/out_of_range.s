## expect-error: .data+0x0: R_X86_64_8 against `far_target`: value
# An 8-bit absolute relocation against an address in the image cannot fit.
    .text
    .globl main
main:
    xorl %eax, %eax
    ret
    .data
    .byte far_target
    .globl far_target
far_target:
    .quad 0
    .section .note.GNU-stack,"",@progbits
