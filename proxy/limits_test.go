package proxy

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
)

func TestUpstreamMetadataLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*config.Limits)
	}{
		{"repomd.xml over max_repomd_size", func(l *config.Limits) { l.MaxRepomdSize = 512 }},
		{"repodata file over max_metadata_size", func(l *config.Limits) { l.MaxMetadataSize = 256 }},
		{"primary.xml expands past max_decompressed_size", func(l *config.Limits) { l.MaxDecompressedSize = 1024 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := newRepoDir(t, "el9", testenv.InitialRPMs())
			up := newFakeUpstream(t, dir)
			p := startProxy(t, testRepoArgs{{"test", up.URL()}}.repos(), func(c *config.Config) { tc.edit(&c.Limits) })
			status, body, _ := p.get(t, "/test/el9/repodata/repomd.xml")
			if status != http.StatusBadGateway {
				t.Fatalf("status %d (%q), want 502", status, body)
			}
			// Without an accepted primary.xml a package cannot be verified:
			// it is relayed, never stored.
			p.get(t, "/test/el9/Packages/"+testenv.RPMApp)
			var keys []string
			p.store.List(context.Background(), "", func(i cache.Info) error {
				keys = append(keys, i.Key)
				return nil
			})
			for _, k := range keys {
				if strings.HasPrefix(k, "gen/") || strings.HasPrefix(k, "obj/") {
					t.Fatalf("stored %s although no generation was accepted (keys %v)", k, keys)
				}
			}
		})
	}
}

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) lines(substr string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range strings.Split(l.buf.String(), "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return out
}

func TestOneAccessLinePerRequest(t *testing.T) {
	dir := newRepoDir(t, "el9", testenv.InitialRPMs())
	up := newFakeUpstream(t, dir)
	logs := &logBuffer{}
	cfg := config.Default()
	cfg.Storage.Dir = t.TempDir()
	cfg.Repos = testRepoArgs{{"test", up.URL()}}.repos()
	srv, err := New(cfg, cache.NewMemory(), slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	h := srv.Handler()
	do := func(path string) int {
		rec := newRecorder()
		h.ServeHTTP(rec, mustRequest(t, path))
		return rec.Code
	}
	pkg := "/test/el9/Packages/" + testenv.RPMApp
	for _, path := range []string{"/test/el9/repodata/repomd.xml", pkg, pkg, "/test/el9/../x"} {
		do(path)
	}
	for _, tc := range []struct {
		match string
		n     int
		want  []string
	}{
		{"path=/test/el9/repodata/repomd.xml", 1, []string{"repo=test", "status=200", "cache=miss"}},
		{"path=" + pkg, 2, []string{"repo=test", "status=200", "upstream_ms="}},
		{"path=/test/el9/../x", 1, []string{"status=400", "err="}},
	} {
		lines := logs.lines(tc.match + " ")
		if len(lines) != tc.n {
			t.Fatalf("%s: %d access lines, want %d:\n%s", tc.match, len(lines), tc.n, strings.Join(lines, "\n"))
		}
		for _, w := range tc.want {
			if !strings.Contains(lines[0], w) {
				t.Errorf("%s: line lacks %q: %s", tc.match, w, lines[0])
			}
		}
	}
	if l := logs.lines("path=" + pkg + " "); !strings.Contains(l[0], "cache=miss") || !strings.Contains(l[1], "cache=hit") {
		t.Errorf("package lines should be miss then hit:\n%s", strings.Join(l, "\n"))
	}
}
