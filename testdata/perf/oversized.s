# perf support (tests/corpus/perf.rs): `main` claims 1 GiB (`.size`) in a .text section of a
# few bytes, as a damaged or hand-written object may; ld links it. The perf map and the
# jitdump must describe only the bytes the section holds (the jitdump copies them), and the
# program says its pid, whose files they are.
	.text
	.globl main
	.type main, @function
main:
	pushq %rbx
	call getpid@PLT
	leaq format(%rip), %rdi
	movl %eax, %esi
	xorl %eax, %eax
	call printf@PLT
	xorl %eax, %eax
	popq %rbx
	ret
	.size main, 0x40000000

	.section .rodata
format:
	.string "pid %d\n"

	.section .note.GNU-stack,"",@progbits
