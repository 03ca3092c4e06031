## with: lib/tls_defs.s
# Each thread-local relocation written out by hand: every way of finding a variable's address
# must agree with the general-dynamic one (__tls_get_addr), and the values read through them
# are printed. Exits with the number of disagreements.
# Covers TLSGD, TLSLD, DTPOFF32, DTPOFF64, GOTTPOFF (mov and add), TPOFF32 (lea, and %fs:
# absolute with an addend), TPOFF64, GOTPC32_TLSDESC and TLSDESC_CALL (for a variable and for
# _TLS_MODULE_BASE_), against global and local symbols in .tdata and .tbss, and against a
# variable of another object; and an R_X86_64_64 inside .tdata. The native link relaxes the
# dynamic sequences to local exec, so they are written in the exact forms ld can rewrite.

# Each macro leaves the address of \sym in the calling thread in %rax.
    .macro gd sym                      # TLSGD: ld's canonical, relaxable sequence
    .byte 0x66
    leaq \sym@tlsgd(%rip), %rdi
    .value 0x6666
    rex64
    call __tls_get_addr@PLT
    .endm
    .macro ld_dtpoff32 sym             # TLSLD, then DTPOFF32 from the module's block
    leaq \sym@tlsld(%rip), %rdi
    call __tls_get_addr@PLT
    leaq \sym@dtpoff(%rax), %rax
    .endm
    .macro dtpoff64 slot               # a DTPOFF64 in .data, as an offset from tvar's:
    gd tvar                            # a block offset is only known to __tls_get_addr,
    subq tvar_dtpoff64(%rip), %rax     # which ld's relaxations (to %fs:0) bypass
    addq \slot(%rip), %rax
    .endm
    .macro ie_mov sym                  # GOTTPOFF in a mov
    movq \sym@gottpoff(%rip), %rax
    addq %fs:0, %rax
    .endm
    .macro ie_add sym                  # GOTTPOFF in an add
    movq %fs:0, %rax
    addq \sym@gottpoff(%rip), %rax
    .endm
    .macro le sym                      # TPOFF32 in a lea
    movq %fs:0, %rax
    leaq \sym@tpoff(%rax), %rax
    .endm
    .macro le64 slot                   # a TPOFF64 held in .data
    movq %fs:0, %rax
    addq \slot(%rip), %rax
    .endm
    .macro desc sym                    # GOTPC32_TLSDESC and TLSDESC_CALL
    leaq \sym@tlsdesc(%rip), %rax
    call *\sym@tlscall(%rax)
    addq %fs:0, %rax
    .endm
    .macro desc_base sym               # local dynamic through _TLS_MODULE_BASE_'s descriptor
    leaq _TLS_MODULE_BASE_@tlsdesc(%rip), %rax
    call *_TLS_MODULE_BASE_@tlscall(%rax)
    addq %fs:0, %rax
    leaq \sym@dtpoff(%rax), %rax
    .endm

    # check "label", way, symbol...: compare the address \way gives with %r12's
    .macro check label, way, args:vararg
    \way \args
    movq %rax, %rsi
    movq %r12, %rdx
    leaq 1f(%rip), %rdi
    call compare
    .section .rodata.str1.1,"aMS",@progbits,1
1:  .string "\label"
    .text
    .endm

    .text
    .globl main
    .type main, @function
