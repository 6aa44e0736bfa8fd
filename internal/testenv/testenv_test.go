package testenv

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestFixtureRPMs checks that every fixture RPM is what the other tests
// assume: its NEVRA, its dependencies, and the size of the big one.
func TestFixtureRPMs(t *testing.T) {
	rpm := RequireTool(t, "rpm")
	query := func(t *testing.T, file, tag string) []string {
		out, err := exec.Command(rpm, "-qp", "--nosignature", "--nodigest", "--qf", "[%{"+tag+"}\n]", RPMPath(file)).Output()
		if err != nil {
			t.Fatalf("rpm -qp %s: %v", file, err)
		}
		var lines []string
		for l := range strings.Lines(string(out)) {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "rpmlib(") {
				lines = append(lines, l)
			}
		}
		slices.Sort(lines)
		return lines
	}
	tests := []struct {
		file      string
		nevra     string
		provides  []string
		requires  []string
		conflicts []string
	}{
		{RPMLib, "dnfpt-lib-1.0-1.el9.noarch", []string{"dnfpt-lib", "libdnfpt.so.1()(64bit)"}, nil, nil},
		{RPMLibAlma, "dnfpt-lib-1.0-1.el9.alma.1.noarch", []string{"dnfpt-lib", "libdnfpt.so.1()(64bit)", "libdnfpt.so.1(DNFPT_1.1)(64bit)"}, nil, nil},
		{RPMApp, "dnfpt-app-1.0-1.el9.noarch", []string{"dnfpt-app"}, []string{"dnfpt-lib"}, nil},
		{RPMTool, "dnfpt-tool-2.0-1.el9.noarch", []string{"dnfpt-tool"}, nil, nil},
		{RPMExtra, "dnfpt-extra-1.0-1.el9.noarch", []string{"dnfpt-extra"}, nil, nil},
		{RPMBig, "dnfpt-big-1.0-1.el9.noarch", []string{"dnfpt-big"}, nil, nil},
		{RPMConflict, "dnfpt-conflict-1.0-1.noarch", []string{"dnfpt-conflict"}, nil, []string{"abi-divergence(rhel)"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			if got := query(t, tt.file, "NEVRA"); !slices.Equal(got, []string{tt.nevra}) {
				t.Errorf("NEVRA = %q, want %q", got, tt.nevra)
			}
			if got := query(t, tt.file, "PROVIDENAME"); !slices.Equal(got, tt.provides) {
				t.Errorf("provides = %q, want %q", got, tt.provides)
			}
			if got := query(t, tt.file, "REQUIRENAME"); !slices.Equal(got, tt.requires) {
				t.Errorf("requires = %q, want %q", got, tt.requires)
			}
			if got := query(t, tt.file, "CONFLICTNAME"); !slices.Equal(got, tt.conflicts) {
				t.Errorf("conflicts = %q, want %q", got, tt.conflicts)
			}
		})
	}
	fi, err := os.Stat(RPMPath(RPMBig))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() < 4<<20 || fi.Size() > 5<<20 {
		t.Errorf("%s is %d bytes, want between 4 and 5 MiB", RPMBig, fi.Size())
	}
}

