package proxy

import (
	"bytes"
	"encoding/json"
	"github.com/dnfproxy/dnfproxy/internal/view"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
)

const testToken = "t0ken-for-tests"

// testAdmin is a proxy with its admin listener.
type testAdmin struct {
	*testProxy
	admin *httptest.Server
	token string
}

// startAdmin runs a proxy over repos and its admin listener; edit may
// adjust the config (the token is testToken unless edit changes it).
func startAdmin(t testing.TB, repos []config.Repo, edit func(*config.Config)) *testAdmin {
	t.Helper()
	p := startProxy(t, repos, func(c *config.Config) {
		c.Admin.Token = testToken
		if edit != nil {
			edit(c)
		}
	})
	p.srv.SetClientURL(p.http.URL)
	a := &testAdmin{testProxy: p, token: p.cfg.Admin.Token}
	a.admin = httptest.NewUnstartedServer(nil)
	a.admin.Config = p.srv.AdminServer("")
	a.admin.Start()
	t.Cleanup(a.admin.Close)
	return a
}

// do sends an admin request with the bearer token (auth "" for none) and
// returns the status, the headers and the body.
func (a *testAdmin) do(t testing.TB, method, path, auth string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, a.admin.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// api sends an authorized request, checks the status and decodes the JSON
// answer into out (when not nil).
func (a *testAdmin) api(t testing.TB, method, path string, body []byte, wantStatus int, out any) []byte {
	t.Helper()
	status, hdr, b := a.do(t, method, path, "Bearer "+a.token, body)
	if status != wantStatus {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, wantStatus, b)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s %s: Content-Type %q, want JSON", method, path, ct)
	}
	if out != nil {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(out); err != nil {
			t.Fatalf("%s %s: decoding %s: %v", method, path, b, err)
		}
	}
	return b
}

func (a *testAdmin) fetch(t testing.TB, path string) []byte {
	t.Helper()
	status, body, err := a.get(t, path)
	if err != nil || status != http.StatusOK {
		t.Fatalf("GET %s: %d %v: %s", path, status, err, body)
	}
	a.settle(t) // the store commit follows the client's last byte
	return body
}

const pkgLib = "Packages/" + testenv.RPMLib

func basicAuth(user, pw string) string {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(user, pw)
	return r.Header.Get("Authorization")
}

func TestAdminAuth(t *testing.T) {
	up := newFakeUpstream(t, newRepoDir(t, "", testenv.InitialRPMs()))
	a := startAdmin(t, []config.Repo{testRepo("test", up.URL(), time.Minute)}, nil)

	protected := []struct{ method, path string }{
		{"GET", "/api/v1/repos"},
		{"GET", "/api/v1/repos/test/divergences"},
		{"POST", "/api/v1/repos/test/refresh"},
		{"GET", "/api/v1/cache"},
		{"DELETE", "/api/v1/cache?repo=test"},
		{"POST", "/api/v1/warm"},
		{"GET", "/api/v1/jobs/nope"},
		{"GET", "/api/v1/no-such-endpoint"},
		{"PUT", "/api/v1/cache"},
		{"GET", "/"},
	}
	refused := []struct{ name, auth string }{
		{"no token", ""},
		{"wrong token", "Bearer wrong"},
		{"token prefix", "Bearer " + testToken[:len(testToken)-1]},
		{"token plus", "Bearer " + testToken + "x"},
		{"empty bearer", "Bearer "},
		{"other scheme", "Token " + testToken},
		{"basic wrong password", basicAuth("admin", "wrong")},
	}
	for _, ep := range protected {
		for _, r := range refused {
			t.Run(ep.method+ep.path+"/"+r.name, func(t *testing.T) {
				status, hdr, body := a.do(t, ep.method, ep.path, r.auth, nil)
				if status != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401: %s", status, body)
				}
				if hdr.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				if strings.Contains(string(body), "dnfpt") || strings.Contains(string(body), "<table") {
					t.Errorf("401 leaks content: %s", body)
				}
			})
		}
		t.Run(ep.method+ep.path+"/token", func(t *testing.T) {
			status, _, body := a.do(t, ep.method, ep.path, "Bearer "+testToken, nil)
			if status == http.StatusUnauthorized || status == http.StatusForbidden {
				t.Fatalf("status %d with the token: %s", status, body)
			}
		})
	}

	// The API takes the token as a bearer token only; the dashboard also
	// as the password of HTTP Basic auth (any user), for browsers.
	if status, _, _ := a.do(t, "GET", "/api/v1/repos", basicAuth("admin", testToken), nil); status != http.StatusUnauthorized {
		t.Errorf("basic auth on /api: %d, want 401", status)
	}
	status, hdr, body := a.do(t, "GET", "/", basicAuth("anyone", testToken), nil)
	if status != http.StatusOK || !strings.Contains(string(body), `id="divergences"`) {
		t.Errorf("dashboard with basic auth: %d %s", status, body)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("dashboard Content-Type %q", ct)
	}
	if status, hdr, _ := a.do(t, "GET", "/", "", nil); status != http.StatusUnauthorized ||
		!strings.Contains(strings.Join(hdr.Values("WWW-Authenticate"), ","), "Basic") {
		t.Errorf("dashboard without auth: %d, WWW-Authenticate %q; want 401 with a Basic challenge", status, hdr.Values("WWW-Authenticate"))
	}
	if status, _, _ := a.do(t, "GET", "/api/v1/repos", "bearer "+testToken, nil); status != http.StatusOK {
		t.Errorf("lower-case bearer scheme: %d", status)
	}

	// Health and metrics are open.
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if status, _, body := a.do(t, "GET", p, "", nil); status != http.StatusOK {
			t.Errorf("GET %s without token: %d %s", p, status, body)
		}
	}

	// readyz follows the store.
	a.store.Close()
	if status, _, _ := a.do(t, "GET", "/readyz", "", nil); status != http.StatusServiceUnavailable {
		t.Errorf("readyz with the store closed: %d, want 503", status)
	}
	if status, _, _ := a.do(t, "GET", "/healthz", "", nil); status != http.StatusOK {
		t.Errorf("healthz with the store closed: %d, want 200", status)
	}
}

