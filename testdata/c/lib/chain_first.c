int chain_second(int);
int chain_first(int x) { return chain_second(x * 2) + 1; }
