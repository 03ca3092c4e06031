## libs: -lstdc++
## expect-error: .text+0x5: R_X86_64_TPOFF32 against `std::__once_call` (_ZSt11__once_call): local-exec and local-dynamic accesses reach only this unit's thread-local block, and a shared library defines the symbol
# Local exec (TPOFF32) against a thread-local variable of a shared library (std::__once_call
# in libstdc++): its offset from the thread pointer is not fixed at link time. ld refuses it too.
    .text
    .globl main
main:
    movq %fs:_ZSt11__once_call@tpoff, %rax
    xorl %eax, %eax
    ret

    .section .note.GNU-stack,"",@progbits
