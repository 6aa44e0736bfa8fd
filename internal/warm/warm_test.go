package warm_test

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/internal/warm"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// allFixtures is every fixture RPM but dnfpt-extra: both builds of
// dnfpt-lib, the app that needs it, a tool, the big package and the
// conflict guard.
var allFixtures = []string{
	testenv.RPMLib, testenv.RPMLibAlma, testenv.RPMApp, testenv.RPMTool, testenv.RPMBig, testenv.RPMConflict,
}

func rpmPath(name string) string { return "/el9/Packages/" + name }

// repomdRecords returns the hrefs repomd.xml of the upstream repo lists.
func repomdRecords(t *testing.T, up *upstream) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(up.dir, "el9", "repodata", "repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	md, err := metadata.ParseRepomd(data)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range md.Records {
		out = append(out, r.Href)
	}
	return out
}

func run(t *testing.T, opt warm.Options) (warm.Result, error, []warm.Progress) {
	t.Helper()
	var (
		mu    sync.Mutex
		calls []warm.Progress
		busy  atomic.Bool
	)
	res, err := warm.Run(t.Context(), opt, func(p warm.Progress) {
		if !busy.CompareAndSwap(false, true) {
			t.Error("progress called concurrently")
		}
		mu.Lock()
		calls = append(calls, p)
		mu.Unlock()
		busy.Store(false)
	})
	t.Logf("warm.Run: %+v, %v", res, err)
	return res, err, calls
}

// checkProgress asserts that progress only advances and ends where the
// result says.
func checkProgress(t *testing.T, calls []warm.Progress, res warm.Result) {
	t.Helper()
	if len(calls) == 0 {
		t.Fatal("progress never called")
	}
	for i := 1; i < len(calls); i++ {
		a, b := calls[i-1], calls[i]
		if b.Done < a.Done || b.Total < a.Total || b.Bytes < a.Bytes || b.Failed < a.Failed {
			t.Fatalf("progress went back: %+v then %+v", a, b)
		}
	}
	last := calls[len(calls)-1]
	if last.Done != last.Total || last.Done != res.Files+len(res.Failed) ||
		last.Failed != len(res.Failed) || last.Bytes != res.Bytes {
		t.Fatalf("last progress %+v does not match result %+v", last, res)
	}
}

// TestWarmAllThenDNFInstallsWithUpstreamStopped is the acceptance test of
// issue 4: after `warm --packages all`, dnf installs every package of the
// repo through the proxy with the upstream gone.
func TestWarmAllThenDNFInstallsWithUpstreamStopped(t *testing.T) {
	up := newUpstream(t, "el9", allFixtures...)
	proxyURL := startProxy(t, up)

	code, stdout, _ := runWarmCommand(t, "", "--proxy", proxyURL, "--repo", "test", "--path", "el9",
		"--packages", "all", "--concurrency", "3")
	if code != 0 {
		t.Fatalf("warm exited %d", code)
	}
	wantFiles := 1 + len(repomdRecords(t, up)) + len(allFixtures)
	re := regexp.MustCompile(`^warm: repo=test path=el9/ files=(\d+) bytes=(\d+) failed=0 duration=\S+\n$`)
	if m := re.FindStringSubmatch(stdout); m == nil || m[1] != strconv.Itoa(wantFiles) {
		t.Fatalf("summary %q, want files=%d", stdout, wantFiles)
	}
	for _, rpm := range allFixtures {
		if n := up.Hits(rpmPath(rpm)); n != 1 {
			t.Errorf("upstream served %s %d times during the warm, want 1", rpm, n)
		}
	}

	up.srv.Close()
	baseurl := proxyURL + "/test/el9/"
	d := testenv.NewDNF(t, map[string]string{"test": baseurl})
	d.Install("dnfpt-lib", "dnfpt-app", "dnfpt-tool", "dnfpt-big", "dnfpt-conflict")
	for _, name := range []string{"dnfpt-lib-1.0-1.el9.alma.1", "dnfpt-app", "dnfpt-tool", "dnfpt-big", "dnfpt-conflict"} {
		if !d.Installed(name) {
			t.Errorf("%s not installed", name)
		}
	}
	// The older build of dnfpt-lib was warmed too.
	d2 := testenv.NewDNF(t, map[string]string{"test": baseurl})
	d2.Install("dnfpt-lib-1.0-1.el9.noarch")
	if !d2.Installed("dnfpt-lib-1.0-1.el9.noarch") {
		t.Error("dnfpt-lib-1.0-1.el9 not installed")
	}
}

