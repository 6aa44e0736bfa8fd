package proxy

// Tests of the per-repo upstream options: TLS with a private CA, client
// certificates, basic auth, extra headers, HTTP_PROXY, mirrors, stalls.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/config"
)

// upFile is what the test upstreams serve: a file no metadata lists, so
// the proxy caches it with a length check.
const upFile = "images/boot.img"

// testCA is a certificate authority made up for one test.
type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	pemFile string // the CA certificate as a PEM file
	pool    *x509.CertPool
}

var serialNo atomic.Int64

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serialNo.Add(1)),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{cert: cert, key: key, pool: x509.NewCertPool()}
	ca.pool.AddCert(cert)
	ca.pemFile = writePEM(t, name+"-ca.pem", "CERTIFICATE", der)
	return ca
}

// issue makes a leaf certificate: a server certificate for 127.0.0.1, or
// a client certificate. It returns the pair and the paths of its PEM files.
func (ca *testCA) issue(t *testing.T, cn string, server bool) (pair tls.Certificate, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serialNo.Add(1)),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = writePEM(t, cn+"-cert.pem", "CERTIFICATE", der)
	keyFile = writePEM(t, cn+"-key.pem", "EC PRIVATE KEY", keyDER)
	pair, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return pair, certFile, keyFile
}

func writePEM(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// countingServer serves data at /<prefix>upFile when allow says so (else
// the status allow returns) and counts the requests for it.
type countingServer struct {
	*httptest.Server
	hits atomic.Int64
}

func newCountingServer(t *testing.T, data []byte, allow func(r *http.Request) int, tlsCfg *tls.Config) *countingServer {
	t.Helper()
	s := &countingServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/"+upFile) {
			http.NotFound(w, r)
			return
		}
		s.hits.Add(1)
		if code := allow(r); code != http.StatusOK {
			http.Error(w, http.StatusText(code), code)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}))
	if tlsCfg != nil {
		s.TLS = tlsCfg
		if tlsCfg.ClientAuth != tls.NoClientCert {
			// Refused handshakes are what such a test expects; keep them
			// out of the test output.
			s.Config.ErrorLog = log.New(io.Discard, "", 0)
		}
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return s
}

func allowAll(*http.Request) int { return http.StatusOK }

// upRepo is a repo at url, to be adjusted by edit.
func upRepo(name, url string, edit func(*config.Repo)) config.Repo {
	r := testRepo(name, url, time.Minute)
	if edit != nil {
		edit(&r)
	}
	return r
}

// expectFile GETs /<repo>/upFile and checks status and, for 200, the bytes.
func expectFile(t *testing.T, p *testProxy, repo string, wantStatus int, want []byte) {
	t.Helper()
	status, body, err := p.get(t, "/"+repo+"/"+upFile)
	if err != nil {
		t.Errorf("%s: transfer broke (status %d): %v", repo, status, err)
		return
	}
	if status != wantStatus {
		t.Errorf("%s: status %d, want %d: %.300s", repo, status, wantStatus, body)
		return
	}
	if wantStatus == http.StatusOK && !bytes.Equal(body, want) {
		t.Errorf("%s: got %d bytes that differ from upstream's %d", repo, len(body), len(want))
	}
}

func TestUpstreamTLSWithPrivateCA(t *testing.T) {
	ca := newTestCA(t, "private")
	other := newTestCA(t, "other")
	srvCert, _, _ := ca.issue(t, "upstream", true)
	data := pseudoRandom(256<<10, 3)
	up := newCountingServer(t, data, allowAll, &tls.Config{Certificates: []tls.Certificate{srvCert}})

	p := startProxy(t, []config.Repo{
		upRepo("noca", up.URL+"/", nil),
		upRepo("otherca", up.URL+"/", func(r *config.Repo) { r.CAFile = other.pemFile }),
		upRepo("withca", up.URL+"/", func(r *config.Repo) { r.CAFile = ca.pemFile }),
	}, nil)
	expectFile(t, p, "noca", http.StatusBadGateway, nil)
	expectFile(t, p, "otherca", http.StatusBadGateway, nil)
	if n := up.hits.Load(); n != 0 {
		t.Errorf("upstream answered %d requests over connections the proxy should not trust", n)
	}
	expectFile(t, p, "withca", http.StatusOK, data)
	if n := up.hits.Load(); n != 1 {
		t.Errorf("upstream saw %d requests, want 1", n)
	}
}

