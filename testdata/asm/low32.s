## native-ldflags: -no-pie
# 32-bit absolute addresses of the image's own symbols (non-PIC code): the image must lie below
# 2 GiB, and calls to libc, far above, go through stubs. Exits 0 only if all values are right.
# Covers R_X86_64_32 and R_X86_64_32S against symbols in the image, and PLT32 through a stub.

    .macro check code
    movl $\code, %edx
    jne fail
    .endm

    .text
    .globl main
main:
    pushq %rbx
    leaq target(%rip), %rcx
    movl $target, %eax                     # R_X86_64_32
    cmpq %rcx, %rax
    check 1
    movq $target, %rax                     # R_X86_64_32S
    cmpq %rcx, %rax
    check 2
    movl target_address(%rip), %eax        # R_X86_64_32 in data
    cmpq %rcx, %rax
    check 3
    movl $hello, %edi
    call strlen                            # PLT32 to libc, out of reach of a low image
    cmpq $5, %rax
    check 4
    xorl %eax, %eax
    popq %rbx
    ret
fail:
    movl %edx, %eax
    popq %rbx
    ret

    .section .rodata
hello:
    .string "hello"
    .data
target:
    .quad 1
target_address:
    .long target

    .section .note.GNU-stack,"",@progbits
