// Thread-local variables of tls_models.c defined in a second object, read here with the
// build's default model; main's variables read here with a model other than main's own.
__thread int other_counter = 100;
__thread int other_array[4] = {30, 31, 32, 33};
static __thread int other_bumps;
static __thread const char *other_name = "other";

extern __thread int gd_int __attribute__((tls_model("initial-exec")));
extern __thread int *ie_pointer __attribute__((tls_model("global-dynamic")));

int other_sum(void) {
    int sum = other_counter + other_bumps + other_name[0];
    for (int i = 0; i < 4; i++) sum += other_array[i];
    return sum;
}

void other_bump(int by) { other_bumps += by; }

int *other_counter_address(void) { return &other_counter; }

int *gd_int_address_by_ie(void) { return &gd_int; }

int *ie_pointer_target_by_gd(void) { return ie_pointer; }
