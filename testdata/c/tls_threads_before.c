// Threads that exist before main first touches thread-local storage: two are started by a
// constructor and wait at a barrier until main has written its own copies. Each still starts
// from the initial image, a thread started by one of them gets a fresh copy too, and no
// thread's writes reach another's.
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

__thread int counter = 5;
__thread char name[16] = "image";
__thread long zeroes[64];

#define EARLY 2
static pthread_t early[EARLY];
static pthread_barrier_t main_wrote, threads_wrote;
static char outputs[EARLY + 1][256];

static int report(char *out, size_t size, const char *who) {
    long sum = 0;
    for (int i = 0; i < 64; i++) sum += zeroes[i];
    return snprintf(out, size, "%s: counter %d name %s zeroes %ld\n", who, counter, name,
                    sum);
}

static void write_all(int n) {
    counter = 100 + n;
    snprintf(name, sizeof name, "thread%d", n % 10);
    zeroes[n] = n;
}

static void *grandchild_main(void *arg) {
    (void)arg;
    report(outputs[EARLY], sizeof outputs[EARLY], "  grandchild start");
    return NULL;
}

static void *early_main(void *arg) {
    int n = (int)(intptr_t)arg;
    pthread_barrier_wait(&main_wrote);
    int length = report(outputs[n], sizeof outputs[n], "  start");
    write_all(n + 1);
    pthread_barrier_wait(&threads_wrote);
    length += report(outputs[n] + length, sizeof outputs[n] - length, "  after writes");
    if (n == 0) {
        pthread_t grandchild;
        pthread_create(&grandchild, NULL, grandchild_main, NULL);
        pthread_join(grandchild, NULL);
        report(outputs[n] + length, sizeof outputs[n] - length, "  after grandchild");
    }
    return NULL;
}

__attribute__((constructor)) static void start_early(void) {
    pthread_barrier_init(&main_wrote, NULL, EARLY + 1);
    pthread_barrier_init(&threads_wrote, NULL, EARLY);
    for (int n = 0; n < EARLY; n++)
        pthread_create(&early[n], NULL, early_main, (void *)(intptr_t)n);
}

int main(void) {
    char buffer[256];
    write_all(9);
    report(buffer, sizeof buffer, "main wrote");
    fputs(buffer, stdout);
    pthread_barrier_wait(&main_wrote);
    for (int n = 0; n < EARLY; n++) {
        pthread_join(early[n], NULL);
        printf("early thread %d\n%s", n, outputs[n]);
        if (n == 0) fputs(outputs[EARLY], stdout);
    }
    report(buffer, sizeof buffer, "main again");
    fputs(buffer, stdout);
    return 0;
}