func TestAdminNoToken(t *testing.T) {
	up := newFakeUpstream(t, newRepoDir(t, "", testenv.InitialRPMs()))
	a := startAdmin(t, []config.Repo{testRepo("test", up.URL(), time.Minute)}, func(c *config.Config) { c.Admin.Token = "" })
	for _, p := range []string{"/api/v1/repos", "/api/v1/cache", "/"} {
		for _, auth := range []string{"", "Bearer ", "Bearer x", basicAuth("a", "")} {
			status, _, body := a.do(t, "GET", p, auth, nil)
			if status != http.StatusForbidden {
				t.Errorf("GET %s (%q) without a configured token: %d, want 403", p, auth, status)
			}
			if !strings.Contains(string(body), config.EnvAdminToken) {
				t.Errorf("403 does not say how to set a token: %s", body)
			}
		}
	}
	if status, _, _ := a.do(t, "GET", "/healthz", "", nil); status != http.StatusOK {
		t.Errorf("healthz: %d", status)
	}
}

// TestAdminNoTokenLogsOnce checks the startup hint for a missing token.
func TestAdminNoTokenLogsOnce(t *testing.T) {
	up := newFakeUpstream(t, newRepoDir(t, "", testenv.InitialRPMs()))
	p := startProxy(t, []config.Repo{testRepo("test", up.URL(), time.Minute)}, nil)
	var buf bytes.Buffer
	p.srv.log = slog.New(slog.NewTextHandler(&buf, nil))
	p.srv.AdminServer("127.0.0.1:0")
	out := buf.String()
	if strings.Count(out, "no admin token") != 1 || !strings.Contains(out, "admin.token") || !strings.Contains(out, config.EnvAdminToken) {
		t.Errorf("startup log %q: want one line naming admin.token and %s", out, config.EnvAdminToken)
	}
}

func TestClientListenerHasNoAdminPaths(t *testing.T) {
	up := newFakeUpstream(t, newRepoDir(t, "", testenv.InitialRPMs()))
	a := startAdmin(t, []config.Repo{testRepo("test", up.URL(), time.Minute)}, nil)
	for _, p := range []string{"/api/v1/repos", "/api/v1/cache", "/metrics", "/healthz", "/readyz", "/"} {
		for _, method := range []string{"GET", "DELETE", "POST"} {
			req, _ := http.NewRequest(method, a.URL(p), nil)
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Errorf("client listener answers %s %s with 200: %s", method, p, body)
			}
			for _, admin := range []string{"dnfproxy_", `"repos"`, `"objects"`, "<table", "ok\n", "ready\n"} {
				if strings.Contains(string(body), admin) {
					t.Errorf("client listener %s %s has admin content %q: %s", method, p, admin, body)
				}
			}
		}
	}
}

