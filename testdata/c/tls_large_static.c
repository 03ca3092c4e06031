// More static TLS than glibc keeps spare for modules loaded after startup (its surplus is
// about 1.5 KiB), within the 16 KiB rjitlink asks for: an 8 KiB .tbss array and a 4 KiB
// initialised .tdata array, read through initial exec, in main and in threads that each fill
// their own copy.
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#define IE __attribute__((tls_model("initial-exec")))
#define BIG (8 * 1024)
#define IMAGE 1024

__thread unsigned char big[BIG] IE;
__thread int image[IMAGE] IE = {[0 ... IMAGE - 2] = 3, [IMAGE - 1] = 7};
__thread int after IE = 11;

static unsigned long sums(char *out, size_t size, const char *who) {
    unsigned long big_sum = 0, image_sum = 0;
    for (int i = 0; i < BIG; i++) big_sum += big[i];
    for (int i = 0; i < IMAGE; i++) image_sum += image[i];
    return snprintf(out, size, "%s: big %lu image %lu last %d after %d\n", who, big_sum,
                    image_sum, image[IMAGE - 1], after);
}

static void fill(int n) {
    for (int i = 0; i < BIG; i++) big[i] = (unsigned char)(i * n);
    for (int i = 0; i < IMAGE; i++) image[i] += n;
    after = n;
}

#define THREADS 3
static pthread_barrier_t filled;
static char outputs[THREADS][2][128];

static void *thread_main(void *arg) {
    int n = (int)(intptr_t)arg;
    sums(outputs[n][0], sizeof outputs[n][0], "  start");
    fill(n + 1);
    pthread_barrier_wait(&filled);
    sums(outputs[n][1], sizeof outputs[n][1], "  after fill");
    return NULL;
}

int main(void) {
    char buffer[128];
    sums(buffer, sizeof buffer, "main");
    fputs(buffer, stdout);
    fill(9);
    pthread_t threads[THREADS];
    pthread_barrier_init(&filled, NULL, THREADS);
    for (int n = 0; n < THREADS; n++)
        pthread_create(&threads[n], NULL, thread_main, (void *)(intptr_t)n);
    for (int n = 0; n < THREADS; n++) {
        pthread_join(threads[n], NULL);
        printf("thread %d\n%s%s", n, outputs[n][0], outputs[n][1]);
    }
    pthread_barrier_destroy(&filled);
    sums(buffer, sizeof buffer, "main again");
    fputs(buffer, stdout);
    return 0;
}
