// Crash reports: the program dies in the way its first argument names, and rjitlink's report
// must name the function, file and line of the fault — the line carrying the marker
// `CRASH(kind)` — and die of the same signal as the native program. `deep` faults three
// JIT-linked frames down, across an object and an archive member; `own-handler` installs its
// own SIGSEGV handler, which replaces rjitlink's: no report. `fork-child`: a child the program
// forks dies of SIGSEGV (it has no helper thread: its report is raw addresses) and the
// program says so. `no-cfi` faults in assembly without unwind information. `stderr-closed`
// is run with standard error closed: the file it opens (its second argument) gets descriptor
// 2, and must hold only what the program writes there, though a forked child and then the
// program crash.
//# with: crash_deep.c no_cfi.s
//# archive: crash_member.c
//# cflags: -g
//# libs: -lpthread
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int first(int *pointer);
void fault_without_cfi(int *pointer);

// Calls assembly without unwind information (no_cfi.s): at -O0 the frame pointers lead on.
__attribute__((noinline)) static void no_cfi_caller(int *pointer) {
    fault_without_cfi(pointer); // CALL(no-cfi)
}

volatile int zero = 0;
int *volatile null_pointer = 0;

static void on_segv(int signal) {
    (void)signal;
    static const char message[] = "own handler\n";
    write(1, message, sizeof message - 1);
    _exit(3);
}

__attribute__((noinline)) static int divide(int x) {
    return x / zero; // CRASH(fpe)
}

static void *thread_main(void *argument) {
    (void)argument;
    *null_pointer = 2; // CRASH(thread)
    return 0;
}

int main(int argc, char **argv) {
    // No core file, wherever the test runs.
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none);
    const char *kind = argc > 1 ? argv[1] : "segv";
    printf("crashing: %s\n", kind);
    fflush(stdout);
    if (!strcmp(kind, "segv")) {
        *null_pointer = 1; // CRASH(segv)
    } else if (!strcmp(kind, "bus")) {
        // A page of a file past its end: SIGBUS.
        FILE *file = tmpfile();
        volatile char *page = mmap(0, 4096, PROT_READ, MAP_SHARED, fileno(file), 0);
        return page[0]; // CRASH(bus)
    } else if (!strcmp(kind, "fpe")) {
        return divide(argc);
    } else if (!strcmp(kind, "abort")) {
        abort(); // CRASH(abort)
    } else if (!strcmp(kind, "trap")) {
        __builtin_trap(); // CRASH(trap)
    } else if (!strcmp(kind, "int3")) {
        __asm__ volatile("int3"); // CRASH(int3)
    } else if (!strcmp(kind, "deep")) {
        return first(null_pointer) + 1; // CALL(main)
    } else if (!strcmp(kind, "no-cfi")) {
        no_cfi_caller(null_pointer);
    } else if (!strcmp(kind, "thread")) {
        pthread_t thread;
        pthread_create(&thread, 0, thread_main, 0);
        pthread_join(thread, 0);
    } else if (!strcmp(kind, "fork-child")) {
        pid_t child = fork();
        if (child == 0)
            *null_pointer = 3;
        int status;
        waitpid(child, &status, 0);
        printf("child: %s\n", WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV ? "SIGSEGV" : "?");
    } else if (!strcmp(kind, "stderr-closed") && argc > 2) {
        int file = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (file < 0 || write(file, "data\n", 5) != 5)
            return 1;
        pid_t child = fork();
        if (child == 0)
            *null_pointer = 5;
        int status;
        waitpid(child, &status, 0);
        printf("child: %s\n", WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV ? "SIGSEGV" : "?");
        fflush(stdout);
        *null_pointer = 6;
    } else if (!strcmp(kind, "own-handler")) {
        signal(SIGSEGV, on_segv);
        *null_pointer = 1;
    }
    return 0;
}
