package cache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/cache/cachetest"
)

// TestBadgerDamagedValueLog damages the value log of a closed store the
// way a power loss or a failing disk does, reopens it, and checks that no
// read ever returns bytes other than those committed: every object reads
// back exact or fails with ErrCorrupt, the damaged one fails, objects
// written before it are intact, and a damaged object is dropped so that the
// next Get misses (and the proxy fetches it again).
func TestBadgerDamagedValueLog(t *testing.T) {
	const (
		objects = 12
		objSize = 10 * cachetest.ChunkSize
	)
	tests := []struct {
		name   string
		victim int  // the object whose bytes are damaged
		sealed bool // in a value-log file before the last one
		damage func(t *testing.T, path string, at int64)
	}{
		// Only a checksum catches this one: badger checks entries of the
		// last file only, when it opens, and none on reads by default.
		{"bytes flipped in a sealed file", 1, true, func(t *testing.T, path string, at int64) {
			flip(t, path, at, 16)
		}},
		{"bytes flipped in the last file", objects - 1, false, func(t *testing.T, path string, at int64) {
			flip(t, path, at, 16)
		}},
		{"a page of the last file zeroed (never written back)", objects - 1, false, func(t *testing.T, path string, at int64) {
			zero(t, path, at&^4095, 4096)
		}},
		{"last file truncated", objects - 1, false, func(t *testing.T, path string, at int64) {
			if err := os.Truncate(path, at); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			opt := testOptions()
			opt.ValueLogFileSize = 2 << 20 // about 3 objects a file
			dir := t.TempDir()
			data := func(i int) []byte { return cachetest.Bytes(uint64(100+i), objSize) }
			key := func(i int) string { return fmt.Sprintf("obj/%02d", i) }
			s := openBadger(t, dir, opt)
			for i := range objects {
				cachetest.Put(t, s, key(i), cache.Meta{}, data(i), 0)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			// Find the victim's 4th chunk in the value log.
			snippet := data(tt.victim)[3*cachetest.ChunkSize+100:][:64]
			path, at := findInVlog(t, dir, snippet)
			if last := lastVlog(t, dir); (path != last) != tt.sealed {
				t.Fatalf("victim found in %s, last value-log file %s: want sealed=%v", path, last, tt.sealed)
			}
			tt.damage(t, path, at)

			s = openBadger(t, dir, opt)
			defer s.Close()
			for i := range objects {
				err := readBack(t, s, key(i), data(i))
				switch {
				case err == nil:
					if i == tt.victim {
						t.Errorf("%s: damaged object read back whole", key(i))
					}
				case errors.Is(err, cache.ErrCorrupt):
					if i < tt.victim {
						t.Errorf("%s, written before the damaged one: %v", key(i), err)
					}
				default:
					t.Errorf("%s: %v, want exact bytes or ErrCorrupt", key(i), err)
				}
			}
			s.Settle()
			if _, err := s.Stat(ctx, key(tt.victim)); !errors.Is(err, cache.ErrNotFound) {
				t.Errorf("damaged object: Stat = %v after a failed read, want ErrNotFound (dropped)", err)
			}
			if s.Corrupted() == 0 {
				t.Error("no chunk counted as corrupted")
			}
			// The store goes on: the object is written again and reads back.
			cachetest.Put(t, s, key(tt.victim), cache.Meta{}, data(tt.victim), 0)
			if err := readBack(t, s, key(tt.victim), data(tt.victim)); err != nil {
				t.Errorf("object written again: %v", err)
			}
		})
	}
}

// readBack reads key with Read, WriteTo and ReadAt and returns the first
// error; it fails the test outright if any of them yields a byte that
// differs from want (a failed read may stop early, never serve wrong bytes).
func readBack(t *testing.T, s cache.Store, key string, want []byte) error {
	t.Helper()
	ctx := context.Background()
	read := []struct {
		how string
		fn  func(o cache.Object) ([]byte, error)
	}{
		{"Read", func(o cache.Object) ([]byte, error) { return io.ReadAll(struct{ io.Reader }{o}) }},
		{"WriteTo", func(o cache.Object) ([]byte, error) {
			var b bytes.Buffer
			_, err := o.(io.WriterTo).WriteTo(&b)
			return b.Bytes(), err
		}},
		{"ReadAt", func(o cache.Object) ([]byte, error) {
			b := make([]byte, len(want))
			n, err := o.ReadAt(b, 0)
			if err == io.EOF {
				err = nil
			}
			return b[:n], err
		}},
	}
	for _, r := range read {
		o, err := s.Get(ctx, key)
		if errors.Is(err, cache.ErrNotFound) {
			return fmt.Errorf("%w (dropped by an earlier read)", cache.ErrCorrupt)
		}
		if err != nil {
			return err
		}
		got, err := r.fn(o)
		o.Close()
		if !bytes.HasPrefix(want, got) {
			t.Fatalf("%s of %s served %d bytes that differ from those committed (err %v)", r.how, key, len(got), err)
		}
		if err == nil && len(got) != len(want) {
			err = fmt.Errorf("%s: %d bytes, want %d", r.how, len(got), len(want))
		}
		if err != nil {
			return fmt.Errorf("%s: %w", r.how, err)
		}
	}
	return nil
}

func vlogPaths(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m) // fixed-width numbers: name order is file order
	return m
}

// lastVlog is the newest value-log file holding entries.
func lastVlog(t *testing.T, dir string) string {
	t.Helper()
	var last string
	for _, p := range vlogPaths(t, dir) {
		if fi, err := os.Stat(p); err == nil && fi.Size() > 64 {
			last = p
		}
	}
	return last
}

func findFile(t *testing.T, dir string, b []byte) string {
	t.Helper()
	p, _ := findInVlog(t, dir, b)
	return p
}

// findInVlog returns the file and offset of b in the value log.
func findInVlog(t *testing.T, dir string, b []byte) (string, int64) {
	t.Helper()
	for _, p := range vlogPaths(t, dir) {
		f, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(f, b); i >= 0 {
			return p, int64(i)
		}
	}
	t.Fatal("bytes not found in the value log")
	return "", 0
}

func flip(t *testing.T, path string, at int64, n int) {
	t.Helper()
	rewrite(t, path, at, n, func(b byte) byte { return b ^ 0x5a })
}

func zero(t *testing.T, path string, at int64, n int) {
	t.Helper()
	rewrite(t, path, at, n, func(byte) byte { return 0 })
}

func rewrite(t *testing.T, path string, at int64, n int, fn func(byte) byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = fn(b[i])
	}
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}
