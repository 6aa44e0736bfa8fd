package upstream

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// splicerBody is what fill sees of a guarded body.
type splicerBody interface {
	io.ReadCloser
	SpliceTo(file *os.File, off int64, max int) (int, error)
}

// spliceAll reads the body as fill does: one Read (which empties the
// transport's buffer), then SpliceTo into file until the end or an error.
// It returns how many bytes went each way.
func spliceAll(t *testing.T, body io.ReadCloser, file *os.File) (read, spliced int64, err error) {
	t.Helper()
	sp, ok := body.(splicerBody)
	if !ok {
		t.Fatalf("the body (%T) has no SpliceTo", body)
	}
	buf := make([]byte, 1<<20)
	n, err := sp.Read(buf)
	if _, werr := file.WriteAt(buf[:n], 0); werr != nil {
		t.Fatal(werr)
	}
	read = int64(n)
	if err != nil {
		return read, 0, err
	}
	for {
		n, err := sp.SpliceTo(file, read+spliced, 1<<20)
		spliced += int64(n)
		if err != nil {
			return read, spliced, err
		}
	}
}

// rawResponse answers with hand-written bytes through a hijacked
// connection: the status line, headers and the first body bytes in one
// write (so that the client's transport buffers some of the body with
// the headers), then the rest in steps, then end(conn).
func rawResponse(head string, body []byte, first int, end func(net.Conn)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, bw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		bw.WriteString(head)
		bw.Write(body[:first])
		bw.Flush()
		time.Sleep(20 * time.Millisecond)
		for off := first; off < len(body); off += 256 << 10 {
			if _, err := conn.Write(body[off:min(len(body), off+256<<10)]); err != nil {
				return
			}
		}
		if end != nil {
			end(conn)
		}
	}
}

// getOK gets rel through c, failing the test when that fails.
func getOK(t *testing.T, ctx context.Context, c *Client, rel string) *Response {
	t.Helper()
	resp, err := c.Get(ctx, rel, nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func spoolFile(t *testing.T) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "spool")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func fileBytes(t *testing.T, f *os.File, n int64) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return b
}

// A plain HTTP/1.1 body of known length is moved into the file by
// SpliceTo, byte for byte, after the Read that empties the transport's
// buffer, including when that buffer held body bytes read with the
// headers.
func TestSpliceMovesTheBodyIntoTheFile(t *testing.T) {
	data := pseudoRandom(12<<20+333, 11)
	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
	}{
		{"net/http server", files(map[string][]byte{"/r/big.img": data})},
		{"body bytes with the headers", rawResponse("HTTP/1.1 200 OK\r\nContent-Length: "+itoa(len(data))+"\r\n\r\n", data, 3000, nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, tc.h)
			c := newClient(t, Options{Bases: []string{srv.base("/r/")}, Timeout: 5 * time.Second})
			resp := getOK(t, context.Background(), c, "big.img")
			defer resp.Body.Close()
			f := spoolFile(t)
			read, spliced, err := spliceAll(t, resp.Body, f)
			if err != io.EOF {
				t.Fatalf("splicing: %v (%s) after %d read and %d spliced bytes", err, sentinel(err), read, spliced)
			}
			if read+spliced != int64(len(data)) {
				t.Fatalf("%d bytes read and %d spliced, the body has %d", read, spliced, len(data))
			}
			if spliced < int64(len(data))-1<<20 {
				t.Errorf("only %d of %d bytes were spliced", spliced, len(data))
			}
			if !bytes.Equal(fileBytes(t, f, int64(len(data))), data) {
				t.Fatal("the file differs from the body")
			}
			// The body is at its end for Read too.
			if n, err := resp.Body.(splicerBody).SpliceTo(f, int64(len(data)), 1<<20); n != 0 || err != io.EOF {
				t.Errorf("SpliceTo past the end: %d, %v", n, err)
			}
		})
	}
}