func TestAdminReposCacheAndMetrics(t *testing.T) {
	up := newFakeUpstream(t, newRepoDir(t, "", testenv.InitialRPMs()))
	// The first base refuses connections: the proxy moves on to the
	// mirror and counts the failure.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + dead.Addr().String() + "/"
	dead.Close()
	repo := testRepo("test", deadURL, time.Minute)
	repo.Mirrors = []string{up.URL()}
	a := startAdmin(t, []config.Repo{repo}, func(c *config.Config) { c.Storage.MaxSize = 1 << 30 })

	repomd := a.fetch(t, "/test/repodata/repomd.xml")
	a.fetch(t, "/test/"+pkgLib)
	a.fetch(t, "/test/"+pkgLib)
	a.fetch(t, "/test/repodata/repomd.xml")
	if status, _, _ := a.get(t, "/test/Packages/missing-1-1.noarch.rpm"); status == http.StatusOK {
		t.Fatal("missing package served")
	}

	var cs CacheStats
	a.api(t, "GET", "/api/v1/cache", nil, http.StatusOK, &cs)
	if cs.Hits < 1 || cs.Misses < 1 || cs.UpstreamBytes <= 0 || cs.Objects < 2 || cs.Bytes <= 0 || cs.MaxBytes != 1<<30 {
		t.Errorf("cache stats %+v: want hits, misses, upstream bytes, objects and max_bytes", cs)
	}
	if cs.UpstreamBytes < fileSize(t, up.dir, pkgLib) {
		t.Errorf("upstream_bytes %d is less than the package fetched (%d)", cs.UpstreamBytes, fileSize(t, up.dir, pkgLib))
	}
	var raw map[string]any
	a.api(t, "GET", "/api/v1/cache", nil, http.StatusOK, &raw)
	for _, k := range []string{"objects", "bytes", "max_bytes", "hits", "misses", "upstream_bytes"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("/api/v1/cache has no %q: %v", k, raw)
		}
	}

	var repos struct{ Repos []RepoStatus }
	a.api(t, "GET", "/api/v1/repos", nil, http.StatusOK, &repos)
	if len(repos.Repos) != 1 {
		t.Fatalf("repos: %+v", repos)
	}
	r := repos.Repos[0]
	if r.Name != "test" || r.URL != deadURL || len(r.Mirrors) != 1 || r.Mirrors[0] != up.URL() || r.MetadataTTLSeconds != 60 || r.Compat.Mode != "off" {
		t.Errorf("repo %+v", r)
	}
	if r.Upstream.MirrorErrors[deadURL] < 1 || r.Upstream.LastError == "" || r.Upstream.LastErrorAt == nil {
		t.Errorf("upstream state %+v: want the dead base's failures", r.Upstream)
	}
	if r.Upstream.LastSuccess == nil || r.Upstream.LastAttempt == nil {
		t.Errorf("upstream state %+v: want the last refresh times", r.Upstream)
	}
	if len(r.Roots) != 1 {
		t.Fatalf("roots %+v", r.Roots)
	}
	root := r.Roots[0]
	if root.Path != "" || root.Revision == "" || !strings.Contains(string(repomd), "<revision>"+root.Revision+"</revision>") {
		t.Errorf("root %+v: want the revision of %s", root, repomd)
	}
	if root.Packages != 3 || root.Files < 3 || root.Created == nil || root.Fetched == nil || root.LastSuccess == nil {
		t.Errorf("root %+v: want 3 packages, the files and the times", root)
	}
	if root.AgeSeconds < 0 || root.AgeSeconds > 60 || root.Stale || root.RefreshFailing || root.LastError != "" {
		t.Errorf("root %+v: want a fresh generation", root)
	}

	m := scrape(t, a)
	for _, c := range []struct {
		series string
		min    float64
	}{
		{`dnfproxy_requests_total{code="200",repo="test",result="hit"}`, 1},
		{`dnfproxy_requests_total{code="200",repo="test",result="miss"}`, 1},
		{`dnfproxy_requests_total{code="502",repo="test",result="error"}`, 1}, // one base down, the other 404
		{`dnfproxy_served_bytes_total{repo="test"}`, float64(fileSize(t, up.dir, pkgLib)) * 2},
		{`dnfproxy_upstream_bytes_total{repo="test"}`, float64(fileSize(t, up.dir, pkgLib))},
		{`dnfproxy_fill_duration_seconds_count{repo="test"}`, 2},
		{`dnfproxy_cache_objects`, 2},
		{`dnfproxy_cache_bytes`, float64(fileSize(t, up.dir, pkgLib))},
		{`dnfproxy_cache_max_bytes`, 1 << 30},
		{`dnfproxy_upstream_errors_total{mirror="` + deadURL + `",repo="test"}`, 1},
		{`dnfproxy_metadata_generation_age_seconds{repo="test",root=""}`, 0},
		{`dnfproxy_evictions_total`, 0},
	} {
		v, ok := m[c.series]
		if !ok {
			t.Errorf("/metrics has no %s", c.series)
			continue
		}
		if v < c.min {
			t.Errorf("%s = %v, want >= %v", c.series, v, c.min)
		}
	}
	if v := m[`dnfproxy_metadata_generation_age_seconds{repo="test",root=""}`]; v > 60 {
		t.Errorf("generation age %v", v)
	}
}

