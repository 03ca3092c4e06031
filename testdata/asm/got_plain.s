## asflags: -mrelax-relocations=no
# R_X86_64_GOTPCREL (assembled without relaxable relocations): loads go through the GOT,
# for a symbol of the image and for one of libc. Exits 0 only if both are right.

    .text
    .globl main
main:
    leaq value(%rip), %rcx
    movq value@GOTPCREL(%rip), %rax        # GOTPCREL
    cmpq %rcx, %rax
    jne 1f
    movq (%rax), %rax
    cmpq $77, %rax
    jne 2f
    movq strlen@GOTPCREL(%rip), %rax       # GOTPCREL to libc
    cmpq strlen_address(%rip), %rax
    jne 3f
    xorl %eax, %eax
    ret
1:  movl $1, %eax
    ret
2:  movl $2, %eax
    ret
3:  movl $3, %eax
    ret

    .data
    .globl value
value:
    .quad 77
strlen_address:
    .quad strlen

    .section .note.GNU-stack,"",@progbits
