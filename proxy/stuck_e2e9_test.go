package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
)

// TestClientThatNeverReadsDelaysNobody: one client asks for a large
// cached object and never reads; meanwhile other clients get cache hits,
// /readyz and new misses (5 more 8 MiB objects, so the store commits and
// its value log moves on), each within a few seconds, long before the
// 60 s write timeout drops the stuck client.
func TestClientThatNeverReadsDelaysNobody(t *testing.T) {
	dir := newRepoDir(t, "el9", testenv.InitialRPMs())
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	const objects, size = 6, 8 << 20
	data := make([][]byte, objects)
	for i := range data {
		data[i] = pseudoRandom(size, byte(10+i))
		if err := os.WriteFile(filepath.Join(dir, "images", fmt.Sprintf("big%d.img", i)), data[i], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	up := newFakeUpstream(t, dir)
	p := startProxy(t, []config.Repo{testRepo("test", up.URL(), time.Hour)}, nil)
	admin := httptest.NewServer(p.srv.AdminServer("").Handler)
	defer admin.Close()
	pkg := "/test/el9/Packages/" + testenv.InitialRPMs()[0]
	for _, path := range []string{"/test/images/big0.img", "/test/el9/repodata/repomd.xml", pkg} {
		if st, _, err := p.get(t, path); err != nil || st != http.StatusOK {
			t.Fatalf("%s: %d %v", path, st, err)
		}
	}

	// The stuck client: a tiny receive buffer, a request, no reads.
	conn := testenv.StuckClient(t, p.http.Listener.Addr().String(), "/test/images/big0.img")
	time.Sleep(500 * time.Millisecond) // its handler is now blocked in a write

	const bound = 5 * time.Second
	client := &http.Client{Timeout: 2 * bound}
	fetch := func(url string, want []byte) time.Duration {
		t.Helper()
		start := time.Now()
		resp, err := client.Get(url)
		if err != nil {
			t.Errorf("%s while a client is stuck: %v", url, err)
			return time.Since(start)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if err != nil || resp.StatusCode != http.StatusOK || (want != nil && !bytes.Equal(body, want)) {
			t.Errorf("%s while a client is stuck: %d %v (body right: %v)", url, resp.StatusCode, err, want == nil || bytes.Equal(body, want))
		}
		if took > bound {
			t.Errorf("%s took %s while a client is stuck (bound %s)", url, took, bound)
		}
		return took
	}
	var worst time.Duration
	for i := 1; i < objects; i++ {
		worst = max(worst, fetch(p.URL(fmt.Sprintf("/test/images/big%d.img", i)), data[i]))
		for _, u := range []string{p.URL("/test/el9/repodata/repomd.xml"), p.URL(pkg), p.URL("/test/images/big0.img"), admin.URL + "/readyz"} {
			worst = max(worst, fetch(u, nil))
		}
	}
	t.Logf("slowest request while a client was stuck: %s", worst)
	// The stuck client is still connected (the write timeout is 60 s):
	// what was asserted happened while it held its handler.
	conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			t.Errorf("the stuck client was dropped early: %v", err)
		}
	}
}