func TestAdminRefresh(t *testing.T) {
	dir := newRepoDir(t, "", testenv.InitialRPMs())
	up := newFakeUpstream(t, dir)
	a := startAdmin(t, []config.Repo{testRepo("test", up.URL(), time.Hour)}, nil)

	before := a.fetch(t, "/test/repodata/repomd.xml")
	// createrepo_c's revision and the file's mtime (If-Modified-Since)
	// have one-second resolution: make sure they move.
	time.Sleep(1100 * time.Millisecond)
	testenv.UpdateRepo(t, dir, testenv.RPMExtra)
	// Within the TTL the proxy still serves the old metadata.
	if got := a.fetch(t, "/test/repodata/repomd.xml"); !bytes.Equal(got, before) {
		t.Fatal("repomd.xml changed before the TTL and before a refresh")
	}
	var rs RefreshStatus
	a.api(t, "POST", "/api/v1/repos/test/refresh", nil, http.StatusOK, &rs)
	if rs.Repo != "test" || rs.Path != "" || rs.Result != "changed" || rs.Error != "" {
		t.Errorf("refresh %+v: want changed", rs)
	}
	if rs.Root.Packages != 4 || rs.Root.Revision == "" || rs.Root.LastSuccess == nil || !rs.Root.HasPrevious {
		t.Errorf("refreshed root %+v: want 4 packages and a previous generation", rs.Root)
	}
	after := a.fetch(t, "/test/repodata/repomd.xml")
	if bytes.Equal(after, before) || !bytes.Equal(after, readFile(t, dir+"/repodata/repomd.xml")) {
		t.Error("after the refresh the proxy does not serve upstream's new repomd.xml")
	}
	a.fetch(t, "/test/Packages/"+testenv.RPMExtra)

	// Unchanged upstream.
	a.api(t, "POST", "/api/v1/repos/test/refresh?path=", nil, http.StatusOK, &rs)
	if rs.Result != "unchanged" {
		t.Errorf("second refresh: %+v", rs)
	}

	// Upstream down: the refresh fails, the last good generation stays.
	up.down.Store(true)
	rs = RefreshStatus{}
	a.api(t, "POST", "/api/v1/repos/test/refresh", nil, http.StatusBadGateway, &rs)
	if rs.Result != "failed" || rs.Error == "" || !rs.Root.RefreshFailing || rs.Root.Packages != 4 {
		t.Errorf("refresh with upstream down: %+v", rs)
	}
	var repos struct{ Repos []RepoStatus }
	a.api(t, "GET", "/api/v1/repos", nil, http.StatusOK, &repos)
	if r := repos.Repos[0]; r.Upstream.LastError == "" || len(r.Roots) != 1 || !r.Roots[0].Stale || r.Roots[0].LastError == "" {
		t.Errorf("repos after a failed refresh: %+v", r)
	}
	if got := a.fetch(t, "/test/repodata/repomd.xml"); !bytes.Equal(got, after) {
		t.Error("failed refresh changed the served repomd.xml")
	}
	up.down.Store(false)

	// Errors.
	a.api(t, "POST", "/api/v1/repos/nope/refresh", nil, http.StatusNotFound, nil)
	a.api(t, "POST", "/api/v1/repos/test/refresh?path=../x", nil, http.StatusBadRequest, nil)
	a.api(t, "POST", "/api/v1/repos/test/refresh?path=no/such/root", nil, http.StatusNotFound, nil)
}

