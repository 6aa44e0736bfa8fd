package proxy

// Tests of the real dnfproxy binary as an operator runs it: kill -9 in the
// middle of a fill, a restart on the same storage, SIGTERM, a bad config.

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
)

// buildDnfproxy builds ./cmd/dnfproxy into the test's temporary directory
// (not a shared tmp/ path: another test process may be building or running
// its own copy at the same time).
func buildDnfproxy(t *testing.T) string {
	t.Helper()
	root := filepath.Dir(testenv.TestdataDir()) // the directory holding go.mod
	bin := filepath.Join(t.TempDir(), "dnfproxy")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/dnfproxy")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/dnfproxy: %v\n%s", err, out)
	}
	return bin
}

// freeLoopbackAddr returns a loopback host:port nothing listens on.
func freeLoopbackAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// binConfig is the configuration of one dnfproxy process.
type binConfig struct {
	path          string // the YAML file
	listen, admin string
	storage       string
}

// writeBinConfig writes a config with one repo "test" at upstreamURL.
func writeBinConfig(t *testing.T, upstreamURL string) binConfig {
	t.Helper()
	dir := t.TempDir()
	c := binConfig{
		path:    filepath.Join(dir, "dnfproxy.yaml"),
		listen:  freeLoopbackAddr(t),
		admin:   freeLoopbackAddr(t),
		storage: filepath.Join(dir, "data"),
	}
	yaml := fmt.Sprintf(`listen: %q
admin:
  listen: %q
storage:
  dir: %q
repos:
  - name: test
    url: %q
    metadata_ttl: "10m"
    timeout: "5s"
`, c.listen, c.admin, c.storage, upstreamURL)
	if err := os.WriteFile(c.path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return c
}

// syncBuffer is a bytes.Buffer safe for a process writer and a reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is a running dnfproxy process.
type proc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan struct{} // closed when the process ended; err is then set
	err    error
}

// runBinary starts `dnfproxy args...` and returns without waiting.
func runBinary(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{stderr: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout = p.stderr
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("output of %s:\n%s", strings.Join(args, " "), p.stderr.String())
		}
	})
	return p
}

// wait waits up to d for the process to exit.
func (p *proc) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-p.exited:
		return p.err
	case <-time.After(d):
		t.Fatalf("process still running after %s", d)
		return nil
	}
}

// kill9 SIGKILLs the process and waits for it to be gone.
func (p *proc) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p.wait(t, 10*time.Second)
}

// startServe runs `dnfproxy serve --config` and waits until both listeners
// answer.
func startServe(t *testing.T, bin string, c binConfig) *proc {
	t.Helper()
	p := runBinary(t, bin, "serve", "--config", c.path)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + c.admin + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("dnfproxy serve exited early (%v):\n%s", p.err, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dnfproxy serve not ready after 20s:\n%s", p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if conn, err := net.Dial("tcp", c.listen); err != nil {
		t.Fatalf("client listener %s: %v", c.listen, err)
	} else {
		conn.Close()
	}
	return p
}

// fetchAll GETs url with a fresh connection and returns status and body;
// a broken transfer is returned as err.
func fetchAll(t *testing.T, url string) (int, []byte, error) {
	t.Helper()
	c := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	buf := bytes.NewBuffer(make([]byte, 0, max(resp.ContentLength, 0)+1))
	_, err = io.Copy(buf, resp.Body)
	return resp.StatusCode, buf.Bytes(), err
}

// pseudoRandom returns n incompressible bytes, the same for the same seed.
func pseudoRandom(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// Upstream behaviours of a scripted file.
const (
	modeDrip   int32 = iota // send a prefix, then block until released
	modeRefuse              // 503
	modeFull                // the whole file
)

// scriptedFile makes up answer path from data according to mode. In
// modeDrip it announces the full length, sends the first prefix bytes,
// signals sent, and blocks until release is closed.
type scriptedFile struct {
	path    string
	data    []byte
	prefix  int
	mode    atomic.Int32
	sent    chan struct{}
	release chan struct{}
	once    sync.Once
}

func newScriptedFile(up *fakeUpstream, path string, data []byte, prefix int) *scriptedFile {
	f := &scriptedFile{path: path, data: data, prefix: prefix,
		sent: make(chan struct{}), release: make(chan struct{})}
	up.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != path {
			return false
		}
		switch f.mode.Load() {
		case modeDrip:
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			w.WriteHeader(http.StatusOK)
			w.Write(data[:prefix])
			w.(http.Flusher).Flush()
			f.once.Do(func() { close(f.sent) })
			<-f.release
		case modeRefuse:
			http.Error(w, "try later", http.StatusServiceUnavailable)
		default:
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
		}
		return true
	})
	return f
}