main:
    pushq %rbx
    pushq %r12
    pushq %r13                         # the stack is now 16-byte aligned for calls

    gd tvar
    movq %rax, %r12
    check "tvar ld+dtpoff32", ld_dtpoff32, tvar
    xorl %esi, %esi
    cmpq $4096, tvar_dtpoff64(%rip)    # unsigned: an offset into a small block
    setb %sil
    leaq dtpoff64_small(%rip), %rdi
    call show
    check "tvar ie mov", ie_mov, tvar
    check "tvar ie add", ie_add, tvar
    check "tvar le", le, tvar
    check "tvar le64", le64, tvar_tpoff64
    check "tvar desc", desc, tvar
    check "tvar desc module base", desc_base, tvar
    movl %fs:tvar@tpoff, %esi          # TPOFF32 as an %fs: absolute address
    leaq direct_tvar(%rip), %rdi
    call show
    movl %fs:tvar@tpoff+4, %esi        # with an addend: tlocal follows tvar
    leaq direct_tvar_plus_4(%rip), %rdi
    call show

    gd tlocal
    movq %rax, %r12
    check "tlocal ld+dtpoff32", ld_dtpoff32, tlocal
    check "tlocal dtpoff64", dtpoff64, tlocal_dtpoff64
    check "tlocal ie mov", ie_mov, tlocal
    check "tlocal le", le, tlocal
    check "tlocal le64", le64, tlocal_tpoff64
    check "tlocal desc", desc, tlocal
    check "tlocal desc module base", desc_base, tlocal

    movl $0x77, %fs:tzero@tpoff        # written once, read through every other way
    gd tzero
    movq %rax, %r12
    check "tzero ld+dtpoff32", ld_dtpoff32, tzero
    check "tzero ie mov", ie_mov, tzero
    check "tzero dtpoff64", dtpoff64, tzero_dtpoff64
    check "tzero le", le, tzero
    check "tzero desc", desc, tzero
    movl $0x88, %fs:tzero@tpoff+8      # TPOFF32 with an addend, read back with DTPOFF32's
    leaq tzero@tlsld(%rip), %rdi
    call __tls_get_addr@PLT
    movl tzero@dtpoff+8(%rax), %esi
    leaq tzero_plus_8(%rip), %rdi
    call show

    gd ext_tls
    movq %rax, %r12
    check "ext_tls ie mov", ie_mov, ext_tls
    check "ext_tls ie add", ie_add, ext_tls
    check "ext_tls dtpoff64", dtpoff64, ext_tls_dtpoff64
    check "ext_tls desc", desc, ext_tls
    gd ext_zero
    movq %rax, %r12
    check "ext_zero ie mov", ie_mov, ext_zero
    check "ext_zero desc", desc, ext_zero

    gd tpointer                        # an R_X86_64_64 in .tdata: the address of a string
    movq (%rax), %rsi
    leaq pointed_format(%rip), %rdi
    xorl %eax, %eax
    call printf@PLT

    movl failures(%rip), %eax
    popq %r13
    popq %r12
    popq %rbx
    ret
    .size main, .-main

# compare(label, address, reference): print the int at address, and whether the addresses match.
compare:
    subq $8, %rsp
    xorl %ecx, %ecx
    cmpq %rsi, %rdx
    sete %cl
    je 1f
    incl failures(%rip)
1:  movl (%rsi), %edx
    movq %rdi, %rsi
    leaq compare_format(%rip), %rdi
    xorl %eax, %eax
    call printf@PLT
    addq $8, %rsp
    ret

# show(label, value)
show:
    subq $8, %rsp
    movl %esi, %edx
    movq %rdi, %rsi
    leaq show_format(%rip), %rdi
    xorl %eax, %eax
    call printf@PLT
    addq $8, %rsp
    ret

    .section .rodata
compare_format:
    .string "%-26s value %#x, same address %d\n"
show_format:
    .string "%-26s value %#x\n"
pointed_format:
    .string "tpointer points to \"%s\"\n"
direct_tvar:
    .string "tvar %fs:tpoff"
direct_tvar_plus_4:
    .string "tvar+4 %fs:tpoff"
tzero_plus_8:
    .string "tzero+8 dtpoff32"
dtpoff64_small:
    .string "tvar dtpoff64 < 4096"
message:
    .string "a string in .rodata"

    .data
    .p2align 3
tvar_dtpoff64:
    .quad tvar@dtpoff
tlocal_dtpoff64:
    .quad tlocal@dtpoff
tzero_dtpoff64:
    .quad tzero@dtpoff
ext_tls_dtpoff64:
    .quad ext_tls@dtpoff
tvar_tpoff64:
    .quad tvar@tpoff
tlocal_tpoff64:
    .quad tlocal@tpoff

    .bss
failures:
    .long 0

    .section .tdata,"awT",@progbits
    .p2align 3
    .globl tvar
    .type tvar, @object
    .size tvar, 4
tvar:
    .long 0x1234
    .type tlocal, @object
    .size tlocal, 4
tlocal:
    .long 0x5678
    .globl tpointer
    .type tpointer, @object
    .size tpointer, 8
tpointer:
    .quad message

    .section .tbss,"awT",@nobits
    .p2align 4
    .type tzero, @object
    .size tzero, 16
tzero:
    .zero 16

    .section .note.GNU-stack,"",@progbits
