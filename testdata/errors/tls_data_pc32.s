## expect-error: .tdata+0x0: R_X86_64_PC32 against `main`: cannot be applied in a thread-local section's initial image
# A PC-relative word (PC32) inside .tdata: the initial image is copied to each thread's block,
# so a value relative to where the word lies cannot be right in every copy.
    .text
    .globl main
main:
    movl %fs:offset@tpoff, %eax
    xorl %eax, %eax
    ret

    .section .tdata,"awT",@progbits
    .p2align 2
    .type offset, @object
    .size offset, 4
offset:
    .long main - .

    .section .note.GNU-stack,"",@progbits