func TestWarmFromFileWarmsNamesAndDependenciesOnly(t *testing.T) {
	up := newUpstream(t, "el9", allFixtures...)
	proxyURL := startProxy(t, up)

	res, err, calls := run(t, warm.Options{Proxy: proxyURL, Repo: "test", Path: "el9/", Names: []string{"dnfpt-app"}})
	if err != nil {
		t.Fatal(err)
	}
	checkProgress(t, calls, res)
	// dnfpt-app needs dnfpt-lib; of its two builds the newest, alma.1.
	want := map[string]int{rpmPath(testenv.RPMApp): 1, rpmPath(testenv.RPMLibAlma): 1}
	if got := up.RPMHits(); !maps.Equal(got, want) {
		t.Fatalf("upstream RPM requests %v, want %v", got, want)
	}
	if res.Packages != 2 || res.Unresolved != 0 || len(res.NotFound) != 0 || len(res.Failed) != 0 {
		t.Fatalf("result %+v, want 2 packages, nothing unresolved, missing or failed", res)
	}
	if want := 1 + len(repomdRecords(t, up)) + 2; res.Files != want {
		t.Fatalf("files %d, want %d", res.Files, want)
	}
}

func TestWarmFromFileCommand(t *testing.T) {
	up := newUpstream(t, "el9", testenv.InitialRPMs()...)
	proxyURL := startProxy(t, up)

	// As `rpm -qa --qf '%{name}\n'` writes it, with a comment, a blank
	// line and a package of another repo.
	list := filepath.Join(t.TempDir(), "names")
	if err := os.WriteFile(list, []byte("# from host a\ndnfpt-app\n\nkernel-core\ndnfpt-app\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runWarmCommand(t, "", "--proxy", proxyURL, "--repo", "test", "--path", "el9/", "--from-file", list)
	if code != 0 {
		t.Fatalf("warm exited %d", code)
	}
	want := map[string]int{rpmPath(testenv.RPMApp): 1, rpmPath(testenv.RPMLib): 1}
	if got := up.RPMHits(); !maps.Equal(got, want) {
		t.Fatalf("upstream RPM requests %v, want %v", got, want)
	}
	if !strings.Contains(stdout, " failed=0 ") || !strings.Contains(stderr, "1 of the names are not in this repo: kernel-core") {
		t.Fatalf("stdout %q, stderr %q", stdout, stderr)
	}

	// The same from stdin; everything is cached now.
	code, _, _ = runWarmCommand(t, "dnfpt-tool\n", "--proxy", proxyURL, "--repo", "test", "--path", "el9", "--from-file", "-")
	if code != 0 {
		t.Fatalf("warm --from-file - exited %d", code)
	}
	want[rpmPath(testenv.RPMTool)] = 1
	if got := up.RPMHits(); !maps.Equal(got, want) {
		t.Fatalf("upstream RPM requests %v, want %v", got, want)
	}
}

func TestWarmLatestPicksNewestBuild(t *testing.T) {
	up := newUpstream(t, "el9", testenv.RPMLib, testenv.RPMLibAlma, testenv.RPMApp, testenv.RPMTool)
	proxyURL := startProxy(t, up)

	// Packages "" is latest.
	res, err, calls := run(t, warm.Options{Proxy: proxyURL, Repo: "test", Path: "el9"})
	if err != nil {
		t.Fatal(err)
	}
	checkProgress(t, calls, res)
	want := map[string]int{
		rpmPath(testenv.RPMLibAlma): 1, // 1.el9.alma.1 > 1.el9 for rpm
		rpmPath(testenv.RPMApp):     1,
		rpmPath(testenv.RPMTool):    1,
	}
	if got := up.RPMHits(); !maps.Equal(got, want) {
		t.Fatalf("upstream RPM requests %v, want %v", got, want)
	}
	if res.Packages != 3 {
		t.Fatalf("packages %d, want 3", res.Packages)
	}
}

func TestWarmMetadataOnly(t *testing.T) {
	up := newUpstream(t, "el9", testenv.InitialRPMs()...)
	proxyURL := startProxy(t, up)

	res, err, calls := run(t, warm.Options{Proxy: proxyURL, Repo: "test", Path: "el9/", Packages: warm.PackagesNone})
	if err != nil {
		t.Fatal(err)
	}
	checkProgress(t, calls, res)
	records := repomdRecords(t, up)
	if res.Files != 1+len(records) || res.Packages != 0 {
		t.Fatalf("result %+v, want %d files and no packages", res, 1+len(records))
	}
	var size int64
	for _, href := range append(records, "repodata/repomd.xml") {
		if n := up.Hits("/el9/" + href); n != 1 {
			t.Errorf("upstream served %s %d times, want 1", href, n)
		}
		fi, err := os.Stat(filepath.Join(up.dir, "el9", href))
		if err != nil {
			t.Fatal(err)
		}
		size += fi.Size()
	}
	if res.Bytes != size {
		t.Errorf("bytes %d, want %d", res.Bytes, size)
	}
	if got := up.RPMHits(); len(got) != 0 {
		t.Fatalf("upstream RPM requests %v, want none", got)
	}
}

func TestWarmFailureIsRecorded(t *testing.T) {
	up := newUpstream(t, "el9", testenv.InitialRPMs()...)
	proxyURL := startProxy(t, up)
	up.Fail(rpmPath(testenv.RPMTool), http.StatusInternalServerError)

	res, err, calls := run(t, warm.Options{Proxy: proxyURL, Repo: "test", Path: "el9/", Packages: warm.PackagesAll, Concurrency: 1})
	if !errors.Is(err, warm.ErrIncomplete) {
		t.Fatalf("err = %v, want ErrIncomplete", err)
	}
	checkProgress(t, calls, res)
	failed := "el9/Packages/" + testenv.RPMTool
	if len(res.Failed) != 1 || res.Failed[0].Path != failed || res.Failed[0].Err == "" {
		t.Fatalf("failed %+v, want only %s", res.Failed, failed)
	}
	// The others arrived.
	if want := 1 + len(repomdRecords(t, up)) + 2; res.Files != want {
		t.Fatalf("files %d, want %d", res.Files, want)
	}
	for _, rpm := range []string{testenv.RPMApp, testenv.RPMLib} {
		if n := up.Hits(rpmPath(rpm)); n != 1 {
			t.Errorf("%s fetched %d times, want 1", rpm, n)
		}
	}

	// The command says so and exits non-zero.
	code, stdout, stderr := runWarmCommand(t, "", "--proxy", proxyURL, "--repo", "test", "--path", "el9", "--packages", "all")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(stdout, " failed=1 ") || !strings.Contains(stderr, "warm: failed: "+failed+": ") {
		t.Fatalf("stdout %q, stderr %q: want the failed path named", stdout, stderr)
	}
}

func TestWarmUnknownRepo(t *testing.T) {
	up := newUpstream(t, "el9", testenv.RPMTool)
	proxyURL := startProxy(t, up)
	res, err, _ := run(t, warm.Options{Proxy: proxyURL, Repo: "nosuch", Path: "el9/"})
	if !errors.Is(err, warm.ErrIncomplete) || len(res.Failed) != 1 || res.Failed[0].Path != "el9/repodata/repomd.xml" {
		t.Fatalf("%+v, %v: want repomd.xml failed", res, err)
	}
}

// fakeProxy serves the upstream's files as the proxy would, through hook;
// for faults the real proxy never makes.
func fakeProxy(t *testing.T, up *upstream, hook func(w http.ResponseWriter, r *http.Request) bool) string {
	t.Helper()
	files := http.StripPrefix("/test", http.FileServer(http.Dir(up.dir)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hook(w, r) {
			return
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestWarmChecksLength(t *testing.T) {
	up := newUpstream(t, "el9", testenv.InitialRPMs()...)
	short := "/test" + rpmPath(testenv.RPMApp)
	long := "/test" + rpmPath(testenv.RPMLib)
	proxyURL := fakeProxy(t, up, func(w http.ResponseWriter, r *http.Request) bool {
		switch r.URL.Path {
		case short: // a complete response, but not the whole file
			w.Write([]byte("not an rpm"))
			return true
		case long:
			data, _ := os.ReadFile(filepath.Join(up.dir, "el9", "Packages", testenv.RPMLib))
			w.Write(append(data, 0))
			return true
		}
		return false
	})
	res, err, _ := run(t, warm.Options{Proxy: proxyURL, Repo: "test", Path: "el9/", Packages: warm.PackagesAll})
	if !errors.Is(err, warm.ErrIncomplete) {
		t.Fatalf("err = %v, want ErrIncomplete", err)
	}
	var got []string
	for _, f := range res.Failed {
		got = append(got, f.Path)
		if !strings.Contains(f.Err, "metadata says") {
			t.Errorf("%s: error %q does not give the sizes", f.Path, f.Err)
		}
	}
	slices.Sort(got)
	if want := []string{"el9/Packages/" + testenv.RPMApp, "el9/Packages/" + testenv.RPMLib}; !slices.Equal(got, want) {
		t.Fatalf("failed %q, want %q", got, want)
	}
}

func TestWarmConcurrencyBound(t *testing.T) {
	up := newUpstream(t, "el9", allFixtures...)
	for _, limit := range []int{1, 3} {
		var inFlight, peak atomic.Int32
		proxyURL := fakeProxy(t, up, func(w http.ResponseWriter, r *http.Request) bool {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(30 * time.Millisecond)
			return false
		})
		res, err, _ := run(t, warm.Options{Proxy: proxyURL, Repo: "test", Path: "el9/", Packages: warm.PackagesAll, Concurrency: limit})
		if err != nil {
			t.Fatal(err)
		}
		if res.Packages != len(allFixtures) {
			t.Fatalf("packages %d, want %d", res.Packages, len(allFixtures))
		}
		if got := int(peak.Load()); got != limit {
			t.Errorf("concurrency %d: peak of %d requests at once", limit, got)
		}
	}
}

func TestWarmOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  warm.Options
		want warm.Options // when valid
		bad  string       // error substring when not
	}{
		{name: "defaults", opt: warm.Options{Proxy: "http://p", Repo: "r"},
			want: warm.Options{Proxy: "http://p", Repo: "r", Packages: "latest", Concurrency: 4}},
		{name: "names", opt: warm.Options{Proxy: "http://p", Repo: "r", Path: "/9/os", Names: []string{"a"}},
			want: warm.Options{Proxy: "http://p", Repo: "r", Path: "9/os/", Packages: "none", Names: []string{"a"}, Concurrency: 4}},
		{name: "names and latest", opt: warm.Options{Proxy: "https://p/x/", Repo: "r", Packages: "latest", Names: []string{"a"}, Concurrency: 9},
			want: warm.Options{Proxy: "https://p/x/", Repo: "r", Packages: "latest", Names: []string{"a"}, Concurrency: 9}},
		{name: "no proxy", opt: warm.Options{Repo: "r"}, bad: "proxy"},
		{name: "proxy not http", opt: warm.Options{Proxy: "ftp://p", Repo: "r"}, bad: "proxy"},
		{name: "no repo", opt: warm.Options{Proxy: "http://p"}, bad: "repo"},
		{name: "repo with slash", opt: warm.Options{Proxy: "http://p", Repo: "a/b"}, bad: "repo"},
		{name: "escaping path", opt: warm.Options{Proxy: "http://p", Repo: "r", Path: "a/../../b"}, bad: "path"},
		{name: "packages", opt: warm.Options{Proxy: "http://p", Repo: "r", Packages: "newest"}, bad: "packages"},
		{name: "concurrency", opt: warm.Options{Proxy: "http://p", Repo: "r", Concurrency: -1}, bad: "concurrency"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.opt.Normalize()
			if tc.bad != "" {
				if err == nil || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("err = %v, want one about %s", err, tc.bad)
				}
				if _, err := warm.Run(t.Context(), tc.opt, nil); err == nil || errors.Is(err, warm.ErrIncomplete) {
					t.Fatalf("Run: err = %v, want an options error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Proxy != tc.want.Proxy || got.Repo != tc.want.Repo || got.Path != tc.want.Path ||
				got.Packages != tc.want.Packages || got.Concurrency != tc.want.Concurrency || !slices.Equal(got.Names, tc.want.Names) {
				t.Fatalf("Normalize() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestWarmCommandBadFlags(t *testing.T) {
	list := filepath.Join(t.TempDir(), "names")
	if err := os.WriteFile(list, []byte("two names\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--repo", "r"}, "--proxy is required"},
		{[]string{"--proxy", "http://127.0.0.1:1"}, "--repo is required"},
		{[]string{"--proxy", "http://127.0.0.1:1", "--repo", "r", "--packages", "some"}, "packages"},
		{[]string{"--proxy", "http://127.0.0.1:1", "--repo", "r", "--concurrency", "0"}, "concurrency"},
		{[]string{"--proxy", "http://127.0.0.1:1", "--repo", "r", "--bogus"}, "bogus"},
		{[]string{"--proxy", "http://127.0.0.1:1", "--repo", "r", "extra"}, "unexpected argument"},
		{[]string{"--proxy", "http://127.0.0.1:1", "--repo", "r", "--from-file", "/nonexistent/list"}, "nonexistent"},
		{[]string{"--proxy", "http://127.0.0.1:1", "--repo", "r", "--from-file", list}, "not one package name"},
	} {
		code, stdout, stderr := runWarmCommand(t, "", tc.args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tc.msg) {
			t.Errorf("warm %q: exit %d, stdout %q, stderr %q; want 2 and %q", tc.args, code, stdout, stderr, tc.msg)
		}
	}
	// Unreachable proxy: not a usage error, but a failure.
	code, _, stderr := runWarmCommand(t, "", "--proxy", "http://127.0.0.1:1", "--repo", "r")
	if code != 1 || !strings.Contains(stderr, "repodata/repomd.xml") {
		t.Errorf("unreachable proxy: exit %d, stderr %q", code, stderr)
	}
}

func TestWarmCancel(t *testing.T) {
	up := newUpstream(t, "el9", allFixtures...)
	var rpms atomic.Int32
	proxyURL := fakeProxy(t, up, func(_ http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, ".rpm") {
			rpms.Add(1)
		}
		return false
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var last warm.Progress
	res, err := warm.Run(ctx, warm.Options{Proxy: proxyURL, Repo: "test", Path: "el9/", Packages: warm.PackagesAll, Concurrency: 1},
		func(p warm.Progress) {
			last = p
			if strings.HasSuffix(p.Current, ".rpm") {
				cancel() // after the first package
			}
		})
	if !errors.Is(err, warm.ErrIncomplete) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want ErrIncomplete and context.Canceled", err)
	}
	// Cancelled before the metadata arrived: still reported as the cause.
	early, stop := context.WithCancel(t.Context())
	stop()
	if _, err := warm.Run(early, warm.Options{Proxy: proxyURL, Repo: "test", Path: "el9/", Packages: warm.PackagesAll}, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled before the metadata: err = %v, want context.Canceled", err)
	}
	if len(res.Failed) != 0 {
		t.Fatalf("failed %+v: a cancelled run lists no failures", res.Failed)
	}
	if got := rpms.Load(); got != 1 || last.Done >= last.Total {
		t.Fatalf("%d packages requested, progress %+v; want the run stopped after one", got, last)
	}
}
