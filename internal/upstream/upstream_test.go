package upstream

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A body that stalls after its headers fails with ErrTimeout about
// Timeout after the last byte, for a repomd.xml, its signature and a large
// package alike (a stalled repomd.xml once held clients for 30 minutes).
func TestStallAfterHeadersTimesOut(t *testing.T) {
	for _, tc := range []struct {
		name string
		rel  string
		size int
	}{
		{"repomd.xml", "9/os/repodata/repomd.xml", 4 << 10},
		{"repomd.xml.asc", "9/os/repodata/repomd.xml.asc", 833},
		{"large package", "9/os/Packages/big.rpm", 8 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := pseudoRandom(tc.size, 1)
			sent := tc.size / 2
			release := make(chan struct{})
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", itoa(tc.size))
				w.Write(data[:sent])
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
				case <-release:
				}
			})
			t.Cleanup(func() { close(release) })
			c := newClient(t, Options{Bases: []string{srv.base("/")}})
			resp, err := c.Get(context.Background(), tc.rel, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			start := time.Now()
			got, err := readWithin(t, resp.Body, 5*time.Second)
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("reading a stalled body: %v (%s), want ErrTimeout", err, sentinel(err))
			}
			if len(got) != sent || !bytes.Equal(got, data[:sent]) {
				t.Errorf("got %d bytes before the stall, want the %d sent", len(got), sent)
			}
			// The stall is measured from the last byte: at least Timeout,
			// and far less than the old half hour.
			if el := time.Since(start); el < testTimeout || el > 3*time.Second {
				t.Errorf("the stall was noticed after %s, Timeout is %s", el, testTimeout)
			}
		})
	}
}

// A body dripping far below MinRate fails with ErrTooSlow about one
// Timeout window in, though no single read waits Timeout.
func TestDripBelowMinRateIsTooSlow(t *testing.T) {
	srv := newServer(t, drip(bytes.Repeat([]byte{'x'}, 100000), 0))
	fails := &failures{}
	c := newClient(t, Options{Bases: []string{srv.base("/")}, MinRate: 1000, OnFail: fails.hook})
	start := time.Now()
	resp, body, err := fetch(t, c, "Packages/drip.rpm")
	el := time.Since(start)
	if !errors.Is(err, ErrTooSlow) {
		t.Fatalf("dripping body: %v (%s), want ErrTooSlow", err, sentinel(err))
	}
	if el < testTimeout || el > 4*testTimeout {
		t.Errorf("judged too slow after %s, want about one Timeout window (%s)", el, testTimeout)
	}
	if len(body) == 0 || len(body) > 100 {
		t.Errorf("%d bytes arrived before the verdict, want the few of one window", len(body))
	}
	if resp == nil || len(fails.of(resp.Base)) != 1 {
		t.Errorf("OnFail was not told about the slow base once: %v", fails.m)
	}
}

// MinRate does not fail a body that is slow but above it, nor a caller
// that pauses between reads longer than Timeout: the clocks run only while
// a read waits on upstream.
func TestMinRateSparesHealthyBodies(t *testing.T) {
	data := pseudoRandom(128<<10, 2)
	steady := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", itoa(len(data)))
		for off := 0; off < len(data); off += 4 << 10 {
			w.Write(data[off : off+4<<10])
			w.(http.Flusher).Flush()
			time.Sleep(10 * time.Millisecond) // ~400 KiB/s, about 0.3 s in all
		}
	})
	fast := newServer(t, files(map[string][]byte{"/f": data}))

	t.Run("steady above the floor", func(t *testing.T) {
		c := newClient(t, Options{Bases: []string{steady.base("/")}, MinRate: 1000})
		_, body, err := fetch(t, c, "f")
		if err != nil || !bytes.Equal(body, data) {
			t.Fatalf("steady body: %d bytes, %v", len(body), err)
		}
	})
	t.Run("caller pauses longer than Timeout", func(t *testing.T) {
		c := newClient(t, Options{Bases: []string{fast.base("/")}, MinRate: 1 << 30})
		resp, err := c.Get(context.Background(), "f", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got bytes.Buffer
		buf := make([]byte, 32<<10)
		for {
			time.Sleep(testTimeout + 50*time.Millisecond)
			n, err := io.ReadFull(resp.Body, buf)
			got.Write(buf[:n])
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				break
			}
			if err != nil {
				t.Fatalf("after %d bytes: %v (%s)", got.Len(), err, sentinel(err))
			}
		}
		if !bytes.Equal(got.Bytes(), data) {
			t.Errorf("got %d bytes, want %d", got.Len(), len(data))
		}
	})
}

