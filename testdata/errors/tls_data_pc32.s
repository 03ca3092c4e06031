## expect-error: TODO
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
