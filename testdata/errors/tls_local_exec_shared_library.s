## libs: -lstdc++
## expect-error: TODO
# Local exec (TPOFF32) against a thread-local variable of a shared library (std::__once_call
# in libstdc++): its offset from the thread pointer is not fixed at link time. ld refuses it too.
    .text
    .globl main
main:
    movq %fs:_ZSt11__once_call@tpoff, %rax
    xorl %eax, %eax
    ret

    .section .note.GNU-stack,"",@progbits
