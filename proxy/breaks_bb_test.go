package proxy_test

// Tests of single breaks of issue 7 that show from outside: config cycles
// (7), cold HEAD and Range (8, 18), analysis locks (9), mirrors (12),
// caching headers (13), the access log (14, 15), redirects (19), old
// generations (20), failed rewrites (21) and the listener (22).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/proxy"
)

// cyclicConfig has repos a and b, each naming the other as reference.
func cyclicConfig(t testing.TB, urlA, urlB string) config.Config {
	cfg := config.Default()
	cfg.Storage.Dir = t.TempDir()
	a := bbRepo("a", urlA, config.ModeAnnotate)
	a.Compat.Reference = "b"
	b := bbRepo("b", urlB, config.ModeAnnotate)
	b.Compat.Reference = "a"
	cfg.Repos = []config.Repo{a, b}
	return cfg
}

// TestBB_ConfigRejectsReferenceCycle is break 7, first half.
func TestBB_ConfigRejectsReferenceCycle(t *testing.T) {
	cfg := cyclicConfig(t, "http://127.0.0.1:1/a/", "http://127.0.0.1:1/b/")
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate accepted repos a and b naming each other as compat.reference")
	}
	if !strings.Contains(err.Error(), "compat.reference") {
		t.Errorf("Validate: %v; want the problem named by its key compat.reference", err)
	}
}

// TestBB_ReferenceCycleDoesNotDeadlock is break 7, second half: with
// validation bypassed, the first request answers (whatever it says).
func TestBB_ReferenceCycleDoesNotDeadlock(t *testing.T) {
	dir := makeRepo(t, "el9", testenv.InitialRPMs())
	upA, upB := testenv.NewSickUpstream(t, dir), testenv.NewSickUpstream(t, dir)
	cfg := cyclicConfig(t, upA.URL(), upB.URL())
	store, err := cache.OpenBadger(filepath.Join(cfg.Storage.Dir, "cache"), cache.DefaultBadgerOptions())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.New(cfg, store, slog.New(slog.DiscardHandler))
	if err != nil {
		store.Close()
		t.Logf("proxy.New refuses the cycle: %v", err)
		return
	}
	h := &http.Server{Handler: srv.Handler()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go h.Serve(ln)
	t.Cleanup(func() {
		h.Close()
		closed := make(chan struct{})
		go func() { srv.Close(); store.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Error("Server.Close hangs after the request on the cycle")
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	st, _, _, err := httpGet(ctx, "http://"+ln.Addr().String()+"/a/el9/repodata/repomd.xml", nil)
	if err != nil {
		t.Fatalf("GET /a/el9/repodata/repomd.xml with a and b referencing each other: %v (deadlock?)", err)
	}
	t.Logf("the request on the cycle answered %d", st)
}

// bigRepo is a proxy in front of an upstream holding dnfpt-big (4 MiB),
// sent at 512 KiB/s (8s), with its metadata already fetched.
func bigRepo(t *testing.T) (*testenv.SickUpstream, *bbProxy, []byte) {
	t.Helper()
	dir := makeRepo(t, "el9", []string{testenv.RPMBig})
	want, err := os.ReadFile(filepath.Join(dir, "el9", "Packages", testenv.RPMBig))
	if err != nil {
		t.Fatal(err)
	}
	up := testenv.NewSickUpstream(t, dir)
	r := bbRepo("test", up.URL(), config.ModeOff)
	r.Timeout = config.Duration(10 * time.Second)
	p := startBB(t, []config.Repo{r}, nil)
	checkListedFiles(t, p, "/test/el9/")
	up.Set(testenv.SlowFault(512<<10, 1<<20))
	return up, p, want
}

// TestBB_ColdHEADAnsweredBeforeTransferEnds is break 8/18: HEAD of an
// uncached 4 MiB package that upstream sends in 8s answers at once, with
// the right Content-Length.
func TestBB_ColdHEADAnsweredBeforeTransferEnds(t *testing.T) {
	_, p, want := bigRepo(t)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodHead, p.URL("/test/el9/Packages/"+testenv.RPMBig), nil)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("HEAD of an uncached package upstream sends in 8s: %v after %v, want an answer in < 2s", err, took)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(want)) || took > 2*time.Second {
		t.Errorf("HEAD: %d, Content-Length %d (want 200, %d) after %v (want < 2s)", resp.StatusCode, resp.ContentLength, len(want), took)
	}
}

// TestBB_ColdRangeAnsweredFromSpool is break 8/18: "Range: bytes=0-99" on
// an uncached package answers with those bytes as soon as they are in.
func TestBB_ColdRangeAnsweredFromSpool(t *testing.T) {
	_, p, want := bigRepo(t)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Second)
	defer cancel()
	start := time.Now()
	st, h, body, err := httpGet(ctx, p.URL("/test/el9/Packages/"+testenv.RPMBig), http.Header{"Range": {"bytes=0-99"}})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("Range bytes=0-99 of an uncached package upstream sends in 8s: %v after %v, want an answer in < 2s", err, took)
	}
	if st != http.StatusPartialContent || !bytes.Equal(body, want[:100]) || took > 2*time.Second {
		t.Errorf("Range bytes=0-99: %d (Content-Range %q), %d bytes, equal %v, after %v; want 206 with the first 100 bytes in < 2s",
			st, h.Get("Content-Range"), len(body), bytes.Equal(body, want[:100]), took)
	}
}

