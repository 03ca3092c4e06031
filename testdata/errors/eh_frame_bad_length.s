## expect-error: section .eh_frame record at 0x0: unwind record runs past the end of its section
# An unwind table whose one record claims more bytes than its section holds.
    .text
    .globl main
main:
    xorl %eax, %eax
    ret
    .section .eh_frame,"a",@progbits
    .long 100
    .long 0
    .section .note.GNU-stack,"",@progbits