func TestUpstreamMTLSClientCertificate(t *testing.T) {
	serverCA := newTestCA(t, "cdn")
	clientCA := newTestCA(t, "entitlement")
	rogueCA := newTestCA(t, "rogue")
	srvCert, _, _ := serverCA.issue(t, "cdn-server", true)
	_, certFile, keyFile := clientCA.issue(t, "entitlement-1234", false)
	_, rogueCert, rogueKey := rogueCA.issue(t, "entitlement-9999", false)
	data := pseudoRandom(256<<10, 4)
	var mu sync.Mutex
	var peers []string
	up := newCountingServer(t, data, func(r *http.Request) int {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range r.TLS.PeerCertificates {
			peers = append(peers, c.Subject.CommonName)
		}
		return http.StatusOK
	}, &tls.Config{
		Certificates: []tls.Certificate{srvCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCA.pool,
	})

	p := startProxy(t, []config.Repo{
		upRepo("nocert", up.URL+"/", func(r *config.Repo) { r.CAFile = serverCA.pemFile }),
		upRepo("rogue", up.URL+"/", func(r *config.Repo) {
			r.CAFile, r.ClientCert, r.ClientKey = serverCA.pemFile, rogueCert, rogueKey
		}),
		upRepo("entitled", up.URL+"/", func(r *config.Repo) {
			r.CAFile, r.ClientCert, r.ClientKey = serverCA.pemFile, certFile, keyFile
		}),
	}, nil)
	expectFile(t, p, "nocert", http.StatusBadGateway, nil)
	expectFile(t, p, "rogue", http.StatusBadGateway, nil)
	expectFile(t, p, "entitled", http.StatusOK, data)
	mu.Lock()
	defer mu.Unlock()
	if len(peers) != 1 || peers[0] != "entitlement-1234" {
		t.Errorf("upstream saw client certificates %q, want one: entitlement-1234", peers)
	}
}

func TestUpstreamBasicAuthAndHeaders(t *testing.T) {
	data := pseudoRandom(64<<10, 5)
	var mu sync.Mutex
	var seen []string
	up := newCountingServer(t, data, func(r *http.Request) int {
		user, pass, ok := r.BasicAuth()
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s auth=%v:%s:%s token=%q", r.URL.Path, ok, user, pass, r.Header.Get("X-Auth-Token")))
		mu.Unlock()
		switch {
		case strings.HasPrefix(r.URL.Path, "/basic/"):
			if !ok || user != "alice" || pass != "s3cr:et" {
				return http.StatusUnauthorized
			}
		case strings.HasPrefix(r.URL.Path, "/header/"):
			if r.Header.Get("X-Auth-Token") != "tok-42" {
				return http.StatusForbidden
			}
		}
		return http.StatusOK
	}, nil)

	p := startProxy(t, []config.Repo{
		upRepo("basic-none", up.URL+"/basic/", nil),
		upRepo("basic-wrong", up.URL+"/basic/", func(r *config.Repo) { r.Username, r.Password = "alice", "guess" }),
		upRepo("basic", up.URL+"/basic/", func(r *config.Repo) { r.Username, r.Password = "alice", "s3cr:et" }),
		upRepo("header-none", up.URL+"/header/", nil),
		upRepo("header", up.URL+"/header/", func(r *config.Repo) {
			r.Headers = map[string]string{"X-Auth-Token": "tok-42"}
		}),
	}, nil)
	for _, tc := range []struct {
		repo   string
		status int
	}{
		{"basic-none", http.StatusBadGateway},
		{"basic-wrong", http.StatusBadGateway},
		{"basic", http.StatusOK},
		{"header-none", http.StatusBadGateway},
		{"header", http.StatusOK},
	} {
		expectFile(t, p, tc.repo, tc.status, data)
	}
	if t.Failed() {
		mu.Lock()
		t.Logf("upstream saw:\n%s", strings.Join(seen, "\n"))
		mu.Unlock()
	}
}

// Not parallel: it sets HTTP_PROXY for the whole process.
func TestUpstreamHTTPProxyFromEnvironment(t *testing.T) {
	data := pseudoRandom(64<<10, 6)
	var mu sync.Mutex
	var forwarded []string
	fwd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		forwarded = append(forwarded, r.RequestURI)
		mu.Unlock()
		if r.RequestURI != "http://upstream.invalid/repo/"+upFile {
			http.Error(w, "this forward proxy only knows one URL", http.StatusBadGateway)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(fwd.Close)
	direct := newCountingServer(t, data, allowAll, nil)

	t.Setenv("HTTP_PROXY", fwd.URL)
	t.Setenv("http_proxy", fwd.URL)
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	t.Setenv("REQUEST_METHOD", "") // CGI mode would ignore HTTP_PROXY
	p := startProxy(t, []config.Repo{
		upRepo("remote", "http://upstream.invalid/repo/", nil),
		upRepo("local", direct.URL+"/", nil),
	}, nil)

	expectFile(t, p, "remote", http.StatusOK, data)
	mu.Lock()
	got := append([]string(nil), forwarded...)
	mu.Unlock()
	if want := "http://upstream.invalid/repo/" + upFile; len(got) != 1 || got[0] != want {
		t.Errorf("forward proxy saw %q, want one request for %s", got, want)
	}

	// Loopback upstreams are reached directly, never through the proxy.
	expectFile(t, p, "local", http.StatusOK, data)
	if n := direct.hits.Load(); n != 1 {
		t.Errorf("loopback upstream saw %d requests, want 1", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(forwarded) != 1 {
		t.Errorf("forward proxy saw %q: a loopback upstream went through it", forwarded)
	}
}

func TestUpstreamMirrorsTriedInOrder(t *testing.T) {
	data := pseudoRandom(64<<10, 7)
	var mu sync.Mutex
	var order []string
	record := func(name string, code int) func(*http.Request) int {
		return func(*http.Request) int {
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			return code
		}
	}
	sick := newCountingServer(t, data, record("sick", http.StatusServiceUnavailable), nil)
	good := newCountingServer(t, data, record("good", http.StatusOK), nil)
	dead := "http://" + freeLoopbackAddr(t) + "/"

	p := startProxy(t, []config.Repo{
		upRepo("mirrored", dead, func(r *config.Repo) { r.Mirrors = []string{sick.URL + "/", good.URL + "/"} }),
	}, nil)
	expectFile(t, p, "mirrored", http.StatusOK, data)
	mu.Lock()
	got := strings.Join(order, ",")
	mu.Unlock()
	if got != "sick,good" {
		t.Errorf("upstreams answered in the order %q, want sick,good (after the refused url)", got)
	}

	// Cached now: no base is asked again.
	expectFile(t, p, "mirrored", http.StatusOK, data)
	if s, g := sick.hits.Load(), good.hits.Load(); s != 1 || g != 1 {
		t.Errorf("after a cached GET: sick mirror %d requests, good mirror %d; want 1 and 1", s, g)
	}
}

// TestUpstreamMirror404MovesToNextMirror: a mirror that lacks a file (a
// lagging one) is not the last word; librepo moves on to the next mirror
// too. The answer is 404 only when every base says so.
func TestUpstreamMirror404MovesToNextMirror(t *testing.T) {
	data := pseudoRandom(64<<10, 8)
	missing := newCountingServer(t, data, func(*http.Request) int { return http.StatusNotFound }, nil)
	good := newCountingServer(t, data, allowAll, nil)
	p := startProxy(t, []config.Repo{
		upRepo("mirrored", missing.URL+"/", func(r *config.Repo) { r.Mirrors = []string{good.URL + "/"} }),
		upRepo("nowhere", missing.URL+"/", func(r *config.Repo) { r.Mirrors = []string{missing.URL + "/"} }),
	}, nil)
	expectFile(t, p, "mirrored", http.StatusOK, data)
	if n := missing.hits.Load(); n != 1 {
		t.Errorf("first base saw %d requests, want 1", n)
	}
	if n := good.hits.Load(); n != 1 {
		t.Errorf("the next mirror saw %d requests after the first base said 404, want 1", n)
	}
	expectFile(t, p, "nowhere", http.StatusNotFound, nil)
}

func TestUpstreamStallFailsTransferAndCachesNothing(t *testing.T) {
	const size = 2 << 20
	data := pseudoRandom(size, 9)
	var stall atomic.Bool
	stall.Store(true)
	var hits atomic.Int64
	done := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/"+upFile {
			http.NotFound(w, r)
			return
		}
		hits.Add(1)
		if !stall.Load() {
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
			return
		}
		// Headers and half the body, then 10 s of nothing.
		w.Header().Set("Content-Length", fmt.Sprint(size))
		w.Write(data[:size/2])
		w.(http.Flusher).Flush()
		select {
		case <-time.After(10 * time.Second):
		case <-r.Context().Done():
		case <-done:
		}
	}))
	t.Cleanup(up.Close)
	t.Cleanup(func() { close(done) }) // runs before up.Close

	p := startProxy(t, []config.Repo{
		upRepo("stally", up.URL+"/", func(r *config.Repo) { r.Timeout = config.Duration(time.Second) }),
	}, nil)
	start := time.Now()
	status, body, err := p.get(t, "/stally/"+upFile)
	elapsed := time.Since(start)
	if status == http.StatusOK && err == nil {
		t.Errorf("stalled upstream: the client got a complete-looking 200 with %d of %d bytes", len(body), size)
	}
	if status == http.StatusOK && len(body) >= size {
		t.Errorf("stalled upstream: the client got %d bytes, more than upstream sent", len(body))
	}
	if elapsed > 5*time.Second {
		t.Errorf("the stalled transfer ended after %s; the repo timeout is 1s", elapsed)
	}

	stall.Store(false)
	expectFile(t, p, "stally", http.StatusOK, data)
	if n := hits.Load(); n != 2 {
		t.Errorf("upstream saw %d requests, want 2: the stalled half must not have been cached", n)
	}
}