// Before a Read has emptied the transport's buffer, and for bodies whose
// bytes on the connection are not the body's (chunked, TLS), SpliceTo
// refuses with ErrNoSplice, and Read still gets the whole body.
func TestSpliceRefusedWhereTheConnectionIsNotTheBody(t *testing.T) {
	data := pseudoRandom(2<<20, 12)
	chunked := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write(data[:1000]) // no length: net/http chunks the body
		w.(http.Flusher).Flush()
		w.Write(data[1000:])
	})
	ca := newTestCA(t)
	cert, _, _ := ca.issue(t, "server", true)
	tlsSrv := tlsServer(t, &tls.Config{Certificates: []tls.Certificate{cert}}, data)
	plain := newServer(t, files(map[string][]byte{"/r/f": data}))

	for _, tc := range []struct {
		name     string
		opt      Options
		rel      string
		readBuf  int // the Read before SpliceTo; 0: none
		wantPass bool
	}{
		{"no Read yet", Options{Bases: []string{plain.base("/r/")}}, "f", 0, false},
		{"a Read smaller than the transport's buffer", Options{Bases: []string{plain.base("/r/")}}, "f", 100, false},
		{"chunked", Options{Bases: []string{chunked.base("/r/")}}, "f", 1 << 20, false},
		{"TLS", Options{Bases: []string{tlsSrv.URL + "/r/"}, CAFile: ca.pemFile}, "f", 1 << 20, false},
		{"control: plain, after a full Read", Options{Bases: []string{plain.base("/r/")}}, "f", 1 << 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opt.Timeout = 5 * time.Second
			c := newClient(t, tc.opt)
			resp := getOK(t, context.Background(), c, tc.rel)
			defer resp.Body.Close()
			var got []byte
			if tc.readBuf > 0 {
				buf := make([]byte, tc.readBuf)
				n, err := resp.Body.Read(buf)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, buf[:n]...)
			}
			f := spoolFile(t)
			n, err := resp.Body.(splicerBody).SpliceTo(f, int64(len(got)), 1<<20)
			if tc.wantPass {
				if err != nil || n <= 0 {
					t.Fatalf("SpliceTo on a plain body after a full Read: %d, %v", n, err)
				}
				return
			}
			if n != 0 || !errors.Is(err, ErrNoSplice) {
				t.Fatalf("SpliceTo: %d, %v; want ErrNoSplice", n, err)
			}
			rest, err := readWithin(t, resp.Body, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if got = append(got, rest...); !bytes.Equal(got, data) {
				t.Fatalf("Read after a refused SpliceTo got %d bytes, want the %d of the body", len(got), len(data))
			}
		})
	}
}

// The guards hold while splicing: a body that stalls is ErrTimeout about
// Timeout after its last byte, one cut short or reset is ErrUnavailable,
// and in each case the file holds exactly the bytes that came.
func TestSpliceGuardsStallsAndBreaks(t *testing.T) {
	const size = 8 << 20
	data := pseudoRandom(size, 13)
	sent := 5<<20 + 77
	head := "HTTP/1.1 200 OK\r\nContent-Length: " + itoa(size) + "\r\n\r\n"
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	for _, tc := range []struct {
		name string
		end  func(net.Conn)
		want error
	}{
		{"stall", func(net.Conn) { <-release }, ErrTimeout},
		{"truncated", nil, ErrUnavailable},
		{"reset", func(c net.Conn) { time.Sleep(100 * time.Millisecond); c.(*net.TCPConn).SetLinger(0) }, ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, rawResponse(head, data[:sent], 2000, tc.end))
			fails := &failures{}
			c := newClient(t, Options{Bases: []string{srv.base("/")}, OnFail: fails.hook})
			resp := getOK(t, context.Background(), c, "images/big.img")
			defer resp.Body.Close()
			f := spoolFile(t)
			type result struct {
				read, spliced int64
				err           error
			}
			done := make(chan result, 1)
			start := time.Now()
			go func() {
				r, s, err := spliceAll(t, resp.Body, f)
				done <- result{r, s, err}
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("SpliceTo still blocks after 10 s")
			}
			if !errors.Is(r.err, tc.want) {
				t.Fatalf("got %v (%s), want %v", r.err, sentinel(r.err), tc.want)
			}
			if r.spliced == 0 {
				t.Error("nothing was spliced before the break")
			}
			if got := r.read + r.spliced; got != int64(sent) || !bytes.Equal(fileBytes(t, f, got), data[:sent]) {
				t.Errorf("the file holds %d bytes, want the %d sent, equal to them", got, sent)
			}
			if tc.want == ErrTimeout {
				if el := time.Since(start); el < testTimeout || el > 5*time.Second {
					t.Errorf("the stall was noticed after %s, Timeout is %s", el, testTimeout)
				}
			}
			if len(fails.of(resp.Base)) != 1 {
				t.Errorf("OnFail heard %d failures of the base, want 1", len(fails.of(resp.Base)))
			}
		})
	}
}