func TestAdminPurge(t *testing.T) {
	up := newFakeUpstream(t, newRepoDir(t, "", testenv.InitialRPMs()))
	a := startAdmin(t, []config.Repo{testRepo("test", up.URL(), time.Hour)}, nil)
	a.fetch(t, "/test/repodata/repomd.xml") // packages are cached once primary.xml lists them
	a.fetch(t, "/test/"+pkgLib)
	a.fetch(t, "/test/"+pkgLib)
	if n := up.Hits("/" + pkgLib); n != 1 {
		t.Fatalf("upstream hits before the purge: %d", n)
	}
	var before CacheStats
	a.api(t, "GET", "/api/v1/cache", nil, http.StatusOK, &before)

	var ps PurgeStatus
	a.api(t, "DELETE", "/api/v1/cache?repo=test&prefix=Packages/", nil, http.StatusOK, &ps)
	if ps.Repo != "test" || ps.Prefix != "Packages/" || ps.Objects != 1 || ps.Bytes != fileSize(t, up.dir, pkgLib) {
		t.Errorf("purge %+v: want the one package", ps)
	}
	var after CacheStats
	a.api(t, "GET", "/api/v1/cache", nil, http.StatusOK, &after)
	if after.Objects != before.Objects-1 || after.Bytes != before.Bytes-ps.Bytes {
		t.Errorf("cache after purge %+v, before %+v", after, before)
	}
	a.fetch(t, "/test/"+pkgLib)
	if n := up.Hits("/" + pkgLib); n != 2 {
		t.Errorf("upstream hits after the purge: %d, want 2", n)
	}

	// The whole repo, metadata included.
	a.api(t, "DELETE", "/api/v1/cache?repo=test", nil, http.StatusOK, &ps)
	if ps.Objects < 3 {
		t.Errorf("purge of the repo: %+v", ps)
	}
	hits := up.Hits("/repodata/repomd.xml")
	a.fetch(t, "/test/repodata/repomd.xml")
	if up.Hits("/repodata/repomd.xml") != hits+1 {
		t.Error("repomd.xml not fetched again after purging the repo")
	}

	a.api(t, "DELETE", "/api/v1/cache", nil, http.StatusBadRequest, nil)
	a.api(t, "DELETE", "/api/v1/cache?prefix=Packages/", nil, http.StatusBadRequest, nil)
	a.api(t, "DELETE", "/api/v1/cache?repo=nope", nil, http.StatusNotFound, nil)
	a.api(t, "DELETE", "/api/v1/cache?repo=test&prefix=../x", nil, http.StatusBadRequest, nil)
}

func TestAdminDivergences(t *testing.T) {
	up := newFakeUpstream(t, newRepoDir(t, "9/os", testenv.InitialRPMs()))
	repo := testRepo("alma", up.URL(), time.Hour)
	repo.Compat.Mode = config.ModeAnnotate
	repo.Compat.Reference = "rhel"
	a := startAdmin(t, []config.Repo{repo, testRepo("rhel", up.URL(), time.Hour)}, nil)

	// The repo and its reference are the same packages: nothing diverges.
	var rep view.Report
	body := a.api(t, "GET", "/api/v1/repos/alma/divergences?path=9/os", nil, http.StatusOK, &rep)
	if rep.Repo != "alma" || rep.Path != "9/os/" || rep.Reference != "rhel" || rep.Packages == nil {
		t.Errorf("report %+v", rep)
	}
	if !bytes.Contains(body, []byte(`"packages":[`)) {
		t.Errorf("packages is not a JSON list: %s", body)
	}
	a.api(t, "GET", "/api/v1/repos/nope/divergences", nil, http.StatusNotFound, nil)
	a.api(t, "GET", "/api/v1/repos/alma/divergences?path=a/../../b", nil, http.StatusBadRequest, nil)

	// The JSON field names are the contract's.
	b, _ := json.Marshal(view.Report{Packages: []view.DivergentPackage{{Classes: []string{}, Reasons: []string{}}}})
	for _, k := range []string{`"repo"`, `"path"`, `"reference"`, `"packages"`, `"nevra"`, `"name"`, `"epoch"`,
		`"version"`, `"release"`, `"arch"`, `"classes"`, `"reasons"`, `"action"`} {
		if !bytes.Contains(b, []byte(k)) {
			t.Errorf("divergence report JSON has no %s: %s", k, b)
		}
	}
}

