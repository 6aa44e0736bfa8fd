package main

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingWriter is a writer that records each Write call.
type recordingWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	block  chan struct{} // when not nil, Write waits for it to close
}

func (b *recordingWriter) Write(p []byte) (int, error) {
	if b.block != nil {
		<-b.block
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes++
	return b.buf.Write(p)
}

func (b *recordingWriter) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestLogWriter(t *testing.T) {
	t.Run("lines from many goroutines arrive whole, each goroutine's in order", func(t *testing.T) {
		out := &recordingWriter{}
		lw := newLogWriter(out)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 500 {
					fmt.Fprintf(lw, "g=%d i=%d %s\n", g, i, strings.Repeat("x", i%50))
				}
			}()
		}
		wg.Wait()
		lw.Close()
		next := map[string]int{}
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		if len(lines) != 8*500 {
			t.Fatalf("%d lines, want %d", len(lines), 8*500)
		}
		for _, l := range lines {
			var g, i int
			if _, err := fmt.Sscanf(l, "g=%d i=%d", &g, &i); err != nil || l != fmt.Sprintf("g=%d i=%d %s", g, i, strings.Repeat("x", i%50)) {
				t.Fatalf("torn line %q", l)
			}
			if key := fmt.Sprint(g); next[key] != i {
				t.Fatalf("goroutine %d: line %d after %d", g, i, next[key]-1)
			} else {
				next[key]++
			}
		}
	})
	t.Run("an idle writer's line is written without waiting for more", func(t *testing.T) {
		out := &recordingWriter{}
		lw := newLogWriter(out)
		defer lw.Close()
		fmt.Fprintln(lw, "one line")
		deadline := time.Now().Add(5 * time.Second)
		for out.String() != "one line\n" {
			if time.Now().After(deadline) {
				t.Fatalf("a single line was not written within 5s: %q", out.String())
			}
			time.Sleep(time.Millisecond)
		}
	})
	t.Run("lines written while the output is busy go out in one write", func(t *testing.T) {
		out := &recordingWriter{block: make(chan struct{})}
		lw := newLogWriter(out)
		fmt.Fprintln(lw, "first") // taken by the writer goroutine, which blocks in Write
		time.Sleep(50 * time.Millisecond)
		for i := range 100 {
			fmt.Fprintf(lw, "line %d\n", i)
		}
		close(out.block)
		lw.Close()
		if got := strings.Count(out.String(), "\n"); got != 101 {
			t.Fatalf("%d lines, want 101", got)
		}
		if out.writes > 3 {
			t.Errorf("101 lines took %d writes, want the 100 pending ones coalesced", out.writes)
		}
	})
	t.Run("Close writes what is pending; later lines go straight through", func(t *testing.T) {
		out := &recordingWriter{}
		lw := newLogWriter(out)
		fmt.Fprintln(lw, "before")
		lw.Close()
		if out.String() != "before\n" {
			t.Fatalf("after Close: %q", out.String())
		}
		fmt.Fprintln(lw, "after")
		if out.String() != "before\nafter\n" {
			t.Fatalf("a line after Close: %q", out.String())
		}
	})
}
