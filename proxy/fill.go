package proxy

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/metadata"
	"github.com/gin-gonic/gin"
)

// expect is what a fill must verify before it commits.
type expect struct {
	size    int64             // exact size, -1 when unknown
	sum     metadata.Checksum // zero when unknown
	maxSize int64             // hard limit, 0 for none
}

// fill is one upstream transfer into the cache. Any number of clients
// follow it: they read the bytes from an unlinked spool file as they
// arrive. The last byte is held back until the whole object is verified
// and committed, so no client ever receives a complete bad body.
type fill struct {
	key  string
	rel  string
	exp  expect
	cond http.Header // conditional request headers (revalidation)

	ready chan struct{} // closed once headers are known or the fill failed
	done  chan struct{} // closed once the fill ended

	mu          sync.Mutex
	notify      chan struct{} // closed and replaced whenever state changes
	spool       *os.File
	written     int64
	total       int64 // announced size, -1 unknown
	meta        cache.Meta
	notModified bool // upstream answered 304: the cached object stands
	bodyDone    bool // upstream's body fully in the spool (not yet verified)
	finished    bool // verified (err == nil) or failed: clients may finish
	err         error
	commitErr   error // verified bytes that could not be stored
	discard     bool  // purged while running: serve the clients, store nothing
	refs        int   // spool users: the leader and each follower
}

func newFill(key, rel string, exp expect, cond http.Header) *fill {
	return &fill{
		key: key, rel: rel, exp: exp, cond: cond,
		ready: make(chan struct{}), done: make(chan struct{}),
		notify: make(chan struct{}), total: -1, refs: 1,
	}
}

func (f *fill) broadcastLocked() {
	close(f.notify)
	f.notify = make(chan struct{})
}

// acquire registers a follower of the spool; release undoes it.
func (f *fill) acquire() {
	f.mu.Lock()
	f.refs++
	f.mu.Unlock()
}

func (f *fill) release() {
	f.mu.Lock()
	f.refs--
	if f.refs == 0 && f.spool != nil {
		f.spool.Close()
		f.spool = nil
	}
	f.mu.Unlock()
}

