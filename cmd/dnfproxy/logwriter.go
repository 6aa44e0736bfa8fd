package main

import (
	"io"
	"sync"
)

// logWriter hands log lines to an underlying writer (stderr) from one
// goroutine, so that a busy proxy writes the access-log lines of many
// requests in one write(2) instead of one each: a Write only copies its
// line into a buffer and wakes the writer goroutine. Nothing waits on a
// timer: an idle proxy's line is written as soon as that goroutine runs.
// A Write blocks only while maxLogBuffer bytes are pending (a stuck
// stderr). Close writes what is pending and stops the goroutine.
type logWriter struct {
	w io.Writer

	mu      sync.Mutex
	pending []byte
	spare   []byte
	closed  bool
	room    *sync.Cond // signalled when pending was taken
	wake    chan struct{}
	done    chan struct{}
}

const maxLogBuffer = 1 << 20

func newLogWriter(w io.Writer) *logWriter {
	lw := &logWriter{w: w, wake: make(chan struct{}, 1), done: make(chan struct{})}
	lw.room = sync.NewCond(&lw.mu)
	go lw.run()
	return lw
}

func (lw *logWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	for len(lw.pending) >= maxLogBuffer && !lw.closed {
		lw.room.Wait()
	}
	if lw.closed {
		lw.mu.Unlock()
		return lw.w.Write(p) // after Close: straight through
	}
	lw.pending = append(lw.pending, p...)
	lw.mu.Unlock()
	select {
	case lw.wake <- struct{}{}:
	default: // already woken
	}
	return len(p), nil
}

func (lw *logWriter) run() {
	defer close(lw.done)
	for range lw.wake {
		for {
			lw.mu.Lock()
			out := lw.pending
			lw.pending, lw.spare = lw.spare[:0], nil
			closed := lw.closed
			lw.room.Broadcast()
			lw.mu.Unlock()
			if len(out) == 0 {
				if closed {
					return
				}
				break
			}
			_, _ = lw.w.Write(out) // a log line has nowhere else to go
			lw.mu.Lock()
			if lw.spare == nil && cap(out) <= maxLogBuffer {
				lw.spare = out
			}
			lw.mu.Unlock()
		}
	}
}

// Close writes the pending lines; later Writes go straight through.
func (lw *logWriter) Close() error {
	lw.mu.Lock()
	if lw.closed {
		lw.mu.Unlock()
		return nil
	}
	lw.closed = true
	lw.room.Broadcast()
	lw.mu.Unlock()
	select {
	case lw.wake <- struct{}{}:
	default:
	}
	<-lw.done
	return nil
}