// A connection reset, or a body cut short, mid-body is ErrUnavailable.
func TestBrokenBodyIsUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reset bool
	}{{"reset", true}, {"truncated", false}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				conn, buf, err := w.(http.Hijacker).Hijack()
				if err != nil {
					return
				}
				buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n")
				buf.Write(pseudoRandom(1000, 3))
				buf.Flush()
				time.Sleep(50 * time.Millisecond)
				if tc.reset {
					conn.(*net.TCPConn).SetLinger(0)
				}
				conn.Close()
			})
			c := newClient(t, Options{Bases: []string{srv.base("/")}})
			_, body, err := fetch(t, c, "Packages/a.rpm")
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("%s body: %v (%s), want ErrUnavailable", tc.name, err, sentinel(err))
			}
			if len(body) != 1000 {
				t.Errorf("got %d bytes before the break, want 1000", len(body))
			}
		})
	}
}

// A request moves on to the next base after a 404 or 410 (a lagging
// mirror, as librepo does), a 5xx, a timeout or a refused connection; it
// is ErrNotFound only when every base said 404/410.
func TestFailoverAcrossBases(t *testing.T) {
	data := []byte("the file")
	ok := func(t *testing.T) *server { return newServer(t, files(map[string][]byte{"/r/a/f": data})) }
	down := func(t *testing.T) string { return "http://" + closedAddr(t) + "/r/" }
	for _, tc := range []struct {
		name    string
		bases   func(t *testing.T) []string
		want    error // nil: the last base answers with data
		failsOn int   // how many bases OnFail hears of
	}{
		{"404 then 200", func(t *testing.T) []string {
			return []string{newServer(t, status(404)).base("/r/"), ok(t).base("/r/")}
		}, nil, 0},
		{"410 then 200", func(t *testing.T) []string {
			return []string{newServer(t, status(410)).base("/r/"), ok(t).base("/r/")}
		}, nil, 0},
		{"500 then 200", func(t *testing.T) []string {
			return []string{newServer(t, status(500)).base("/r/"), ok(t).base("/r/")}
		}, nil, 1},
		{"403 then 200", func(t *testing.T) []string {
			return []string{newServer(t, status(403)).base("/r/"), ok(t).base("/r/")}
		}, nil, 1},
		{"no headers then 200", func(t *testing.T) []string {
			return []string{newServer(t, hang).base("/r/"), ok(t).base("/r/")}
		}, nil, 1},
		{"refused then 200", func(t *testing.T) []string { return []string{down(t), ok(t).base("/r/")} }, nil, 1},
		{"every base 404 or 410", func(t *testing.T) []string {
			return []string{newServer(t, status(404)).base("/r/"), newServer(t, status(410)).base("/r/")}
		}, ErrNotFound, 0},
		{"404 and 500", func(t *testing.T) []string {
			return []string{newServer(t, status(404)).base("/r/"), newServer(t, status(502)).base("/r/")}
		}, ErrUnavailable, 1},
		{"404 and refused", func(t *testing.T) []string {
			return []string{newServer(t, status(404)).base("/r/"), down(t)}
		}, ErrUnavailable, 1},
		{"every base hangs", func(t *testing.T) []string {
			return []string{newServer(t, hang).base("/r/"), newServer(t, hang).base("/r/")}
		}, ErrTimeout, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bases := tc.bases(t)
			fails := &failures{}
			c := newClient(t, Options{Bases: bases, OnFail: fails.hook})
			resp, body, err := fetch(t, c, "a/f")
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("got %v (%s), want %v", err, sentinel(err), tc.want)
				}
				if tc.want != ErrNotFound && errors.Is(err, ErrNotFound) {
					t.Errorf("%v is also ErrNotFound", err)
				}
			} else {
				if err != nil {
					t.Fatalf("got %v (%s), want the file from the last base", err, sentinel(err))
				}
				if !bytes.Equal(body, data) || resp.Base != bases[len(bases)-1] {
					t.Errorf("got %q from %s, want %q from %s", body, resp.Base, data, bases[len(bases)-1])
				}
			}
			n := 0
			for _, b := range bases {
				if len(fails.of(b)) > 0 {
					n++
				}
			}
			if n != tc.failsOn {
				t.Errorf("OnFail heard of %d bases (%v), want %d", n, fails.m, tc.failsOn)
			}
		})
	}
}

