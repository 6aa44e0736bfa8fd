package warm_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/proxy"
)

// upstream is a real HTTP server over a createrepo_c repo that counts
// requests per path and can be told to fail some.
type upstream struct {
	dir string
	srv *httptest.Server

	mu   sync.Mutex
	hits map[string]int
	fail map[string]int // path → status to answer instead
}

// newUpstream serves a repo of rpms made with createrepo_c under dir/sub.
func newUpstream(t *testing.T, sub string, rpms ...string) *upstream {
	t.Helper()
	testenv.RequireTool(t, "createrepo_c")
	u := &upstream{dir: t.TempDir(), hits: map[string]int{}, fail: map[string]int{}}
	testenv.MakeRepo(t, filepath.Join(u.dir, sub), rpms)
	files := http.FileServer(http.Dir(u.dir))
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.hits[r.URL.Path]++
		code := u.fail[r.URL.Path]
		u.mu.Unlock()
		if code != 0 {
			http.Error(w, "injected failure", code)
			return
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) Hits(path string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits[path]
}

// RPMHits returns the request count of every .rpm path asked for.
func (u *upstream) RPMHits() map[string]int {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := map[string]int{}
	for p, n := range u.hits {
		if strings.HasSuffix(p, ".rpm") {
			out[p] = n
		}
	}
	return out
}

func (u *upstream) Fail(path string, code int) {
	u.mu.Lock()
	u.fail[path] = code
	u.mu.Unlock()
}

// startProxy runs an in-process dnfproxy with one repo "test" over up and
// returns its base URL.
func startProxy(t *testing.T, up *upstream) string {
	t.Helper()
	cfg := config.Default()
	cfg.Storage.Dir = t.TempDir()
	r := config.NewRepo("test", up.srv.URL+"/")
	r.MetadataTTL = config.Duration(time.Minute)
	r.Timeout = config.Duration(10 * time.Second)
	cfg.Repos = []config.Repo{r}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	srv, err := proxy.New(cfg, cache.NewMemory(), log)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(nil)
	hs.Config = srv.HTTPServer("")
	hs.Start()
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	return hs.URL
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildOut  []byte
)

// dnfproxyBinary builds cmd/dnfproxy once per test binary.
func dnfproxyBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dnfproxy-warm-test-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "dnfproxy")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/dnfproxy/dnfproxy/cmd/dnfproxy")
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build ./cmd/dnfproxy: %v\n%s", buildErr, buildOut)
	}
	return binPath
}

// runWarmCommand runs `dnfproxy warm args...` and returns its exit status
// and outputs.
func runWarmCommand(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, dnfproxyBinary(t), append([]string{"warm"}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("dnfproxy warm: %v", err)
	}
	t.Logf("dnfproxy warm %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out.String(), errOut.String())
	return code, out.String(), errOut.String()
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}
