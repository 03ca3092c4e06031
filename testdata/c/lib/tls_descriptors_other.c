// Thread-local variables of tls_descriptors.c in a second object, and main's desc_int reached
// from here through its own descriptor.
__thread int other_value = 3;
__thread int other_zero[4];

extern __thread int desc_int __attribute__((tls_model("global-dynamic")));

int *other_value_address(void) { return &other_value; }

int *desc_int_address(void) { return &desc_int; }
