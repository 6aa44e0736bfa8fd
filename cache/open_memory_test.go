package cache_test

import (
	"testing"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
)

// TestBadgerOpenHeap: a store opened with the default options adds at
// most 8 MiB to the Go heap. Badger allocates its memtable's arena whole
// at Open, and the collector counts it as live data whatever of it is
// used: with 16 MiB memtables it was 21 MB, which let the heap grow by as
// much again in garbage before each collection.
func TestBadgerOpenHeap(t *testing.T) {
	before := testenv.HeapAfterGC()
	s, err := cache.OpenBadger(t.TempDir(), cache.DefaultBadgerOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	added := int64(testenv.HeapAfterGC()) - int64(before)
	t.Logf("OpenBadger added %d KiB to the heap", added>>10)
	if added > 8<<20 {
		t.Errorf("OpenBadger with the default options added %d MiB to the heap, want at most 8", added>>20)
	}
}
