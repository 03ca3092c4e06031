// Ends, or uses its standard streams, as its argument says: the executor tests run each way
// natively and over TCP and compare the output and the status.
//
//   exit N        buffered output, then exit(N)
//   _exit N       unbuffered output and some left in stdio's buffer, then _exit(N)
//   exec          buffered output flushed, then exec /bin/sh, which exits 3
//   signal        output, then killed by SIGABRT
//   thread-exit   a second thread calls exit(5) while main waits
//   stdin         reads all of stdin, prints its length and a checksum
//   large N       writes N MiB to stdout and a line to stderr
//   closed-pipe   writes to stdout until a write fails (SIGPIPE ends it first)
//   sleep         prints its pid and its child's, then both sleep
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *exit_from_thread(void *arg) {
    (void)arg;
    printf("thread exits\n");
    exit(5);
}

int main(int argc, char **argv) {
    const char *how = argc > 1 ? argv[1] : "exit";
    int n = argc > 2 ? atoi(argv[2]) : 0;
    if (!strcmp(how, "exit")) {
        printf("exiting with %d\n", n);
        exit(n);
    }
    if (!strcmp(how, "_exit")) {
        static const char line[] = "written before _exit\n";
        write(1, line, sizeof line - 1);
        printf("lost in stdio's buffer");
        _exit(n);
    }
    if (!strcmp(how, "exec")) {
        printf("before exec\n");
        fflush(stdout);
        execl("/bin/sh", "sh", "-c", "echo from exec; exit 3", (char *)0);
        return 99;
    }
    if (!strcmp(how, "signal")) {
        printf("about to abort\n");
        fflush(stdout);
        abort();
    }
    if (!strcmp(how, "thread-exit")) {
        pthread_t thread;
        pthread_create(&thread, 0, exit_from_thread, 0);
        for (;;)
            pause();
    }
    if (!strcmp(how, "stdin")) {
        unsigned long length = 0, sum = 0;
        int c;
        while ((c = getchar()) != EOF) {
            length++;
            sum = sum * 31 + (unsigned char)c;
        }
        printf("read %lu bytes, checksum %lu\n", length, sum);
        return 0;
    }
    if (!strcmp(how, "large")) {
        static char block[1 << 20];
        for (size_t i = 0; i < sizeof block; i++)
            block[i] = 'a' + i % 26;
        for (int i = 0; i < n; i++) {
            block[0] = '0' + i % 10;
            fwrite(block, 1, sizeof block, stdout);
        }
        fprintf(stderr, "wrote %d MiB\n", n);
        return 0;
    }
    if (!strcmp(how, "closed-pipe")) {
        static char block[4096];
        memset(block, 'x', sizeof block);
        for (;;)
            if (write(1, block, sizeof block) < 0) {
                perror("write");
                return 42;
            }
    }
    if (!strcmp(how, "sleep")) {
        pid_t child = fork();
        if (child == 0) {
            sleep(60);
            _exit(0);
        }
        printf("%d %d\n", (int)getpid(), (int)child);
        fflush(stdout);
        sleep(60);
        return 0;
    }
    fprintf(stderr, "unknown ending %s\n", how);
    return 100;
}