// Conditional and range answers are answers: 304 and 416 are returned,
// not retried elsewhere.
func TestConditionalAnswersAreReturned(t *testing.T) {
	data := []byte("0123456789")
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	})
	other := newServer(t, files(map[string][]byte{"/f": data}))
	c := newClient(t, Options{Bases: []string{srv.base("/"), other.base("/")}})
	for _, tc := range []struct {
		hdr  http.Header
		want int
	}{
		{http.Header{"If-None-Match": {`"v1"`}}, http.StatusNotModified},
		{http.Header{"Range": {"bytes=2-4"}}, http.StatusPartialContent},
		{http.Header{"Range": {"bytes=50-60"}}, http.StatusRequestedRangeNotSatisfiable},
	} {
		resp, err := c.Get(context.Background(), "f", tc.hdr)
		if err != nil {
			t.Fatalf("%v: %v", tc.hdr, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want || resp.Base != srv.base("/") {
			t.Errorf("%v: %d from %s, want %d from the first base", tc.hdr, resp.StatusCode, resp.Base, tc.want)
		}
	}
	if n := other.hits.Load(); n != 0 {
		t.Errorf("second base asked %d times", n)
	}
}

// GetFrom retries on the next base: after a mid-body stall on the first,
// the second serves the whole file and the first is not asked again.
func TestGetFromSkipsTheFailedBase(t *testing.T) {
	data := pseudoRandom(256<<10, 4)
	stalling := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", itoa(len(data)))
		w.Write(data[:1000])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	good := newServer(t, files(map[string][]byte{"/Packages/p.rpm": data}))
	c := newClient(t, Options{Bases: []string{stalling.base("/"), good.base("/")}})

	resp, _, err := fetch(t, c, "Packages/p.rpm")
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("first attempt: %v, want a stall", err)
	}
	resp2, err := c.GetFrom(context.Background(), "Packages/p.rpm", nil, resp.Base)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	if err != nil || !bytes.Equal(body, data) || resp2.Base != good.base("/") {
		t.Fatalf("retry: %d bytes from %s, %v", len(body), resp2.Base, err)
	}
	if n := stalling.hits.Load(); n != 1 {
		t.Errorf("stalling base asked %d times, want 1", n)
	}

	// With one base, GetFrom still has that base to try.
	solo := newClient(t, Options{Bases: []string{good.base("/")}})
	resp3, err := solo.GetFrom(context.Background(), "Packages/p.rpm", nil, good.base("/"))
	if err != nil {
		t.Fatalf("one base: %v", err)
	}
	resp3.Body.Close()
}

// A base that failed is tried after the healthy ones for a cool-down, and
// first again after it; Status says so.
func TestFailedBaseCoolsDown(t *testing.T) {
	data := []byte("f")
	var sick atomic.Bool
	sick.Store(true)
	a := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if sick.Load() {
			http.Error(w, "sick", 503)
			return
		}
		w.Write(data)
	})
	b := newServer(t, files(map[string][]byte{"/f": data}))
	c := newClient(t, Options{Bases: []string{a.base("/"), b.base("/")}})
	c.health.coolDown = time.Second // long enough for a loaded machine between two requests

	if resp, _, err := fetch(t, c, "f"); err != nil || resp.Base != b.base("/") {
		t.Fatalf("first request: %v", err)
	}
	sick.Store(false)
	st := c.Status()
	if len(st) != 2 || st[0].Base != b.base("/") || st[1].Base != a.base("/") || !st[1].CoolingDown ||
		st[1].Failures != 1 || !strings.Contains(st[1].LastError, "503") || st[1].LastErrorAt.IsZero() {
		t.Fatalf("status after a failure: %+v", st)
	}
	if resp, _, err := fetch(t, c, "f"); err != nil || resp.Base != b.base("/") {
		t.Fatalf("during the cool-down: %v, from %v", err, resp)
	}
	if n := a.hits.Load(); n != 1 {
		t.Errorf("cooling base asked %d times during its cool-down, want 1", n)
	}
	time.Sleep(c.health.coolDown)
	if resp, _, err := fetch(t, c, "f"); err != nil || resp.Base != a.base("/") {
		t.Fatalf("after the cool-down: %v, from %v", err, resp)
	}
	if st := c.Status(); st[0].Base != a.base("/") || st[0].CoolingDown {
		t.Errorf("status after recovery: %+v", st)
	}
}