// killDuringFill GETs url while upstream blocks after f.prefix bytes,
// reads all the proxy can pass on (it holds back one byte until the object
// is verified, so prefix-1), which means the proxy has taken in the whole
// prefix, then kill -9s the proxy and checks that the client saw a broken
// transfer. It then releases the upstream handler.
func killDuringFill(t *testing.T, p *proc, f *scriptedFile, url string) {
	t.Helper()
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s during fill: status %d", url, resp.StatusCode)
	}
	atLeast := f.prefix - 1
	if _, err := io.ReadFull(resp.Body, make([]byte, atLeast)); err != nil {
		t.Fatalf("reading the first %d bytes: %v", atLeast, err)
	}
	select {
	case <-f.sent:
	case <-time.After(10 * time.Second):
		t.Fatal("upstream never sent its prefix")
	}
	p.kill9(t)
	rest, err := io.Copy(io.Discard, resp.Body)
	if err == nil {
		t.Errorf("client got a clean end of body after %d bytes of %d when the proxy died",
			int64(atLeast)+rest, len(f.data))
	}
	close(f.release)
}

// wantBody checks a 200 answer with exactly want.
func wantBody(t *testing.T, what string, status int, body []byte, err error, want []byte) {
	t.Helper()
	switch {
	case err != nil:
		t.Fatalf("%s: transfer broke after %d bytes (status %d): %v", what, len(body), status, err)
	case status != http.StatusOK:
		t.Fatalf("%s: status %d, want 200: %s", what, status, body)
	case len(body) != len(want):
		t.Fatalf("%s: got %d bytes, want %d", what, len(body), len(want))
	case sha256.Sum256(body) != sha256.Sum256(want):
		t.Fatalf("%s: %d bytes with the wrong sha256", what, len(body))
	}
}

// wantGatewayError checks that a GET failed as upstream faults should, and
// above all did not look like a complete answer.
func wantGatewayError(t *testing.T, what string, status int, body []byte, err error, full int) {
	t.Helper()
	if status == http.StatusOK {
		t.Fatalf("%s: status 200 with %d of %d bytes (transfer error %v): a truncated object is served",
			what, len(body), full, err)
	}
	if status != http.StatusBadGateway && status != http.StatusGatewayTimeout {
		t.Fatalf("%s: status %d, want 502 or 504: %s", what, status, body)
	}
}

func TestCrashKill9DuringImageFillServesNoTruncatedObject(t *testing.T) {
	const (
		size   = 48 << 20
		prefix = 16 << 20
		rel    = "images/install.img"
	)
	bin := buildDnfproxy(t)
	up := newFakeUpstream(t, t.TempDir())
	data := pseudoRandom(size, 1)
	f := newScriptedFile(up, "/"+rel, data, prefix)
	c := writeBinConfig(t, up.URL())
	url := "http://" + c.listen + "/test/" + rel

	p := startServe(t, bin, c)
	killDuringFill(t, p, f, url)

	p = startServe(t, bin, c)
	f.mode.Store(modeRefuse)
	hits := up.Hits("/" + rel)
	status, body, err := fetchAll(t, url)
	wantGatewayError(t, "after kill -9, upstream refusing", status, body, err, size)
	if up.Hits("/"+rel) == hits {
		t.Errorf("the proxy answered without asking upstream: something of the killed fill was kept")
	}

	f.mode.Store(modeFull)
	status, body, err = fetchAll(t, url)
	wantBody(t, "after kill -9, upstream healed", status, body, err, data)

	up.down.Store(true)
	status, body, err = fetchAll(t, url)
	wantBody(t, "upstream down, from cache", status, body, err, data)

	// What was committed survives a crash too.
	p.kill9(t)
	startServe(t, bin, c)
	status, body, err = fetchAll(t, url)
	wantBody(t, "upstream down, from cache after another kill -9", status, body, err, data)
}

