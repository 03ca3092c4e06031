// A library with TLS_BYTES of initial-exec TLS: loaded after start, it needs that much of the
// process's static TLS surplus (glibc keeps about 1.5 KiB of it free by default).
#ifndef TLS_BYTES
#define TLS_BYTES 8000
#endif

__attribute__((tls_model("initial-exec"))) __thread char static_tls_block[TLS_BYTES];

int static_tls_touch(int i) {
    static_tls_block[i] = (char)i;
    return static_tls_block[i] + (int)sizeof static_tls_block;
}
