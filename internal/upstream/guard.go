package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Causes with which a guard cancels its request's context. They never
// reach callers as such: Read turns them into ErrTimeout or ErrTooSlow.
var (
	errStalled = errors.New("stalled")
	errSlow    = errors.New("too slow")
	errClosed  = errors.New("body closed")
)

// rateBuckets is how many slices one Timeout window is cut into for the
// minimum-rate check: the window slides by Timeout/rateBuckets.
const rateBuckets = 16

// guardedBody wraps an upstream response body. A Read that gets no byte
// for timeout fails with ErrTimeout; once one full timeout window of
// waiting has passed, a window in which fewer than minRate*timeout bytes
// arrived fails with ErrTooSlow; a reset or a truncated body fails with
// ErrUnavailable.
//
// Both clocks run only while a Read waits on upstream (as curl's
// LOW_SPEED_TIME does not: curl's consumer is a local file), so a caller
// that pauses between reads, or a slow local disk under load, never looks
// like a slow or stalled upstream.
type guardedBody struct {
	body    io.ReadCloser
	ctx     context.Context // the request's context, cancelled by the timer
	parent  context.Context // the caller's context
	cancel  context.CancelCauseFunc
	timer   *time.Timer
	timeout time.Duration
	minRate int64
	target  string // redacted URL, for messages
	onErr   func(error)

	mu      sync.Mutex // Read and Close may come from different goroutines
	err     error      // sticky: once failed, every Read fails the same way
	waited  time.Duration
	total   int64
	buckets [rateBuckets + 1]int64 // bytes per slice of waiting time, a ring
	slice   int64                  // index of the slice waited holds now

	splice  spliceState // how the body may bypass user space (SpliceTo)
	drained bool        // a Read emptied the transport's buffer
	closing atomic.Bool // Close was called (it may come during a Read)
}

func newGuardedBody(ctx, parent context.Context, cancel context.CancelCauseFunc, body io.ReadCloser, timeout time.Duration, minRate int64, target string, onErr func(error)) *guardedBody {
	g := &guardedBody{
		body: body, ctx: ctx, parent: parent, cancel: cancel,
		timeout: timeout, minRate: minRate, target: target, onErr: onErr,
	}
	g.timer = time.AfterFunc(timeout, func() { cancel(errStalled) })
	g.timer.Stop()
	return g
}

func (g *guardedBody) Read(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return 0, g.err
	}
	if g.splice.moved > 0 {
		// The transport still counts the spliced bytes as to come.
		return 0, errReadAfterSplice
	}
	n, err := g.step(func() (int, error) { return g.body.Read(p) })
	if len(p) >= transportReadBuffer {
		// The transport's buffer gave all it held, or was empty and
		// this read went to the connection: what is left of the body
		// is in the socket.
		g.drained = true
	}
	return n, err
}

// step runs one wait on upstream under the stall timer and the rate
// window, and turns its failure into the package's sentinels. g.mu is
// held.
func (g *guardedBody) step(wait func() (int, error)) (int, error) {
	start := time.Now()
	g.timer.Reset(g.timeout)
	n, err := wait()
	g.timer.Stop()
	g.account(time.Since(start), n)
	switch {
	case err == nil || err == io.EOF:
		if err == nil && g.tooSlow() {
			g.cancel(errSlow)
			err = fmt.Errorf("%w: %s: %d bytes in the last %s, below %d B/s", ErrTooSlow, g.target, g.windowBytes(), g.timeout, g.minRate)
			g.fail(err)
		}
		return n, err
	case g.parent.Err() != nil:
		// The caller gave up: not upstream's fault.
		g.err = context.Cause(g.parent)
		return n, g.err
	case g.closing.Load():
		// The caller closed the body under a waiting read: not
		// upstream's fault either.
		g.err = fmt.Errorf("%s: body closed while reading", g.target)
		return n, g.err
	case errors.Is(context.Cause(g.ctx), errStalled):
		err = fmt.Errorf("%w: %s: no data for %s after %d bytes", ErrTimeout, g.target, g.timeout, g.total)
	default:
		err = fmt.Errorf("%w: %s: reading body after %d bytes: %v", ErrUnavailable, g.target, g.total, err)
	}
	g.fail(err)
	return n, err
}

func (g *guardedBody) fail(err error) {
	g.err = err
	if g.onErr != nil {
		g.onErr(err)
	}
}

