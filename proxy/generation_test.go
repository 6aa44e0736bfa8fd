package proxy

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// genFixture is an upstream repo, a proxy with a short TTL, and the
// repomd.xml the proxy served first.
type genFixture struct {
	dir     string
	up      *fakeUpstream
	p       *testProxy
	ttl     time.Duration
	first   []byte
	repoDir string
}

func newGenFixture(t *testing.T, ttl time.Duration) *genFixture {
	t.Helper()
	f := &genFixture{ttl: ttl}
	f.dir = newRepoDir(t, "el9", testenv.InitialRPMs())
	f.repoDir = filepath.Join(f.dir, "el9")
	f.up = newFakeUpstream(t, f.dir)
	f.p = startProxy(t, []config.Repo{testRepo("test", f.up.URL(), ttl)}, nil)
	f.first = f.repomd(t)
	return f
}

func (f *genFixture) repomd(t *testing.T) []byte {
	t.Helper()
	status, body, err := f.p.get(t, "/test/el9/repodata/repomd.xml")
	if err != nil || status != http.StatusOK {
		t.Fatalf("repomd.xml: %d %v", status, err)
	}
	return body
}

// regenerate publishes a new package upstream and waits out the TTL.
func (f *genFixture) regenerate(t *testing.T) {
	t.Helper()
	// createrepo_c's revision is a timestamp: make sure it moves.
	time.Sleep(1100 * time.Millisecond)
	testenv.UpdateRepo(t, f.repoDir, testenv.RPMExtra)
	time.Sleep(f.ttl)
}

// switched waits for the proxy to serve a repomd.xml other than old.
func (f *genFixture) switched(t *testing.T, old []byte) []byte {
	t.Helper()
	return waitRepomdChange(t, f.p, "/test/el9/repodata/repomd.xml", old)
}

// checkServesAll asserts every file a repomd.xml lists is served with the
// checksum it states.
func checkServesAll(t *testing.T, p *testProxy, repomd []byte) {
	t.Helper()
	md, err := metadata.ParseRepomd(repomd)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range md.Records {
		status, body, err := p.get(t, "/test/el9/"+rec.Href)
		if err != nil || status != http.StatusOK {
			t.Fatalf("%s: %d %v", rec.Href, status, err)
		}
		h, _ := metadata.NewHash(rec.Checksum.Type)
		h.Write(body)
		if got := fmt.Sprintf("%x", h.Sum(nil)); got != rec.Checksum.Value {
			t.Fatalf("%s: checksum %s, repomd says %s", rec.Href, got, rec.Checksum.Value)
		}
	}
}

func TestGenerationSwitchesAfterTTLAndOldFilesStayServable(t *testing.T) {
	f := newGenFixture(t, time.Second)
	if again := f.repomd(t); !bytes.Equal(again, f.first) {
		t.Fatal("repomd.xml changed without an upstream change")
	}
	f.regenerate(t)
	second := f.switched(t, f.first)
	if bytes.Equal(second, f.first) {
		t.Fatal("new upstream repomd.xml not visible after the TTL")
	}
	if !bytes.Equal(second, readFile(t, f.repoDir+"/repodata/repomd.xml")) {
		t.Fatal("served repomd.xml differs from upstream's")
	}
	// createrepo_c --update deleted the old files upstream: a client
	// holding the old repomd.xml still gets all of them, from the cache.
	checkServesAll(t, f.p, f.first)
	checkServesAll(t, f.p, second)
}

