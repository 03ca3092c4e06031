int chain_third(int);
int chain_second_calls;
int chain_second(int x) { chain_second_calls++; return chain_third(x + 10) * 3; }
