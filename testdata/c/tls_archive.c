//# archive: lib/tls_archive_counter.c lib/tls_archive_table.c lib/tls_archive_unused.c
// Thread-local storage defined in archive members: one member is loaded for a function that
// uses its own TLS, one only because main reads its thread-local variable (an STT_TLS symbol
// in the archive index). tls_archive_unused.c defines a thread-local clash and must stay out.
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

int archive_next(void);
extern __thread int archive_table[4];
extern __thread const char *archive_label;
__thread int clashes_if_loaded = 3;

#define THREADS 2
static char outputs[THREADS][256];

static int report(char *out, size_t size, const char *who) {
    int first = archive_next();
    int second = archive_next();
    return snprintf(out, size, "%s: next %d %d table %d %d %d %d label %s clash %d\n", who,
                    first, second, archive_table[0], archive_table[1], archive_table[2],
                    archive_table[3], archive_label, clashes_if_loaded);
}

static void *thread_main(void *arg) {
    int n = (int)(intptr_t)arg;
    int length = report(outputs[n], sizeof outputs[n], "  start");
    archive_table[n] = 50 + n;
    archive_label = "changed";
    report(outputs[n] + length, sizeof outputs[n] - length, "  after writes");
    return NULL;
}

int main(void) {
    char buffer[256];
    report(buffer, sizeof buffer, "main");
    fputs(buffer, stdout);
    archive_table[3] = 99;
    archive_label = "main's";
    for (int n = 0; n < THREADS; n++) {
        pthread_t thread;
        pthread_create(&thread, NULL, thread_main, (void *)(intptr_t)n);
        pthread_join(thread, NULL);
        printf("thread %d\n%s", n, outputs[n]);
    }
    report(buffer, sizeof buffer, "main again");
    fputs(buffer, stdout);
    return 0;
}
