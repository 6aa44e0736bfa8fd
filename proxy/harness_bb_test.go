package proxy_test

// The harness of the black-box tests (*_bb_test.go): they use only what an
// operator or a client sees — proxy.New and its listeners, the admin API,
// the access log, config and the badger store — so that they keep working
// while the package's internals move.

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"github.com/dnfproxy/dnfproxy/metadata"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/proxy"
)

const bbToken = "bb-admin-token"

// bbProxy is a proxy.Server on a badger store behind real client and admin
// listeners, restartable on the same storage directory.
type bbProxy struct {
	t     testing.TB
	cfg   config.Config
	logs  *logBuffer
	store *cache.Badger
	srv   *proxy.Server
	http  *httptest.Server
	admin *httptest.Server
	open  bool
}

// bbRepo is a repo at url in mode, with a 1m TTL and a 5s upstream timeout.
func bbRepo(name, url string, mode config.Mode) config.Repo {
	r := config.NewRepo(name, url)
	r.MetadataTTL = config.Duration(time.Minute)
	r.Timeout = config.Duration(5 * time.Second)
	r.Compat.Mode = mode
	return r
}

// startBB starts a proxy for repos; edit may adjust the config.
func startBB(t testing.TB, repos []config.Repo, edit func(*config.Config)) *bbProxy {
	t.Helper()
	cfg := config.Default()
	cfg.Storage.Dir = t.TempDir()
	cfg.Admin.Token = bbToken
	cfg.Repos = repos
	if edit != nil {
		edit(&cfg)
	}
	p := &bbProxy{t: t, cfg: cfg, logs: newLogBuffer()}
	p.start()
	t.Cleanup(func() {
		if t.Failed() {
			p.logs.dumpTail(t, 80)
		}
		p.stop()
	})
	return p
}

func (p *bbProxy) start() {
	p.t.Helper()
	store, err := cache.OpenBadger(filepath.Join(p.cfg.Storage.Dir, "cache"), cache.DefaultBadgerOptions())
	if err != nil {
		p.t.Fatal(err)
	}
	srv, err := proxy.New(p.cfg, store, slog.New(slog.NewJSONHandler(p.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		store.Close()
		p.t.Fatal(err)
	}
	p.store, p.srv = store, srv
	p.http = httptest.NewUnstartedServer(nil)
	p.http.Config = srv.HTTPServer("")
	p.http.Start()
	p.admin = httptest.NewUnstartedServer(nil)
	p.admin.Config = srv.AdminServer("")
	p.admin.Start()
	srv.SetClientURL(p.http.URL)
	p.open = true
}

// stop closes the listeners, the Server and the store, in that order.
func (p *bbProxy) stop() {
	if !p.open {
		return
	}
	p.open = false
	for _, h := range []*httptest.Server{p.http, p.admin} {
		h.CloseClientConnections()
		h.Close()
	}
	p.srv.Close()
	if err := p.store.Close(); err != nil {
		p.t.Errorf("closing the store: %v", err)
	}
}

// restart closes everything and reopens the same storage directory, with
// the config changed by edit (may be nil). The listeners get new ports.
func (p *bbProxy) restart(edit func(*config.Config)) {
	p.t.Helper()
	p.stop()
	if edit != nil {
		edit(&p.cfg)
	}
	p.start()
}

// URL is a client URL of the proxy.
func (p *bbProxy) URL(path string) string { return p.http.URL + path }

// get fetches a client path.
func (p *bbProxy) get(t testing.TB, path string) (int, http.Header, []byte, error) {
	t.Helper()
	return httpGet(t.Context(), p.URL(path), nil)
}

// httpGet fetches url with extra headers; a broken body is an error.
func httpGet(ctx context.Context, url string, hdr http.Header) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body, err
}

// api calls the admin API with the token and decodes a JSON answer into
// out (when not nil); it returns the status.
func (p *bbProxy) api(t testing.TB, method, path string, out any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, p.admin.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+bbToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, body)
		}
	}
	return resp.StatusCode
}

// purge is DELETE /api/v1/cache?repo=R&prefix=P through the admin API.
func (p *bbProxy) purge(t testing.TB, repo, prefix string) {
	t.Helper()
	var out map[string]any
	if st := p.api(t, http.MethodDelete, "/api/v1/cache?repo="+repo+"&prefix="+prefix, &out); st != http.StatusOK {
		t.Fatalf("purge %s %s: status %d", repo, prefix, st)
	}
	t.Logf("purged %s/%s: %v", repo, prefix, out)
}

// refresh is POST /api/v1/repos/R/refresh?path=ROOT; it returns the status.
func (p *bbProxy) refresh(t testing.TB, repo, root string) int {
	t.Helper()
	return p.api(t, http.MethodPost, "/api/v1/repos/"+repo+"/refresh?path="+root, nil)
}

