package cache_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/cache/cachetest"
)

func testOptions() cache.BadgerOptions {
	opt := cache.DefaultBadgerOptions()
	opt.ChunkSize = cachetest.ChunkSize
	return opt
}

func openBadger(t testing.TB, dir string, opt cache.BadgerOptions) *cache.Badger {
	t.Helper()
	s, err := cache.OpenBadger(dir, opt)
	if err != nil {
		t.Fatalf("OpenBadger: %v", err)
	}
	return s
}

func TestBadger(t *testing.T) {
	cachetest.Run(t, func(t *testing.T) cache.Store {
		s := openBadger(t, t.TempDir(), testOptions())
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	})
}

// TestBadgerNoLeftoverChunks checks that replacing, deleting and cancelling
// leave no chunk behind, i.e. that space is given back to badger.
func TestBadgerNoLeftoverChunks(t *testing.T) {
	ctx := context.Background()
	C := cachetest.ChunkSize
	s := openBadger(t, t.TempDir(), testOptions())
	defer s.Close()
	wantChunks := func(want int) {
		t.Helper()
		n, err := s.ChunkKeys()
		if err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Fatalf("%d chunk keys in the store, want %d", n, want)
		}
	}
	cachetest.Put(t, s, "a", cache.Meta{}, cachetest.Bytes(1, 5*C), 0)
	wantChunks(5)
	cachetest.Put(t, s, "a", cache.Meta{}, cachetest.Bytes(2, 2*C+1), 0) // replace: 3 chunks
	wantChunks(3)
	w, err := s.Create(ctx, "b", cache.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(cachetest.Bytes(3, 4*C))
	wantChunks(7)
	w.Cancel()
	wantChunks(3)
	if err := s.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	wantChunks(0)

	// Replaced while open: the old chunks stay until the last Close.
	cachetest.Put(t, s, "c", cache.Meta{}, cachetest.Bytes(4, 3*C), 0)
	o, err := s.Get(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	cachetest.Put(t, s, "c", cache.Meta{}, cachetest.Bytes(5, C), 0)
	s.Settle()
	wantChunks(4)
	o.Close()
	s.Settle()
	wantChunks(1)
}

// TestBadgerReopen checks that a committed object survives close and reopen
// byte for byte, with its metadata, and that the totals are recomputed.
func TestBadgerReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	data := cachetest.Bytes(42, 7*cachetest.ChunkSize+999)
	meta := cache.Meta{ContentType: "application/x-rpm", ETag: `"x"`, Checksum: "sha256:ab",
		Fetched: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)}

	s := openBadger(t, dir, testOptions())
	cachetest.Put(t, s, "almalinux/9/x.rpm", meta, data, 10000)
	cachetest.Put(t, s, "empty", cache.Meta{}, nil, 0)
	before, err := s.Stat(ctx, "almalinux/9/x.rpm")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, "empty"); !errors.Is(err, cache.ErrClosed) {
		t.Errorf("Stat after Close error = %v, want ErrClosed", err)
	}

	// Reopen with another chunk size: existing objects keep theirs.
	opt := testOptions()
	opt.ChunkSize = 3 * cachetest.ChunkSize
	s = openBadger(t, dir, opt)
	defer s.Close()
	got, info := cachetest.ReadAll(t, s, "almalinux/9/x.rpm")
	cachetest.Equal(t, "reopened object", got, data)
	if info.Size != before.Size || info.Meta != before.Meta || !info.Stored.Equal(before.Stored) {
		t.Errorf("reopened Info = %+v, want %+v", info, before)
	}
	if got, _ := cachetest.ReadAll(t, s, "empty"); len(got) != 0 {
		t.Errorf("empty object has %d bytes", len(got))
	}
	if objects, bytes := s.Size(); objects != 2 || bytes != int64(len(data)) {
		t.Errorf("Size() = %d, %d; want 2, %d", objects, bytes, len(data))
	}
	if n := s.OrphansRemoved(); n != 0 {
		t.Errorf("OrphansRemoved() = %d after a clean close", n)
	}
}

