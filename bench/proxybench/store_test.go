package proxybench

import (
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/dnfproxy/dnfproxy/cache"
)

// BenchmarkBadgerWrite isolates the store's share of a cold fill: one
// large object written in 256 KiB pieces (the fill loop's read size) into a
// fresh badger store, committed. Compare its MB/s with
// BenchmarkLargeCold/Direct: a fill cannot be faster than this.
func BenchmarkBadgerWrite(b *testing.B) {
	size := largeSize(b)
	piece := make([]byte, 256<<10)
	if _, err := io.ReadFull(rand.Reader, piece); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	for b.Loop() {
		b.StopTimer()
		store, err := cache.OpenBadger(filepath.Join(b.TempDir(), "cache"), badgerOptions(b))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		w, err := store.Create(context.Background(), "k", cache.Meta{})
		if err != nil {
			b.Fatal(err)
		}
		for off := int64(0); off < size; off += int64(len(piece)) {
			if _, err := w.Write(piece); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Commit(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		store.Close()
		b.StartTimer()
	}
}

// badgerOptions are dnfproxy's defaults, with BENCH_CHUNK_KIB and
// BENCH_VLOG_MIB to try other chunk and value-log file sizes.
func badgerOptions(b *testing.B) cache.BadgerOptions {
	opt := cache.DefaultBadgerOptions()
	for _, o := range []struct {
		env      string
		unit, hi int64
		set      func(int64)
	}{
		{"BENCH_CHUNK_KIB", 1 << 10, 1 << 20, func(v int64) { opt.ChunkSize = int(v) }},
		{"BENCH_VLOG_MIB", 1 << 20, 2047, func(v int64) { opt.ValueLogFileSize = v }},
	} {
		v := os.Getenv(o.env)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 || n > o.hi {
			b.Fatalf("%s=%q: want 1..%d", o.env, v, o.hi)
		}
		o.set(n * o.unit)
	}
	return opt
}
