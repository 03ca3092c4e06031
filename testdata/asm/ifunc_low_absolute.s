## native-ldflags: -no-pie
# A local and a global IFUNC named by 32-bit absolute addresses (R_X86_64_32S), as non-PIC
# code takes a function's address: each needs its stub in the image, placed below 2 GiB.
# Exits 0 if both addresses lead to the implementation the resolver picked.
    .text
impl:
    movl $7, %eax
    ret
resolver:
    leaq impl(%rip), %rax
    ret
    .type local_ifunc, @gnu_indirect_function
    .set local_ifunc, resolver
    .globl global_ifunc
    .type global_ifunc, @gnu_indirect_function
    .set global_ifunc, resolver

    .globl main
main:
    pushq %rbx
    movq $local_ifunc, %rax
    call *%rax
    movl %eax, %ebx
    movq $global_ifunc, %rax
    call *%rax
    addl %ebx, %eax
    subl $14, %eax
    popq %rbx
    ret
    .section .note.GNU-stack,"",@progbits
