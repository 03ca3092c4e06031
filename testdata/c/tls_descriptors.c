//# cflags: -mtls-dialect=gnu2
//# with: lib/tls_descriptors_other.c
// Thread-local variables reached through TLS descriptors (-mtls-dialect=gnu2): the dynamic
// models become a call through a descriptor, and local-dynamic asks for the descriptor of
// _TLS_MODULE_BASE_. Each thread sees its own copy, initialised from the image.
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#define GD __attribute__((tls_model("global-dynamic")))
#define LD __attribute__((tls_model("local-dynamic")))

int global_target = 42;

__thread int desc_int GD = 17;
__thread int *desc_pointer GD = &global_target;
__thread long desc_zero[32] GD;
static __thread int local_first LD = 1;
static __thread char local_text[12] LD = "local";
static __thread long local_zero LD;
// Left to the build's default model.
__thread int default_int = 5;

// Defined in lib/tls_descriptors_other.c.
extern __thread int other_value GD;
extern __thread int other_zero[4];
int *other_value_address(void);
int *desc_int_address(void);

static int report(char *out, size_t size, const char *who) {
    long zero = local_zero;
    for (int i = 0; i < 32; i++) zero += desc_zero[i];
    for (int i = 0; i < 4; i++) zero += other_zero[i];
    return snprintf(out, size,
                    "%s: desc_int=%d *desc_pointer=%d zero=%ld local=%d/%s default_int=%d "
                    "other_value=%d same_address=%d%d\n",
                    who, desc_int, *desc_pointer, zero, local_first, local_text, default_int,
                    other_value, &other_value == other_value_address(),
                    &desc_int == desc_int_address());
}

static void write_all(int n, int *target) {
    desc_int = 100 + n;
    desc_pointer = target;
    *target = n;
    desc_zero[31] = n;
    local_first = 10 + n;
    snprintf(local_text, sizeof local_text, "local%d", n % 10);
    local_zero = n;
    default_int = 20 + n;
    other_value = 30 + n;
    other_zero[3] = n;
}

#define THREADS 3
static pthread_barrier_t written;
static char outputs[THREADS][2][512];

static void *thread_main(void *arg) {
    int n = (int)(intptr_t)arg;
    int own_target;
    report(outputs[n][0], sizeof outputs[n][0], "  start");
    write_all(n + 1, &own_target);
    pthread_barrier_wait(&written);
    report(outputs[n][1], sizeof outputs[n][1], "  after writes");
    return NULL;
}

int main(void) {
    char buffer[512];
    report(buffer, sizeof buffer, "main initial");
    fputs(buffer, stdout);
    int main_target;
    write_all(9, &main_target);

    pthread_t threads[THREADS];
    pthread_barrier_init(&written, NULL, THREADS);
    for (int n = 0; n < THREADS; n++)
        pthread_create(&threads[n], NULL, thread_main, (void *)(intptr_t)n);
    for (int n = 0; n < THREADS; n++) {
        pthread_join(threads[n], NULL);
        printf("thread %d\n%s%s", n, outputs[n][0], outputs[n][1]);
    }
    pthread_barrier_destroy(&written);

    report(buffer, sizeof buffer, "main after threads");
    fputs(buffer, stdout);
    printf("global_target=%d\n", global_target);
    return 0;
}
