# Thread-local variables of tls_relocations.s defined in another object.
    .section .tdata,"awT",@progbits
    .p2align 2
    .globl ext_tls
    .type ext_tls, @object
    .size ext_tls, 4
ext_tls:
    .long 0xabcd

    .section .tbss,"awT",@nobits
    .p2align 3
    .globl ext_zero
    .type ext_zero, @object
    .size ext_zero, 8
ext_zero:
    .zero 8

    .section .note.GNU-stack,"",@progbits
