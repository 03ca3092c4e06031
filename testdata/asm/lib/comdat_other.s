# The losing copy of the COMDAT group of comdat.s.
    .section .data.shared_value,"awG",@progbits,shared_value,comdat
    .globl shared_value
    .type shared_value, @object
shared_value:
    .quad 2

    .text
    .globl shared_value_seen_by_other
shared_value_seen_by_other:
    leaq shared_value(%rip), %rax
    ret

    .section .note.GNU-stack,"",@progbits
