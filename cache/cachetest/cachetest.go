// Package cachetest is the compliance suite every cache.Store passes.
//
// A store's tests call Run with a constructor that returns a fresh, empty
// store and registers its Close with t.Cleanup. Stores that split objects
// into chunks should be built with ChunkSize, so that the suite's object
// sizes fall on and around chunk boundaries.
package cachetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/cache"
)

// ChunkSize is the chunk size chunking stores should use under the suite.
const ChunkSize = 64 << 10

// Run runs the suite against stores made by newStore.
func Run(t *testing.T, newStore func(t *testing.T) cache.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s cache.Store)
	}{
		{"InvisibleUntilCommit", testInvisibleUntilCommit},
		{"Cancel", testCancel},
		{"CommitReplaces", testCommitReplaces},
		{"ReaderOfOldObject", testReaderOfOldObject},
		{"Sizes", testSizes},
		{"ServeContentRange", testServeContentRange},
		{"UpdateMeta", testUpdateMeta},
		{"Delete", testDelete},
		{"List", testList},
		{"ListAndDelete", testListAndDelete},
		{"NotFound", testNotFound},
		{"ConcurrentWriters", testConcurrentWriters},
		{"ConcurrentSameKey", testConcurrentSameKey},
		{"ConcurrentReaders", testConcurrentReaders},
		{"SizeTotals", testSizeTotals},
		{"WriteTo", testWriteTo},
		{"Leases", testLeases},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newStore(t))
		})
	}
}

// Bytes returns n deterministic pseudo-random bytes; different seeds give
// different contents, so a test can tell objects apart by their bytes.
func Bytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// Put writes data under key in writes of step bytes (all at once if step
// is 0) and commits it.
func Put(t testing.TB, s cache.Store, key string, meta cache.Meta, data []byte, step int) {
	t.Helper()
	ctx := context.Background()
	w, err := s.Create(ctx, key, meta)
	if err != nil {
		t.Fatalf("Create(%q): %v", key, err)
	}
	defer w.Cancel()
	if step <= 0 {
		step = max(len(data), 1)
	}
	for p := data; len(p) > 0; {
		n := min(step, len(p))
		if m, err := w.Write(p[:n]); err != nil || m != n {
			t.Fatalf("Write(%q): wrote %d of %d: %v", key, m, n, err)
		}
		p = p[n:]
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatalf("Commit(%q): %v", key, err)
	}
}

// ReadAll opens key and returns all its bytes and its Info.
func ReadAll(t testing.TB, s cache.Store, key string) ([]byte, cache.Info) {
	t.Helper()
	o, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("reading %q: %v", key, err)
	}
	return b, o.Info()
}

// Equal fails t if got and want differ, naming the first differing offset.
func Equal(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	t.Fatalf("%s: got %d bytes, want %d; first difference at offset %d", what, len(got), len(want), i)
}

func wantNotFound(t *testing.T, s cache.Store, key string) {
	t.Helper()
	ctx := context.Background()
	if o, err := s.Get(ctx, key); !errors.Is(err, cache.ErrNotFound) {
		if err == nil {
			o.Close()
		}
		t.Fatalf("Get(%q) error = %v, want ErrNotFound", key, err)
	}
	if _, err := s.Stat(ctx, key); !errors.Is(err, cache.ErrNotFound) {
		t.Fatalf("Stat(%q) error = %v, want ErrNotFound", key, err)
	}
}

