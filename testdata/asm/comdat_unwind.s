## with: lib/comdat_unwind_copy.s
# Two objects define `big` in a COMDAT group, each with its unwind record (.cfi). The second
# copy is dropped: its FDE's pc_begin becomes 0, which the unwinder skips, and the check of the
# unwind table must accept it although its range (0x20000 bytes) would run past the image.

    .section .text.big,"axG",@progbits,big,comdat
    .weak big
    .type big, @function
big:
    .cfi_startproc
    xorl %eax, %eax
    ret
    .skip 0x20000, 0x90
    .cfi_endproc
    .size big, .-big

    .text
    .globl main
main:
    .cfi_startproc
    subq $8, %rsp
    .cfi_def_cfa_offset 16
    call big
    call call_big_again
    addq $8, %rsp
    .cfi_def_cfa_offset 8
    ret
    .cfi_endproc
    .section .note.GNU-stack,"",@progbits
