// Package fill owns the in-flight upstream transfers into the cache store:
// one transfer per key however many clients ask, a spool file that every
// follower streams from as bytes arrive, and verification before commit.
// It knows no repos: a Request says where to fetch from and what to verify.
//
// Guarantees: the last byte of a transfer is held back from every reader
// until the whole object is verified, so no client receives a complete bad
// body; an object is committed to the store only when its size and checksum
// match; a client hanging up never aborts a transfer; a transfer falling
// under its minimum rate is abandoned, and new clients never join it.
package fill

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/bg"
	"github.com/dnfproxy/dnfproxy/internal/keys"
	"github.com/dnfproxy/dnfproxy/internal/upstream"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// Errors of a fill.
var (
	// ErrVerify: upstream's bytes do not match what the metadata says.
	ErrVerify = errors.New("upstream content is wrong")
	// ErrRetryStore: the object is (again) in the store; read it there.
	ErrRetryStore = errors.New("object committed meanwhile")
)

// Source is where a fill fetches from (an upstream.Client).
type Source interface {
	GetFrom(ctx context.Context, rel string, hdr http.Header, after string) (*upstream.Response, error)
}

// Expect is what a fill must verify before it commits.
type Expect struct {
	Size    int64             // exact size, -1 when unknown
	Sum     metadata.Checksum // zero when unknown
	MaxSize int64             // hard limit, 0 for none
}

// Request describes one object to fill.
type Request struct {
	Src     Source
	Repo    string // for metrics and logs
	Key     string
	Rel     string // path below the repo's upstream base
	Exp     Expect
	Cond    http.Header // conditional request headers (revalidation)
	MinRate int64       // bytes/s below which new clients do not join; 0: none
	// RequireFresh starts a transfer even when the store holds the key.
	RequireFresh bool
}

// Hooks let the owner of metrics and eviction hear about fills.
type Hooks struct {
	Committed func(repo string, d time.Duration, bytes int64) // after a commit
}

// Filler owns the in-flight map.
type Filler struct {
	store    cache.Store
	spoolDir string
	log      *slog.Logger
	hooks    Hooks
	baseCtx  context.Context

	mu    sync.Mutex
	fills map[string]*Fill
	bg    bg.Group

	spliced atomic.Int64 // bytes upstream bodies moved into spools by splice(2)
}

// New returns a Filler whose transfers run on ctx (not on clients').
func New(ctx context.Context, store cache.Store, spoolDir string, log *slog.Logger, hooks Hooks) (*Filler, error) {
	if err := os.MkdirAll(spoolDir, 0o750); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	return &Filler{store: store, spoolDir: spoolDir, log: log, hooks: hooks, baseCtx: ctx, fills: map[string]*Fill{}}, nil
}

// Wait waits for every running transfer (after ctx is cancelled).
func (fl *Filler) Wait() { fl.bg.Close() }

// Running reports how many transfers are in flight (not yet committed).
func (fl *Filler) Running() int {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return len(fl.fills)
}

// Fill is one upstream transfer. Followers read its bytes from an unlinked
// spool file as they arrive.
type Fill struct {
	req   Request
	start time.Time

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
	finished    bool // verified (err == nil) or failed: readers may finish
	err         error
	commitErr   error // verified bytes that could not be stored
	discard     bool  // purged or superseded: serve the readers, store nothing
	refs        int   // spool users: the leader and each follower
}

func (f *Fill) broadcastLocked() {
	close(f.notify)
	f.notify = make(chan struct{})
}

// Start returns the running fill for the key, or starts one, with a
// reference the caller must Release. It returns nil when the object got
// committed meanwhile (the caller reads the store). The in-flight map and
// the store re-check share one lock, so two fills of one key never run at
// once — except that a fill already falling under its minimum rate is
// superseded: its readers finish with it, new ones get a fresh transfer.
func (fl *Filler) Start(req Request) *Fill {
	f, _ := fl.Join(req)
	return f
}

