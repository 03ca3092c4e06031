## A function without unwind information (no CFI directives), for crash.c's `no-cfi` crash:
## the unwinder cannot go past it, and the report finds its callers by their frame pointers.
    .text
    .globl fault_without_cfi
    .type fault_without_cfi, @function
fault_without_cfi:
    push %rbp
    mov %rsp, %rbp
    movl $1, (%rdi)
    pop %rbp
    ret
    .size fault_without_cfi, .-fault_without_cfi
    .section .note.GNU-stack,"",@progbits