// readAt reads spool bytes at off, waiting for them to arrive. It returns
// io.EOF at the verified end and the fill's error if it failed.
func (f *fill) readAt(ctx context.Context, p []byte, off int64) (int, error) {
	for {
		f.mu.Lock()
		avail := f.written
		if !f.finished {
			avail-- // hold back the last byte until verified
		}
		switch {
		case f.finished && f.err != nil:
			f.mu.Unlock()
			return 0, f.err
		case off < avail:
			n := int64(len(p))
			if off+n > avail {
				n = avail - off
			}
			sp := f.spool
			f.mu.Unlock()
			return sp.ReadAt(p[:n], off)
		case f.finished:
			f.mu.Unlock()
			return 0, io.EOF
		}
		ch := f.notify
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

func (f *fill) fail(err error) {
	f.mu.Lock()
	if !f.finished {
		f.finished = true
		f.err = err
		f.broadcastLocked()
	}
	f.mu.Unlock()
}

// newHash returns a hash for a verified checksum type.
func newHash(typ string) (hash.Hash, error) {
	switch typ {
	case "md5":
		return md5.New(), nil
	case "sha1":
		return sha1.New(), nil
	case "sha224":
		return sha256.New224(), nil
	case "sha256":
		return sha256.New(), nil
	case "sha384":
		return sha512.New384(), nil
	case "sha512":
		return sha512.New(), nil
	}
	return nil, fmt.Errorf("unsupported checksum type %q", typ)
}

// stallReader fails a read that gets no byte for the stall timeout. The
// timer cancels the request context, which unblocks the body read.
type stallReader struct {
	r     io.Reader
	timer *time.Timer
	d     time.Duration
}

var errStalled = errors.New("upstream stalled")

// The timer runs only while waiting on upstream, so a slow local disk
// under load never looks like an upstream stall.
func (s *stallReader) Read(p []byte) (int, error) {
	s.timer.Reset(s.d)
	n, err := s.r.Read(p)
	s.timer.Stop()
	return n, err
}

// startFill returns the running fill for key, or starts one. It returns
// nil when the object got committed meanwhile (the caller retries the
// store). The in-flight map and the store re-check share one lock, so two
// fills of one key never run at once.
func (s *Server) startFill(rp *repoState, key, rel string, exp expect, cond http.Header, requireFresh bool) *fill {
	s.fillMu.Lock()
	defer s.fillMu.Unlock()
	if f, ok := s.fills[key]; ok {
		f.acquire()
		return f
	}
	if !requireFresh && cond == nil {
		if _, err := s.store.Stat(context.Background(), key); err == nil {
			return nil
		}
	}
	f := newFill(key, rel, exp, cond)
	f.refs = 2 // the leader and the caller
	s.fills[key] = f
	s.fillWG.Add(1)
	go s.runFill(rp, f)
	return f
}

// runFill is the leader of a fill: it runs detached from any client, on
// the server's base context, with a stall timeout.
func (s *Server) runFill(rp *repoState, f *fill) {
	defer s.fillWG.Done()
	defer close(f.done)
	defer f.release()
	err := s.doFill(rp, f)
	s.forget(f)
	// Fail before releasing waiters: a follower woken by ready must see
	// the error (and answer 502/504), not start a 200 it cannot finish.
	if err != nil {
		f.fail(err)
		f.mu.Lock()
		if f.err == nil { // the clients got verified bytes; only storing failed
			f.commitErr = err
		}
		f.mu.Unlock()
		s.log.Warn("fill failed", "repo", rp.name, "path", f.rel, "err", err)
	}
	select {
	case <-f.ready:
	default:
		close(f.ready)
	}
}

func (s *Server) doFill(rp *repoState, f *fill) error {
	ctx, cancel := context.WithCancelCause(s.baseCtx)
	defer cancel(nil)
	start := time.Now()
	resp, err := rp.up.get(ctx, f.rel, f.cond)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && f.cond != nil:
		now := time.Now()
		if err := s.store.UpdateMeta(ctx, f.key, func(m *cache.Meta) { m.Fetched = now }); err != nil {
			return fmt.Errorf("refreshing %s: %w", f.key, err)
		}
		f.mu.Lock()
		f.notModified, f.finished = true, true
		f.broadcastLocked()
		f.mu.Unlock()
		return nil
	case resp.StatusCode != http.StatusOK:
		return statusError(resp)
	}

	total := resp.ContentLength
	if f.exp.size >= 0 {
		if total >= 0 && total != f.exp.size {
			return fmt.Errorf("%w: %s: upstream sends %d bytes, metadata says %d", ErrVerify, f.rel, total, f.exp.size)
		}
		total = f.exp.size
	}
	if f.exp.maxSize > 0 && total > f.exp.maxSize {
		return fmt.Errorf("%w: %s: %d bytes is over the %d-byte limit", ErrVerify, f.rel, total, f.exp.maxSize)
	}
	var h hash.Hash
	if !f.exp.sum.IsZero() {
		if h, err = newHash(f.exp.sum.Type); err != nil {
			return fmt.Errorf("%w: %v", ErrVerify, err)
		}
	}
	meta := cache.Meta{
		ContentType:  contentType(f.rel),
		ETag:         resp.Header.Get("ETag"),
		LastModified: resp.Header.Get("Last-Modified"),
		Checksum:     f.exp.sum.String(),
		Fetched:      time.Now(),
	}
	w, err := s.store.Create(ctx, f.key, meta)
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	defer w.Cancel()
	spool, err := os.CreateTemp(s.spoolDir, "fill-*")
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	os.Remove(spool.Name()) // followers share the open file; a crash leaves nothing
	f.mu.Lock()
	f.spool, f.total, f.meta = spool, total, meta
	f.mu.Unlock()
	close(f.ready)

	stall := rp.up.opt.Timeout
	timer := time.AfterFunc(stall, func() { cancel(errStalled) })
	defer timer.Stop()
	limit := total
	if limit < 0 {
		limit = f.exp.maxSize
	}
	var body io.Reader = &stallReader{r: resp.Body, timer: timer, d: stall}
	if limit > 0 {
		body = io.LimitReader(body, limit+1)
	}
	// The store is written from the spool once upstream's body is in, so
	// that the store's work (badger copies every chunk several times) never
	// competes with the transfer the clients wait for: they get the last
	// byte as soon as the bytes are verified.
	stored := make(chan error, 1)
	go func() { stored <- s.storeSpool(f, w) }()
	err = s.readUpstream(ctx, f, body, h, limit, total, stall)
	if err != nil {
		s.forget(f) // no new client may join a failed fill
		f.fail(err)
		<-stored
		return err
	}
	f.mu.Lock()
	f.finished = true
	n64 := f.written
	f.broadcastLocked()
	f.mu.Unlock()
	s.stats.upstreamBytes.Add(n64)
	s.metrics.fillDone(rp.name, time.Since(start), n64)
	if err := <-stored; err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	f.mu.Lock()
	discard := f.discard
	f.mu.Unlock()
	if discard {
		s.forget(f)
		return nil
	}
	if err := w.Commit(ctx); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	s.forget(f) // new requests now find the committed object
	s.evictSoon()
	return nil
}

// readUpstream copies upstream's body into the spool, hashing it, and
// verifies size and checksum at the end.
func (s *Server) readUpstream(ctx context.Context, f *fill, body io.Reader, h hash.Hash, limit, total int64, stall time.Duration) error {
	spool := f.spool
	buf := make([]byte, 1<<20)
	var n64 int64
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if _, err := spool.WriteAt(chunk, n64); err != nil {
				return fmt.Errorf("spool: %w", err)
			}
			if h != nil {
				h.Write(chunk)
			}
			n64 += int64(n)
			f.mu.Lock()
			f.written = n64
			f.broadcastLocked()
			f.mu.Unlock()
			if limit > 0 && n64 > limit {
				return fmt.Errorf("%w: %s: upstream sends more than %d bytes", ErrVerify, f.rel, limit)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if cause := context.Cause(ctx); errors.Is(cause, errStalled) {
				return fmt.Errorf("%w: %s: no data for %s", ErrUpstreamTimeout, f.rel, stall)
			}
			return fmt.Errorf("%w: %s: reading body after %d bytes: %v", ErrUpstream, f.rel, n64, rerr)
		}
	}
	f.mu.Lock()
	f.bodyDone = true
	f.broadcastLocked()
	f.mu.Unlock()
	if total >= 0 && n64 != total {
		return fmt.Errorf("%w: %s: got %d bytes, expected %d", ErrVerify, f.rel, n64, total)
	}
	if h != nil {
		if got := fmt.Sprintf("%x", h.Sum(nil)); got != f.exp.sum.Value {
			return fmt.Errorf("%w: %s: %s checksum is %s, metadata says %s", ErrVerify, f.rel, f.exp.sum.Type, got, f.exp.sum.Value)
		}
	}
	return nil
}