// A file that cannot be written is the file's failure: SpliceTo returns a
// *WriteError, upstream is not blamed, and the body stays failed.
func TestSpliceWriteErrorIsNotUpstreams(t *testing.T) {
	data := pseudoRandom(4<<20, 14)
	srv := newServer(t, files(map[string][]byte{"/r/f": data}))
	fails := &failures{}
	c := newClient(t, Options{Bases: []string{srv.base("/r/")}, OnFail: fails.hook, Timeout: 5 * time.Second})
	resp := getOK(t, context.Background(), c, "f")
	defer resp.Body.Close()
	if _, err := resp.Body.Read(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ro")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ro, err := os.Open(path) // read-only: splice into it fails
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	sp := resp.Body.(splicerBody)
	_, err = sp.SpliceTo(ro, 1<<20, 1<<20)
	var we *WriteError
	if !errors.As(err, &we) {
		t.Fatalf("splicing into a read-only file: %v, want a *WriteError", err)
	}
	if n, err2 := sp.SpliceTo(spoolFile(t), 1<<20, 1<<20); n != 0 || !errors.As(err2, &we) {
		t.Errorf("after a write error SpliceTo gave %d, %v; want the same *WriteError", n, err2)
	}
	if got := fails.of(resp.Base); len(got) != 0 {
		t.Errorf("OnFail blamed upstream for the file: %v", got)
	}
}

// A caller that gives up (its context ends) or closes the body from
// another goroutine while SpliceTo waits on a stalled upstream ends the
// wait at once, and upstream is not blamed for it.
func TestSpliceEndsWhenTheCallerGivesUp(t *testing.T) {
	data := pseudoRandom(4<<20, 15)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv := newServer(t, rawResponse("HTTP/1.1 200 OK\r\nContent-Length: "+itoa(len(data))+"\r\n\r\n", data[:2<<20], 2000,
		func(net.Conn) { <-release }))
	for _, how := range []string{"context", "close"} {
		t.Run(how, func(t *testing.T) {
			fails := &failures{}
			c := newClient(t, Options{Bases: []string{srv.base("/")}, OnFail: fails.hook, Timeout: 30 * time.Second})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			resp := getOK(t, ctx, c, "f")
			defer resp.Body.Close()
			type result struct {
				spliced int64
				err     error
			}
			done := make(chan result, 1)
			go func() {
				_, spliced, err := spliceAll(t, resp.Body, spoolFile(t))
				done <- result{spliced, err}
			}()
			time.Sleep(300 * time.Millisecond)
			if how == "context" {
				cancel()
			} else {
				resp.Body.Close()
			}
			select {
			case r := <-done:
				if how == "context" && !errors.Is(r.err, context.Canceled) {
					t.Errorf("after the caller cancelled: %v (%s), want context.Canceled", r.err, sentinel(r.err))
				}
				if r.err == nil || errors.Is(r.err, ErrTimeout) || errors.Is(r.err, ErrUnavailable) || errors.Is(r.err, ErrNoSplice) {
					t.Errorf("after the caller gave up (%s): %v (%s)", how, r.err, sentinel(r.err))
				}
				if r.spliced == 0 {
					t.Error("nothing was spliced before the caller gave up")
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("SpliceTo still waits 5 s after the caller gave up (%s)", how)
			}
			if got := fails.of(resp.Base); len(got) != 0 {
				t.Errorf("OnFail blamed upstream for the caller giving up: %v", got)
			}
		})
	}
}

// A body that redirects is spliced from the connection of the answer that
// carries it, not of the redirect.
func TestSpliceFollowsRedirects(t *testing.T) {
	data := pseudoRandom(5<<20, 18)
	target := newServer(t, files(map[string][]byte{"/r/big.img": data}))
	front := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.base("/r/big.img"), http.StatusFound)
	})
	// The target is a configured base too: redirects stay among them.
	c := newClient(t, Options{Bases: []string{front.base("/r/"), target.base("/r/")}, Timeout: 5 * time.Second})
	resp := getOK(t, context.Background(), c, "big.img")
	defer resp.Body.Close()
	f := spoolFile(t)
	read, spliced, err := spliceAll(t, resp.Body, f)
	if err != io.EOF || read+spliced != int64(len(data)) || spliced == 0 {
		t.Fatalf("after a redirect: %d read, %d spliced, %v", read, spliced, err)
	}
	if !bytes.Equal(fileBytes(t, f, int64(len(data))), data) {
		t.Fatal("the file differs from the redirected body")
	}
}

