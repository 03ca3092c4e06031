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
    .globl call_big_again
call_big_again:
    .cfi_startproc
    jmp big
    .cfi_endproc
    .section .note.GNU-stack,"",@progbits