// account adds n bytes that took d of waiting to the sliding window.
func (g *guardedBody) account(d time.Duration, n int) {
	g.waited += d
	g.total += int64(n)
	if g.minRate <= 0 {
		return
	}
	width := g.timeout / rateBuckets
	if width <= 0 {
		width = 1
	}
	now := int64(g.waited / width)
	// Slices passed without a byte are empty; zero them (at most a ring).
	for s := g.slice + 1; s <= now && s <= g.slice+rateBuckets+1; s++ {
		g.buckets[s%(rateBuckets+1)] = 0
	}
	g.slice = now
	g.buckets[now%(rateBuckets+1)] += int64(n)
}

// windowBytes is what arrived in the last rateBuckets slices, the current
// one included: about one timeout window of waiting.
func (g *guardedBody) windowBytes() int64 {
	var sum int64
	for i := int64(0); i < rateBuckets; i++ {
		s := g.slice - i
		if s < 0 {
			break
		}
		sum += g.buckets[s%(rateBuckets+1)]
	}
	return sum
}

// tooSlow judges the rate only once one full window of waiting is behind.
func (g *guardedBody) tooSlow() bool {
	if g.minRate <= 0 || g.waited < g.timeout {
		return false
	}
	need := g.minRate * int64(g.timeout) / int64(time.Second)
	return g.windowBytes() < need
}

// ErrNoSplice: SpliceTo cannot move this body (TLS, HTTP/2, no length, not
// Linux, or no Read has emptied the transport's buffer yet): Read it.
var ErrNoSplice = errors.New("body cannot be spliced")

// errReadAfterSplice: a caller's bug, Read once SpliceTo has moved bytes.
var errReadAfterSplice = errors.New("upstream: Read after SpliceTo")

// WriteError is SpliceTo failing on its own side (the file, or the pipe
// once bytes have passed through it): not upstream's fault. The body cannot
// go on after it.
type WriteError struct{ Err error }

func (e *WriteError) Error() string { return "writing spliced bytes: " + e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }

// spliceMin is the least a body must have left for SpliceTo to start on
// it: the transport closes the connection of a body it did not read to
// its end, which is cheap next to a megabyte but not next to a small file.
const spliceMin = 1 << 20

// localError marks a failure of SpliceTo's own side (pipe, splice not
// allowed) that fromSocket met before reading upstream.
type localError struct{ err error }

func (e localError) Error() string { return e.err.Error() }

// SpliceTo moves up to max bytes of the body into file at off without
// copying them through user space (splice(2) from upstream's socket into
// a pipe, and from the pipe into the file). It works for an HTTP/1.1 body
// of known length on a plain TCP connection, once a Read of at least
// transportReadBuffer bytes has emptied the transport's buffer, when at
// least spliceMin bytes are left; otherwise it returns ErrNoSplice and
// the caller reads. It returns io.EOF once the
// whole body has been delivered (by Read and SpliceTo together), a
// *WriteError when file fails, and otherwise what Read would: its waits
// on upstream run under the same stall timer and rate window.
func (g *guardedBody) SpliceTo(file *os.File, off int64, max int) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return 0, g.err
	}
	if !g.drained || !g.splice.usable() {
		return 0, ErrNoSplice
	}
	if max <= 0 {
		return 0, nil
	}
	rest := g.splice.length - g.total
	switch {
	case g.splice.moved > 0 && rest <= 0:
		return 0, io.EOF
	case g.splice.moved == 0 && rest < spliceMin:
		// Reading the end lets the transport see it and keep the
		// connection; a spliced body costs the connection.
		return 0, ErrNoSplice
	}
	// A failure on this side (no pipe, splice not allowed here) is not
	// upstream's: before any byte has passed, the caller reads instead.
	var local error
	n, err := g.step(func() (int, error) {
		n, err := g.splice.fromSocket(int(min(rest, int64(max))))
		var le localError
		if errors.As(err, &le) {
			local = le.err
			return 0, nil
		}
		return n, err
	})
	if local != nil {
		if g.splice.moved == 0 {
			g.splice.disable()
			return 0, ErrNoSplice
		}
		g.err = &WriteError{Err: local}
		return 0, g.err
	}
	if n > 0 {
		// Bytes in the pipe go to the file even when the step failed
		// (too slow): Read hands over what it got with its error too.
		if werr := g.splice.toFile(file, off, n); werr != nil {
			g.err = &WriteError{Err: werr}
			return 0, g.err
		}
		g.splice.moved += int64(n)
	}
	return n, err
}

func (g *guardedBody) Close() error {
	g.closing.Store(true)
	g.splice.close()
	g.timer.Stop()
	err := g.body.Close()
	g.cancel(errClosed)
	return err
}