// fakeTB records how a helper ended the test.
type fakeTB struct {
	testing.TB
	mu      sync.Mutex
	failed  string
	skipped string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.failed = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.mu.Lock()
	f.skipped = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func TestRequireTool(t *testing.T) {
	if got := RequireTool(t, "sh"); !filepath.IsAbs(got) {
		t.Errorf("RequireTool(sh) = %q, want an absolute path", got)
	}
	for _, ci := range []string{"true", ""} {
		t.Run("CI="+ci, func(t *testing.T) {
			t.Setenv("CI", ci)
			f := &fakeTB{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				RequireTool(f, "dnfproxy-no-such-tool")
			}()
			<-done
			if ci == "true" {
				if f.failed == "" || !strings.Contains(f.failed, "make test") {
					t.Errorf("in CI: failed=%q skipped=%q, want a failure that names `make test`", f.failed, f.skipped)
				}
			} else if f.skipped == "" || f.failed != "" {
				t.Errorf("outside CI: failed=%q skipped=%q, want a skip", f.failed, f.skipped)
			}
		})
	}
}

func TestMakeRepoFlavours(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string // suffixes of files that must be in repodata/
	}{
		{"default", nil, []string{"-primary.xml.gz", "-primary.sqlite.bz2"}},
		{"xz", []string{"--general-compress-type=xz", "--no-database"}, []string{"-primary.xml.xz", "-filelists.xml.xz"}},
		{"zck", []string{"--zck"}, []string{"-primary.xml.zck", "-primary.xml.gz"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			MakeRepo(t, dir, InitialRPMs(), tt.args...)
			entries, err := os.ReadDir(filepath.Join(dir, "repodata"))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if !slices.Contains(names, "repomd.xml") {
				t.Errorf("repodata has no repomd.xml: %q", names)
			}
			for _, suffix := range tt.want {
				if !slices.ContainsFunc(names, func(n string) bool { return strings.HasSuffix(n, suffix) }) {
					t.Errorf("repodata has no *%s: %q", suffix, names)
				}
			}
			if tt.name == "xz" && slices.ContainsFunc(names, func(n string) bool { return strings.Contains(n, "sqlite") }) {
				t.Errorf("--no-database still wrote sqlite files: %q", names)
			}
		})
	}
}