// Join is Start that also says whether the fill was running already
// (joined) rather than started by this call: only a client that joins a
// fill can find its bytes verified without having waited for upstream.
func (fl *Filler) Join(req Request) (f *Fill, joined bool) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if f, ok := fl.fills[req.Key]; ok {
		if !f.failing() {
			f.acquire()
			return f, true
		}
		f.mu.Lock()
		f.discard = true
		f.mu.Unlock()
		fl.log.Warn("fill below its minimum rate; starting a new transfer for new clients",
			"repo", req.Repo, "path", req.Rel)
		delete(fl.fills, req.Key)
	}
	if !req.RequireFresh && req.Cond == nil {
		if _, err := fl.store.Stat(context.Background(), req.Key); err == nil {
			return nil, false
		}
	}
	f = &Fill{
		req: req, start: time.Now(),
		ready: make(chan struct{}), done: make(chan struct{}),
		notify: make(chan struct{}), total: -1, refs: 2, // the leader and the caller
	}
	if !fl.bg.Go(func() { fl.run(f) }) {
		// Shutting down: a fill that failed at once.
		f.err, f.finished, f.refs = context.Canceled, true, 1
		close(f.ready)
		close(f.done)
		return f, false
	}
	fl.fills[req.Key] = f
	return f, false
}

// failing reports whether the transfer has run long enough to judge and
// averages under its minimum rate.
func (f *Fill) failing() bool {
	if f.req.MinRate <= 0 {
		return false
	}
	el := time.Since(f.start)
	if el < 3*time.Second {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.bodyDone || f.finished {
		return false
	}
	return float64(f.written) < float64(f.req.MinRate)*el.Seconds()
}

// Ensure makes sure the key holds the verified object, joining or starting
// a fill, and waits for it.
func (fl *Filler) Ensure(ctx context.Context, req Request) error {
	for range 3 {
		f := fl.Start(req)
		if f == nil {
			return nil
		}
		err := f.Await(ctx)
		f.Release()
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrRetryStore) {
			return err
		}
	}
	return fmt.Errorf("%w: %s: could not settle", upstream.ErrUnavailable, req.Rel)
}

