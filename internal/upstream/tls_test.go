package upstream

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
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
	"testing"
	"time"
)

// testCA is a certificate authority made up for one test.
type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	pemFile string
	pool    *x509.CertPool
	serial  int64
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, pool: x509.NewCertPool(), serial: 1}
	ca.pool.AddCert(cert)
	ca.pemFile = writePEM(t, "ca.pem", "CERTIFICATE", der)
	return ca
}

// issue makes a server certificate for 127.0.0.1 or a client certificate,
// and returns it with the paths of its PEM files.
func (ca *testCA) issue(t *testing.T, cn string, server bool) (tls.Certificate, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certFile := writePEM(t, cn+"-cert.pem", "CERTIFICATE", der)
	keyFile := writePEM(t, cn+"-key.pem", "EC PRIVATE KEY", keyDER)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return pair, certFile, keyFile
}

func writePEM(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func tlsServer(t *testing.T, cfg *tls.Config, data []byte) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(files(map[string][]byte{"/r/f": data}))
	s.TLS = cfg
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// An upstream with a private CA is trusted through CAFile (and only
// then); one that asks for a client certificate gets ClientCert/ClientKey.
func TestTLSPrivateCAAndClientCertificate(t *testing.T) {
	data := []byte("over tls")
	ca := newTestCA(t)
	srvCert, _, _ := ca.issue(t, "server", true)
	_, clientCert, clientKey := ca.issue(t, "client", false)
	plain := tlsServer(t, &tls.Config{Certificates: []tls.Certificate{srvCert}}, data)
	mtls := tlsServer(t, &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.pool}, data)

	for _, tc := range []struct {
		name string
		srv  *httptest.Server
		opt  Options
		ok   bool
	}{
		{"system roots refuse a private CA", plain, Options{}, false},
		{"CAFile", plain, Options{CAFile: ca.pemFile}, true},
		{"no client certificate", mtls, Options{CAFile: ca.pemFile}, false},
		{"client certificate", mtls, Options{CAFile: ca.pemFile, ClientCert: clientCert, ClientKey: clientKey}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opt.Bases = []string{tc.srv.URL + "/r/"}
			tc.opt.Timeout = 5 * time.Second // handshakes under -race on a loaded machine
			c := newClient(t, tc.opt)
			_, body, err := fetch(t, c, "f")
			if tc.ok && (err != nil || !bytes.Equal(body, data)) {
				t.Fatalf("got %q, %v", body, err)
			}
			if !tc.ok && !errors.Is(err, ErrUnavailable) {
				t.Fatalf("got %v (%s), want ErrUnavailable", err, sentinel(err))
			}
		})
	}
	if _, err := New(Options{Bases: []string{"https://x/"}, CAFile: filepath.Join(t.TempDir(), "none.pem")}); err == nil {
		t.Error("a missing CA file was accepted")
	}
}

// HTTP_PROXY from the environment carries requests for remote hosts;
// loopback upstreams are reached directly. Not parallel: it sets the
// environment.
func TestHTTPProxyFromEnvironment(t *testing.T) {
	data := []byte("via proxy")
	var mu sync.Mutex
	var forwarded []string
	fwd := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		forwarded = append(forwarded, r.RequestURI)
		mu.Unlock()
		w.Write(data)
	})
	direct := newServer(t, files(map[string][]byte{"/r/f": data}))
	t.Setenv("HTTP_PROXY", fwd.URL)
	t.Setenv("http_proxy", fwd.URL)
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	t.Setenv("REQUEST_METHOD", "") // CGI mode would ignore HTTP_PROXY

	remote := newClient(t, Options{Bases: []string{"http://upstream.invalid/repo/"}})
	if _, body, err := fetch(t, remote, "f"); err != nil || !bytes.Equal(body, data) {
		t.Fatalf("through the proxy: %q, %v", body, err)
	}
	local := newClient(t, Options{Bases: []string{direct.base("/r/")}})
	if _, _, err := fetch(t, local, "f"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(forwarded) != 1 || forwarded[0] != "http://upstream.invalid/repo/f" {
		t.Errorf("forward proxy saw %q, want one request for the remote file", forwarded)
	}
	if n := direct.hits.Load(); n != 1 {
		t.Errorf("loopback upstream saw %d requests, want 1", n)
	}
}

// Bad options are refused with the repo's name in the message.
func TestNewRefusesBadOptions(t *testing.T) {
	for _, opt := range []Options{
		{Repo: "r"},
		{Repo: "r", Bases: []string{"ftp://x/"}},
		{Repo: "r", Bases: []string{"http:///"}},
		{Repo: "r", Mirrorlist: "file:///etc/mirrors"},
		{Repo: "r", Bases: []string{"http://x/"}, MinRate: -1},
		{Repo: "r", Bases: []string{"http://x/"}, DenyAddrs: []string{"no-port"}},
	} {
		if _, err := New(opt); err == nil || !strings.Contains(err.Error(), "repo r") {
			t.Errorf("%+v: %v", opt, err)
		}
	}
}