// apiRoot is what GET /api/v1/repos says of one root.
type apiRoot struct {
	Path      string `json:"path"`
	Revision  string `json:"revision"`
	Stale     bool   `json:"stale"`
	LastError string `json:"last_error"`
}

// root returns the admin API's view of repo's root (ok false: not listed).
func (p *bbProxy) root(t testing.TB, repo, root string) (apiRoot, bool) {
	t.Helper()
	var out struct {
		Repos []struct {
			Name  string    `json:"name"`
			Roots []apiRoot `json:"roots"`
		} `json:"repos"`
	}
	if st := p.api(t, http.MethodGet, "/api/v1/repos", &out); st != http.StatusOK {
		t.Fatalf("GET /api/v1/repos: %d", st)
	}
	for _, r := range out.Repos {
		if r.Name != repo {
			continue
		}
		for _, rt := range r.Roots {
			if rt.Path == root {
				return rt, true
			}
		}
	}
	return apiRoot{}, false
}

// metrics returns the admin listener's /metrics text.
func (p *bbProxy) metrics(t testing.TB) string {
	t.Helper()
	st, _, body, err := httpGet(t.Context(), p.admin.URL+"/metrics", nil)
	if err != nil || st != http.StatusOK {
		t.Fatalf("/metrics: %d %v", st, err)
	}
	return string(body)
}

// repomdDoc is the part of repomd.xml the tests check.
type repomdDoc struct {
	Revision string       `xml:"revision"`
	Data     []repomdData `xml:"data"`
}

type repomdData struct {
	Type     string `xml:"type,attr"`
	Location struct {
		Href string `xml:"href,attr"`
	} `xml:"location"`
	Checksum struct {
		Type  string `xml:"type,attr"`
		Value string `xml:",chardata"`
	} `xml:"checksum"`
	Size int64 `xml:"size"`
}

func parseRepomd(body []byte) (*repomdDoc, error) {
	var d repomdDoc
	if err := xml.Unmarshal(body, &d); err != nil {
		return nil, fmt.Errorf("repomd.xml: %w", err)
	}
	if len(d.Data) == 0 {
		return nil, fmt.Errorf("repomd.xml lists no files:\n%s", body)
	}
	return &d, nil
}

// checksumOK reports whether body has the hex checksum of type typ.
func checksumOK(typ, want string, body []byte) error {
	h, err := metadata.NewHash(typ)
	if err != nil {
		return err
	}
	h.Write(body)
	if got := hex.EncodeToString(h.Sum(nil)); got != strings.TrimSpace(want) {
		return fmt.Errorf("%s %s, repomd.xml says %s", typ, got, want)
	}
	return nil
}

// checkListedFiles fetches base+"repodata/repomd.xml" and every file it
// lists, and reports each that does not answer 200 with its checksum. It
// returns the repomd.xml and the files by type.
func checkListedFiles(t testing.TB, p *bbProxy, base string) ([]byte, map[string][]byte) {
	t.Helper()
	st, _, repomd, err := p.get(t, base+"repodata/repomd.xml")
	if err != nil || st != http.StatusOK {
		t.Errorf("%srepodata/repomd.xml: %d %v: %s", base, st, err, repomd)
		return nil, nil
	}
	doc, err := parseRepomd(repomd)
	if err != nil {
		t.Error(err)
		return repomd, nil
	}
	files := map[string][]byte{}
	for _, d := range doc.Data {
		st, _, body, err := p.get(t, base+d.Location.Href)
		switch {
		case err != nil || st != http.StatusOK:
			t.Errorf("%s (%s, listed in repomd.xml): %d %v", d.Location.Href, d.Type, st, err)
		default:
			if err := checksumOK(d.Checksum.Type, d.Checksum.Value, body); err != nil {
				t.Errorf("%s (%s): %v", d.Location.Href, d.Type, err)
			}
			files[d.Type] = body
		}
	}
	return repomd, files
}

// primaryPackage is what a client reads of a <package> of primary.xml.
type primaryPackage struct {
	Name     string `xml:"name"`
	Checksum struct {
		Type  string `xml:"type,attr"`
		Value string `xml:",chardata"`
	} `xml:"checksum"`
	Location struct {
		Href string `xml:"href,attr"`
	} `xml:"location"`
}

// parsePrimary reads a gzip-compressed primary.xml.
func parsePrimary(gz []byte) ([]primaryPackage, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("primary.xml.gz: %w", err)
	}
	var doc struct {
		Packages []primaryPackage `xml:"package"`
	}
	if err := xml.NewDecoder(zr).Decode(&doc); err != nil {
		return nil, fmt.Errorf("primary.xml: %w", err)
	}
	return doc.Packages, nil
}

