package testenv

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// FaultKind is how a SickUpstream answers a request.
type FaultKind int

// The behaviours of a SickUpstream.
const (
	// Healthy serves the file (http.FileServer: Range, conditional
	// requests, 404 for missing files).
	Healthy FaultKind = iota
	// Hang reads the request and never answers.
	Hang
	// Stall sends the headers (with the file's full Content-Length) and
	// the first Fault.StallAfter bytes of the body, then nothing more.
	Stall
	// Drip sends the file at 1 byte per second.
	Drip
	// Slow sends the file at Fault.Rate bytes per second.
	Slow
	// Status500 answers 500 Internal Server Error.
	Status500
	// Reset closes the TCP connection with a reset, before any answer.
	Reset
	// NotFound answers 404 whether or not the file exists.
	NotFound
	// Redirect answers 302 to Fault.Location.
	Redirect
)

func (k FaultKind) String() string {
	switch k {
	case Healthy:
		return "healthy"
	case Hang:
		return "hang"
	case Stall:
		return "stall"
	case Drip:
		return "drip"
	case Slow:
		return "slow"
	case Status500:
		return "500"
	case Reset:
		return "reset"
	case NotFound:
		return "404"
	case Redirect:
		return "redirect"
	}
	return "FaultKind(" + strconv.Itoa(int(k)) + ")"
}

// Fault is one behaviour of a SickUpstream; build it with the functions
// below (HangFault, StallFault, ...) or as a literal.
type Fault struct {
	Kind FaultKind
	// StallAfter is how many body bytes Stall sends before it stalls.
	StallAfter int64
	// Rate is the bytes per second of Slow (at least 1).
	Rate int64
	// MinSize makes Drip and Slow apply only to files of at least this
	// many bytes; smaller files are served healthy. 0: every file.
	MinSize int64
	// Location is where Redirect points. When it ends in "/", the request
	// path (without its leading "/") is appended.
	Location string
}

// HealthyFault serves files normally.
func HealthyFault() Fault { return Fault{Kind: Healthy} }

// HangFault accepts the request and never answers.
func HangFault() Fault { return Fault{Kind: Hang} }

// StallFault sends headers and the first n body bytes, then nothing.
func StallFault(n int64) Fault { return Fault{Kind: Stall, StallAfter: n} }

// DripFault sends bodies at 1 byte per second.
func DripFault() Fault { return Fault{Kind: Drip} }

// SlowFault sends files of at least minSize bytes at rate bytes per second.
func SlowFault(rate, minSize int64) Fault {
	return Fault{Kind: Slow, Rate: rate, MinSize: minSize}
}

// Status500Fault answers 500.
func Status500Fault() Fault { return Fault{Kind: Status500} }

// ResetFault resets the connection without answering.
func ResetFault() Fault { return Fault{Kind: Reset} }

// NotFoundFault answers 404.
func NotFoundFault() Fault { return Fault{Kind: NotFound} }

// RedirectFault answers 302 to location (see Fault.Location).
func RedirectFault(location string) Fault { return Fault{Kind: Redirect, Location: location} }

// SickUpstream is a real HTTP server (httptest) over a directory, such as
// a createrepo_c repository, whose behaviour a test switches at run time:
// healthy, hanging, stalling mid-body, dripping, slow, 500, connection
// reset, 404 or a redirect, for every path or for the paths ending in a
// given suffix. It counts the requests per path and keeps the headers of
// the last request per path.
//
// Every handler returns when the client goes away or the server is closed:
// Close (registered with t.Cleanup by NewSickUpstream) first releases
// hanging and stalled handlers and drops every connection, so no goroutine
// of the server outlives the test.
//
// All methods are safe for concurrent use.
type SickUpstream struct {
	srv       *httptest.Server
	closing   chan struct{}
	closeOnce sync.Once

	mu      sync.Mutex
	dir     string
	def     Fault
	rules   []pathFault // newest first
	hits    map[string]int
	headers map[string]http.Header
}

type pathFault struct {
	suffix string
	fault  Fault
}

// NewSickUpstream starts a healthy server over dir.
func NewSickUpstream(t testing.TB, dir string) *SickUpstream {
	t.Helper()
	u := &SickUpstream{
		closing: make(chan struct{}),
		dir:     dir,
		hits:    map[string]int{},
		headers: map[string]http.Header{},
	}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

// URL returns the server's base URL, ending in "/".
func (u *SickUpstream) URL() string { return u.srv.URL + "/" }

// Addr returns the server's host:port.
func (u *SickUpstream) Addr() string { return u.srv.Listener.Addr().String() }

// Set makes every path behave as f, and forgets the per-path faults.
func (u *SickUpstream) Set(f Fault) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.def, u.rules = f, nil
}

// SetPath makes the paths ending in suffix behave as f (replacing an
// earlier SetPath of the same suffix). When several suffixes match, the
// one set last wins; paths no suffix matches behave as set by Set.
func (u *SickUpstream) SetPath(suffix string, f Fault) {
	u.mu.Lock()
	defer u.mu.Unlock()
	rules := []pathFault{{suffix, f}}
	for _, r := range u.rules {
		if r.suffix != suffix {
			rules = append(rules, r)
		}
	}
	u.rules = rules
}

