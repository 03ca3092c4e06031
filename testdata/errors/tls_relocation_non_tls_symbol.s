## expect-error: .text+0x3: R_X86_64_GOTTPOFF against `counter`: a thread-local access to a symbol that is not thread-local
# An initial-exec (GOTTPOFF) reference to an ordinary .data variable: a TLS relocation needs a
# thread-local symbol. (gas refuses `counter@gottpoff` for it, hence .reloc.)
    .text
    .globl main
main:
    .reloc 1f+3, R_X86_64_GOTTPOFF, counter-4
1:  movq 0(%rip), %rax
    movl %fs:(%rax), %eax
    ret

    .data
    .globl counter
    .type counter, @object
    .size counter, 4
counter:
    .long 1

    .section .note.GNU-stack,"",@progbits
