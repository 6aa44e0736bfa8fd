package proxy

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
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