func listKeys(t *testing.T, s cache.Store, prefix string) []string {
	t.Helper()
	var keys []string
	err := s.List(context.Background(), prefix, func(in cache.Info) error {
		keys = append(keys, in.Key)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return keys
}

func testInvisibleUntilCommit(t *testing.T, s cache.Store) {
	ctx := context.Background()
	data := Bytes(1, 3*ChunkSize+5)
	meta := cache.Meta{ContentType: "application/x-rpm", ETag: `"e1"`, Checksum: "sha256:00"}
	before := time.Now()
	w, err := s.Create(ctx, "repo/a.rpm", meta)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Cancel()
	if _, err := w.Write(data[:2*ChunkSize+1]); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, s, "repo/a.rpm")
	if keys := listKeys(t, s, ""); len(keys) != 0 {
		t.Fatalf("List before Commit = %q, want nothing", keys)
	}
	if _, err := w.Write(data[2*ChunkSize+1:]); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, s, "repo/a.rpm")
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err == nil {
		t.Error("second Commit succeeded, want an error")
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("Write after Commit succeeded, want an error")
	}
	got, info := ReadAll(t, s, "repo/a.rpm")
	Equal(t, "object", got, data)
	if info.Key != "repo/a.rpm" || info.Size != int64(len(data)) || info.Meta != meta {
		t.Errorf("Info = %+v, want key, size %d and meta %+v", info, len(data), meta)
	}
	if info.Stored.Before(before.Add(-time.Second)) || info.Stored.After(time.Now().Add(time.Second)) {
		t.Errorf("Info.Stored = %v, want about now", info.Stored)
	}
	st, err := s.Stat(ctx, "repo/a.rpm")
	if err != nil {
		t.Fatal(err)
	}
	if st.Size != int64(len(data)) || st.Meta != meta || !st.Stored.Equal(info.Stored) {
		t.Errorf("Stat = %+v, want %+v", st, info)
	}
	if keys := listKeys(t, s, ""); !slices.Equal(keys, []string{"repo/a.rpm"}) {
		t.Errorf("List = %q, want [repo/a.rpm]", keys)
	}
}

