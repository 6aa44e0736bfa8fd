package upstream

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testTimeout is the Timeout of every test client: short, so that stalls
// and slow bodies end within a second.
const testTimeout = 300 * time.Millisecond

// pseudoRandom returns n incompressible bytes, the same for one seed.
func pseudoRandom(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// server is an httptest server that counts its requests.
type server struct {
	*httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	reqs []*http.Request // clones, with their headers
}

func newServer(t testing.TB, h http.HandlerFunc) *server {
	t.Helper()
	return newServerWith(t, h, nil)
}

// newServerWith is newServer with a hook that sets up the server before it
// starts.
func newServerWith(t testing.TB, h http.HandlerFunc, setup func(*httptest.Server)) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		s.reqs = append(s.reqs, r.Clone(context.Background()))
		s.mu.Unlock()
		h(w, r)
	}))
	if setup != nil {
		setup(s.Server)
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func (s *server) requests() []*http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*http.Request(nil), s.reqs...)
}

// base is the server's URL as a base under prefix ("/repo/").
func (s *server) base(prefix string) string { return s.URL + prefix }

// files serves fixed bodies by path; everything else is 404.
func files(m map[string][]byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		data, ok := m[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}
}

// drip serves data with its length: the first burst bytes at once, then
// one byte every 20 ms (50 B/s) until the client leaves.
func drip(data []byte, burst int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		w.Write(data[:burst])
		for off := burst; off < len(data); off++ {
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
			if _, err := w.Write(data[off : off+1]); err != nil {
				return
			}
		}
	}
}

func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { http.Error(w, http.StatusText(code), code) }
}

// hang accepts the request and never answers until the client leaves.
func hang(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func newClient(t *testing.T, opt Options) *Client {
	t.Helper()
	if opt.Timeout == 0 {
		opt.Timeout = testTimeout
	}
	if opt.Repo == "" {
		opt.Repo = "test"
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fetch gets rel and reads the whole body.
func fetch(t *testing.T, c *Client, rel string) (*Response, []byte, error) {
	t.Helper()
	resp, err := c.Get(context.Background(), rel, nil)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := readWithin(t, resp.Body, 10*time.Second)
	return resp, body, err
}

// readWithin reads r to its end or first error, failing the test when
// that takes longer than limit (a body that no guard ends blocks forever).
func readWithin(t *testing.T, r io.Reader, limit time.Duration) ([]byte, error) {
	t.Helper()
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		data, err := io.ReadAll(r)
		done <- result{data, err}
	}()
	select {
	case res := <-done:
		return res.data, res.err
	case <-time.After(limit):
		t.Fatalf("the body read still blocks after %s", limit)
		return nil, nil
	}
}

// sentinel names the package error err wraps, for messages.
func sentinel(err error) string {
	for _, s := range []error{ErrNotFound, ErrUnavailable, ErrTimeout, ErrTooSlow, ErrBadRequest, ErrChecksum} {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	if err == nil {
		return "nil"
	}
	return "unclassified: " + err.Error()
}

// failures records OnFail calls.
type failures struct {
	mu sync.Mutex
	m  map[string][]error
}

func (f *failures) hook(base string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string][]error{}
	}
	f.m[base] = append(f.m[base], err)
}

func (f *failures) of(base string) []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]error(nil), f.m[base]...)
}

func itoa(n int) string { return strconv.Itoa(n) }