// TestBadgerAccessed checks that Get records accesses, at most once per
// AccessedGranularity.
func TestBadgerAccessed(t *testing.T) {
	ctx := context.Background()
	get := func(s cache.Store) {
		t.Helper()
		o, err := s.Get(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		o.Close()
	}
	tests := []struct {
		granularity time.Duration
		wantTouched bool
	}{
		{time.Millisecond, true},
		{time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.granularity.String(), func(t *testing.T) {
			opt := testOptions()
			opt.AccessedGranularity = tt.granularity
			s := openBadger(t, t.TempDir(), opt)
			defer s.Close()
			cachetest.Put(t, s, "k", cache.Meta{}, []byte("x"), 0)
			first, err := s.Stat(ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			if !first.Accessed.Equal(first.Stored) {
				t.Errorf("Accessed = %v, want Stored %v", first.Accessed, first.Stored)
			}
			time.Sleep(5 * time.Millisecond)
			get(s)
			after, err := s.Stat(ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			if touched := after.Accessed.After(first.Accessed); touched != tt.wantTouched {
				t.Errorf("Accessed %v -> %v: touched = %v, want %v", first.Accessed, after.Accessed, touched, tt.wantTouched)
			}
		})
	}
}

const crashEnv = "DNFPROXY_CACHE_CRASH_DIR"

// TestBadgerCrash kills a process in the middle of writing an object and
// checks that the store comes back without it and without its chunks.
func TestBadgerCrash(t *testing.T) {
	if dir := os.Getenv(crashEnv); dir != "" {
		crashChild(dir)
		return
	}
	ctx := context.Background()
	C := cachetest.ChunkSize
	dir := t.TempDir()
	keep := cachetest.Bytes(1, 2*C+1) // 3 chunks
	s := openBadger(t, dir, testOptions())
	cachetest.Put(t, s, "keep", cache.Meta{}, keep, 0)
	cachetest.Put(t, s, "big", cache.Meta{ETag: "old"}, cachetest.Bytes(2, C), 0) // 1 chunk
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestBadgerCrash$")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child said %q, %v; want ready", line, err)
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	cmd.Wait()

	s = openBadger(t, dir, testOptions())
	defer s.Close()
	if n := s.OrphansRemoved(); n != 10 {
		t.Errorf("OrphansRemoved() = %d, want the 10 chunks the child wrote", n)
	}
	if n, err := s.ChunkKeys(); err != nil || n != 4 {
		t.Errorf("%d chunk keys after recovery (%v), want the 4 of committed objects", n, err)
	}
	got, info := cachetest.ReadAll(t, s, "big")
	cachetest.Equal(t, "object the child was replacing", got, cachetest.Bytes(2, C))
	if info.Meta.ETag != "old" {
		t.Errorf("big has ETag %q, want old", info.Meta.ETag)
	}
	got, _ = cachetest.ReadAll(t, s, "keep")
	cachetest.Equal(t, "untouched object", got, keep)
	if _, err := s.Stat(ctx, "new"); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("Stat(new) error = %v, want ErrNotFound", err)
	}
	if objects, bytes := s.Size(); objects != 2 || bytes != int64(len(keep)+C) {
		t.Errorf("Size() = %d, %d; want 2, %d", objects, bytes, len(keep)+C)
	}

	// Fresh writes of both keys work.
	fresh := cachetest.Bytes(3, 5*C+3)
	cachetest.Put(t, s, "big", cache.Meta{ETag: "new"}, fresh, 0)
	cachetest.Put(t, s, "new", cache.Meta{}, fresh, 0)
	got, _ = cachetest.ReadAll(t, s, "big")
	cachetest.Equal(t, "rewritten object", got, fresh)
	got, _ = cachetest.ReadAll(t, s, "new")
	cachetest.Equal(t, "new object", got, fresh)
}

// crashChild writes 10 chunks and a bit of "big" and of "new", says ready
// and waits to be killed.
func crashChild(dir string) {
	ctx := context.Background()
	C := cachetest.ChunkSize
	s, err := cache.OpenBadger(dir, testOptions())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i, key := range []string{"big", "new"} {
		w, err := s.Create(ctx, key, cache.Meta{ETag: "child"})
		if err == nil {
			// 5 full chunks go to the store, the tail stays in memory.
			_, err = w.Write(cachetest.Bytes(uint64(10+i), 5*C+100))
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	fmt.Println("ready")
	time.Sleep(time.Minute)
	os.Exit(3) // not killed: the parent reports the missing chunks
}

// copySink copies what it is given into a scratch buffer, as a write to a
// socket copies into the kernel's buffers: a sink that did not touch the
// bytes (io.Discard) would make reading straight from badger's mapping free.
type copySink struct{ scratch []byte }

func (w *copySink) Write(p []byte) (int, error) {
	for rest := p; len(rest) > 0; {
		rest = rest[copy(w.scratch, rest):]
	}
	return len(p), nil
}

// BenchmarkBadgerRead reads a 64 MiB object into a copySink: as the store
// did before its Objects copied chunks out of badger ("direct", straight
// from the mapping inside Item.Value), and as it does now with WriteTo:
// "copy" without chunk checksums, "copy+crc32c/every-read" checking them on
// every read (a first read after OpenBadger), "copy+crc32c" as by default
// (checked on the first whole read, skipped on later ones),
// "copy+badger-checksum" with badger's VerifyValueChecksum instead; and
// "read32K" as the default with Reads of 32 KiB, as io.Copy to an
// http.ResponseWriter does.
func BenchmarkBadgerRead(b *testing.B) {
	const size = 64 << 20
	data := cachetest.Bytes(1, size)
	for _, c := range []struct {
		name      string
		direct    bool
		chunkCRC  bool
		noTrust   bool
		badgerCRC bool
		read32K   bool
	}{
		{name: "direct"},
		{name: "copy"},
		{name: "copy+crc32c/every-read", chunkCRC: true, noTrust: true},
		{name: "copy+crc32c", chunkCRC: true},
		{name: "copy+badger-checksum", badgerCRC: true},
		{name: "copy+crc32c/read32K", chunkCRC: true, read32K: true},
	} {
		b.Run(c.name, func(b *testing.B) {
			opt := cache.DefaultBadgerOptions()
			opt.VerifyValueChecksum = c.badgerCRC
			s := openBadger(b, b.TempDir(), opt)
			defer s.Close()
			s.SetVerifyChunks(c.chunkCRC)
			s.SetTrustVerified(!c.noTrust)
			cachetest.Put(b, s, "bench", cache.Meta{}, data, 32<<10)
			ctx := context.Background()
			sink := &copySink{scratch: make([]byte, 256<<10)}
			buf := make([]byte, 32<<10)
			b.SetBytes(size)
			b.ResetTimer()
			for b.Loop() {
				var n int64
				var err error
				switch {
				case c.direct:
					n, err = s.DirectWriteTo("bench", sink)
				default:
					var o cache.Object
					if o, err = s.Get(ctx, "bench"); err != nil {
						b.Fatal(err)
					}
					if c.read32K {
						n, err = io.CopyBuffer(sink, struct{ io.Reader }{o}, buf)
					} else {
						n, err = o.(io.WriterTo).WriteTo(sink)
					}
					o.Close()
				}
				if err != nil || n != size {
					b.Fatalf("read %d bytes: %v", n, err)
				}
			}
		})
	}
}

// BenchmarkBadgerWrite commits objects (Create, 32 KiB writes, Commit)
// with and without SyncWrites: 16 MiB objects for throughput, 8 KiB ones
// (a small RPM) for commits per second. Keys repeat, so commits replace.
func BenchmarkBadgerWrite(b *testing.B) {
	for _, size := range []int{16 << 20, 8 << 10} {
		data := cachetest.Bytes(1, size)
		for _, sync := range []bool{false, true} {
			b.Run(fmt.Sprintf("%dKiB/sync=%v", size>>10, sync), func(b *testing.B) {
				opt := cache.DefaultBadgerOptions()
				opt.SyncWrites = sync
				s := openBadger(b, b.TempDir(), opt)
				defer s.Close()
				ctx := context.Background()
				b.SetBytes(int64(size))
				b.ResetTimer()
				i := 0
				for b.Loop() {
					w, err := s.Create(ctx, fmt.Sprintf("bench/%d", i%16), cache.Meta{})
					if err != nil {
						b.Fatal(err)
					}
					for p := data; len(p) > 0; {
						k := min(len(p), 32<<10)
						if _, err := w.Write(p[:k]); err != nil {
							b.Fatal(err)
						}
						p = p[k:]
					}
					if err := w.Commit(ctx); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}

// TestBadgerRunGC checks that value-log GC does not wait for open Objects,
// which keep reading their bytes across it, and that the chunks of an
// object deleted while open go at its last Close.
func TestBadgerRunGC(t *testing.T) {
	ctx := context.Background()
	s := openBadger(t, t.TempDir(), testOptions())
	defer s.Close()
	data := cachetest.Bytes(5, 4*cachetest.ChunkSize)
	cachetest.Put(t, s, "k", cache.Meta{}, data, 0)
	o, err := s.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	o2, err := s.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	cachetest.Put(t, s, "free", cache.Meta{}, []byte("x"), 0)
	leased := map[string]bool{}
	if err := s.List(ctx, "", func(in cache.Info) error { leased[in.Key] = in.Leased; return nil }); err != nil {
		t.Fatal(err)
	}
	if in, err := s.Stat(ctx, "k"); err != nil || !in.Leased || !leased["k"] || leased["free"] {
		t.Errorf("Stat(k).Leased = %v (%v); List says k %v, free %v; want true, true, false", in.Leased, err, leased["k"], leased["free"])
	}
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.RunGC(short); err != nil {
		t.Fatalf("RunGC with open Objects: %v", err)
	}
	got, err := io.ReadAll(o)
	if err != nil {
		t.Fatal(err)
	}
	cachetest.Equal(t, "deleted object read across RunGC", got, data)
	wantChunkKeys(t, s, 4+1) // k's and free's
	o.Close()
	s.Settle()
	wantChunkKeys(t, s, 4+1) // o2 is still open
	o2.Close()
	s.Settle()
	wantChunkKeys(t, s, 1) // "free"
	cachetest.Put(t, s, "k", cache.Meta{}, data, 0)
	o, err = s.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
	if in, err := s.Stat(ctx, "k"); err != nil || in.Leased {
		t.Errorf("Stat(k).Leased = %v (%v) after the last Close, want false", in.Leased, err)
	}
	if err := s.RunGC(ctx); err != nil {
		t.Errorf("RunGC: %v", err)
	}
}

func wantChunkKeys(t *testing.T, s *cache.Badger, want int) {
	t.Helper()
	n, err := s.ChunkKeys()
	if err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Fatalf("%d chunk keys in the store, want %d", n, want)
	}
}

// TestBadgerAccessedIsWritten checks that an access noted by Get reaches
// the manifest: it is still there after a close and a reopen.
func TestBadgerAccessedIsWritten(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opt := testOptions()
	opt.AccessedGranularity = time.Millisecond
	s := openBadger(t, dir, opt)
	cachetest.Put(t, s, "k", cache.Meta{}, []byte("x"), 0)
	stored, err := s.Stat(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	o, err := s.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openBadger(t, dir, opt)
	defer s.Close()
	again, err := s.Stat(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if !again.Accessed.After(stored.Accessed) {
		t.Fatalf("Accessed after reopen %v, want after %v", again.Accessed, stored.Accessed)
	}
}

// BenchmarkBadgerSmallHit is a cache hit on a small RPM: Get, io.Copy with
// a 32 KiB buffer, Close, over 64 objects of 6 KiB (run with -benchmem:
// the chunk buffers come from a pool).
func BenchmarkBadgerSmallHit(b *testing.B) {
	const size = 6 << 10
	s := openBadger(b, b.TempDir(), cache.DefaultBadgerOptions())
	defer s.Close()
	for i := range 64 {
		cachetest.Put(b, s, fmt.Sprintf("small/%d", i), cache.Meta{}, cachetest.Bytes(uint64(i), size), 0)
	}
	ctx := context.Background()
	sink := &copySink{scratch: make([]byte, 32<<10)}
	b.SetBytes(size)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 32<<10)
		i := 0
		for pb.Next() {
			o, err := s.Get(ctx, fmt.Sprintf("small/%d", i%64))
			if err != nil {
				b.Error(err)
				return
			}
			n, err := io.CopyBuffer(sink, struct{ io.Reader }{o}, buf)
			o.Close()
			if err != nil || n != size {
				b.Errorf("read %d bytes: %v", n, err)
				return
			}
			i++
		}
	})
}

// TestBadgerTrustAfterWholeRead checks when an object's later reads may
// skip the chunk checksums: only once one read checked every chunk, in
// order, in this run; never after a reopen.
func TestBadgerTrustAfterWholeRead(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openBadger(t, dir, testOptions())
	data := cachetest.Bytes(7, 3*cachetest.ChunkSize+5)
	cachetest.Put(t, s, "k", cache.Meta{}, data, 0)
	if s.Trusted("k") {
		t.Fatal("trusted before any read")
	}
	o, err := s.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	// The last chunk, then the first: not all of it, not in order.
	if _, err := o.ReadAt(make([]byte, 10), int64(len(data))-10); err != nil {
		t.Fatal(err)
	}
	if _, err := o.ReadAt(make([]byte, 10), 0); err != nil {
		t.Fatal(err)
	}
	o.Close()
	if s.Trusted("k") {
		t.Fatal("trusted after a partial read")
	}
	got, _ := cachetest.ReadAll(t, s, "k")
	cachetest.Equal(t, "whole read", got, data)
	if !s.Trusted("k") {
		t.Fatal("not trusted after a whole read")
	}
	got, _ = cachetest.ReadAll(t, s, "k")
	cachetest.Equal(t, "trusted read", got, data)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openBadger(t, dir, testOptions())
	defer s.Close()
	if s.Trusted("k") {
		t.Fatal("trusted after a reopen")
	}
}

// TestBadgerGetAfterChange: Get keeps decoded manifests in memory; every
// change of an object after a Get (which filled that cache) shows in the
// next Get, and concurrent replacements never give a reader a manifest
// that no longer matches the object's chunks.
func TestBadgerGetAfterChange(t *testing.T) {
	for _, sz := range []struct {
		name   string
		n1, n2 int
	}{
		{"several chunks", 3*cachetest.ChunkSize + 5, cachetest.ChunkSize + 1},
		{"small objects", 100, 5000}, // one chunk each: their bytes are kept in memory too
	} {
		t.Run(sz.name, func(t *testing.T) { testGetAfterChange(t, sz.n1, sz.n2) })
	}
}

func testGetAfterChange(t *testing.T, n1, n2 int) {
	ctx := context.Background()
	v1, v2 := cachetest.Bytes(1, n1), cachetest.Bytes(2, n2)
	tests := []struct {
		name     string
		change   func(t *testing.T, s *cache.Badger)
		want     []byte // nil: ErrNotFound
		wantETag string
	}{
		{"UpdateMeta", func(t *testing.T, s *cache.Badger) {
			if err := s.UpdateMeta(ctx, "k", func(m *cache.Meta) { m.ETag = `"new"` }); err != nil {
				t.Fatal(err)
			}
		}, v1, `"new"`},
		{"replacing Commit", func(t *testing.T, s *cache.Badger) {
			cachetest.Put(t, s, "k", cache.Meta{ETag: `"v2"`}, v2, 0)
		}, v2, `"v2"`},
		{"Delete", func(t *testing.T, s *cache.Badger) {
			if err := s.Delete(ctx, "k"); err != nil {
				t.Fatal(err)
			}
		}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openBadger(t, t.TempDir(), testOptions())
			defer s.Close()
			cachetest.Put(t, s, "k", cache.Meta{ETag: `"v1"`}, v1, 0)
			for range 2 { // the second Get is served from memory
				got, in := cachetest.ReadAll(t, s, "k")
				cachetest.Equal(t, "before the change", got, v1)
				if in.Meta.ETag != `"v1"` {
					t.Fatalf("ETag %s before the change", in.Meta.ETag)
				}
			}
			tt.change(t, s)
			if tt.want == nil {
				if _, err := s.Get(ctx, "k"); !errors.Is(err, cache.ErrNotFound) {
					t.Fatalf("Get after %s: %v, want ErrNotFound", tt.name, err)
				}
				return
			}
			got, in := cachetest.ReadAll(t, s, "k")
			cachetest.Equal(t, "after the change", got, tt.want)
			if in.Meta.ETag != tt.wantETag || in.Size != int64(len(tt.want)) {
				t.Errorf("after %s: ETag %s size %d, want %s %d", tt.name, in.Meta.ETag, in.Size, tt.wantETag, len(tt.want))
			}
		})
	}

	t.Run("concurrent replacements", func(t *testing.T) {
		s := openBadger(t, t.TempDir(), testOptions())
		defer s.Close()
		versions := make([][]byte, 20)
		for i := range versions {
			versions[i] = cachetest.Bytes(uint64(100+i), n1*(1+i%3)/3+i)
		}
		cachetest.Put(t, s, "k", cache.Meta{ETag: "0"}, versions[0], 0)
		stop := make(chan struct{})
		errs := make(chan error, 4)
		for range 4 {
			go func() {
				for {
					select {
					case <-stop:
						errs <- nil
						return
					default:
					}
					o, err := s.Get(ctx, "k")
					if err != nil {
						errs <- err
						return
					}
					b, err := io.ReadAll(o)
					etag := o.Info().Meta.ETag
					o.Close()
					var i int
					fmt.Sscan(etag, &i)
					if err != nil || string(b) != string(versions[i]) {
						errs <- fmt.Errorf("read version %s: %d bytes, %v", etag, len(b), err)
						return
					}
				}
			}()
		}
		for i := 1; i < len(versions); i++ {
			cachetest.Put(t, s, "k", cache.Meta{ETag: fmt.Sprint(i)}, versions[i], 0)
		}
		close(stop)
		for range 4 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		got, in := cachetest.ReadAll(t, s, "k")
		if last := len(versions) - 1; in.Meta.ETag != fmt.Sprint(last) {
			t.Errorf("after the last commit Get gives version %s, want %d", in.Meta.ETag, last)
		} else {
			cachetest.Equal(t, "last version", got, versions[last])
		}
	})
}

// TestBadgerSmallCacheForgetsDeleted: the in-memory bytes of a small
// object go with its chunks, at once or at the last Close of a reader.
func TestBadgerSmallCacheForgetsDeleted(t *testing.T) {
	ctx := context.Background()
	s := openBadger(t, t.TempDir(), testOptions())
	defer s.Close()
	cachetest.Put(t, s, "a", cache.Meta{}, []byte("small a"), 0)
	cachetest.Put(t, s, "b", cache.Meta{}, []byte("small b"), 0)
	cachetest.ReadAll(t, s, "a")
	cachetest.ReadAll(t, s, "b")
	if n := s.SmallCached(); n != 2 {
		t.Fatalf("%d small objects kept after reading two, want 2", n)
	}
	if err := s.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if n := s.SmallCached(); n != 1 {
		t.Errorf("%d small objects kept after deleting one of two, want 1", n)
	}
	o, err := s.Get(ctx, "b") // a reader holds b's chunks
	if err != nil {
		t.Fatal(err)
	}
	cachetest.Put(t, s, "b", cache.Meta{}, []byte("replaced b"), 0)
	if got, _ := io.ReadAll(o); string(got) != "small b" {
		t.Errorf("the open reader of the replaced object reads %q", got)
	}
	o.Close()
	s.Settle()
	if n := s.SmallCached(); n != 0 {
		t.Errorf("%d small objects kept after the last reader of the replaced one closed, want 0", n)
	}
	if got, _ := cachetest.ReadAll(t, s, "b"); string(got) != "replaced b" {
		t.Errorf("b reads %q after the replacement", got)
	}
}