// storeSpool copies the spool into the store writer once upstream's body
// is complete (or stops when the fill fails).
func (s *Server) storeSpool(f *fill, w cache.Writer) error {
	buf := make([]byte, 1<<20)
	var off int64
	for {
		f.mu.Lock()
		started := f.bodyDone || f.finished
		ch := f.notify
		f.mu.Unlock()
		if started {
			break
		}
		select {
		case <-ch:
		case <-s.baseCtx.Done():
			return s.baseCtx.Err()
		}
	}
	for {
		f.mu.Lock()
		switch {
		case f.finished && f.err != nil:
			f.mu.Unlock()
			return f.err
		case off < f.written:
			n := min(int64(len(buf)), f.written-off)
			sp := f.spool
			f.mu.Unlock()
			if _, err := sp.ReadAt(buf[:n], off); err != nil {
				return fmt.Errorf("spool: %w", err)
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			off += n
			continue
		case f.bodyDone:
			f.mu.Unlock()
			return nil
		}
		ch := f.notify
		f.mu.Unlock()
		select {
		case <-ch:
		case <-s.baseCtx.Done():
			return s.baseCtx.Err()
		}
	}
}

// forget removes f from the in-flight map, unless another fill of the
// same key has replaced it there.
func (s *Server) forget(f *fill) {
	s.fillMu.Lock()
	if s.fills[f.key] == f {
		delete(s.fills, f.key)
	}
	s.fillMu.Unlock()
}

// fillsRunning reports how many fills are in flight (not yet committed).
func (s *Server) fillsRunning() int {
	s.fillMu.Lock()
	defer s.fillMu.Unlock()
	return len(s.fills)
}

// await waits for a fill to end and returns its error.
func (f *fill) await(ctx context.Context) error {
	select {
	case <-f.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	return f.commitErr
}

// streamFill sends a fill's bytes to a client as they arrive. Headers go
// out once upstream answered; a failure after that aborts the connection
// so the client sees a broken transfer, never a short "complete" one.
func (s *Server) streamFill(c *gin.Context, f *fill, hdr func(http.Header)) error {
	defer f.release()
	ctx := c.Request.Context()
	select {
	case <-f.ready:
	case <-ctx.Done():
		return nil
	}
	f.mu.Lock()
	failedEarly := f.finished && f.err != nil
	notModified := f.notModified
	total, meta := f.total, f.meta
	f.mu.Unlock()
	if failedEarly {
		return f.err
	}
	if notModified {
		return errRetryStore
	}
	w := c.Writer
	h := w.Header()
	hdr(h)
	if meta.ContentType != "" {
		h.Set("Content-Type", meta.ContentType)
	}
	if meta.LastModified != "" {
		h.Set("Last-Modified", meta.LastModified)
	}
	if total >= 0 {
		h.Set("Content-Length", strconv.FormatInt(total, 10))
	}
	w.WriteHeader(http.StatusOK)
	buf := make([]byte, 256<<10)
	var off int64
	for {
		n, err := f.readAt(ctx, buf, off)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil // client went away; the fill goes on
			}
			w.Flush()
			off += int64(n)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			abortConn(c, err)
			return nil
		}
	}
}
