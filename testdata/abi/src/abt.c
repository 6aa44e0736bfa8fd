/* libabt: a tiny C library whose exported interface the test cases vary
 * with preprocessor switches and version scripts. It needs no libc, so the
 * same source links for x86_64 and, with -m32 -nostdlib, for i686. */
struct abt_config {
	int level;
	int flags;
#ifdef ABT_GROWN
	int extra; /* the struct grows: the exported object's size changes */
#endif
};

struct abt_config abt_config = { 1, 0 };
int abt_table[4] = { 1, 2, 3, 4 };

int abt_a(int x) { return x + abt_config.level; }
int abt_b(int x) { return x * 2; }
int abt_c(int x) { return x - abt_table[0]; }
#ifdef ABT_D
int abt_d(int x) { return x ^ 1; }
#endif