func TestUpstreamRepomd500WithoutGenerationIs502(t *testing.T) {
	dir := newRepoDir(t, "", []string{"dnfpt-lib-1.0-1.el9.noarch.rpm"})
	repomd := readFile(t, filepath.Join(dir, "repodata", "repomd.xml"))
	up := newFakeUpstream(t, dir)
	var broken atomic.Bool
	broken.Store(true)
	up.SetHook(func(w http.ResponseWriter, r *http.Request) bool {
		if broken.Load() && r.URL.Path == "/repodata/repomd.xml" {
			http.Error(w, "database on fire", http.StatusInternalServerError)
			return true
		}
		return false
	})
	p := startProxy(t, []config.Repo{upRepo("test", up.URL(), nil)}, nil)

	status, body, err := p.get(t, "/test/repodata/repomd.xml")
	if err != nil || status != http.StatusBadGateway {
		t.Fatalf("repomd.xml with upstream at 500: status %d (err %v), want 502: %s", status, err, body)
	}
	if !strings.Contains(string(body), "500") {
		t.Errorf("the 502 does not say what upstream answered: %s", body)
	}

	// The failure left nothing behind: once upstream heals, it is served.
	broken.Store(false)
	status, body, err = p.get(t, "/test/repodata/repomd.xml")
	if err != nil || status != http.StatusOK || !bytes.Equal(body, repomd) {
		t.Fatalf("repomd.xml after upstream healed: status %d (err %v), %d bytes, want upstream's %d",
			status, err, len(body), len(repomd))
	}
}
