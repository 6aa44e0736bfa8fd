package cache_test

import (
	"context"
	"fmt"
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
