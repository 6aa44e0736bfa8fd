package proxy

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
)

// fakeUpstream is a real HTTP server over a directory (a createrepo_c repo)
// that counts requests per path and lets a test intercept them.
type fakeUpstream struct {
	dir  string
	srv  *httptest.Server
	mu   sync.Mutex
	hits map[string]int
	hook func(w http.ResponseWriter, r *http.Request) bool // true: handled
	down atomic.Bool                                       // drop connections
}

func newFakeUpstream(t testing.TB, dir string) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{dir: dir, hits: map[string]int{}}
	files := http.FileServer(http.Dir(dir))
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u.down.Load() {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		u.mu.Lock()
		u.hits[r.URL.Path]++
		hook := u.hook
		u.mu.Unlock()
		if hook != nil && hook(w, r) {
			return
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// URL is the upstream base for the repo config, ending in "/".
func (u *fakeUpstream) URL() string { return u.srv.URL + "/" }

func (u *fakeUpstream) Hits(path string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits[path]
}

func (u *fakeUpstream) TotalHits() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, v := range u.hits {
		n += v
	}
	return n
}

func (u *fakeUpstream) SetHook(h func(w http.ResponseWriter, r *http.Request) bool) {
	u.mu.Lock()
	u.hook = h
	u.mu.Unlock()
}

// testProxy is a Server on a badger store behind a real HTTP listener.
type testProxy struct {
	srv   *Server
	store cache.Store
	http  *httptest.Server
	cfg   config.Config

	closeOnce sync.Once
}

// newRepoDir makes a createrepo_c repo of the given fixture RPMs under
// dir/<sub> and returns dir.
func newRepoDir(t testing.TB, sub string, rpms []string, args ...string) string {
	t.Helper()
	testenv.RequireTool(t, "createrepo_c")
	dir := t.TempDir()
	testenv.MakeRepo(t, filepath.Join(dir, sub), rpms, args...)
	return dir
}

// startProxy runs a proxy for the given repos; edit may adjust the config.
func startProxy(t testing.TB, repos []config.Repo, edit func(*config.Config)) *testProxy {
	t.Helper()
	return startProxyOver(t, repos, edit, nil)
}

// startProxyOver is startProxy with the store wrapped by wrap (nil: as
// opened), for tests that watch what the proxy asks of its store.
func startProxyOver(t testing.TB, repos []config.Repo, edit func(*config.Config), wrap func(cache.Store) cache.Store) *testProxy {
	t.Helper()
	cfg := config.Default()
	cfg.Storage.Dir = t.TempDir()
	cfg.Repos = repos
	if edit != nil {
		edit(&cfg)
	}
	var store cache.Store
	store, err := cache.OpenBadger(filepath.Join(cfg.Storage.Dir, "cache"), cache.DefaultBadgerOptions())
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		store = wrap(store)
	}
	p := &testProxy{store: store, cfg: cfg}
	p.srv, err = New(cfg, store, testLogger(t))
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	// The production http.Server settings (header limits, timeouts).
	p.http = httptest.NewUnstartedServer(nil)
	p.http.Config = p.srv.HTTPServer("")
	p.http.Start()
	t.Cleanup(p.Close)
	return p
}

// Close stops the proxy and closes its store; it is idempotent.
func (p *testProxy) Close() {
	p.closeOnce.Do(func() {
		p.http.Close()
		p.srv.Close()
		p.store.Close()
	})
}

// repo is a repo config pointing at upstream with a short TTL.
func testRepo(name, url string, ttl time.Duration) config.Repo {
	r := config.NewRepo(name, url)
	r.MetadataTTL = config.Duration(ttl)
	r.Timeout = config.Duration(5 * time.Second)
	return r
}

func (p *testProxy) URL(path string) string { return p.http.URL + path }

// get fetches a proxy path and returns status and body; a broken transfer
// is returned as err.
func (p *testProxy) get(t testing.TB, path string) (int, []byte, error) {
	t.Helper()
	resp, err := http.Get(p.URL(path))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// rawRequest sends bytes on a fresh TCP connection and returns the status
// line and the whole answer, for requests net/http would refuse to build.
func rawRequest(t testing.TB, addr, req string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(conn)
	return string(out)
}

// testLogger sends the proxy's log lines to the test log while the test runs.
func testLogger(t testing.TB) *slog.Logger {
	w := &testLogWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testLogWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done && os.Getenv("DNFPROXY_TEST_QUIET") == "" {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type testRepoArg struct{ name, url string }
type testRepoArgs []testRepoArg

func (a testRepoArgs) repos() []config.Repo {
	var out []config.Repo
	for _, r := range a {
		out = append(out, testRepo(r.name, r.url, time.Minute))
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

func mustRequest(t testing.TB, path string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodGet, "http://proxy.test"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.RequestURI = path
	return r
}

// settle waits until every fill has been committed to the store: clients
// finish once their bytes are verified, the commit may follow a moment later.
func (p *testProxy) settle(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for p.srv.filler.Running() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("fills still running after 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rootNames lists a repo's roots with a generation.
func rootNames(re *repoEntry) []string {
	var out []string
	for _, r := range re.gens.Status() {
		out = append(out, r.Root)
	}
	return out
}

// waitRepomdChange asks for a repomd.xml until it differs from old and
// returns it: past the TTL the proxy answers from the generation it has and
// revalidates in the background (stale-while-revalidate), so an upstream
// change shows a moment later. It gives up after 10 s (the caller's check
// then fails).
func waitRepomdChange(t *testing.T, p *testProxy, path string, old []byte) []byte {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, body, err := p.get(t, path)
		if err != nil || status != http.StatusOK {
			t.Fatalf("%s: %d %v", path, status, err)
		}
		if !bytes.Equal(body, old) || time.Now().After(deadline) {
			return body
		}
		time.Sleep(50 * time.Millisecond)
	}
}
