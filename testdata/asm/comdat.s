## with: lib/comdat_other.s
# Two objects define shared_value in a COMDAT group with the same signature: the first group
# wins, the other's section is dropped, and both objects see the one copy.

    .section .data.shared_value,"awG",@progbits,shared_value,comdat
    .globl shared_value
    .type shared_value, @object
shared_value:
    .quad 1

    .text
    .globl main
main:
    subq $8, %rsp
    call shared_value_seen_by_other
    leaq shared_value(%rip), %rcx
    cmpq %rcx, %rax
    jne 1f
    cmpq $1, (%rcx)
    jne 2f
    xorl %eax, %eax
    addq $8, %rsp
    ret
1:  movl $1, %eax
    addq $8, %rsp
    ret
2:  movl $2, %eax
    addq $8, %rsp
    ret

    .section .note.GNU-stack,"",@progbits
