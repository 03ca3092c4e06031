# A function in assembly that leaves out the .note.GNU-stack section (see
# ../stack_note_missing.c): it is the object's only section besides the usual empty ones.
    .text
    .globl no_stack_note_answer
    .type no_stack_note_answer, @function
no_stack_note_answer:
    mov $42, %eax
    ret
