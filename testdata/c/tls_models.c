//# with: lib/tls_models_other.c
// __thread variables in .tdata (with initialisers, one a pointer to a global: a relocation
// inside the TLS image) and .tbss, read through each access model the attribute forces, from
// main and from threads. Each thread starts from the initial image, whatever main wrote first,
// and its writes stay its own: the threads write, wait for each other, then read back.
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define GD __attribute__((tls_model("global-dynamic")))
#define LD __attribute__((tls_model("local-dynamic")))
#define IE __attribute__((tls_model("initial-exec")))
#define LE __attribute__((tls_model("local-exec")))

struct record { int id; long weight; char tag[8]; };

int global_target = 42;
static int static_target = 7;

__thread int gd_int GD = 11;
__thread char gd_zero[16] GD;
static __thread int ld_array[4] LD = {1, 2, 3, 4};
static __thread long ld_zero LD;
__thread struct record ie_record IE = {5, 500, "five"};
__thread int *ie_pointer IE = &global_target;
__thread const char *le_name LE = "initial";
static __thread int *le_pointer LE = &static_target;
static __thread int le_zero[8] LE;
// The TLS segment's alignment must be kept in every thread's block.
__thread char aligned_block[64] __attribute__((aligned(64))) IE = "aligned";

// Defined in lib/tls_models_other.c.
extern __thread int other_counter IE;
extern __thread int other_array[4] GD;
int other_sum(void);
void other_bump(int by);
int *other_counter_address(void);
int *gd_int_address_by_ie(void);
int *ie_pointer_target_by_gd(void);

static int sum_zero(void) {
    int sum = ld_zero;
    for (int i = 0; i < 16; i++) sum += gd_zero[i];
    for (int i = 0; i < 8; i++) sum += le_zero[i];
    return sum;
}

static int report(char *out, size_t size, const char *who) {
    return snprintf(out, size,
                    "%s: gd_int=%d ld_array=%d,%d,%d,%d zero_sum=%d record=%d/%ld/%s "
                    "*ie_pointer=%d le_name=%s *le_pointer=%d other_counter=%d "
                    "other_array[2]=%d other_sum=%d aligned=%d/%s same_address=%d%d%d\n",
                    who, gd_int, ld_array[0], ld_array[1], ld_array[2], ld_array[3],
                    sum_zero(), ie_record.id, ie_record.weight, ie_record.tag, *ie_pointer,
                    le_name, *le_pointer, other_counter, other_array[2], other_sum(),
                    (int)((uintptr_t)aligned_block % 64), aligned_block,
                    &other_counter == other_counter_address(), &gd_int == gd_int_address_by_ie(),
                    ie_pointer == ie_pointer_target_by_gd());
}

static void write_all(int n, const char *name, int *target) {
    gd_int = 100 * n;
    for (int i = 0; i < 4; i++) ld_array[i] = 10 * n + i;
    ld_zero = n;
    gd_zero[15] = n;
    le_zero[7] = n;
    ie_record.id = n;
    ie_record.weight = 1000 * n;
    snprintf(ie_record.tag, sizeof ie_record.tag, "t%d", n % 10);
    ie_pointer = target;
    *target = n;
    le_name = name;
    le_pointer = target;
    other_counter = 200 + n;
    other_array[2] = 300 + n;
    other_bump(n);
    snprintf(aligned_block, sizeof aligned_block, "block%d", n);
}

#define THREADS 3
static pthread_barrier_t written;
static char outputs[THREADS][2][1024];
static const char *names[THREADS] = {"thread0", "thread1", "thread2"};
static int *main_gd_int;

static void *thread_main(void *arg) {
    int n = (int)(intptr_t)arg;
    int own_target = -1;
    report(outputs[n][0], sizeof outputs[n][0], "  start");
    write_all(n + 1, names[n], &own_target);
    pthread_barrier_wait(&written);
    int length = report(outputs[n][1], sizeof outputs[n][1], "  after writes");
    snprintf(outputs[n][1] + length, sizeof outputs[n][1] - length,
             "  own copy: %d\n", &gd_int != main_gd_int);
    return NULL;
}

int main(void) {
    char buffer[1024];
    report(buffer, sizeof buffer, "main initial");
    fputs(buffer, stdout);
    main_gd_int = &gd_int;
    int main_target = 0;
    write_all(9, "main", &main_target);

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
    printf("global_target=%d static_target=%d main_target=%d\n", global_target, static_target,
           main_target);
    return 0;
}