// TestBB_MetricsNotBlockedByAnalysis is break 9: while the analysis of a
// view waits on the reference repo's upstream, /metrics answers.
func TestBB_MetricsNotBlockedByAnalysis(t *testing.T) {
	refDir := makeRepo(t, "el9", testenv.InitialRPMs())
	dir := makeRepo(t, "el9", append(testenv.InitialRPMs(), testenv.RPMLibAlma))
	refUp, up := testenv.NewSickUpstream(t, refDir), testenv.NewSickUpstream(t, dir)
	ref := bbRepo("ref", refUp.URL(), config.ModeOff)
	ref.Timeout = config.Duration(10 * time.Second)
	r := bbRepo("test", up.URL(), config.ModeAnnotate)
	r.Compat.Reference = "ref"
	rules := writeFile(t, "rules.yaml", almaRuleYAML)
	p := startBB(t, []config.Repo{ref, r}, func(c *config.Config) { c.RuleFiles = []string{rules} })
	checkListedFiles(t, p, "/ref/el9/")
	// The reference's root leaves the cache (a purge of repodata/ alone
	// keeps its generation, whose summary the analysis already has) and
	// its primary stalls upstream: the next analysis has to wait for it.
	p.purge(t, "ref", "el9/")
	refUp.SetPath("-primary.xml.gz", testenv.StallFault(10))
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		httpGet(ctx, p.URL("/test/el9/repodata/repomd.xml"), nil)
	}()
	if !waitFor(5*time.Second, func() bool { return refUp.HitsSuffix("-primary.xml.gz") >= 2 }) {
		t.Fatal("the analysis never asked upstream for the reference's primary again; the test tests nothing")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Second)
	defer cancel()
	start := time.Now()
	st, _, _, err := httpGet(ctx, p.admin.URL+"/metrics", nil)
	if took := time.Since(start); err != nil || st != http.StatusOK || took > 2*time.Second {
		t.Errorf("/metrics while an analysis waits on upstream: %d %v after %v, want 200 in < 2s", st, err, took)
	}
}

// TestBB_MirrorServesAfterFirstBase404 is break 12, first half: a 404
// from the first base moves on to the next mirror, as librepo does.
func TestBB_MirrorServesAfterFirstBase404(t *testing.T) {
	dir := makeRepo(t, "el9", testenv.InitialRPMs())
	first, second := testenv.NewSickUpstream(t, t.TempDir()), testenv.NewSickUpstream(t, dir)
	r := bbRepo("test", first.URL(), config.ModeOff)
	r.Mirrors = []string{second.URL()}
	p := startBB(t, []config.Repo{r}, nil)
	checkListedFiles(t, p, "/test/el9/")
	st, _, _, err := p.get(t, "/test/el9/Packages/"+testenv.RPMTool)
	if err != nil || st != http.StatusOK {
		t.Errorf("a package only the mirror has: %d %v", st, err)
	}
	if second.TotalHits() == 0 {
		t.Error("the mirror was never asked")
	}
}

