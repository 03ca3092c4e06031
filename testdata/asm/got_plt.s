# GOT and PLT relocations, including ld's GOT-load relaxations, each checked against an
# independent computation. Exits 0 only if all are right; otherwise with the failed check.
# Covers REX_GOTPCRELX, GOTPCRELX (mov, call, jmp), GOTPCREL64, GOTPC32, GOTPC64, GOTOFF64,
# GOT32, GOT64, GOTPLT64, PLTOFF64, PLT32, SIZE32, SIZE64 and NONE.

    .macro check code
    movl $\code, %edx
    jne fail
    .endm

    .text
    .globl main
main:
    pushq %rbx
    pushq %r12
    subq $8, %rsp
    leaq target(%rip), %rcx
1:  movq target@GOTPCREL(%rip), %rax       # REX_GOTPCRELX, relaxed to lea
    cmpq %rcx, %rax
    check 1
    cmpb $0x8d, 1b+1(%rip)                 # the mov became a lea
    check 2
2:  call *func42@GOTPCREL(%rip)            # GOTPCRELX call, relaxed to addr32 call
    cmpl $42, %eax
    check 3
    cmpb $0x67, 2b(%rip)
    check 4
    call tail_caller                       # GOTPCRELX jmp, relaxed to jmp; nop
    cmpl $42, %eax
    check 5
    cmpb $0xe9, tail_caller(%rip)
    check 6
    leaq target(%rip), %rcx
    xorl %eax, %eax
    addq target@GOTPCREL(%rip), %rax       # REX_GOTPCRELX that cannot become lea: uses the GOT
    cmpq %rcx, %rax
    check 7
    movq strlen@GOTPCREL(%rip), %rax       # an external symbol through the GOT
    cmpq strlen_address(%rip), %rax        # R_X86_64_64 against the same symbol
    check 8
    leaq hello(%rip), %rdi
    call strlen@PLT                        # PLT32 to libc
    cmpq $5, %rax
    check 9
    leaq gotpcrel64(%rip), %rax
    addq gotpcrel64(%rip), %rax            # GOTPCREL64: the slot's address
    movq (%rax), %rax
    leaq target(%rip), %rcx
    cmpq %rcx, %rax
    check 10
    leaq _GLOBAL_OFFSET_TABLE_(%rip), %rbx # GOTPC32: rbx = GOT base
    movabsq $target@GOTOFF, %rax           # GOTOFF64
    addq %rbx, %rax
    cmpq %rcx, %rax
    check 11
3:  leaq 3b(%rip), %r12
    movabsq $_GLOBAL_OFFSET_TABLE_-3b, %r11   # GOTPC64
    addq %r11, %r12
    cmpq %rbx, %r12
    check 12
    movabsq $target@GOT, %rax              # GOT64: slot offset from the GOT base
    movq (%rbx,%rax), %rax
    cmpq %rcx, %rax
    check 13
    movslq got32(%rip), %rax               # GOT32
    movq (%rbx,%rax), %rax
    cmpq %rcx, %rax
    check 14
    movabsq $target@GOTPLT, %rax           # GOTPLT64
    movq (%rbx,%rax), %rax
    cmpq %rcx, %rax
    check 15
    movabsq $func42@PLTOFF, %rax           # PLTOFF64, defined here
    addq %rbx, %rax
    call *%rax
    cmpl $42, %eax
    check 16
    movabsq $strlen@PLTOFF, %rax           # PLTOFF64 to libc: through a stub
    addq %rbx, %rax
    leaq hello(%rip), %rdi
    call *%rax
    cmpq $5, %rax
    check 17
    movl $sized@SIZE, %eax                 # SIZE32
    cmpl $24, %eax
    check 18
    movabsq $sized@SIZE+8, %rax            # SIZE64 with an addend
    cmpq $32, %rax
    check 19
    cmpl $0x12345678, none_field(%rip)     # R_X86_64_NONE changes nothing
    check 20
    xorl %eax, %eax
done:
    addq $8, %rsp
    popq %r12
    popq %rbx
    ret
fail:
    movl %edx, %eax
    jmp done

tail_caller:
    jmp *func42@GOTPCREL(%rip)

    .globl func42
    .type func42, @function
func42:
    movl $42, %eax
    ret

    .section .rodata
hello:
    .string "hello"

    .data
    .p2align 3
    .globl target
    .type target, @object
target:
    .quad 0x1122334455667788
strlen_address:
    .quad strlen
gotpcrel64:
    .quad target@GOTPCREL
got32:
    .long target@GOT
none_field:
    .reloc none_field, R_X86_64_NONE, target
    .long 0x12345678
    .globl sized
    .type sized, @object
    .size sized, 24
sized:
    .zero 24

    .section .note.GNU-stack,"",@progbits
