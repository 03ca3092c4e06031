// perf support (tests/corpus/perf.rs): the program says its pid, where its functions are and
// the first bytes of `work`'s code, which the perf map and the jitdump of its process must
// agree with; with a large argument it spends its time in `work`, for `perf record`.
//# cflags: -g
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((noinline)) long work(long n) {
    long sum = 0;
    for (long i = 0; i < n; i++)
        sum += i ^ (sum >> 3); // WORK
    return sum;
}

__attribute__((noinline)) static long helper(long n) {
    return work(n) * 2;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000;
    printf("pid %d\n", (int)getpid());
    printf("work %p\n", (void *)work);
    printf("helper %p\n", (void *)helper);
    printf("main %p\n", (void *)main);
    printf("bytes");
    for (int i = 0; i < 16; i++)
        printf(" %02x", ((const unsigned char *)work)[i]);
    printf("\nresult %ld\n", helper(n));
    return 0;
}
