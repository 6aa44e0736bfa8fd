package proxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
)

// TestMetalinkForClientsWithRealDNF: a client that keeps metalink= (hash
// pinning of repomd.xml) points it at the proxy's own metalink, in the raw
// and the annotate view, and dnf verifies repomd.xml against it and
// installs. A metalink whose hashes do not match what is served makes dnf
// fail: the hashes are checked, not decoration.
func TestMetalinkForClientsWithRealDNF(t *testing.T) {
	f := newViewFixture(t, config.ModeOff, almaRule)
	for _, view := range []string{"", "@annotate"} {
		t.Run("view="+strings.TrimPrefix(view, "@"), func(t *testing.T) {
			link := f.p.URL("/test" + view + "/el9/repodata/repomd.xml.metalink")
			status, body, err := f.p.get(t, strings.TrimPrefix(link, f.p.URL("")))
			if err != nil || status != http.StatusOK {
				t.Fatalf("metalink: %d %v", status, err)
			}
			if !strings.Contains(string(body), `<hash type="sha256">`) || !strings.Contains(string(body), "/test"+view+"/el9/repodata/repomd.xml</url>") {
				t.Fatalf("metalink lacks the hash or the proxy's URL:\n%s", body)
			}
			opts := []testenv.DNFOption{testenv.WithRepoOption("m", "metalink", link)}
			if view != "" {
				opts = append(opts, testenv.WithRepoOption("m", "repo_gpgcheck", "1"),
					testenv.WithRepoOption("m", "gpgkey", f.p.URL("/test"+view+"/el9/repodata/repomd.xml.key")))
			}
			d := testenv.NewDNF(t, nil, opts...)
			d.MakeCache()
			d.Install("dnfpt-app")
			if !d.Installed("dnfpt-app") {
				t.Fatal("dnfpt-app not installed through metalink=")
			}
		})
	}
	// A metalink whose sha256 does not match the served repomd.xml: dnf
	// must refuse it.
	bad := newFakeMetalinkServer(t, f.p, "/test/el9/repodata/repomd.xml.metalink")
	d := testenv.NewDNF(t, nil, testenv.WithRepoOption("m", "metalink", bad), testenv.WithTimeout(time.Minute))
	if _, _, err := d.Run("makecache"); err == nil {
		t.Fatal("dnf accepted a repomd.xml that does not match the metalink's hashes")
	}
}

// newFakeMetalinkServer serves the proxy's metalink with every hash
// altered, and returns its URL.
func newFakeMetalinkServer(t *testing.T, p *testProxy, path string) string {
	t.Helper()
	_, body, err := p.get(t, path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(body)
	for _, typ := range []string{"md5", "sha1", "sha256", "sha512"} {
		open := `<hash type="` + typ + `">`
		i := strings.Index(doc, open) + len(open)
		c := "0"
		if doc[i] == '0' {
			c = "1"
		}
		doc = doc[:i] + c + doc[i+1:]
	}
	srv := newStaticServer(t, doc)
	return srv + "/repomd.xml.metalink"
}

// newStaticServer serves body at every path and returns its base URL.
func newStaticServer(t *testing.T, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
