extern int chain_second_calls;
int chain_third(int x) { return x - chain_second_calls; }
