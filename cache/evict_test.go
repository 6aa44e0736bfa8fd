package cache_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/cache/cachetest"
)

// TestBadgerGCShrinks checks what an admin checks with du: after deleting
// most objects and running GC, the badger directory is about as small as
// what is left in it. Without the compaction RunGC starts with, badger
// knows of no garbage (the deletions sit in the memtable) and nothing
// shrinks; without small enough value-log files, all of it sits in the one
// file badger never rewrites.
func TestBadgerGCShrinks(t *testing.T) {
	ctx := context.Background()
	const (
		objects = 48
		objSize = 1 << 20 // 48 MiB in all
		keep    = 6       // 6 MiB live after the deletion
		vlog    = 4 << 20
	)
	opt := testOptions()
	opt.ChunkSize = 256 << 10
	opt.ValueLogFileSize = vlog
	dir := t.TempDir()
	s := openBadger(t, dir, opt)
	defer s.Close()
	for i := range objects {
		cachetest.Put(t, s, fmt.Sprintf("obj/%02d", i), cache.Meta{}, cachetest.Bytes(uint64(i), objSize), 0)
	}
	before := diskUsage(t, s)
	if before < objects*objSize {
		t.Fatalf("disk usage %d after writing %d bytes: not measuring what du does", before, objects*objSize)
	}
	// Delete all but every 8th object, so that every value-log file keeps
	// some live data and must be rewritten, not just dropped.
	for i := range objects {
		if i%(objects/keep) != 0 {
			if err := s.Delete(ctx, fmt.Sprintf("obj/%02d", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	start := time.Now()
	gctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := s.RunGC(gctx); err != nil {
		t.Fatalf("RunGC: %v", err)
	}
	after := diskUsage(t, s)
	t.Logf("disk usage: %d MiB written, %d MiB after deleting all but %d MiB and GC (%v)",
		before>>20, after>>20, keep*objSize>>20, time.Since(start).Round(time.Millisecond))
	// Live data, at most GCFinalDiscardRatio garbage in sealed files, the
	// file being written, and a few MiB of LSM, memtable and discard stats.
	limit := int64(float64(keep*objSize)/(1-opt.GCFinalDiscardRatio)) + 2*vlog + 4<<20
	if after > limit {
		t.Errorf("badger directory takes %d bytes after GC, want at most %d (it took %d before)", after, limit, before)
	}
	for i := 0; i < objects; i += objects / keep {
		got, _ := cachetest.ReadAll(t, s, fmt.Sprintf("obj/%02d", i))
		cachetest.Equal(t, "object kept across GC", got, cachetest.Bytes(uint64(i), objSize))
	}

	// A second GC with nothing deleted meanwhile is cheap and keeps the size.
	if err := s.RunGC(gctx); err != nil {
		t.Fatalf("second RunGC: %v", err)
	}
	if again := diskUsage(t, s); again > limit {
		t.Errorf("badger directory grew to %d bytes on a second GC", again)
	}
}

// TestBadgerGCShrinksAfterReopen checks that garbage left by a previous run
// (deleted before a restart) is reclaimed too.
func TestBadgerGCShrinksAfterReopen(t *testing.T) {
	ctx := context.Background()
	opt := testOptions()
	opt.ChunkSize = 256 << 10
	opt.ValueLogFileSize = 2 << 20
	dir := t.TempDir()
	s := openBadger(t, dir, opt)
	for i := range 16 {
		cachetest.Put(t, s, fmt.Sprintf("obj/%02d", i), cache.Meta{}, cachetest.Bytes(uint64(i), 1<<20), 0)
	}
	for i := range 15 {
		if err := s.Delete(ctx, fmt.Sprintf("obj/%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = openBadger(t, dir, opt)
	defer s.Close()
	before := diskUsage(t, s)
	if err := s.RunGC(ctx); err != nil {
		t.Fatal(err)
	}
	after := diskUsage(t, s)
	t.Logf("disk usage after reopen: %d KiB before GC, %d KiB after", before>>10, after>>10)
	if limit := int64(1<<20) + 3*opt.ValueLogFileSize + 4<<20; after > limit {
		t.Errorf("badger directory takes %d bytes after GC, want at most %d", after, limit)
	}
}

func diskUsage(t *testing.T, s *cache.Badger) int64 {
	t.Helper()
	n, err := s.DiskUsage()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBadgerGCUnderLoad checks that GC hands deleted space back while
// clients keep reading: one goroutine loops Get/Read/Close over the kept
// objects, and one object deleted with the rest is held open throughout.
// Within two GC rounds the badger directory falls under the bound the README
// documents (plus the held object, whose space waits for its Close), and
// after that Close one more round takes it back too.
func TestBadgerGCUnderLoad(t *testing.T) {
	ctx := context.Background()
	const (
		objects = 48
		objSize = 1 << 20
		keep    = 6
		vlog    = 4 << 20
	)
	opt := testOptions()
	opt.ChunkSize = 256 << 10
	opt.ValueLogFileSize = vlog
	s := openBadger(t, t.TempDir(), opt)
	defer s.Close()
	key := func(i int) string { return fmt.Sprintf("obj/%02d", i) }
	kept := func(i int) bool { return i%(objects/keep) == 0 }
	for i := range objects {
		cachetest.Put(t, s, key(i), cache.Meta{}, cachetest.Bytes(uint64(i), objSize), 0)
	}

	stop := make(chan struct{})
	readerDone := make(chan error, 1)
	var reads atomic.Int64
	go func() {
		buf := make([]byte, 32<<10)
		for n := 0; ; n++ {
			select {
			case <-stop:
				readerDone <- nil
				return
			default:
			}
			i := (n % keep) * (objects / keep)
			o, err := s.Get(ctx, key(i))
			if err != nil {
				readerDone <- err
				return
			}
			var got bytes.Buffer
			_, err = io.CopyBuffer(&got, struct{ io.Reader }{o}, buf)
			o.Close()
			if err == nil && !bytes.Equal(got.Bytes(), cachetest.Bytes(uint64(i), objSize)) {
				err = fmt.Errorf("%s: wrong bytes", key(i))
			}
			if err != nil {
				readerDone <- err
				return
			}
			reads.Add(1)
		}
	}()
	const heldIndex = 1 // deleted below, open throughout
	held, err := s.Get(ctx, key(heldIndex))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	for i := range objects {
		if !kept(i) {
			if err := s.Delete(ctx, key(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	limit := int64(float64(keep*objSize)/(1-opt.GCFinalDiscardRatio)) + 2*vlog + 4<<20
	for round := 1; round <= 2; round++ {
		gctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := s.RunGC(gctx)
		cancel()
		if err != nil {
			t.Fatalf("GC round %d with clients reading: %v", round, err)
		}
	}
	after := diskUsage(t, s)
	t.Logf("after two GC rounds with clients reading (%d reads so far): %d MiB on disk, bound %d MiB + the held object",
		reads.Load(), after>>20, limit>>20)
	if after > limit+objSize {
		t.Errorf("badger directory takes %d bytes after two GC rounds, want at most %d", after, limit+objSize)
	}
	got, err := io.ReadAll(held)
	if err != nil {
		t.Fatal(err)
	}
	cachetest.Equal(t, "object deleted while held open", got, cachetest.Bytes(heldIndex, objSize))
	held.Close()
	s.Settle()
	if err := s.RunGC(ctx); err != nil {
		t.Fatal(err)
	}
	if after := diskUsage(t, s); after > limit {
		t.Errorf("badger directory takes %d bytes after the held object closed and GC, want at most %d", after, limit)
	}
	close(stop)
	if err := <-readerDone; err != nil {
		t.Fatalf("reader: %v", err)
	}
	if reads.Load() == 0 {
		t.Fatal("the reader never completed a read: the test measured nothing")
	}
	wantChunkKeys(t, s, keep*objSize/opt.ChunkSize)
}