// Discard is for a purge: running fills whose key starts with one of
// prefixes store nothing; one whose bytes are verified is about to
// commit, so Discard waits for it (the caller deletes what it stored).
func (fl *Filler) Discard(ctx context.Context, prefixes []string) error {
	var settling []*Fill
	fl.mu.Lock()
	for key, f := range fl.fills {
		if !keys.HasAnyPrefix(key, prefixes) {
			continue
		}
		f.mu.Lock()
		if f.finished && f.err == nil {
			settling = append(settling, f)
		} else {
			f.discard = true
			delete(fl.fills, key)
		}
		f.mu.Unlock()
	}
	fl.mu.Unlock()
	for _, f := range settling {
		select {
		case <-f.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (f *Fill) acquire() {
	f.mu.Lock()
	f.refs++
	f.mu.Unlock()
}

// Release gives back the caller's reference.
func (f *Fill) Release() {
	f.mu.Lock()
	f.refs--
	if f.refs == 0 && f.spool != nil {
		f.spool.Close()
		f.spool = nil
	}
	f.mu.Unlock()
}

func (f *Fill) fail(err error) {
	f.mu.Lock()
	if !f.finished {
		f.finished = true
		f.err = err
		f.broadcastLocked()
	}
	f.mu.Unlock()
}

// Ready waits until upstream's headers are known (or the fill failed) and
// reports what a response needs: the size (-1 unknown), the object's meta,
// and whether upstream confirmed the cached copy (then ErrRetryStore).
func (f *Fill) Ready(ctx context.Context) (total int64, meta cache.Meta, err error) {
	select {
	case <-f.ready:
	case <-ctx.Done():
		return 0, cache.Meta{}, ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.finished && f.err != nil:
		return 0, cache.Meta{}, f.err
	case f.notModified:
		return 0, cache.Meta{}, ErrRetryStore
	}
	return f.total, f.meta, nil
}

// Verified reports whether the bytes are all in and verified.
func (f *Fill) Verified() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.finished && f.err == nil && !f.notModified
}

// Await waits for the fill to end and returns its error.
func (f *Fill) Await(ctx context.Context) error {
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

// ReadAt reads spool bytes at off, waiting for them to arrive. It returns
// io.EOF at the verified end and the fill's error if it failed.
func (f *Fill) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	avail, err := f.available(ctx, off)
	if err != nil {
		return 0, err
	}
	f.mu.Lock()
	sp := f.spool
	f.mu.Unlock()
	return sp.ReadAt(p[:min(int64(len(p)), avail-off)], off)
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// CopyTo writes the fill's bytes to w as they arrive, calling flush after
// each write. It returns the bytes written and the fill's error, or the
// writer's error wrapped in ErrClientGone.
//
// When w is an io.ReaderFrom (an http.ResponseWriter over a TCP
// connection is), it is handed the spool itself, a section at a time, as
// an *os.File under an io.LimitedReader, so that the kernel copies the
// bytes (sendfile); each section is what is written and not held back.
func (f *Fill) CopyTo(ctx context.Context, w io.Writer, flush func()) (int64, error) {
	if rf, ok := w.(io.ReaderFrom); ok {
		if file := f.reopenSpool(); file != nil {
			defer file.Close()
			return f.sendTo(ctx, rf, file, flush)
		}
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var off int64
	for {
		n, err := f.ReadAt(ctx, buf, off)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return off, fmt.Errorf("%w: %v", ErrClientGone, werr)
			}
			if flush != nil {
				flush()
			}
			off += int64(n)
		}
		if err == io.EOF {
			return off, nil
		}
		if err != nil {
			return off, err
		}
	}
}

// reopenSpool opens the spool again, with its own offset (sendfile reads
// from the file's offset, which followers must not share), or returns nil
// where that cannot be done.
func (f *Fill) reopenSpool() *os.File {
	f.mu.Lock()
	sp := f.spool
	f.mu.Unlock()
	if sp == nil {
		return nil
	}
	rc, err := sp.SyscallConn()
	if err != nil {
		return nil
	}
	var file *os.File
	_ = rc.Control(func(fd uintptr) {
		file, _ = os.Open(fmt.Sprintf("/proc/self/fd/%d", fd))
	})
	return file
}

// sendSection bounds one ReadFrom call of sendTo.
const sendSection = 1 << 20

// sendTo is CopyTo through rf from file, the reopened spool.
func (f *Fill) sendTo(ctx context.Context, rf io.ReaderFrom, file *os.File, flush func()) (int64, error) {
	var off int64
	for {
		avail, err := f.available(ctx, off)
		if err == io.EOF {
			return off, nil
		}
		if err != nil {
			return off, err
		}
		if _, err := file.Seek(off, io.SeekStart); err != nil {
			return off, err
		}
		// At most sendSection at a time: a writer that sets a deadline per
		// call (the client listener's) bounds each section, not the whole.
		want := min(avail-off, sendSection)
		n, werr := rf.ReadFrom(&io.LimitedReader{R: file, N: want})
		off += n
		if werr != nil {
			return off, fmt.Errorf("%w: %v", ErrClientGone, werr)
		}
		if n < want {
			return off, fmt.Errorf("spool of %s: short read at %d", f.req.Key, off)
		}
		if flush != nil {
			flush()
		}
	}
}

// available waits until bytes past off may be read and returns where they
// end (the last byte is held back until verification), io.EOF at the
// verified end, or the fill's error.
func (f *Fill) available(ctx context.Context, off int64) (int64, error) {
	for {
		f.mu.Lock()
		avail := f.written
		if !f.finished {
			avail--
		}
		switch {
		case f.finished && f.err != nil:
			f.mu.Unlock()
			return 0, f.err
		case off < avail:
			f.mu.Unlock()
			return avail, nil
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

// ErrClientGone: the reader's side went away.
var ErrClientGone = errors.New("client went away")

// Content is an io.ReadSeeker over the fill for http.ServeContent (Range,
// multi-range, HEAD) while the transfer runs: reads wait for their bytes,
// a read of the last byte waits for verification. total must be known.
func (f *Fill) Content(ctx context.Context, total int64) io.ReadSeeker {
	return &content{f: f, ctx: ctx, total: total}
}

type content struct {
	f     *Fill
	ctx   context.Context
	total int64
	off   int64
}

func (c *content) Read(p []byte) (int, error) {
	if c.off >= c.total {
		return 0, io.EOF
	}
	n, err := c.f.ReadAt(c.ctx, p, c.off)
	c.off += int64(n)
	return n, err
}

func (c *content) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += c.off
	case io.SeekEnd:
		offset += c.total
	}
	if offset < 0 {
		return 0, errors.New("seek before start")
	}
	c.off = offset
	return offset, nil
}

// forget removes f from the in-flight map, unless another fill of the
// same key has replaced it there.
func (fl *Filler) forget(f *Fill) {
	fl.mu.Lock()
	if fl.fills[f.req.Key] == f {
		delete(fl.fills, f.req.Key)
	}
	fl.mu.Unlock()
}

// run is the leader of a fill: it runs detached from any client, on the
// Filler's base context.
func (fl *Filler) run(f *Fill) {
	defer close(f.done)
	defer f.Release()
	err := fl.do(f)
	fl.forget(f)
	// Fail before releasing waiters: a follower woken by ready must see
	// the error (and answer 502/504), not start a 200 it cannot finish.
	if err != nil {
		f.fail(err)
		f.mu.Lock()
		if f.err == nil { // the readers got verified bytes; only storing failed
			f.commitErr = err
		}
		f.mu.Unlock()
		fl.log.Warn("fill failed", "repo", f.req.Repo, "path", f.req.Rel, "err", err)
	}
	select {
	case <-f.ready:
	default:
		close(f.ready)
	}
}

func (fl *Filler) do(f *Fill) error {
	ctx, cancel := context.WithCancel(fl.baseCtx)
	defer cancel()
	req := f.req
	resp, err := req.Src.GetFrom(ctx, req.Rel, req.Cond, "")
	if err != nil {
		return err
	}
	defer func() { resp.Body.Close() }()
	switch {
	case resp.StatusCode == http.StatusNotModified && req.Cond != nil:
		now := time.Now()
		if err := fl.store.UpdateMeta(ctx, req.Key, func(m *cache.Meta) { m.Fetched = now }); err != nil {
			return fmt.Errorf("refreshing %s: %w", req.Key, err)
		}
		f.mu.Lock()
		f.notModified, f.finished = true, true
		f.broadcastLocked()
		f.mu.Unlock()
		return nil
	case resp.StatusCode != http.StatusOK:
		return upstream.StatusError(resp.Response)
	}
	total := resp.ContentLength
	if req.Exp.Size >= 0 {
		if total >= 0 && total != req.Exp.Size {
			return fmt.Errorf("%w: %s: upstream sends %d bytes, metadata says %d", ErrVerify, req.Rel, total, req.Exp.Size)
		}
		total = req.Exp.Size
	}
	if req.Exp.MaxSize > 0 && total > req.Exp.MaxSize {
		return fmt.Errorf("%w: %s: %d bytes is over the %d-byte limit", ErrVerify, req.Rel, total, req.Exp.MaxSize)
	}
	var h hash.Hash
	if !req.Exp.Sum.IsZero() {
		if h, err = metadata.NewHash(req.Exp.Sum.Type); err != nil {
			return fmt.Errorf("%w: %v", ErrVerify, err)
		}
	}
	meta := cache.Meta{
		ContentType:  keys.ContentType(req.Rel),
		ETag:         resp.Header.Get("ETag"),
		LastModified: canonicalDate(resp.Header.Get("Last-Modified")),
		Checksum:     req.Exp.Sum.String(),
		Fetched:      time.Now(),
	}
	w, err := fl.store.Create(ctx, req.Key, meta)
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	defer w.Cancel()
	spool, err := os.CreateTemp(fl.spoolDir, "fill-*")
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	os.Remove(spool.Name()) // followers share the open file; a crash leaves nothing
	if err := preallocate(spool, total); err != nil {
		spool.Close()
		return fmt.Errorf("spool: reserving %d bytes for %s: %w", total, req.Rel, err)
	}
	f.mu.Lock()
	f.spool, f.total, f.meta = spool, total, meta
	f.mu.Unlock()
	close(f.ready)

	limit := total
	if limit < 0 {
		limit = req.Exp.MaxSize
	}
	// The store is written from the spool once upstream's body is in, so
	// that the store's work never competes with the transfer the clients
	// wait for: they get the last byte as soon as the bytes are verified.
	stored := make(chan error, 1)
	go func() { stored <- fl.storeSpool(f, w) }()
	err = fl.readUpstream(ctx, f, &resp, h, limit, total)
	if err != nil {
		fl.forget(f) // no new client may join a failed fill
		f.fail(err)
		<-stored
		return err
	}
	f.mu.Lock()
	f.finished = true
	n64 := f.written
	f.broadcastLocked()
	f.mu.Unlock()
	if err := <-stored; err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	f.mu.Lock()
	discard := f.discard
	f.mu.Unlock()
	if discard {
		fl.forget(f)
		return nil
	}
	if err := w.Commit(ctx); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	fl.forget(f) // new requests now find the committed object
	if fl.hooks.Committed != nil {
		fl.hooks.Committed(req.Repo, time.Since(f.start), n64)
	}
	return nil
}

// canonicalDate is an upstream date header in the one form clients are
// sent (RFC 1123 in GMT), or "" when it does not parse: stored that way
// once, a hit copies it instead of parsing it.
func canonicalDate(v string) string {
	t, err := http.ParseTime(v)
	if err != nil {
		return ""
	}
	return t.UTC().Format(http.TimeFormat)
}

// splicer is an upstream body that can move its bytes into a file itself
// (upstream's guarded body, with splice(2)).
type splicer interface {
	SpliceTo(file *os.File, off int64, max int) (int, error)
}

// spoolCopy moves an upstream body into the spool, a step at a time: by
// splice(2) where the body can (sp), otherwise read into buf and written.
type spoolCopy struct {
	body    io.Reader // the body under the fill's length limit
	sp      splicer   // nil: read
	reads   int
	buf     []byte
	spool   *os.File
	spliced *atomic.Int64 // the Filler's count of spliced bytes
}

// next moves the bytes after off into the spool. It returns how many
// arrived, upstream's error (io.EOF at the end) and the spool's.
func (c *spoolCopy) next(off int64) (n int, rerr, werr error) {
	if c.sp != nil {
		n, err := c.sp.SpliceTo(c.spool, off, len(c.buf))
		var we *upstream.WriteError
		switch {
		case errors.As(err, &we):
			return 0, nil, we.Err
		case !errors.Is(err, upstream.ErrNoSplice):
			c.spliced.Add(int64(n))
			return n, err, nil
		case c.reads > 0:
			// Refused after the Read that empties the client's
			// buffer: not this body (TLS, HTTP/2, no length, short).
			c.sp = nil
		}
	}
	n, rerr = c.body.Read(c.buf)
	c.reads++
	if n > 0 {
		if _, err := c.spool.WriteAt(c.buf[:n], off); err != nil {
			return 0, nil, err
		}
	}
	return n, rerr, nil
}

var readBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// readUpstream copies upstream's body into the spool, hashing it, and
// verifies size and checksum at the end. When a verified object's body
// breaks (stall, too slow, reset), the rest is asked of the next mirror
// with a Range request: the checksum covers the whole object.
func (fl *Filler) readUpstream(ctx context.Context, f *Fill, resp **upstream.Response, h hash.Hash, limit, total int64) error {
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf := *bp
	spool := f.spool
	var n64 int64
	body := io.Reader((*resp).Body)
	if limit > 0 {
		body = io.LimitReader(body, limit+1-n64)
	}
	in := spoolCopy{body: body, buf: buf, spool: spool, spliced: &fl.spliced}
	if h == nil {
		// A checksum needs the bytes in user space; without one, the
		// body may splice itself into the spool.
		in.sp, _ = (*resp).Body.(splicer)
	}
	resumes := 0
	for {
		n, rerr, werr := in.next(n64)
		if werr != nil {
			return fmt.Errorf("spool: %w", werr)
		}
		if n > 0 {
			if h != nil {
				h.Write(buf[:n]) // read, not spliced: h is nil for a splicer
			}
			n64 += int64(n)
			f.mu.Lock()
			f.written = n64
			f.broadcastLocked()
			f.mu.Unlock()
			if limit > 0 && n64 > limit {
				return fmt.Errorf("%w: %s: upstream sends more than %d bytes", ErrVerify, f.req.Rel, limit)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			err := fmt.Errorf("%s: reading body after %d bytes: %w", f.req.Rel, n64, rerr)
			if h == nil || total < 0 || resumes >= 2 || ctx.Err() != nil {
				return err
			}
			next, rerr2 := fl.resume(ctx, f, (*resp).Base, n64, total)
			if rerr2 != nil {
				return err
			}
			fl.log.Warn("transfer resumed on another mirror", "repo", f.req.Repo, "path", f.req.Rel,
				"offset", n64, "from", upstream.Redact((*resp).Base), "to", upstream.Redact(next.Base), "err", rerr)
			(*resp).Body.Close()
			*resp = next
			in.body = io.LimitReader(next.Body, limit+1-n64)
			resumes++
		}
	}
	f.mu.Lock()
	f.bodyDone = true
	f.broadcastLocked()
	f.mu.Unlock()
	if total >= 0 && n64 != total {
		return fmt.Errorf("%w: %s: got %d bytes, expected %d", ErrVerify, f.req.Rel, n64, total)
	}
	if h != nil {
		if got := fmt.Sprintf("%x", h.Sum(nil)); got != f.req.Exp.Sum.Value {
			return fmt.Errorf("%w: %s: %s checksum is %s, metadata says %s", ErrVerify, f.req.Rel, f.req.Exp.Sum.Type, got, f.req.Exp.Sum.Value)
		}
	}
	return nil
}

// resume asks the mirrors after base for the bytes from off on.
func (fl *Filler) resume(ctx context.Context, f *Fill, base string, off, total int64) (*upstream.Response, error) {
	hdr := http.Header{}
	hdr.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-")
	resp, err := f.req.Src.GetFrom(ctx, f.req.Rel, hdr, base)
	if err != nil {
		return nil, err
	}
	want := "bytes " + strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(total-1, 10) + "/"
	if resp.StatusCode != http.StatusPartialContent || resp.Base == base ||
		!strings.HasPrefix(resp.Header.Get("Content-Range"), want) {
		resp.Body.Close()
		return nil, errors.New("no mirror resumes the transfer")
	}
	return resp, nil
}

// storeSpool copies the spool into the store writer once upstream's body
// is complete (or stops when the fill fails).
func (fl *Filler) storeSpool(f *Fill, w cache.Writer) error {
	wait := func(cond func() bool) error {
		for {
			f.mu.Lock()
			ok := cond()
			ch := f.notify
			f.mu.Unlock()
			if ok {
				return nil
			}
			select {
			case <-ch:
			case <-fl.baseCtx.Done():
				return fl.baseCtx.Err()
			}
		}
	}
	if err := wait(func() bool { return f.bodyDone || f.finished }); err != nil {
		return err
	}
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf := *bp
	var off int64
	for {
		f.mu.Lock()
		if f.finished && f.err != nil {
			f.mu.Unlock()
			return f.err
		}
		n := min(int64(len(buf)), f.written-off)
		sp := f.spool
		f.mu.Unlock()
		if n <= 0 {
			return nil // bodyDone: the spool is complete
		}
		if _, err := sp.ReadAt(buf[:n], off); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		if _, err := w.Write(buf[:n]); err != nil {
			return err
		}
		off += n
	}
}
