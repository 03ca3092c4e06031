// A thread calls exit(6) while main blocks: the exit handlers run once, in that thread, and
// 6 is the program's status.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static pthread_t main_thread;

static void handler(void) {
    printf("exit handler in the %s thread\n", pthread_equal(pthread_self(), main_thread) ? "main" : "other");
}

static void *leave(void *unused) {
    (void)unused;
    printf("thread calls exit(6)\n");
    exit(6);
}

int main(void) {
    main_thread = pthread_self();
    atexit(handler);
    pthread_t thread;
    if (pthread_create(&thread, NULL, leave, NULL) != 0)
        return 1;
    for (;;)
        pause();
}
