/* libtwo_a and libtwo_b: two unversioned libraries of one package. */
#ifdef TWO_A
int two_a(int x) { return x + 1; }
#else
int two_b(int x) { return x + 2; }
#endif