func TestAdminWarmJobs(t *testing.T) {
	up := newFakeUpstream(t, newRepoDir(t, "", testenv.InitialRPMs()))
	a := startAdmin(t, []config.Repo{testRepo("test", up.URL(), time.Hour)}, nil)

	for _, bad := range []string{
		``,
		`{`,
		`[]`,
		`{"repo":"test","packages":"some"}`,
		`{"repo":"test","packages":"all","extra":1}`,
		`{"repo":"nope","packages":"all"}`,
		`{"packages":"all"}`,
		`{"repo":"test","path":"../x"}`,
		`{"repo":"test","packages":"all"} {}`,
		`{"repo":"test","concurrency":-1}`,
	} {
		status, _, body := a.do(t, "POST", "/api/v1/warm", "Bearer "+testToken, []byte(bad))
		var e struct{ Error string }
		if status != http.StatusBadRequest || json.Unmarshal(body, &e) != nil || e.Error == "" {
			t.Errorf("POST /api/v1/warm %s: %d %s, want 400 with a message", bad, status, body)
		}
	}
	a.api(t, "GET", "/api/v1/jobs/0123456789abcdef", nil, http.StatusNotFound, nil)

	var js JobStatus
	a.api(t, "POST", "/api/v1/warm", []byte(`{"repo":"test","path":"","packages":"all"}`), http.StatusAccepted, &js)
	if js.ID == "" || js.Repo != "test" || js.Packages != "all" || (js.State != jobRunning && js.State != jobDone) {
		t.Fatalf("new job %+v", js)
	}
	deadline := time.Now().Add(60 * time.Second)
	for js.State == jobRunning && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		a.api(t, "GET", "/api/v1/jobs/"+js.ID, nil, http.StatusOK, &js)
	}
	if js.State != jobDone || js.Error != "" || js.Result == nil || js.Finished == nil {
		t.Fatalf("job %+v: want done", js)
	}
	if js.Progress.Total < 3 || js.Progress.Done != js.Progress.Total || js.Progress.Failed != 0 || js.Progress.Bytes <= 0 {
		t.Errorf("job progress %+v", js.Progress)
	}
	if js.Result.Files < 3 || js.Result.Bytes <= 0 {
		t.Errorf("job result %+v", js.Result)
	}
	for _, rpm := range testenv.InitialRPMs() {
		if up.Hits("/Packages/"+rpm) != 1 {
			t.Errorf("%s: %d upstream hits after the warm job, want 1", rpm, up.Hits("/Packages/"+rpm))
		}
	}
	var list struct{ Jobs []JobStatus }
	a.api(t, "GET", "/api/v1/jobs", nil, http.StatusOK, &list)
	if len(list.Jobs) != 1 || list.Jobs[0].ID != js.ID {
		t.Errorf("job list %+v", list)
	}
	// Names without packages warm those names only, as `dnfproxy warm` does.
	a.api(t, "POST", "/api/v1/warm", []byte(`{"repo":"test","names":["dnfpt-app"]}`), http.StatusAccepted, &js)
	if js.Packages != "none" {
		t.Errorf("job with names has packages %q, want none", js.Packages)
	}
}

func TestJobListBound(t *testing.T) {
	var l jobList
	for i := range maxJobs {
		j := &job{id: itoa(i), state: jobRunning}
		if i == 3 {
			j.state = jobDone
		}
		if err := l.add(j); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.add(&job{id: "new", state: jobRunning}); err != nil {
		t.Fatal(err)
	}
	if l.get("3") != nil || l.get("new") == nil || len(l.jobs) != maxJobs {
		t.Error("the finished job was not the one dropped")
	}
	if err := l.add(&job{id: "more", state: jobRunning}); err != errTooManyJobs {
		t.Errorf("all running: %v, want errTooManyJobs", err)
	}
}

func TestListenURL(t *testing.T) {
	for in, want := range map[string]string{
		":8080":          "http://127.0.0.1:8080",
		"0.0.0.0:8080":   "http://127.0.0.1:8080",
		"[::]:8080":      "http://[::1]:8080",
		"127.0.0.1:8080": "http://127.0.0.1:8080",
		"proxy:3128":     "http://proxy:3128",
	} {
		if got := listenURL(in); got != want {
			t.Errorf("listenURL(%q) = %q, want %q", in, got, want)
		}
	}
}