func TestGenerationWaitsForEveryFileToVerify(t *testing.T) {
	f := newGenFixture(t, time.Second)
	f.regenerate(t)
	newMD, err := metadata.ParseRepomd(readFile(t, f.repoDir+"/repodata/repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := newMD.Record("filelists")
	for _, tc := range []struct {
		name string
		hook func(w http.ResponseWriter, r *http.Request) bool
	}{
		{"listed file missing", func(w http.ResponseWriter, r *http.Request) bool {
			if strings.HasSuffix(r.URL.Path, rec.Href) {
				http.NotFound(w, r)
				return true
			}
			return false
		}},
		{"listed file corrupt", func(w http.ResponseWriter, r *http.Request) bool {
			if strings.HasSuffix(r.URL.Path, rec.Href) {
				body := readFile(t, filepath.Join(f.repoDir, rec.Href))
				body[len(body)/2] ^= 0xff
				w.Write(body)
				return true
			}
			return false
		}},
		{"malformed repomd.xml", func(w http.ResponseWriter, r *http.Request) bool {
			if strings.HasSuffix(r.URL.Path, "/repomd.xml") {
				w.Write([]byte("<repomd><data type=\"primary\"><location href=\"../../etc/passwd\"/>"))
				return true
			}
			return false
		}},
		{"upstream 500", func(w http.ResponseWriter, r *http.Request) bool {
			http.Error(w, "boom", http.StatusInternalServerError)
			return true
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.up.SetHook(tc.hook)
			defer f.up.SetHook(nil)
			if got := f.repomd(t); !bytes.Equal(got, f.first) {
				t.Fatal("proxy did not answer from the generation it has")
			}
			if _, err := f.p.srv.repos["test"].gens.Refresh(context.Background(), "el9/"); err == nil {
				t.Fatal("a refresh against the broken upstream succeeded")
			}
			if got := f.repomd(t); !bytes.Equal(got, f.first) {
				t.Fatal("proxy switched to a generation it could not verify")
			}
			checkServesAll(t, f.p, f.first)
		})
	}
	// Healed: the new generation appears.
	if _, err := f.p.srv.repos["test"].gens.Refresh(context.Background(), "el9/"); err != nil {
		t.Fatal(err)
	}
	if got := f.repomd(t); bytes.Equal(got, f.first) {
		t.Fatal("new generation not visible once upstream healed")
	}
}

func TestLastGoodGenerationWhenUpstreamDownAndAfterRestart(t *testing.T) {
	f := newGenFixture(t, 500*time.Millisecond)
	app := "/test/el9/Packages/" + testenv.RPMApp
	if status, _, err := f.p.get(t, app); err != nil || status != 200 {
		t.Fatalf("warm: %d %v", status, err)
	}
	f.up.down.Store(true)
	time.Sleep(600 * time.Millisecond)
	if got := f.repomd(t); !bytes.Equal(got, f.first) {
		t.Fatal("stale generation not served with upstream down")
	}
	// A restart on the same storage keeps the generation and the packages.
	storage := f.p.cfg.Storage.Dir
	f.p.Close()
	p2 := startProxy(t, []config.Repo{testRepo("test", f.up.URL(), 500*time.Millisecond)},
		func(c *config.Config) { c.Storage.Dir = storage })
	status, body, err := p2.get(t, "/test/el9/repodata/repomd.xml")
	if err != nil || status != 200 || !bytes.Equal(body, f.first) {
		t.Fatalf("after restart: %d %v", status, err)
	}
	checkServesAll(t, p2, f.first)
	status, body, err = p2.get(t, app)
	if err != nil || status != 200 || !bytes.Equal(body, readFile(t, f.repoDir+"/Packages/"+testenv.RPMApp)) {
		t.Fatalf("package after restart: %d %v", status, err)
	}
	// Something never fetched cannot come from anywhere: a clean error.
	if status, _, _ := p2.get(t, "/test/el9/Packages/"+testenv.RPMTool); status != http.StatusBadGateway {
		t.Fatalf("uncached package with upstream down: %d, want 502", status)
	}
	if _, err := os.Stat(storage); err != nil {
		t.Fatal(err)
	}
}

func TestMadeUpRootsAreNotRemembered(t *testing.T) {
	f := newGenFixture(t, time.Minute)
	for i := range 20 {
		if status, _, _ := f.p.get(t, fmt.Sprintf("/test/nope%d/repodata/repomd.xml", i)); status != http.StatusNotFound {
			t.Fatalf("made-up root: %d, want 404", status)
		}
	}
	if got := rootNames(f.p.srv.repos["test"]); len(got) != 1 || got[0] != "el9/" {
		t.Fatalf("roots remembered: %v, want only el9/", got)
	}
}
