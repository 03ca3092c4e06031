# Constructor tables in every form the linker knows: .preinit_array, .init_array with and
# without priority, and the older .ctors/.dtors (whose entries run last to first) with and
# without priority. Each function prints its name; the native link's order is the reference.

    .macro printer name
\name:
    subq $8, %rsp
    leaq .Lmsg_\name(%rip), %rdi
    call puts@PLT
    addq $8, %rsp
    ret
    .section .rodata
.Lmsg_\name:
    .string "\name"
    .text
    .endm

    .text
    printer preinit
    printer init_array_default
    printer init_array_101
    printer init_array_300
    printer ctors_first
    printer ctors_second
    printer ctors_priority_200
    printer fini_array_default
    printer fini_array_150
    printer dtors_first
    printer dtors_second
    printer main_body

    .globl main
main:
    subq $8, %rsp
    call main_body
    xorl %eax, %eax
    addq $8, %rsp
    ret

    .section .preinit_array,"aw",@preinit_array
    .quad preinit
    .section .init_array,"aw",@init_array
    .quad init_array_default
    .section .init_array.00300,"aw",@init_array
    .quad init_array_300
    .section .init_array.00101,"aw",@init_array
    .quad init_array_101
    .section .ctors,"aw",@progbits
    .quad ctors_first, ctors_second
    .section .ctors.65335,"aw",@progbits
    .quad ctors_priority_200
    .section .fini_array,"aw",@fini_array
    .quad fini_array_default
    .section .fini_array.00150,"aw",@fini_array
    .quad fini_array_150
    .section .dtors,"aw",@progbits
    .quad dtors_first, dtors_second

    .section .note.GNU-stack,"",@progbits