// TestBB_LaggingMirrorNeverMovesRootBack is break 12, second half: when
// the first base fails and a lagging mirror still has an older repomd.xml,
// the proxy keeps the newer generation.
func TestBB_LaggingMirrorNeverMovesRootBack(t *testing.T) {
	gens := buildGenerations(t, 2, [][]string{testenv.InitialRPMs(), append(testenv.InitialRPMs(), testenv.RPMExtra)})
	lagging, current := testenv.NewSickUpstream(t, gens[0]), testenv.NewSickUpstream(t, gens[1])
	r := bbRepo("test", current.URL(), config.ModeOff)
	r.Mirrors = []string{lagging.URL()}
	r.MetadataTTL = config.Duration(time.Second)
	p := startBB(t, []config.Repo{r}, nil)
	newer, _ := checkListedFiles(t, p, "/test/el9/")
	doc, err := parseRepomd(newer)
	if err != nil {
		t.Fatal(err)
	}
	// The lagging mirror synced last (newer mtime), but from an older
	// state of the repo.
	now := time.Now()
	if err := os.Chtimes(filepath.Join(gens[0], "el9", "repodata", "repomd.xml"), now, now); err != nil {
		t.Fatal(err)
	}
	current.Set(testenv.Status500Fault())
	time.Sleep(1200 * time.Millisecond)
	p.refresh(t, "test", "el9/")
	_, _, body, err := p.get(t, "/test/el9/repodata/repomd.xml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseRepomd(body)
	if err != nil {
		t.Fatal(err)
	}
	if got.Revision != doc.Revision {
		t.Errorf("after the first base failed, the proxy serves revision %s from the lagging mirror; it served %s before",
			got.Revision, doc.Revision)
	}
}

// TestBB_SimpleNamedRepodataNotImmutable is break 13: only checksum-named
// files may be cached as immutable by clients.
func TestBB_SimpleNamedRepodataNotImmutable(t *testing.T) {
	dir := makeRepo(t, "el9", append(testenv.InitialRPMs(), testenv.RPMLibAlma), "--simple-md-filenames")
	up := testenv.NewSickUpstream(t, dir)
	p := startViewProxy(t, up, config.ModeOff, nil)
	for _, base := range []string{"/test/el9/", "/test@annotate/el9/"} {
		_, _, body, err := p.get(t, base+"repodata/repomd.xml")
		if err != nil {
			t.Fatal(err)
		}
		doc, err := parseRepomd(body)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range doc.Data {
			st, h, _, err := p.get(t, base+d.Location.Href)
			if err != nil || st != http.StatusOK {
				t.Errorf("%s%s: %d %v", base, d.Location.Href, st, err)
				continue
			}
			named := strings.Contains(path.Base(d.Location.Href), strings.TrimSpace(d.Checksum.Value))
			if cc := h.Get("Cache-Control"); !named && strings.Contains(cc, "immutable") {
				t.Errorf("%s%s (name without its checksum): Cache-Control %q", base, d.Location.Href, cc)
			}
		}
	}
}

// TestBB_ForwardedForNotBelievedByDefault is break 14: without
// trusted_proxies, the access log's client is the TCP peer, whatever
// X-Forwarded-For says.
func TestBB_ForwardedForNotBelievedByDefault(t *testing.T) {
	dir := makeRepo(t, "el9", testenv.InitialRPMs())
	up := testenv.NewSickUpstream(t, dir)
	p := startBB(t, []config.Repo{bbRepo("test", up.URL(), config.ModeOff)}, nil)
	const path = "/test/el9/repodata/repomd.xml"
	if st, _, _, err := httpGet(t.Context(), p.URL(path), http.Header{"X-Forwarded-For": {"203.0.113.7"}}); err != nil || st != 200 {
		t.Fatalf("%s: %d %v", path, st, err)
	}
	var rec map[string]any
	waitFor(2*time.Second, func() bool { rec = p.logs.request(path); return rec != nil })
	if rec == nil {
		t.Fatalf("no access log line for %s", path)
	}
	if rec["client"] != "127.0.0.1" {
		t.Errorf("access log client=%v for a request from 127.0.0.1 with X-Forwarded-For: 203.0.113.7", rec["client"])
	}
}

// TestBB_ForwardedForBelievedFromTrustedProxy is break 14, the other side:
// with trusted_proxies covering the peer, X-Forwarded-For is the client.
func TestBB_ForwardedForBelievedFromTrustedProxy(t *testing.T) {
	dir := makeRepo(t, "el9", testenv.InitialRPMs())
	up := testenv.NewSickUpstream(t, dir)
	yaml := fmt.Sprintf(`listen: "127.0.0.1:0"
admin:
  listen: "127.0.0.1:1"
  token: %q
storage:
  dir: %q
trusted_proxies: ["127.0.0.0/8"]
repos:
  - name: test
    url: %q
`, bbToken, t.TempDir(), up.URL())
	cfg, err := config.Load(writeFile(t, "dnfproxy.yaml", yaml))
	if err != nil {
		t.Fatalf("config with trusted_proxies: %v", err)
	}
	p := startBB(t, cfg.Repos, func(c *config.Config) { *c = cfg })
	const path = "/test/el9/repodata/repomd.xml"
	if st, _, _, err := httpGet(t.Context(), p.URL(path), http.Header{"X-Forwarded-For": {"203.0.113.7"}}); err != nil || st != 200 {
		t.Fatalf("%s: %d %v", path, st, err)
	}
	var rec map[string]any
	waitFor(2*time.Second, func() bool { rec = p.logs.request(path); return rec != nil })
	if rec == nil || rec["client"] != "203.0.113.7" {
		t.Errorf("access log line %v, want client=203.0.113.7 from a trusted proxy", rec)
	}
}

// TestBB_ClientHangUpLoggedAs499 is break 15: a client that hangs up
// before the answer is logged with status 499, not as a server error.
func TestBB_ClientHangUpLoggedAs499(t *testing.T) {
	dir := makeRepo(t, "el9", testenv.InitialRPMs())
	up := testenv.NewSickUpstream(t, dir)
	up.Set(testenv.HangFault())
	p := startBB(t, []config.Repo{bbRepo("test", up.URL(), config.ModeOff)}, nil)
	const path = "/test/el9/repodata/repomd.xml"
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	if _, _, _, err := httpGet(ctx, p.URL(path), nil); err == nil {
		t.Fatal("the request answered though upstream hangs")
	}
	var rec map[string]any
	if !waitFor(5*time.Second, func() bool { rec = p.logs.request(path); return rec != nil }) {
		t.Fatalf("no access log line for %s after the client hung up", path)
	}
	if st, _ := rec["status"].(float64); st != 499 {
		t.Errorf("access log of a client that hung up: status=%v, want 499 (%v)", rec["status"], rec)
	}
}

// TestBB_RedirectToAdminPortRefused is break 19: an upstream redirect to
// the proxy's own admin listener must not serve its /metrics to clients.
func TestBB_RedirectToAdminPortRefused(t *testing.T) {
	dir := makeRepo(t, "el9", testenv.InitialRPMs())
	up := testenv.NewSickUpstream(t, dir)
	p := startBB(t, []config.Repo{bbRepo("test", up.URL(), config.ModeOff)}, nil)
	up.SetPath("/el9/notes.txt", testenv.RedirectFault(p.admin.URL+"/metrics"))
	st, _, body, err := p.get(t, "/test/el9/notes.txt")
	if err == nil && st == http.StatusOK && bytes.Contains(body, []byte("dnfproxy_")) {
		t.Errorf("a redirect to the admin listener served its /metrics on the client port (%d bytes)", len(body))
	}
}

// TestBB_CredentialsNeverSentToAnotherOrigin is break 19: a redirect to
// another host:port never carries the repo's basic auth or custom headers.
func TestBB_CredentialsNeverSentToAnotherOrigin(t *testing.T) {
	dir := makeRepo(t, "el9", testenv.InitialRPMs())
	up, other := testenv.NewSickUpstream(t, dir), testenv.NewSickUpstream(t, dir)
	r := bbRepo("test", up.URL(), config.ModeOff)
	r.Username, r.Password = "alice", "s3cret"
	r.Headers = map[string]string{"X-Repo-Token": "t0ken"}
	p := startBB(t, []config.Repo{r}, nil)
	up.Set(testenv.RedirectFault(other.URL()))
	st, _, _, err := p.get(t, "/test/el9/repodata/repomd.xml")
	t.Logf("repomd.xml redirected to another origin: %d %v", st, err)
	if h := up.LastHeader("/el9/repodata/repomd.xml"); h == nil || h.Get("X-Repo-Token") == "" || h.Get("Authorization") == "" {
		t.Fatalf("the configured upstream did not get the credentials itself: %v", h)
	}
	for p, h := range other.AllHeaders() {
		if h.Get("Authorization") != "" || h.Get("X-Repo-Token") != "" {
			t.Errorf("another host:port got %s with Authorization=%q X-Repo-Token=%q", p, h.Get("Authorization"), h.Get("X-Repo-Token"))
		}
	}
}

// TestBB_OldGenerationFilesServedAfterSwitches is break 20: a client that
// read repomd.xml and pauses across four generation switches still gets
// every checksum-named file it lists (the store holds them).
func TestBB_OldGenerationFilesServedAfterSwitches(t *testing.T) {
	sets := [][]string{
		{testenv.RPMLib, testenv.RPMApp},
		{testenv.RPMLib, testenv.RPMApp, testenv.RPMTool},
		{testenv.RPMLibAlma, testenv.RPMApp, testenv.RPMTool},
		{testenv.RPMLibAlma, testenv.RPMApp, testenv.RPMExtra},
		{testenv.RPMLib, testenv.RPMExtra},
	}
	gens := buildGenerations(t, len(sets), sets, "--no-database")
	up := testenv.NewSickUpstream(t, gens[0])
	p := startViewProxy(t, up, config.ModeOff, nil)
	bases := []string{"/test/el9/", "/test@annotate/el9/"}
	held := map[string]*repomdDoc{}
	for _, base := range bases {
		_, _, body, err := p.get(t, base+"repodata/repomd.xml")
		if err != nil {
			t.Fatal(err)
		}
		if held[base], err = parseRepomd(body); err != nil {
			t.Fatal(err)
		}
	}
	for k := 1; k < len(gens); k++ {
		up.SetDir(gens[k])
		if st := p.refresh(t, "test", "el9/"); st != http.StatusOK {
			t.Fatalf("refresh to generation %d: %d", k, st)
		}
		for _, base := range bases { // clients of the new generation
			_, _, body, _ := p.get(t, base+"repodata/repomd.xml")
			if doc, err := parseRepomd(body); err != nil || doc.Revision == held[base].Revision {
				t.Fatalf("%s: generation %d not served after a refresh: %v", base, k, err)
			}
		}
	}
	for _, base := range bases {
		for _, d := range held[base].Data {
			st, _, body, err := p.get(t, base+d.Location.Href)
			if err != nil || st != http.StatusOK {
				t.Errorf("%s%s of a repomd.xml read 4 switches ago: %d %v", base, d.Location.Href, st, err)
				continue
			}
			if err := checksumOK(d.Checksum.Type, d.Checksum.Value, body); err != nil {
				t.Errorf("%s%s: %v", base, d.Location.Href, err)
			}
		}
	}
}

// brokenUpdateinfo is an updateinfo.xml no parser accepts (it ends inside
// a tag), as a truncated upstream file would.
const brokenUpdateinfo = `<?xml version="1.0" encoding="UTF-8"?>
<updates>
  <update from="x@example.org" status="stable" type="bugfix" version="2.0">
    <id>BROKEN-1</id>
    <pkglist><collection short="c"><name>c</name>
      <package name="dnfpt-lib" version="1.0" release="1.el9.alma.1" epoch="0" arch="noarch"
`

// TestBB_FailedRewriteServesRawWhenNoGoodView is break 21: a filter view
// that cannot be built (updateinfo the parser rejects) serves raw when it
// has no last good view: repomd.xml is 200 and its files are servable.
func TestBB_FailedRewriteServesRawWhenNoGoodView(t *testing.T) {
	dir := makeRepo(t, "el9", append(testenv.InitialRPMs(), testenv.RPMLibAlma))
	addUpdateinfo(t, filepath.Join(dir, "el9"), writeFile(t, "updateinfo.xml", brokenUpdateinfo))
	up := testenv.NewSickUpstream(t, dir)
	p := startViewProxy(t, up, config.ModeFilter, nil)
	checkListedFiles(t, p, "/test/el9/")
}

// TestBB_FailedRewriteKeepsLastGoodView is break 21: when a new upstream
// generation cannot be rewritten, the last good filter view stays served.
func TestBB_FailedRewriteKeepsLastGoodView(t *testing.T) {
	dir := makeRepo(t, "el9", append(testenv.InitialRPMs(), testenv.RPMLibAlma))
	addUpdateinfo(t, filepath.Join(dir, "el9"), fixtureUpdateinfo())
	up := testenv.NewSickUpstream(t, dir)
	p := startViewProxy(t, up, config.ModeFilter, nil)
	good, _ := checkListedFiles(t, p, "/test/el9/")
	if good == nil {
		t.Fatal("no good filter view to begin with")
	}
	addUpdateinfo(t, filepath.Join(dir, "el9"), writeFile(t, "updateinfo.xml", brokenUpdateinfo))
	bumpRepomd(t, filepath.Join(dir, "el9"))
	p.refresh(t, "test", "el9/")
	checkListedFiles(t, p, "/test/el9/")
	var rt apiRoot
	if !waitFor(3*time.Second, func() bool { rt, _ = p.root(t, "test", "el9/"); return rt.LastError != "" }) {
		t.Errorf("the failed rewrite does not show in the root's last_error: %+v", rt)
	}
}

// rawExchange sends req on a new connection and returns what the server
// sent until it closed the connection, and whether it did so within d.
func rawExchange(t testing.TB, addr, req string, d time.Duration) (string, bool) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(d))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(conn)
	var ne net.Error
	timedOut := errors.As(err, &ne) && ne.Timeout()
	return string(out), !timedOut
}

func statusLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}

// TestBB_OversizedHeaderRefused is break 22: 17 KiB of request headers
// under max_header_bytes 16 KiB get 431.
func TestBB_OversizedHeaderRefused(t *testing.T) {
	p := startBB(t, []config.Repo{bbRepo("test", "http://127.0.0.1:1/", config.ModeOff)}, nil)
	req := "GET /nope/x HTTP/1.1\r\nHost: proxy\r\nX-Padding: " + strings.Repeat("a", 17<<10) + "\r\nConnection: close\r\n\r\n"
	out, _ := rawExchange(t, p.http.Listener.Addr().String(), req, 5*time.Second)
	if line := statusLine(out); !strings.Contains(line, " 431 ") {
		t.Errorf("17 KiB of headers with max_header_bytes %d: %q, want 431", p.cfg.Limits.MaxHeaderBytes, line)
	}
}

// TestBB_TransferEncodingWithContentLengthClosesConnection is break 22: a
// request with both framing headers must not leave the connection open
// (RFC 9112, 6.3).
func TestBB_TransferEncodingWithContentLengthClosesConnection(t *testing.T) {
	p := startBB(t, []config.Repo{bbRepo("test", "http://127.0.0.1:1/", config.ModeOff)}, nil)
	req := "GET /nope/x HTTP/1.1\r\nHost: proxy\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"
	out, closed := rawExchange(t, p.http.Listener.Addr().String(), req, 3*time.Second)
	if !closed {
		t.Errorf("after %q the connection stayed open; answer %q", req, statusLine(out))
	}
}

// TestBB_StuckReaderTimedOut is break 22: a client that stops reading a
// large cached object does not hold its handler forever: the server gives
// up (and logs the request) within a write timeout. It waits up to 70s,
// in parallel with the other tests.
func TestBB_StuckReaderTimedOut(t *testing.T) {
	t.Parallel()
	dir := makeRepo(t, "el9", []string{testenv.RPMBig})
	up := testenv.NewSickUpstream(t, dir)
	p := startBB(t, []config.Repo{bbRepo("test", up.URL(), config.ModeOff)}, nil)
	path := "/test/el9/Packages/" + testenv.RPMBig
	if st, _, _, err := p.get(t, path); err != nil || st != http.StatusOK {
		t.Fatalf("%s: %d %v", path, st, err)
	}
	before := len(p.logs.records("request"))
	testenv.StuckClient(t, p.http.Listener.Addr().String(), path)
	// Read nothing: the proxy's writes block once the buffers are full.
	if !waitFor(70*time.Second, func() bool { return len(p.logs.records("request")) > before }) {
		t.Errorf("a client that stopped reading %s still holds its handler after 70s", path)
	}
}
