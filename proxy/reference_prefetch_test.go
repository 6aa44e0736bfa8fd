package proxy

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// TestColdViewFetchesReferenceBeside: the first repomd.xml of an annotate
// view whose reference is cold starts the reference's fetch at once, so
// both repos' metadata come in together. The repo's upstream holds its
// primary.xml until the reference's repomd.xml has been asked for: had the
// reference waited for the repo's generation (which needs that primary),
// the hold runs out and the test fails.
func TestColdViewFetchesReferenceBeside(t *testing.T) {
	dir := newRepoDir(t, "el9", testenv.InitialRPMs())
	up := newFakeUpstream(t, dir)
	refUp := newFakeUpstream(t, dir)
	var besides, held atomic.Int32
	up.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "-primary.xml.gz") {
			return false
		}
		held.Add(1)
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if refUp.Hits("/el9/repodata/repomd.xml") > 0 {
				besides.Add(1)
				break
			}
		}
		return false // then served as usual
	})
	r := testRepo("test", up.URL(), time.Minute)
	r.Compat.Mode = config.ModeAnnotate
	r.Compat.Reference = "ref"
	r.Compat.ELF.Enabled = false
	p := startProxy(t, []config.Repo{r, testRepo("ref", refUp.URL(), time.Minute)}, func(c *config.Config) {
		c.Signing.KeyFile = "testdata/signing-key.asc"
	})
	status, body, err := p.get(t, "/test/el9/repodata/repomd.xml")
	if err != nil || status != http.StatusOK {
		t.Fatalf("repomd.xml through annotate: %d %v", status, err)
	}
	if !strings.Contains(string(body), `type="abi-divergence"`) {
		t.Fatalf("the annotate view was not built (raw fallback?):\n%s", body)
	}
	if held.Load() == 0 {
		t.Fatal("the repo's primary.xml was never fetched")
	}
	if besides.Load() != held.Load() {
		t.Errorf("the reference's repomd.xml was asked for only after the repo's primary.xml was served: the reference is fetched after the repo, not beside it")
	}
	// A reference that has its generation is not fetched again.
	before := refUp.Hits("/el9/repodata/repomd.xml")
	if status, _, err := p.get(t, "/test/el9/repodata/repomd.xml"); err != nil || status != http.StatusOK {
		t.Fatalf("second repomd.xml: %d %v", status, err)
	}
	if n := refUp.Hits("/el9/repodata/repomd.xml"); n != before {
		t.Errorf("a warm reference was fetched again: %d repomd.xml requests, %d before", n, before)
	}
}

// TestSigningKeyReadyBeforeFirstView: with a rewriting repo and no
// signing.key_file, the key is generated at start, not by the first
// client's view build (where it adds a second or more to a cold
// repomd.xml); with raw repos only, none is made.
func TestSigningKeyReadyBeforeFirstView(t *testing.T) {
	for _, tc := range []struct {
		mode config.Mode
		want bool
	}{{config.ModeAnnotate, true}, {config.ModeOff, false}} {
		t.Run(string(tc.mode), func(t *testing.T) {
			r := testRepo("test", "http://127.0.0.1:9/", time.Minute) // never asked
			r.Compat.Mode = tc.mode
			p := startProxy(t, []config.Repo{r}, nil)
			<-p.srv.signer
			_, err := os.Stat(filepath.Join(p.cfg.Storage.Dir, metadata.SigningKeyFile))
			if got := err == nil; got != tc.want {
				t.Errorf("signing key in storage.dir before any request: %v, want %v (%v)", got, tc.want, err)
			}
		})
	}
}