// A body dripping below MinRate while spliced fails with ErrTooSlow, and
// the bytes that came are in the file.
func TestSpliceBelowMinRateIsTooSlow(t *testing.T) {
	const size = 4 << 20
	data := pseudoRandom(size, 19)
	srv := newServer(t, drip(data, 64<<10))
	c := newClient(t, Options{Bases: []string{srv.base("/")}, MinRate: 1000})
	resp := getOK(t, context.Background(), c, "images/drip.img")
	defer resp.Body.Close()
	f := spoolFile(t)
	start := time.Now()
	read, spliced, err := spliceAll(t, resp.Body, f)
	if !errors.Is(err, ErrTooSlow) {
		t.Fatalf("dripping spliced body: %v (%s), want ErrTooSlow", err, sentinel(err))
	}
	if el := time.Since(start); el > 4*testTimeout+time.Second {
		t.Errorf("judged too slow after %s", el)
	}
	if spliced == 0 {
		t.Error("the drip was not spliced")
	}
	if got := read + spliced; !bytes.Equal(fileBytes(t, f, got), data[:got]) {
		t.Errorf("the file's %d bytes differ from what was sent", got)
	}
}

// When this side cannot splice (no pipe: descriptors exhausted, a sandbox
// without splice), SpliceTo says ErrNoSplice before any byte has moved,
// upstream is not blamed, and Read gets the whole body.
func TestSpliceLocalFailureFallsBackToRead(t *testing.T) {
	data := pseudoRandom(3<<20, 20)
	srv := newServer(t, files(map[string][]byte{"/r/f": data}))
	fails := &failures{}
	c := newClient(t, Options{Bases: []string{srv.base("/r/")}, OnFail: fails.hook, Timeout: 5 * time.Second})
	c.pipe2 = func([]int, int) error { return syscall.EMFILE }
	resp := getOK(t, context.Background(), c, "f")
	defer resp.Body.Close()
	buf := make([]byte, 1<<20)
	n, err := resp.Body.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := resp.Body.(splicerBody).SpliceTo(spoolFile(t), int64(n), 1<<20); m != 0 || !errors.Is(err, ErrNoSplice) {
		t.Fatalf("SpliceTo without a pipe: %d, %v; want ErrNoSplice", m, err)
	}
	rest, err := readWithin(t, resp.Body, 10*time.Second)
	if err != nil || !bytes.Equal(append(buf[:n:n], rest...), data) {
		t.Fatalf("Read after the fallback: %d bytes, %v", n+len(rest), err)
	}
	if got := fails.of(resp.Base); len(got) != 0 {
		t.Errorf("OnFail blamed upstream for this side's failure: %v", got)
	}
}

// A body with less than spliceMin left after the first Read is read to
// its end, so the transport keeps its connection for the next request; a
// large one is spliced, at the cost of its connection.
func TestSmallBodiesAreReadAndKeepTheirConnection(t *testing.T) {
	small := pseudoRandom(600<<10, 16)
	large := pseudoRandom(6<<20, 17)
	var conns atomic.Int64
	srv := newServerWith(t, files(map[string][]byte{"/r/small": small, "/r/large": large}), func(s *httptest.Server) {
		s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				conns.Add(1)
			}
		}
	})
	c := newClient(t, Options{Bases: []string{srv.base("/r/")}, Timeout: 5 * time.Second})
	get := func(rel string, want []byte) (spliced int64) {
		t.Helper()
		resp := getOK(t, context.Background(), c, rel)
		defer resp.Body.Close()
		f := spoolFile(t)
		read, spliced, err := spliceAll(t, resp.Body, f)
		if errors.Is(err, ErrNoSplice) {
			rest, rerr := readWithin(t, resp.Body, 10*time.Second)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if _, werr := f.WriteAt(rest, read); werr != nil {
				t.Fatal(werr)
			}
			read += int64(len(rest))
		} else if err != io.EOF {
			t.Fatalf("%s: %v", rel, err)
		}
		if got := read + spliced; got != int64(len(want)) || !bytes.Equal(fileBytes(t, f, got), want) {
			t.Fatalf("%s: %d bytes, want %d, equal to the body", rel, got, len(want))
		}
		return spliced
	}
	for range 3 {
		if s := get("small", small); s != 0 {
			t.Fatalf("%d bytes of a small body were spliced", s)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("three small bodies took %d connections, want 1 (kept alive)", n)
	}
	if s := get("large", large); s < int64(len(large))-spliceMin {
		t.Errorf("only %d of the large body's %d bytes were spliced", s, len(large))
	}
}
