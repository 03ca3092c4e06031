## expect-error: undefined symbol `\x1b[31mred\x0dhidden\xe2\x80\xae` (referenced by
# A symbol name holding terminal escapes (colour, a carriage return that would let the rest
# overwrite the line, a right-to-left override): the message shows them as \xNN.
    .text
    .globl main
main:
    movl "[31mredhidden‮"(%rip), %eax
    ret
    .section .note.GNU-stack,"",@progbits
