package proxy

import (
	"bytes"
	"context"
	"errors"
	"github.com/dnfproxy/dnfproxy/internal/keys"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
)

const bigPath = "el9/Packages/" + testenv.RPMBig

// fetchRepomd makes the proxy load the generation that lists the RPMs.
func fetchRepomd(t *testing.T, p *testProxy, repo string) {
	t.Helper()
	status, _, err := p.get(t, "/"+repo+"/el9/repodata/repomd.xml")
	if err != nil || status != http.StatusOK {
		t.Fatalf("repomd.xml: status %d, err %v", status, err)
	}
}

func TestConcurrentColdRequestsShareOneUpstreamTransfer(t *testing.T) {
	dir := newRepoDir(t, "el9", []string{testenv.RPMBig})
	up := newFakeUpstream(t, dir)
	// Slow the transfer down so that all clients arrive while it runs.
	up.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/"+bigPath {
			time.Sleep(300 * time.Millisecond)
		}
		return false
	})
	p := startProxy(t, testRepoArgs{{"test", up.URL()}}.repos(), nil)
	fetchRepomd(t, p, "test")
	want := readFile(t, dir+"/"+bigPath)

	const clients = 50
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, body, err := p.get(t, "/test/"+bigPath)
			switch {
			case err != nil:
				errs <- err
			case status != http.StatusOK:
				errs <- errors.New(http.StatusText(status))
			case !bytes.Equal(body, want):
				errs <- errors.New("wrong body")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := up.Hits("/" + bigPath); n != 1 {
		t.Fatalf("upstream got %d requests for the RPM, want exactly 1", n)
	}
}

func TestClientsGetBytesBeforeUpstreamTransferEnds(t *testing.T) {
	dir := newRepoDir(t, "el9", []string{testenv.RPMBig})
	up := newFakeUpstream(t, dir)
	body := readFile(t, dir+"/"+bigPath)
	release := make(chan struct{})
	finished := make(chan struct{})
	up.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/"+bigPath {
			return false
		}
		defer close(finished)
		w.Header().Set("Content-Length", itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		// Drip the first half, then hold the rest until the test saw bytes.
		half := len(body) / 2
		for off := 0; off < half; off += 64 << 10 {
			w.Write(body[off:min(off+64<<10, half)])
			w.(http.Flusher).Flush()
			time.Sleep(5 * time.Millisecond)
		}
		<-release
		w.Write(body[half:])
		return true
	})
	p := startProxy(t, testRepoArgs{{"test", up.URL()}}.repos(), nil)
	fetchRepomd(t, p, "test")

	type result struct {
		body []byte
		err  error
	}
	var clients []chan result
	for range 3 {
		resp, err := http.Get(p.URL("/test/" + bigPath))
		if err != nil {
			t.Fatal(err)
		}
		first := make([]byte, 64<<10)
		if _, err := io.ReadFull(resp.Body, first); err != nil {
			t.Fatalf("reading the first bytes while upstream is still sending: %v", err)
		}
		select {
		case <-finished:
			t.Fatal("upstream transfer ended before the client got its first bytes")
		default:
		}
		ch := make(chan result, 1)
		go func() {
			rest, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			ch <- result{append(first, rest...), err}
		}()
		clients = append(clients, ch)
	}
	close(release)
	for i, ch := range clients {
		r := <-ch
		if r.err != nil || !bytes.Equal(r.body, body) {
			t.Errorf("client %d: err %v, body ok %v", i, r.err, bytes.Equal(r.body, body))
		}
	}
	if n := up.Hits("/" + bigPath); n != 1 {
		t.Errorf("upstream got %d requests, want 1", n)
	}
}

func TestClientHangupDoesNotAbortFill(t *testing.T) {
	dir := newRepoDir(t, "el9", []string{testenv.RPMBig})
	up := newFakeUpstream(t, dir)
	up.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/"+bigPath {
			time.Sleep(200 * time.Millisecond)
		}
		return false
	})
	p := startProxy(t, testRepoArgs{{"test", up.URL()}}.repos(), nil)
	fetchRepomd(t, p, "test")
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL("/test/"+bigPath), nil)
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	// The fill goes on without the client and lands in the cache.
	key := keys.ObjKey("test", bigPath)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := p.store.Stat(context.Background(), key); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("fill was aborted by the client hanging up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	up.down.Store(true)
	status, body, err := p.get(t, "/test/"+bigPath)
	if err != nil || status != http.StatusOK || !bytes.Equal(body, readFile(t, dir+"/"+bigPath)) {
		t.Fatalf("cached copy: status %d err %v", status, err)
	}
}

func TestCorruptUpstreamRPMIsNeverCached(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func([]byte) []byte
	}{
		{"flipped byte", func(b []byte) []byte { c := bytes.Clone(b); c[len(c)/2] ^= 0xff; return c }},
		{"flipped last byte", func(b []byte) []byte { c := bytes.Clone(b); c[len(c)-1] ^= 0x01; return c }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-100] }},
		{"longer", func(b []byte) []byte { return append(bytes.Clone(b), "junk"...) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := newRepoDir(t, "el9", []string{testenv.RPMBig})
			up := newFakeUpstream(t, dir)
			good := readFile(t, dir+"/"+bigPath)
			bad := tc.corrupt(good)
			up.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path != "/"+bigPath {
					return false
				}
				w.Header().Set("Content-Length", itoa(len(bad)))
				w.Write(bad)
				return true
			})
			p := startProxy(t, testRepoArgs{{"test", up.URL()}}.repos(), nil)
			fetchRepomd(t, p, "test")

			status, body, err := p.get(t, "/test/"+bigPath)
			if err == nil && status == http.StatusOK && bytes.Equal(body, bad) {
				t.Fatal("client got a complete 200 with the bad body")
			}
			if err == nil && status == http.StatusOK {
				t.Fatalf("client transfer did not fail (got %d bytes)", len(body))
			}
			if _, err := p.store.Stat(context.Background(), keys.ObjKey("test", bigPath)); !errors.Is(err, cache.ErrNotFound) {
				t.Fatalf("bad RPM in the cache: %v", err)
			}
			up.SetHook(nil) // healed
			status, body, err = p.get(t, "/test/"+bigPath)
			if err != nil || status != http.StatusOK || !bytes.Equal(body, good) {
				t.Fatalf("after heal: status %d err %v equal %v", status, err, bytes.Equal(body, good))
			}
		})
	}
}
