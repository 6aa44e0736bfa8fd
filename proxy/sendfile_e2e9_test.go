package proxy_test

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/cache"

	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
)

// kernelCopies counts what net/http hands the client connections' ReadFrom.
// *net.TCPConn.ReadFrom sends an *os.File under an io.LimitedReader with
// sendfile(2), so the bytes counted in fileBytes are those the kernel
// copied from the spool to the socket without passing through the proxy.
type kernelCopies struct {
	fileBytes  atomic.Int64 // ReadFrom of a file section
	otherBytes atomic.Int64 // ReadFrom of anything else (copied in user space)
}

type hookListener struct {
	net.Listener
	k *kernelCopies
}

func (l hookListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &hookConn{TCPConn: c.(*net.TCPConn), k: l.k}, nil
}

type hookConn struct {
	*net.TCPConn
	k *kernelCopies
}

func (c *hookConn) ReadFrom(r io.Reader) (int64, error) {
	lr, ok := r.(*io.LimitedReader)
	file := false
	if ok {
		_, file = lr.R.(*os.File)
	}
	n, err := c.TCPConn.ReadFrom(r)
	if file {
		c.k.fileBytes.Add(n)
	} else {
		c.k.otherBytes.Add(n)
	}
	return n, err
}

// TestColdMissFollowerUsesSendfile: a client of a cold miss (an RPM the
// metadata lists, and a large plain file) gets the spool through the
// connection's ReadFrom as file sections, i.e. by sendfile, all but the
// first 512 bytes net/http copies itself before switching; the access log
// still counts every body byte. A later hit of the committed object comes
// from the store's chunks (not a file): no file section.
func TestColdMissFollowerUsesSendfile(t *testing.T) {
	dir := makeRepo(t, "el9", []string{testenv.RPMBig})
	big := make([]byte, 24<<20)
	rand.Read(big)
	if err := os.MkdirAll(filepath.Join(dir, "el9", "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "el9", "images", "big.img"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	up := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(up.Close)
	p := startBB(t, []config.Repo{bbRepo("test", up.URL+"/", config.ModeOff)}, nil)

	k := &kernelCopies{}
	hs := httptest.NewUnstartedServer(nil)
	hs.Config = p.srv.HTTPServer("")
	hs.Listener = hookListener{Listener: hs.Listener, k: k}
	hs.Start()
	t.Cleanup(hs.Close)

	get := func(path string) []byte {
		t.Helper()
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %v", path, resp.StatusCode, err)
		}
		return body
	}
	get("/test/el9/repodata/repomd.xml") // the package index
	rpm, err := os.ReadFile(filepath.Join(dir, "el9", "Packages", testenv.RPMBig))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, path string
		want       []byte
	}{
		{"RPM listed in primary", "/test/el9/Packages/" + testenv.RPMBig, rpm},
		{"plain file", "/test/el9/images/big.img", big},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k.fileBytes.Store(0)
			k.otherBytes.Store(0)
			if body := get(tt.path); !bytes.Equal(body, tt.want) {
				t.Fatalf("cold miss of %s: %d bytes differ from upstream's %d", tt.path, len(body), len(tt.want))
			}
			rec := p.logs.request(tt.path)
			if rec == nil || rec["cache"] != "miss" {
				t.Fatalf("access log of the cold miss: %v", rec)
			}
			if got := rec["bytes"]; got != float64(len(tt.want)) {
				t.Errorf("access log bytes = %v, want %d", got, len(tt.want))
			}
			if sent, want := k.fileBytes.Load(), int64(len(tt.want)-512); sent < want {
				t.Errorf("cold miss: %d bytes sent from the spool file by the kernel (%d otherwise), want at least %d",
					sent, k.otherBytes.Load(), want)
			}

			// The committed object: a hit from badger's chunks.
			rel := strings.TrimPrefix(tt.path, "/test/")
			if !waitFor(10*time.Second, func() bool {
				found := false
				p.store.List(t.Context(), "", func(in cache.Info) error {
					found = found || strings.HasSuffix(in.Key, rel)
					return nil
				})
				return found
			}) {
				t.Fatalf("%s not committed to the store after 10s", rel)
			}
			k.fileBytes.Store(0)
			if body := get(tt.path); !bytes.Equal(body, tt.want) {
				t.Fatalf("hit of %s: wrong body", tt.path)
			}
			rec = p.logs.request(tt.path)
			if rec == nil || rec["cache"] != "hit" || rec["bytes"] != float64(len(tt.want)) {
				t.Errorf("access log of the hit: %v", rec)
			}
			if n := k.fileBytes.Load(); n != 0 {
				t.Errorf("a hit from the store sent %d bytes as file sections", n)
			}
		})
	}
}
