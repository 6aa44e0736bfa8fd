package testenv

import "runtime"

// HeapAfterGC is the heap in use after two collections (the second frees
// what the first's finalizers let go): what a test measures as held by
// data it keeps alive.
func HeapAfterGC() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