func testCancel(t *testing.T, s cache.Store) {
	ctx := context.Background()
	tests := []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"partial chunk", ChunkSize / 2},
		{"several chunks", 4*ChunkSize + 3},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprintf("cancel/%d", i)
			w, err := s.Create(ctx, key, cache.Meta{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(Bytes(uint64(i), tt.size)); err != nil {
				t.Fatal(err)
			}
			if err := w.Cancel(); err != nil {
				t.Fatalf("Cancel: %v", err)
			}
			if err := w.Cancel(); err != nil {
				t.Fatalf("second Cancel: %v", err)
			}
			if err := w.Commit(ctx); err == nil {
				t.Fatal("Commit after Cancel succeeded, want an error")
			}
			wantNotFound(t, s, key)
		})
	}
	t.Run("after commit", func(t *testing.T) {
		data := Bytes(7, 2*ChunkSize+9)
		w, err := s.Create(ctx, "cancel/committed", cache.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := w.Cancel(); err != nil {
			t.Fatalf("Cancel after Commit: %v", err)
		}
		got, _ := ReadAll(t, s, "cancel/committed")
		Equal(t, "object after Cancel of its committed writer", got, data)
	})
	t.Run("does not touch the existing object", func(t *testing.T) {
		old := Bytes(8, ChunkSize+1)
		Put(t, s, "cancel/existing", cache.Meta{ETag: "old"}, old, 0)
		w, err := s.Create(ctx, "cancel/existing", cache.Meta{ETag: "new"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(Bytes(9, 3*ChunkSize)); err != nil {
			t.Fatal(err)
		}
		if err := w.Cancel(); err != nil {
			t.Fatal(err)
		}
		got, info := ReadAll(t, s, "cancel/existing")
		Equal(t, "existing object", got, old)
		if info.Meta.ETag != "old" {
			t.Errorf("Meta.ETag = %q, want old", info.Meta.ETag)
		}
	})
}

func testCommitReplaces(t *testing.T, s cache.Store) {
	ctx := context.Background()
	sizes := []int{5*ChunkSize + 1, 0, ChunkSize - 1, 2 * ChunkSize, 3}
	for i, n := range sizes {
		data := Bytes(uint64(100+i), n)
		Put(t, s, "replace/x", cache.Meta{ETag: fmt.Sprint(i)}, data, 1000)
		got, info := ReadAll(t, s, "replace/x")
		Equal(t, fmt.Sprintf("generation %d", i), got, data)
		if info.Size != int64(n) || info.Meta.ETag != fmt.Sprint(i) {
			t.Fatalf("generation %d: Info = %+v, want size %d etag %d", i, info, n, i)
		}
	}
	if keys := listKeys(t, s, "replace/"); !slices.Equal(keys, []string{"replace/x"}) {
		t.Errorf("List = %q, want one key", keys)
	}

	// Two writers open at once: the one that commits last wins.
	a, b := Bytes(200, 3*ChunkSize), Bytes(201, 2*ChunkSize+7)
	wa, err := s.Create(ctx, "replace/y", cache.Meta{ETag: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer wa.Cancel()
	wb, err := s.Create(ctx, "replace/y", cache.Meta{ETag: "b"})
	if err != nil {
		t.Fatal(err)
	}
	defer wb.Cancel()
	wa.Write(a)
	wb.Write(b)
	if err := wb.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := ReadAll(t, s, "replace/y")
	Equal(t, "after first commit", got, b)
	if err := wa.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got, info := ReadAll(t, s, "replace/y")
	Equal(t, "after second commit", got, a)
	if info.Meta.ETag != "a" {
		t.Errorf("Meta.ETag = %q, want a", info.Meta.ETag)
	}
}

func testReaderOfOldObject(t *testing.T, s cache.Store) {
	ctx := context.Background()
	old := Bytes(300, 6*ChunkSize+11)
	Put(t, s, "old/x", cache.Meta{ETag: "old"}, old, 0)

	o, err := s.Get(ctx, "old/x")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	half := make([]byte, 2*ChunkSize+3)
	if _, err := io.ReadFull(o, half); err != nil {
		t.Fatal(err)
	}
	Equal(t, "first part", half, old[:len(half)])

	// Overwrite with different bytes while the reader is mid-stream.
	repl := Bytes(301, 4*ChunkSize)
	Put(t, s, "old/x", cache.Meta{ETag: "new"}, repl, 0)

	rest, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("reading the old object after overwrite: %v", err)
	}
	Equal(t, "rest of the old object", rest, old[len(half):])
	if o.Info().Size != int64(len(old)) || o.Info().Meta.ETag != "old" {
		t.Errorf("old Info = %+v, want the old size and meta", o.Info())
	}
	buf := make([]byte, ChunkSize)
	if _, err := o.ReadAt(buf, 5*ChunkSize-17); err != nil {
		t.Fatal(err)
	}
	Equal(t, "ReadAt of the old object", buf, old[5*ChunkSize-17:6*ChunkSize-17])

	got, _ := ReadAll(t, s, "old/x")
	Equal(t, "new object", got, repl)

	// Delete while a reader is open: the reader keeps its bytes.
	o2, err := s.Get(ctx, "old/x")
	if err != nil {
		t.Fatal(err)
	}
	defer o2.Close()
	if err := s.Delete(ctx, "old/x"); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, s, "old/x")
	got, err = io.ReadAll(o2)
	if err != nil {
		t.Fatalf("reading a deleted object: %v", err)
	}
	Equal(t, "deleted object read by an open reader", got, repl)
}

// testSizes checks every way of reading objects whose sizes sit around
// chunk boundaries.
func testSizes(t *testing.T, s cache.Store) {
	C := ChunkSize
	sizes := []struct {
		name string
		n    int
	}{
		{"0", 0},
		{"1", 1},
		{"chunk-1", C - 1},
		{"chunk", C},
		{"chunk+1", C + 1},
		{"3chunks", 3 * C},
		{"4MiB+3", 4<<20 + 3},
	}
	for i, sz := range sizes {
		t.Run(sz.name, func(t *testing.T) {
			ctx := context.Background()
			data := Bytes(uint64(400+i), sz.n)
			key := "sizes/" + sz.name
			// Odd write sizes so that writes straddle chunk boundaries.
			Put(t, s, key, cache.Meta{}, data, 7*1024+3)

			got, info := ReadAll(t, s, key)
			Equal(t, "ReadAll", got, data)
			if info.Size != int64(sz.n) {
				t.Errorf("Info.Size = %d, want %d", info.Size, sz.n)
			}

			o, err := s.Get(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close()
			size := int64(sz.n)

			// ReadAt at and around chunk boundaries.
			offsets := []int64{0, 1, int64(C) - 1, int64(C), int64(C) + 1, 2*int64(C) - 1, size / 2, size - 1, size}
			lengths := []int{1, 2, C, 2*C + 5}
			for _, off := range offsets {
				if off < 0 || off > size {
					continue
				}
				for _, l := range lengths {
					buf := make([]byte, l)
					n, err := o.ReadAt(buf, off)
					want := data[off:min(off+int64(l), size)]
					if n != len(want) {
						t.Fatalf("ReadAt(%d bytes, off %d) = %d, %v; want %d bytes", l, off, n, err, len(want))
					}
					Equal(t, fmt.Sprintf("ReadAt(%d bytes, off %d)", l, off), buf[:n], want)
					if n < l && err != io.EOF {
						t.Fatalf("short ReadAt(%d bytes, off %d) error = %v, want io.EOF", l, off, err)
					}
					if n == l && err != nil && err != io.EOF {
						t.Fatalf("ReadAt(%d bytes, off %d) error = %v", l, off, err)
					}
				}
			}
			if n, err := o.ReadAt(make([]byte, 1), size+10); n != 0 || err != io.EOF {
				t.Errorf("ReadAt past the end = %d, %v; want 0, io.EOF", n, err)
			}
			if _, err := o.ReadAt(make([]byte, 1), -1); err == nil {
				t.Error("ReadAt at a negative offset succeeded")
			}

			// Seek, then Read to the end.
			seeks := []struct {
				offset int64
				whence int
				want   int64
			}{
				{0, io.SeekEnd, size},
				{int64(C) + 1, io.SeekStart, int64(C) + 1},
				{-1, io.SeekCurrent, int64(C)},
				{-int64(C) + 1, io.SeekEnd, size - int64(C) + 1},
				{size / 3, io.SeekStart, size / 3},
				{0, io.SeekStart, 0},
				{size + 5, io.SeekStart, size + 5},
			}
			for _, sk := range seeks {
				if sk.want < 0 {
					continue
				}
				pos, err := o.Seek(sk.offset, sk.whence)
				if err != nil || pos != sk.want {
					t.Fatalf("Seek(%d, %d) = %d, %v; want %d", sk.offset, sk.whence, pos, err, sk.want)
				}
				got, err := io.ReadAll(o)
				if err != nil {
					t.Fatal(err)
				}
				Equal(t, fmt.Sprintf("Read after Seek to %d", pos), got, data[min(pos, size):])
				if _, err := o.Seek(pos, io.SeekStart); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := o.Seek(-1, io.SeekStart); err == nil {
				t.Error("Seek to a negative position succeeded")
			}
			if cur, err := o.Seek(0, io.SeekCurrent); err != nil {
				t.Fatal(err)
			} else if _, err := o.Seek(-cur-1, io.SeekCurrent); err == nil {
				t.Error("Seek before the start succeeded")
			}

			// Reads in small pieces after a seek into the middle.
			if size > 0 {
				start := size / 2
				if _, err := o.Seek(start, io.SeekStart); err != nil {
					t.Fatal(err)
				}
				var out []byte
				buf := make([]byte, 1000)
				for {
					n, err := o.Read(buf)
					out = append(out, buf[:n]...)
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
				}
				Equal(t, "small Reads", out, data[start:])
			}
		})
	}
}

// testServeContentRange checks what the proxy relies on: http.ServeContent
// over an Object answers ranges with the right bytes.
func testServeContentRange(t *testing.T, s cache.Store) {
	C := ChunkSize
	data := Bytes(500, 3*C+100)
	Put(t, s, "http/x.rpm", cache.Meta{}, data, 0)
	tests := []struct {
		rng    string
		status int
		want   []byte // nil: check only that every part is in the body
		parts  [][2]int
	}{
		{"", http.StatusOK, data, nil},
		{fmt.Sprintf("bytes=%d-%d", C-1, C), http.StatusPartialContent, data[C-1 : C+1], nil},
		{"bytes=-5", http.StatusPartialContent, data[len(data)-5:], nil},
		{fmt.Sprintf("bytes=%d-", 2*C), http.StatusPartialContent, data[2*C:], nil},
		{fmt.Sprintf("bytes=0-0,%d-%d", C, 2*C+1), http.StatusPartialContent, nil, [][2]int{{0, 1}, {C, 2*C + 2}}},
		{fmt.Sprintf("bytes=%d-", len(data)+1), http.StatusRequestedRangeNotSatisfiable, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.rng, func(t *testing.T) {
			o, err := s.Get(context.Background(), "http/x.rpm")
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close()
			req := httptest.NewRequest(http.MethodGet, "/x.rpm", nil)
			if tt.rng != "" {
				req.Header.Set("Range", tt.rng)
			}
			rec := httptest.NewRecorder()
			http.ServeContent(rec, req, "x.rpm", time.Time{}, o)
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d", rec.Code, tt.status)
			}
			body := rec.Body.Bytes()
			if tt.want != nil {
				Equal(t, "body", body, tt.want)
				if cl := rec.Header().Get("Content-Length"); cl != fmt.Sprint(len(tt.want)) {
					t.Errorf("Content-Length = %q, want %d", cl, len(tt.want))
				}
			}
			for _, p := range tt.parts {
				if !bytes.Contains(body, data[p[0]:p[1]]) {
					t.Errorf("multipart body lacks bytes %d-%d", p[0], p[1]-1)
				}
			}
		})
	}
}

func testUpdateMeta(t *testing.T, s cache.Store) {
	ctx := context.Background()
	data := Bytes(600, 2*ChunkSize+1)
	Put(t, s, "meta/x", cache.Meta{ETag: "1", ContentType: "text/xml"}, data, 0)
	stored, err := s.Stat(ctx, "meta/x")
	if err != nil {
		t.Fatal(err)
	}
	fetched := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	err = s.UpdateMeta(ctx, "meta/x", func(m *cache.Meta) {
		if m.ETag != "1" || m.ContentType != "text/xml" {
			t.Errorf("UpdateMeta got %+v, want the stored meta", *m)
		}
		m.ETag = "2"
		m.Fetched = fetched
	})
	if err != nil {
		t.Fatal(err)
	}
	got, info := ReadAll(t, s, "meta/x")
	Equal(t, "bytes after UpdateMeta", got, data)
	want := cache.Meta{ETag: "2", ContentType: "text/xml", Fetched: fetched}
	if info.Meta.ETag != want.ETag || info.Meta.ContentType != want.ContentType || !info.Meta.Fetched.Equal(fetched) {
		t.Errorf("Meta = %+v, want %+v", info.Meta, want)
	}
	if info.Size != int64(len(data)) || !info.Stored.Equal(stored.Stored) {
		t.Errorf("Info = %+v: UpdateMeta changed size or stored time", info)
	}
	err = s.UpdateMeta(ctx, "meta/missing", func(*cache.Meta) { t.Error("fn called for a missing key") })
	if !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("UpdateMeta(missing) error = %v, want ErrNotFound", err)
	}
}

func testDelete(t *testing.T, s cache.Store) {
	ctx := context.Background()
	Put(t, s, "del/a", cache.Meta{}, Bytes(700, 3*ChunkSize), 0)
	Put(t, s, "del/b", cache.Meta{}, Bytes(701, 10), 0)
	if err := s.Delete(ctx, "del/a"); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, s, "del/a")
	if err := s.Delete(ctx, "del/a"); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	if err := s.Delete(ctx, "del/never"); err != nil {
		t.Errorf("Delete(missing): %v", err)
	}
	got, _ := ReadAll(t, s, "del/b")
	Equal(t, "other object", got, Bytes(701, 10))
	if keys := listKeys(t, s, "del/"); !slices.Equal(keys, []string{"del/b"}) {
		t.Errorf("List = %q, want [del/b]", keys)
	}
	// The key is usable again.
	data := Bytes(702, ChunkSize+2)
	Put(t, s, "del/a", cache.Meta{}, data, 0)
	got, _ = ReadAll(t, s, "del/a")
	Equal(t, "recreated object", got, data)
}

func testList(t *testing.T, s cache.Store) {
	ctx := context.Background()
	keys := []string{"b/2", "a/1", "b/10", "b/1", "ba", "b", "c/x", "b/1/z", "a"}
	for i, k := range slices.Backward(keys) {
		Put(t, s, k, cache.Meta{ETag: k}, Bytes(uint64(i), i*100), 0)
	}
	// An uncommitted object never shows up.
	w, err := s.Create(ctx, "b/3", cache.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Cancel()
	w.Write([]byte("pending"))

	tests := []struct {
		prefix string
		want   []string
	}{
		{"", []string{"a", "a/1", "b", "b/1", "b/1/z", "b/10", "b/2", "ba", "c/x"}},
		{"b/", []string{"b/1", "b/1/z", "b/10", "b/2"}},
		{"b/1", []string{"b/1", "b/1/z", "b/10"}},
		{"b", []string{"b", "b/1", "b/1/z", "b/10", "b/2", "ba"}},
		{"c/x", []string{"c/x"}},
		{"d", nil},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			var got []string
			err := s.List(ctx, tt.prefix, func(in cache.Info) error {
				got = append(got, in.Key)
				if in.Meta.ETag != in.Key {
					t.Errorf("%s: Meta.ETag = %q", in.Key, in.Meta.ETag)
				}
				i := slices.Index(keys, in.Key)
				if in.Size != int64(i*100) {
					t.Errorf("%s: Size = %d, want %d", in.Key, in.Size, i*100)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("List(%q) = %q, want %q", tt.prefix, got, tt.want)
			}
		})
	}
	t.Run("stops on error", func(t *testing.T) {
		stop := errors.New("stop")
		var got []string
		err := s.List(ctx, "b/", func(in cache.Info) error {
			got = append(got, in.Key)
			if len(got) == 2 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) {
			t.Errorf("List error = %v, want the callback's error", err)
		}
		if !slices.Equal(got, []string{"b/1", "b/1/z"}) {
			t.Errorf("List visited %q, want the first two", got)
		}
	})
}

// testListAndDelete purges from inside List's callback, as an admin purge
// would: it must neither deadlock nor skip objects.
func testListAndDelete(t *testing.T, s cache.Store) {
	ctx := context.Background()
	const n = 300
	for i := range n {
		Put(t, s, fmt.Sprintf("purge/%03d", i), cache.Meta{}, []byte{byte(i)}, 0)
	}
	Put(t, s, "purgeX", cache.Meta{}, []byte("stays"), 0)
	deleted := 0
	err := s.List(ctx, "purge/", func(in cache.Info) error {
		deleted++
		return s.Delete(ctx, in.Key)
	})
	if err != nil {
		t.Fatal(err)
	}
	if deleted != n {
		t.Errorf("List visited %d objects, want %d", deleted, n)
	}
	if keys := listKeys(t, s, "purge"); !slices.Equal(keys, []string{"purgeX"}) {
		t.Errorf("after purge List = %q, want [purgeX]", keys)
	}
}

func testNotFound(t *testing.T, s cache.Store) {
	ctx := context.Background()
	for _, key := range []string{"missing", "", "a/../b"} {
		wantNotFound(t, s, key)
		if err := s.UpdateMeta(ctx, key, func(*cache.Meta) {}); !errors.Is(err, cache.ErrNotFound) {
			t.Errorf("UpdateMeta(%q) error = %v, want ErrNotFound", key, err)
		}
	}
}

func testConcurrentWriters(t *testing.T, s cache.Store) {
	const writers = 8
	size := func(i int) int { return i*ChunkSize/2 + i }
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			w, err := s.Create(ctx, fmt.Sprintf("cw/%d", i), cache.Meta{ETag: fmt.Sprint(i)})
			if err != nil {
				errs <- err
				return
			}
			defer w.Cancel()
			data := Bytes(uint64(800+i), size(i))
			for p := data; len(p) > 0; {
				n := min(4093, len(p))
				if _, err := w.Write(p[:n]); err != nil {
					errs <- err
					return
				}
				p = p[n:]
			}
			errs <- w.Commit(ctx)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range writers {
		got, info := ReadAll(t, s, fmt.Sprintf("cw/%d", i))
		Equal(t, fmt.Sprintf("cw/%d", i), got, Bytes(uint64(800+i), size(i)))
		if info.Meta.ETag != fmt.Sprint(i) {
			t.Errorf("cw/%d: ETag = %q", i, info.Meta.ETag)
		}
	}
}

// testConcurrentSameKey races writers of one key: the result must be one
// writer's object entirely, never a mix.
func testConcurrentSameKey(t *testing.T, s cache.Store) {
	const writers = 6
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			w, err := s.Create(ctx, "same", cache.Meta{ETag: fmt.Sprint(i)})
			if err != nil {
				t.Error(err)
				return
			}
			defer w.Cancel()
			if _, err := w.Write(Bytes(uint64(900+i), (i+1)*ChunkSize+i)); err != nil {
				t.Error(err)
				return
			}
			if err := w.Commit(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, info := ReadAll(t, s, "same")
	var i int
	if _, err := fmt.Sscan(info.Meta.ETag, &i); err != nil {
		t.Fatalf("ETag %q: %v", info.Meta.ETag, err)
	}
	Equal(t, "winner "+info.Meta.ETag, got, Bytes(uint64(900+i), (i+1)*ChunkSize+i))
	if info.Size != int64(len(got)) {
		t.Errorf("Info.Size = %d, read %d bytes", info.Size, len(got))
	}
}

func testConcurrentReaders(t *testing.T, s cache.Store) {
	data := Bytes(1000, 8*ChunkSize+123)
	Put(t, s, "cr/x", cache.Meta{}, data, 0)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, err := s.Get(context.Background(), "cr/x")
			if err != nil {
				t.Error(err)
				return
			}
			defer o.Close()
			if i%2 == 0 {
				got, err := io.ReadAll(o)
				if err != nil || !bytes.Equal(got, data) {
					t.Errorf("reader %d: read %d bytes, %v; want the object", i, len(got), err)
				}
				return
			}
			r := rand.New(rand.NewPCG(uint64(i), 0))
			for range 50 {
				off := r.IntN(len(data))
				buf := make([]byte, r.IntN(2*ChunkSize)+1)
				n, err := o.ReadAt(buf, int64(off))
				want := data[off:min(off+len(buf), len(data))]
				if n != len(want) || !bytes.Equal(buf[:n], want) || (n < len(buf) && err != io.EOF) {
					t.Errorf("reader %d: ReadAt(%d, %d) = %d, %v", i, len(buf), off, n, err)
					return
				}
			}
		}()
	}
	// One shared Object read with ReadAt from several goroutines, as
	// io.ReaderAt allows.
	o, err := s.Get(context.Background(), "cr/x")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 20 {
				off := (i*20 + j) * 6007 % len(data)
				buf := make([]byte, ChunkSize+7)
				n, _ := o.ReadAt(buf, int64(off))
				if !bytes.Equal(buf[:n], data[off:min(off+len(buf), len(data))]) {
					t.Errorf("shared ReadAt(%d) returned wrong bytes", off)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func testSizeTotals(t *testing.T, s cache.Store) {
	sz, ok := s.(cache.Sizer)
	if !ok {
		t.Skip("store does not implement cache.Sizer")
	}
	ctx := context.Background()
	check := func(wantObjects, wantBytes int64) {
		t.Helper()
		o, b := sz.Size()
		if o != wantObjects || b != wantBytes {
			t.Fatalf("Size() = %d objects, %d bytes; want %d, %d", o, b, wantObjects, wantBytes)
		}
	}
	check(0, 0)
	Put(t, s, "t/a", cache.Meta{}, Bytes(1, 3*ChunkSize), 0)
	Put(t, s, "t/b", cache.Meta{}, Bytes(2, 10), 0)
	check(2, 3*ChunkSize+10)
	Put(t, s, "t/a", cache.Meta{}, Bytes(3, 5), 0) // replace
	check(2, 15)
	w, err := s.Create(ctx, "t/c", cache.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(Bytes(4, 2*ChunkSize))
	check(2, 15) // uncommitted bytes do not count
	w.Cancel()
	if err := s.Delete(ctx, "t/b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "t/b"); err != nil {
		t.Fatal(err)
	}
	check(1, 5)
	var n int64
	if err := s.List(ctx, "", func(in cache.Info) error { n += in.Size; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Errorf("List sums to %d bytes, Size says 5", n)
	}
}

// testWriteTo checks io.WriterTo, where an Object offers it (the proxy's
// fast path for whole objects): from any offset to the end, across chunk
// boundaries.
func testWriteTo(t *testing.T, s cache.Store) {
	data := Bytes(42, 3*ChunkSize+17)
	Put(t, s, "wt", cache.Meta{}, data, 4096)
	for _, off := range []int64{0, 1, ChunkSize - 1, ChunkSize, 2*ChunkSize + 5, int64(len(data))} {
		obj, err := s.Get(context.Background(), "wt")
		if err != nil {
			t.Fatal(err)
		}
		wt, ok := obj.(io.WriterTo)
		if !ok {
			obj.Close()
			t.Skip("objects of this store do not implement io.WriterTo")
		}
		if _, err := obj.Seek(off, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		n, err := wt.WriteTo(&buf)
		obj.Close()
		if err != nil || n != int64(len(data))-off {
			t.Fatalf("WriteTo from %d: n=%d err=%v", off, n, err)
		}
		Equal(t, fmt.Sprintf("WriteTo from %d", off), buf.Bytes(), data[off:])
	}
}

// testLeases checks that an open object stays readable, whole and
// unchanged, after it is deleted or replaced, across other objects coming
// and going and, for stores that have one, a garbage collection; and that
// the store goes on as usual once the readers close.
func testLeases(t *testing.T, s cache.Store) {
	ctx := context.Background()
	deleted := Bytes(1100, 5*ChunkSize+7)
	replaced := Bytes(1101, 4*ChunkSize+1)
	Put(t, s, "lease/deleted", cache.Meta{ETag: "d"}, deleted, 0)
	Put(t, s, "lease/replaced", cache.Meta{ETag: "r"}, replaced, 0)

	od, err := s.Get(ctx, "lease/deleted")
	if err != nil {
		t.Fatal(err)
	}
	defer od.Close()
	head := make([]byte, ChunkSize+3) // partly read, the rest after the churn
	if _, err := io.ReadFull(od, head); err != nil {
		t.Fatal(err)
	}
	or, err := s.Get(ctx, "lease/replaced")
	if err != nil {
		t.Fatal(err)
	}
	defer or.Close()

	if err := s.Delete(ctx, "lease/deleted"); err != nil {
		t.Fatal(err)
	}
	repl := Bytes(1102, 2*ChunkSize+9)
	Put(t, s, "lease/replaced", cache.Meta{ETag: "r2"}, repl, 0)
	// Churn: other objects written, replaced and deleted.
	for i := range 6 {
		key := fmt.Sprintf("lease/churn/%d", i%3)
		Put(t, s, key, cache.Meta{}, Bytes(uint64(1110+i), (i+1)*ChunkSize/2), 0)
		if i%2 == 1 {
			if err := s.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
		}
	}
	gc, isGCer := s.(cache.GCer)
	if isGCer {
		gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := gc.RunGC(gctx)
		cancel()
		if err != nil {
			t.Fatalf("RunGC with open objects: %v (it must not wait for them)", err)
		}
	}

	wantNotFound(t, s, "lease/deleted")
	got, info := ReadAll(t, s, "lease/replaced")
	Equal(t, "replacement for new readers", got, repl)
	if info.Meta.ETag != "r2" {
		t.Errorf("new readers see ETag %q, want r2", info.Meta.ETag)
	}

	checkOpen := func(what string, o cache.Object, want []byte, etag string) {
		t.Helper()
		if in := o.Info(); in.Size != int64(len(want)) || in.Meta.ETag != etag {
			t.Errorf("%s: Info = %+v, want size %d, ETag %q", what, in, len(want), etag)
		}
		buf := make([]byte, ChunkSize+5)
		for _, off := range []int64{0, ChunkSize - 2, int64(len(want)) - int64(len(buf))} {
			n, err := o.ReadAt(buf, off)
			if n != len(buf) || (err != nil && err != io.EOF) {
				t.Fatalf("%s: ReadAt(%d) = %d, %v", what, off, n, err)
			}
			Equal(t, fmt.Sprintf("%s: ReadAt(%d)", what, off), buf, want[off:off+int64(len(buf))])
		}
		if _, err := o.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		all, err := io.ReadAll(o)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		Equal(t, what, all, want)
	}
	rest, err := io.ReadAll(od)
	if err != nil {
		t.Fatalf("reading the rest of the deleted object: %v", err)
	}
	Equal(t, "rest of the deleted object", rest, deleted[len(head):])
	checkOpen("deleted object", od, deleted, "d")
	checkOpen("replaced object", or, replaced, "r")

	if err := od.Close(); err != nil {
		t.Fatal(err)
	}
	if err := or.Close(); err != nil {
		t.Fatal(err)
	}
	if isGCer {
		if err := gc.RunGC(ctx); err != nil {
			t.Fatalf("RunGC after the readers closed: %v", err)
		}
	}
	wantNotFound(t, s, "lease/deleted")
	got, _ = ReadAll(t, s, "lease/replaced")
	Equal(t, "replacement after the old readers closed", got, repl)
	// A key deleted while leased can be written again at once.
	again := Bytes(1103, ChunkSize+1)
	Put(t, s, "lease/deleted", cache.Meta{}, again, 0)
	got, _ = ReadAll(t, s, "lease/deleted")
	Equal(t, "key written again", got, again)
	if sz, ok := s.(cache.Sizer); ok {
		var n, bytes int64
		if err := s.List(ctx, "", func(in cache.Info) error { n++; bytes += in.Size; return nil }); err != nil {
			t.Fatal(err)
		}
		if o, b := sz.Size(); o != n || b != bytes {
			t.Errorf("Size() = %d, %d; List counts %d, %d", o, b, n, bytes)
		}
	}
}
