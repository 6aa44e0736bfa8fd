// libabcxx: a C++ library whose function signature changes (the mangled
// name is the exported symbol).
namespace abcxx {
#ifdef CXX_LONG
long scale(long x) { return x * 3; }
#else
int scale(int x) { return x * 3; }
#endif
struct Counter {
	int n = 0;
	int next() { return ++n; }
};
int count_twice() { Counter c; c.next(); return c.next(); }
}
