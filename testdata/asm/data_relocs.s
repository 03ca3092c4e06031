## native-ldflags: -no-pie
## with: lib/data_defs.s
# Data relocations, each checked against an independent computation of the same address.
# Exits 0 only if every relocated value is right; otherwise with the number of the failed check.
# Covers R_X86_64_64, PC64, PC32, PC16, PC8, 32, 32S, 16 and 8.

    .macro check code
    movl $\code, %edx
    jne fail
    .endm

    .text
    .globl main
main:
    leaq target(%rip), %rcx            # PC32 (section symbol)
    movq abs64(%rip), %rax             # R_X86_64_64
    cmpq %rcx, %rax
    check 1
    leaq target+16(%rip), %rsi
    movq abs64_addend(%rip), %rax      # R_X86_64_64 with an addend
    cmpq %rsi, %rax
    check 2
    leaq pc64(%rip), %rax
    addq pc64(%rip), %rax              # PC64: target - pc64
    cmpq %rcx, %rax
    check 3
    leaq pc32(%rip), %rax
    movslq pc32(%rip), %rsi            # PC32 in data
    addq %rsi, %rax
    cmpq %rcx, %rax
    check 4
    leaq near_sym(%rip), %rcx          # defined in the other object, just after our .data
    leaq pc16(%rip), %rax
    movswq pc16(%rip), %rsi            # PC16
    addq %rsi, %rax
    cmpq %rcx, %rax
    check 5
    leaq pc8(%rip), %rax
    movsbq pc8(%rip), %rsi             # PC8
    addq %rsi, %rax
    cmpq %rcx, %rax
    check 6
    movzbl abs8(%rip), %eax            # R_X86_64_8 against an absolute symbol
    cmpl $0x7f, %eax
    check 7
    movzwl abs16(%rip), %eax           # R_X86_64_16
    cmpl $0xbeef, %eax
    check 8
    movl abs32(%rip), %eax             # R_X86_64_32
    cmpl $0xdeadbeef, %eax
    check 9
    movq $ABSNEG, %rax                 # R_X86_64_32S, sign-extended
    cmpq $-5, %rax
    check 10
    xorl %eax, %eax
    ret
fail:
    movl %edx, %eax
    ret

    .data
    .p2align 3
target:
    .quad 0x1122334455667788, 0, 0
abs64:
    .quad target
abs64_addend:
    .quad target + 16
pc64:
    .quad target - .
pc32:
    .long target - .
abs32:
    .long ABS32
pc16:
    .word near_sym - .
abs16:
    .word ABS16
pc8:
    .byte near_sym - .
abs8:
    .byte ABS8

    .section .note.GNU-stack,"",@progbits
