## with: lib/far_away.s
## expect-error: got_slot_not_loaded.o: symbol foo needs a GOT slot but lies in a section that is not loaded
# A GOT load of a symbol in a section that is not loaded (not SHF_ALLOC): its slot would hold
# no address. The same object also makes a relocation overflow in its code; the GOT's error is
# the one reported, as the GOT is filled before the sections are relocated.
    .section .notloaded,"",@progbits
    .globl foo
foo:
    .quad 0
    .text
    .globl main
main:
    xorl %eax, %eax
    # add cannot be relaxed to a lea: the reference needs its slot.
    addq foo@GOTPCREL(%rip), %rax
    leaq FAR_AWAY(%rip), %rax
    xorl %eax, %eax
    ret
    .section .note.GNU-stack,"",@progbits