// countingServer serves dir over HTTP and counts requests per path.
func countingServer(t *testing.T, dir string) (*httptest.Server, func(suffix string) int64) {
	var mu sync.Mutex
	hits := map[string]*atomic.Int64{}
	fs := http.FileServer(http.Dir(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		c := hits[r.URL.Path]
		if c == nil {
			c = new(atomic.Int64)
			hits[r.URL.Path] = c
		}
		mu.Unlock()
		c.Add(1)
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	count := func(suffix string) int64 {
		mu.Lock()
		defer mu.Unlock()
		var n int64
		for p, c := range hits {
			if strings.HasSuffix(p, suffix) {
				n += c.Load()
			}
		}
		return n
	}
	return srv, count
}

// TestDNF proves the harness with the real dnf against a plain HTTP server:
// makecache, repoquery, an install that pulls a dependency, an upstream update,
// and a fresh cache that has to fetch everything again.
func TestDNF(t *testing.T) {
	dir := t.TempDir()
	MakeRepo(t, dir, InitialRPMs())
	srv, hits := countingServer(t, dir)
	dnf := NewDNF(t, map[string]string{"dnfpt": srv.URL + "/"})

	dnf.MakeCache()
	if hits("/repodata/repomd.xml") == 0 || hits("-primary.xml.gz") != 1 {
		t.Fatalf("makecache fetched repomd.xml %d times, primary.xml.gz %d times; want >0 and 1",
			hits("/repodata/repomd.xml"), hits("-primary.xml.gz"))
	}
	if got, want := dnf.RepoQuery(), InitialNEVRAs(); !slices.Equal(got, want) {
		t.Fatalf("repoquery = %q, want %q", got, want)
	}
	if got := dnf.RepoQuery("--whatprovides", "libdnfpt.so.1()(64bit)"); !slices.Equal(got, []string{"dnfpt-lib-1.0-1.el9.noarch"}) {
		t.Errorf("repoquery --whatprovides libdnfpt.so.1()(64bit) = %q", got)
	}

	t.Run("install", func(t *testing.T) {
		if dnf.Installed("dnfpt-app") {
			t.Fatal("dnfpt-app installed before Install")
		}
		dnf.Install("dnfpt-app")
		for _, name := range []string{"dnfpt-app", "dnfpt-lib"} {
			if !dnf.Installed(name) {
				t.Errorf("%s is not installed after `dnf install dnfpt-app`", name)
			}
		}
		if dnf.Installed("dnfpt-tool") {
			t.Error("dnfpt-tool is installed but was not asked for")
		}
		if _, err := os.Stat(filepath.Join(dnf.Root(), "usr/share/dnfproxy-test/app/VERSION")); err != nil {
			t.Errorf("payload of dnfpt-app missing: %v", err)
		}
		if n := hits("/Packages/" + RPMApp); n != 1 {
			t.Errorf("%s fetched %d times, want 1", RPMApp, n)
		}
	})

	t.Run("install fails for a missing package", func(t *testing.T) {
		if _, _, err := dnf.Run("install", "dnfpt-no-such-package"); err == nil {
			t.Error("dnf install of a missing package succeeded")
		}
	})

	t.Run("update upstream", func(t *testing.T) {
		UpdateRepo(t, dir, RPMExtra)
		want := append(InitialNEVRAs(), "dnfpt-extra-1.0-1.el9.noarch")
		slices.Sort(want)
		if got := dnf.RepoQuery(); !slices.Equal(got, want) {
			t.Fatalf("after createrepo_c --update, repoquery = %q, want %q", got, want)
		}
	})

	t.Run("fresh cache", func(t *testing.T) {
		before := hits("-primary.xml.gz")
		dnf.MakeCache() // same cache: repomd.xml is revalidated, primary is not refetched
		if n := hits("-primary.xml.gz"); n != before {
			t.Fatalf("makecache with a warm cache fetched primary again (%d → %d)", before, n)
		}
		old := dnf.CacheDir()
		dnf.FreshCache()
		if _, err := os.Stat(old); !os.IsNotExist(err) {
			t.Errorf("old cache dir still there: %v", err)
		}
		dnf.MakeCache()
		if n := hits("-primary.xml.gz"); n != before+1 {
			t.Errorf("makecache after FreshCache: primary fetched %d more times, want 1", n-before)
		}
		if dnf.CacheDir() == old {
			t.Error("FreshCache kept the cache directory")
		}
	})

	t.Run("clean all", func(t *testing.T) {
		dnf.CleanAll()
		before := hits("-primary.xml.gz")
		dnf.MakeCache()
		if n := hits("-primary.xml.gz"); n != before+1 {
			t.Errorf("makecache after clean all: primary fetched %d more times, want 1", n-before)
		}
	})
}

// TestDNFBigPackage installs the 4 MiB fixture, the one the streaming tests
// use, and checks its payload arrived whole.
func TestDNFBigPackage(t *testing.T) {
	RequireRoot(t)
	dir := t.TempDir()
	MakeRepo(t, dir, []string{RPMBig}, "--general-compress-type=xz")
	srv, _ := countingServer(t, dir)
	dnf := NewDNF(t, map[string]string{"big": srv.URL})
	dnf.Install("dnfpt-big")
	fi, err := os.Stat(filepath.Join(dnf.Root(), "usr/share/dnfproxy-test/big/data.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 4<<20 {
		t.Errorf("data.bin is %d bytes, want %d", fi.Size(), 4<<20)
	}
}

func TestNewDNFConfig(t *testing.T) {
	RequireTool(t, "dnf")
	dnf := NewDNF(t, map[string]string{"a": "http://127.0.0.1:1/a/"},
		WithMetadataExpire("1h"),
		WithMainOption("minrate", "1"),
		WithRepoOption("a", "repo_gpgcheck", "1"))
	b, err := os.ReadFile(dnf.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	for _, want := range []string{"metadata_expire=1h\n", "minrate=1\n", "[a]\n", "baseurl=http://127.0.0.1:1/a/\n", "repo_gpgcheck=1\n", "reposdir=", "plugins=0\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("dnf.conf lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "metadata_expire=0") {
		t.Errorf("WithMetadataExpire did not replace the default:\n%s", conf)
	}
}