// makeRepo builds a createrepo_c repo of rpms in a new directory under
// sub/ and returns the directory.
func makeRepo(t testing.TB, sub string, rpms []string, args ...string) string {
	t.Helper()
	testenv.RequireTool(t, "createrepo_c")
	dir := t.TempDir()
	testenv.MakeRepo(t, filepath.Join(dir, sub), rpms, args...)
	return dir
}

// addUpdateinfo adds an updateinfo record (file info) to the repo in dir
// with modifyrepo_c.
func addUpdateinfo(t testing.TB, dir, info string) {
	t.Helper()
	bin := testenv.RequireTool(t, "modifyrepo_c")
	if out, err := exec.Command(bin, "--mdtype=updateinfo", info, filepath.Join(dir, "repodata")).CombinedOutput(); err != nil {
		t.Fatalf("modifyrepo_c: %v\n%s", err, out)
	}
}

// fixtureUpdateinfo is the valid updateinfo.xml of metadata's tests.
func fixtureUpdateinfo() string {
	return filepath.Join(testenv.TestdataDir(), "..", "metadata", "testdata", "updateinfo", "updateinfo.xml")
}

// almaRuleYAML annotates (abi-changed) the vendor build of dnfpt-lib.
const almaRuleYAML = `rules:
  - name: alma-lib
    match:
      name: "dnfpt-lib"
      release: "*.alma*"
    class: abi-changed
    reason: "adds the DNFPT_1.1 symbol version"
`

// writeFile writes content to a new file in a temporary directory.
func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// logBuffer collects the proxy's JSON log lines.
type logBuffer struct {
	mu    sync.Mutex
	lines [][]byte
	part  []byte
}

func newLogBuffer() *logBuffer { return &logBuffer{} }

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.part = append(b.part, p...)
	for {
		i := bytes.IndexByte(b.part, '\n')
		if i < 0 {
			break
		}
		b.lines = append(b.lines, bytes.Clone(b.part[:i]))
		b.part = b.part[i+1:]
	}
	return len(p), nil
}

// records returns the log records whose msg is msg, decoded.
func (b *logBuffer) records(msg string) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range b.lines {
		var m map[string]any
		if json.Unmarshal(l, &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// request returns the last access-log record of path, or nil.
func (b *logBuffer) request(path string) map[string]any {
	recs := b.records("request")
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i]["path"] == path {
			return recs[i]
		}
	}
	return nil
}

func (b *logBuffer) dumpTail(t testing.TB, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	lines := b.lines
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	var sb strings.Builder
	for _, l := range lines {
		sb.Write(l)
		sb.WriteByte('\n')
	}
	t.Logf("last proxy log lines:\n%s", sb.String())
}

// waitFor polls cond every 50ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// buildGenerations builds n generations of a repository in separate
// directories, each with el9/ holding every RPM of sets in Packages/ (so
// that any generation's packages stay downloadable) and repodata listing
// only sets[k%len(sets)], with revision and timestamps base+k: a repo whose
// packages are added and removed between generations. args go to
// createrepo_c (e.g. "--no-database").
func buildGenerations(t testing.TB, n int, sets [][]string, args ...string) []string {
	t.Helper()
	testenv.RequireTool(t, "createrepo_c")
	var pool []string
	for _, s := range sets {
		for _, r := range s {
			if !slices.Contains(pool, r) {
				pool = append(pool, r)
			}
		}
	}
	base := time.Now().Unix() - int64(n) - 10
	top := t.TempDir()
	dirs := make([]string, n)
	for k := range n {
		dirs[k] = filepath.Join(top, strconv.Itoa(k))
		root := filepath.Join(dirs[k], "el9")
		testenv.AddRPMs(t, root, pool...)
		var list strings.Builder
		for _, r := range sets[k%len(sets)] {
			list.WriteString("Packages/" + r + "\n")
		}
		pkglist := filepath.Join(dirs[k], "pkglist")
		if err := os.WriteFile(pkglist, []byte(list.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		rev := strconv.FormatInt(base+int64(k), 10)
		testenv.CreateRepo(t, root, append([]string{"--pkglist", pkglist, "--revision", rev, "--set-timestamp-to-revision"}, args...)...)
		// createrepo_c writes repomd.xml now; generations made within one
		// second would look unchanged to a conditional GET.
		mtime := time.Unix(base+int64(k), 0)
		if err := os.Chtimes(filepath.Join(root, "repodata", "repomd.xml"), mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	return dirs
}

// bumpRepomd moves the mtime of root/repodata/repomd.xml 5s ahead, so that
// a change made within the second of the previous repomd.xml is not
// answered 304 to the proxy's If-Modified-Since.
func bumpRepomd(t testing.TB, root string) {
	t.Helper()
	mtime := time.Now().Add(5 * time.Second)
	if err := os.Chtimes(filepath.Join(root, "repodata", "repomd.xml"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
}