// Heal makes every path healthy again.
func (u *SickUpstream) Heal() { u.Set(HealthyFault()) }

// SetDir serves another directory from now on (e.g. the next generation
// of a repository); requests already running finish from the old one.
func (u *SickUpstream) SetDir(dir string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.dir = dir
}

// Hits returns how many requests asked for path (e.g.
// "/el9/repodata/repomd.xml"), whatever the answer.
func (u *SickUpstream) Hits(path string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits[path]
}

// HitsSuffix returns how many requests asked for a path ending in suffix.
func (u *SickUpstream) HitsSuffix(suffix string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for p, c := range u.hits {
		if strings.HasSuffix(p, suffix) {
			n += c
		}
	}
	return n
}

// TotalHits returns the number of requests so far.
func (u *SickUpstream) TotalHits() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, c := range u.hits {
		n += c
	}
	return n
}

// LastHeader returns the request headers of the last request for path, or
// nil when there was none.
func (u *SickUpstream) LastHeader(path string) http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.headers[path].Clone()
}

// AllHeaders returns the headers of the last request of every path seen.
func (u *SickUpstream) AllHeaders() map[string]http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make(map[string]http.Header, len(u.headers))
	for p, h := range u.headers {
		out[p] = h.Clone()
	}
	return out
}

// Close releases every waiting handler, drops every connection and stops
// the server. It is idempotent.
func (u *SickUpstream) Close() {
	u.closeOnce.Do(func() {
		close(u.closing)
		u.srv.CloseClientConnections()
		u.srv.Close()
	})
}

// faultFor returns the behaviour for a path and the directory to serve.
func (u *SickUpstream) record(r *http.Request) (Fault, string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.hits[r.URL.Path]++
	u.headers[r.URL.Path] = r.Header.Clone()
	for _, rule := range u.rules {
		if strings.HasSuffix(r.URL.Path, rule.suffix) {
			return rule.fault, u.dir
		}
	}
	return u.def, u.dir
}

// wait sleeps for d; false means the client left or the server closes.
func (u *SickUpstream) wait(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	case <-u.closing:
		return false
	}
}

func (u *SickUpstream) serve(w http.ResponseWriter, r *http.Request) {
	f, dir := u.record(r)
	switch f.Kind {
	case Hang:
		select {
		case <-r.Context().Done():
		case <-u.closing:
		}
		return
	case Status500:
		http.Error(w, "upstream is sick", http.StatusInternalServerError)
		return
	case NotFound:
		http.NotFound(w, r)
		return
	case Reset:
		hj, ok := w.(http.Hijacker)
		if !ok {
			panic(http.ErrAbortHandler)
		}
		conn, _, err := hj.Hijack()
		if err != nil {
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0) // RST instead of FIN
		}
		conn.Close()
		return
	case Redirect:
		loc := f.Location
		if strings.HasSuffix(loc, "/") {
			loc += strings.TrimPrefix(r.URL.Path, "/")
		}
		http.Redirect(w, r, loc, http.StatusFound)
		return
	case Stall, Drip, Slow:
		u.serveShaped(w, r, dir, f)
		return
	}
	http.FileServer(http.Dir(dir)).ServeHTTP(w, r)
}

// serveShaped serves a whole file (Range is ignored) as f shapes it.
func (u *SickUpstream) serveShaped(w http.ResponseWriter, r *http.Request, dir string, f Fault) {
	name := filepath.Join(dir, filepath.FromSlash(path.Clean("/"+r.URL.Path)))
	file, err := os.Open(name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil || fi.IsDir() {
		http.NotFound(w, r)
		return
	}
	if f.Kind != Stall && fi.Size() < f.MinSize {
		http.ServeContent(w, r, fi.Name(), fi.ModTime(), file)
		return
	}
	w.Header().Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
	w.Header().Set("Last-Modified", fi.ModTime().UTC().Format(http.TimeFormat))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	flush := func() {
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
	}
	switch f.Kind {
	case Stall:
		io.CopyN(w, file, f.StallAfter)
		flush()
		select {
		case <-r.Context().Done():
		case <-u.closing:
		}
	case Drip:
		u.paced(w, r, file, 1, time.Second, flush)
	case Slow:
		rate := max(f.Rate, 1)
		// Ten writes a second, or one byte per write when slower.
		step, every := rate/10, 100*time.Millisecond
		if step == 0 {
			step, every = 1, time.Duration(float64(time.Second)/float64(rate))
		}
		u.paced(w, r, file, step, every, flush)
	}
}

// paced copies src to w, step bytes every interval.
func (u *SickUpstream) paced(w io.Writer, r *http.Request, src io.Reader, step int64, every time.Duration, flush func()) {
	for {
		n, err := io.CopyN(w, src, step)
		flush()
		if err != nil || n < step {
			return
		}
		if !u.wait(r, every) {
			return
		}
	}
}

// String describes the server for test logs.
func (u *SickUpstream) String() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return fmt.Sprintf("SickUpstream(%s, %s, %d path rules)", u.srv.URL, u.def.Kind, len(u.rules))
}