// The per-host cap holds: many concurrent requests never open more
// connections to one host than MaxConnsPerHost.
func TestConnectionCapPerHost(t *testing.T) {
	const capConns, requests = 3, 12
	var open, peak atomic.Int64
	connState := func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			n := open.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv := newServerWith(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(100 * time.Millisecond)
		w.Write([]byte("ok"))
	}, func(s *httptest.Server) { s.Config.ConnState = connState })
	c := newClient(t, Options{Bases: []string{srv.base("/")}, MaxConnsPerHost: capConns, Timeout: 5 * time.Second})
	var wg sync.WaitGroup
	errs := make(chan error, requests)
	for i := 0; i < requests; i++ {
		wg.Add(1)
		go func() { // not fetch: it may fail the test, which only the test goroutine may
			defer wg.Done()
			resp, err := c.Get(context.Background(), "f", nil)
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if p := peak.Load(); p != capConns {
		t.Errorf("peak of %d concurrent connections, want exactly the cap of %d", p, capConns)
	}
	if n := srv.hits.Load(); n != requests {
		t.Errorf("%d requests reached the server, want %d", n, requests)
	}
}

// Every request says who it is and asks for no compression; compressed
// bytes arrive as upstream sent them.
func TestRequestsAreRawAndNamed(t *testing.T) {
	gz := pseudoRandom(100, 5)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(gz)
	})
	c := newClient(t, Options{Bases: []string{srv.base("/")}})
	_, body, err := fetch(t, c, "repodata/primary.xml.gz")
	if err != nil || !bytes.Equal(body, gz) {
		t.Fatalf("got %d bytes, %v", len(body), err)
	}
	r := srv.requests()[0]
	if ua := r.Header.Get("User-Agent"); ua != "dnfproxy" {
		t.Errorf("User-Agent %q", ua)
	}
	if ae := r.Header.Get("Accept-Encoding"); ae != "" {
		t.Errorf("Accept-Encoding %q: the client asked for compression", ae)
	}
}

// User info in a base never shows in errors or logs.
func TestURLsAreRedacted(t *testing.T) {
	srv := newServer(t, status(500))
	base := strings.Replace(srv.base("/r/"), "http://", "http://user:s3cret@", 1)
	var logs bytes.Buffer
	fails := &failures{}
	c := newClient(t, Options{Bases: []string{base}, Log: slog.New(slog.NewTextHandler(&logs, nil)), OnFail: fails.hook})
	_, _, err := fetch(t, c, "f")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v", err)
	}
	st := c.Status()
	for what, s := range map[string]string{"error": err.Error(), "log": logs.String(), "status": st[0].Base + st[0].LastError} {
		if strings.Contains(s, "s3cret") {
			t.Errorf("%s shows the password: %s", what, s)
		}
	}
	if got := srv.requests()[0].Header.Get("Authorization"); got == "" {
		t.Errorf("the base's own user info was not sent")
	}
}

// Paths that are not cleaned and relative are refused before any request.
func TestBadPathsAreRefused(t *testing.T) {
	srv := newServer(t, status(200))
	c := newClient(t, Options{Bases: []string{srv.base("/r/")}})
	for _, rel := range []string{"", "/etc/passwd", "a/../../x", "./a", "a?b", "a#b", "a\\b", "a\x00b", "a\nb"} {
		if _, err := c.Get(context.Background(), rel, nil); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%q: %v, want ErrBadRequest", rel, err)
		}
	}
	if n := srv.hits.Load(); n != 0 {
		t.Errorf("%d requests went out", n)
	}
	// Odd but legal names are escaped, not refused.
	if _, err := c.Get(context.Background(), "Packages/libstdc++-1.0 beta%.rpm", nil); err != nil {
		t.Errorf("odd name: %v", err)
	}
	if got := srv.requests()[0].URL.Path; got != "/r/Packages/libstdc++-1.0 beta%.rpm" {
		t.Errorf("server saw path %q", got)
	}
}

// The caller's cancellation is the caller's error, not an upstream one,
// and is not counted against the base.
func TestCallerCancelIsNotUpstreamFailure(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.Write([]byte("x"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	fails := &failures{}
	c := newClient(t, Options{Bases: []string{srv.base("/")}, OnFail: fails.hook, Timeout: 5 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := c.Get(ctx, "f", nil)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if len(fails.m) != 0 {
		t.Errorf("OnFail heard of the caller's cancel: %v", fails.m)
	}
}
