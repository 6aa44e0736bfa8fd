package cache_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/cache/cachetest"
)

// pausingWriter takes the first Write, then blocks every later one until
// release is closed: a client that stops reading in the middle of an object.
type pausingWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	writes  int
	paused  chan struct{} // closed when a Write starts blocking
	release chan struct{}
}

func newPausingWriter() *pausingWriter {
	return &pausingWriter{paused: make(chan struct{}), release: make(chan struct{})}
}

func (w *pausingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.writes++
	if w.writes == 2 {
		close(w.paused)
	}
	w.mu.Unlock()
	if w.writes >= 2 {
		<-w.release
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// vlogFiles counts the value-log files in dir.
func vlogFiles(t *testing.T, dir string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

// stallBound is how long a store operation may take while a reader is
// paused. The target is 100 ms; the bound is generous because the race
// detector and a shared 2-core machine slow everything down, while a store
// that waits for the paused reader waits until it goes on, i.e. forever.
const stallBound = time.Second

// TestBadgerPausedReader pauses a reader in the middle of an object (a
// WriteTo into a writer that blocks, as a client that stops reading does)
// and checks that meanwhile commits of other objects, through several
// value-log rotations, cache hits, Stat, List and GC all go on without
// waiting for it; and that the paused reader gets the whole object once it
// goes on.
func TestBadgerPausedReader(t *testing.T) {
	ctx := context.Background()
	const objSize = 512 << 10 // 8 chunks
	opt := testOptions()
	opt.ValueLogFileSize = 1 << 20 // badger's minimum: a rotation every other object
	dir := t.TempDir()
	s := openBadger(t, dir, opt)
	defer s.Close()

	other := cachetest.Bytes(2, objSize)
	cachetest.Put(t, s, "other", cache.Meta{}, other, 0)
	if err := s.Delete(ctx, "other"); err != nil { // garbage for RunGC to find
		t.Fatal(err)
	}
	cachetest.Put(t, s, "other", cache.Meta{}, other, 0) // fills the first file
	// The paused object sits in the value-log file being written, the one
	// the next rotation seals (which waits for readers of that file).
	paused := cachetest.Bytes(1, objSize)
	cachetest.Put(t, s, "paused", cache.Meta{}, paused, 0)
	if in, last := findFile(t, dir, paused[100:164]), lastVlog(t, dir); in != last {
		t.Fatalf("paused object in %s, want it in the file being written, %s", in, last)
	}

	o, err := s.Get(ctx, "paused")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	w := newPausingWriter()
	type result struct {
		n   int64
		err error
	}
	wrote := make(chan result, 1)
	go func() {
		n, err := o.(io.WriterTo).WriteTo(w)
		wrote <- result{n, err}
	}()
	<-w.paused
	released := false
	release := func() {
		if !released {
			released = true
			close(w.release)
		}
	}
	defer release()

	files := vlogFiles(t, dir)
	type timing struct {
		what string
		d    time.Duration
		err  error
	}
	timings := make(chan timing, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		timed := func(what string, fn func() error) {
			start := time.Now()
			err := fn()
			timings <- timing{what, time.Since(start), err}
		}
		for i := range 8 {
			key := fmt.Sprintf("new/%d", i)
			data := cachetest.Bytes(uint64(10+i), objSize)
			timed("commit "+key, func() error {
				w, err := s.Create(ctx, key, cache.Meta{})
				if err != nil {
					return err
				}
				defer w.Cancel()
				if _, err := w.Write(data); err != nil {
					return err
				}
				return w.Commit(ctx)
			})
			timed("get other", func() error {
				o, err := s.Get(ctx, "other")
				if err != nil {
					return err
				}
				defer o.Close()
				got := make([]byte, objSize)
				if _, err := o.ReadAt(got, 0); err != nil {
					return err
				}
				if !bytes.Equal(got, other) {
					return fmt.Errorf("wrong bytes")
				}
				return nil
			})
			timed("stat", func() error { _, err := s.Stat(ctx, "paused"); return err })
			timed("list", func() error { return s.List(ctx, "", func(cache.Info) error { return nil }) })
		}
		timed("gc", func() error {
			gctx, cancel := context.WithTimeout(ctx, 2*stallBound)
			defer cancel()
			return s.RunGC(gctx)
		})
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		release()
		<-done
		t.Errorf("store operations did not finish within 20s while a reader was paused")
	}
	close(timings)
	var slowest timing
	for tm := range timings {
		if tm.err != nil {
			t.Errorf("%s: %v", tm.what, tm.err)
		}
		if tm.d > slowest.d {
			slowest = tm
		}
	}
	t.Logf("slowest operation while a reader was paused: %s, %v", slowest.what, slowest.d)
	if slowest.d > stallBound {
		t.Errorf("%s took %v while a reader was paused, want under %v", slowest.what, slowest.d, stallBound)
	}
	if after := vlogFiles(t, dir); after <= files {
		t.Errorf("value-log files: %d before, %d after: no rotation happened, the test measured nothing", files, after)
	}

	release()
	r := <-wrote
	if r.err != nil || r.n != objSize {
		t.Fatalf("paused WriteTo = %d, %v; want %d bytes", r.n, r.err, objSize)
	}
	cachetest.Equal(t, "object written by the paused reader", w.buf.Bytes(), paused)
}