func TestCrashKill9DuringPackageFillServesNoTruncatedRPM(t *testing.T) {
	dir := newRepoDir(t, "", []string{testenv.RPMBig})
	rel := "Packages/" + testenv.RPMBig
	rpm := readFile(t, filepath.Join(dir, rel))
	repomd := readFile(t, filepath.Join(dir, "repodata", "repomd.xml"))
	bin := buildDnfproxy(t)
	up := newFakeUpstream(t, dir)
	// A bit over 1 MiB, so that at least one storage chunk is written
	// whatever the chunk size.
	f := newScriptedFile(up, "/"+rel, rpm, 3<<19)
	c := writeBinConfig(t, up.URL())
	base := "http://" + c.listen + "/test/"

	p := startServe(t, bin, c)
	status, body, err := fetchAll(t, base+"repodata/repomd.xml")
	wantBody(t, "repomd.xml", status, body, err, repomd)
	killDuringFill(t, p, f, base+rel)

	startServe(t, bin, c)
	up.down.Store(true)
	status, body, err = fetchAll(t, base+"repodata/repomd.xml")
	wantBody(t, "repomd.xml after kill -9, upstream down", status, body, err, repomd)
	status, body, err = fetchAll(t, base+rel)
	wantGatewayError(t, "RPM after kill -9, upstream down", status, body, err, len(rpm))

	up.down.Store(false)
	f.mode.Store(modeFull)
	status, body, err = fetchAll(t, base+rel)
	wantBody(t, "RPM after kill -9, upstream healed", status, body, err, rpm)
	if n := up.Hits("/" + rel); n != 2 {
		t.Errorf("upstream saw %d requests for the RPM, want 2 (the killed fill and the healed one)", n)
	}

	up.down.Store(true)
	status, body, err = fetchAll(t, base+rel)
	wantBody(t, "RPM with upstream down, from cache", status, body, err, rpm)
}

func TestShutdownOnSIGTERMFinishesDownloadAndExitsZero(t *testing.T) {
	const rel = "images/slow.img"
	bin := buildDnfproxy(t)
	up := newFakeUpstream(t, t.TempDir())
	data := pseudoRandom(1<<20, 2)
	started := make(chan struct{})
	var once sync.Once
	up.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/"+rel {
			return false
		}
		// About a second for the whole file.
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		for off := 0; off < len(data); off += 64 << 10 {
			w.Write(data[off : off+64<<10])
			w.(http.Flusher).Flush()
			once.Do(func() { close(started) })
			time.Sleep(60 * time.Millisecond)
		}
		return true
	})
	c := writeBinConfig(t, up.URL())
	url := "http://" + c.listen + "/test/" + rel
	p := startServe(t, bin, c)

	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-started
	first := make([]byte, 1)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(resp.Body)
	wantBody(t, "download in flight during SIGTERM", resp.StatusCode, append(first, rest...), err, data)

	if err := p.wait(t, 10*time.Second); err != nil {
		t.Fatalf("dnfproxy serve after SIGTERM: %v, want exit status 0", err)
	}
	if d := time.Since(sent); d > 5*time.Second {
		t.Errorf("dnfproxy serve took %s to exit after SIGTERM", d)
	}
	if conn, err := net.DialTimeout("tcp", c.listen, time.Second); err == nil {
		conn.Close()
		t.Errorf("%s still accepts connections after exit", c.listen)
	}

	// The store was closed cleanly and holds the file fetched meanwhile.
	up.down.Store(true)
	startServe(t, bin, c)
	status, body, err := fetchAll(t, url)
	wantBody(t, "after restart, upstream down", status, body, err, data)
}

func TestProxyBinaryRejectsUnknownConfigKey(t *testing.T) {
	bin := buildDnfproxy(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bad.yaml")
	yaml := fmt.Sprintf(`listen: %q
storage:
  dir: %q
  max_sise: "1GiB"
repos:
  - name: test
    url: "http://127.0.0.1:9/"
`, freeLoopbackAddr(t), filepath.Join(dir, "data"))
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	p := runBinary(t, bin, "serve", "--config", cfg)
	err := p.wait(t, 20*time.Second)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("dnfproxy serve with an unknown key: %v, want a non-zero exit", err)
	}
	out := p.stderr.String()
	for _, want := range []string{"bad.yaml", "max_sise"} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr does not name %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Errorf("storage.dir was created although the config is invalid")
	}
}
