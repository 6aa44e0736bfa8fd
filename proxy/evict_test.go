package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/dnfproxy/dnfproxy/internal/keys"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// evictVlogSize is the value-log file size of the eviction tests' stores:
// small, so that the one file badger never rewrites (the one being
// written) does not hide what GC reclaims.
const evictVlogSize = 2 << 20

// startEvictProxy is startProxy with a bounded store whose Accessed times
// follow every read (so LRU order is the order of the test's requests),
// and with eviction's grace periods off, so that only the current
// generation protects repodata files.
func startEvictProxy(t *testing.T, repos []config.Repo, maxSize int64, store cache.Store) *testProxy {
	t.Helper()
	cfg := config.Default()
	cfg.Storage.Dir = t.TempDir()
	cfg.Storage.MaxSize = config.ByteSize(maxSize)
	cfg.Repos = repos
	if store == nil {
		opt := cache.DefaultBadgerOptions()
		opt.AccessedGranularity = time.Nanosecond
		opt.ValueLogFileSize = evictVlogSize
		b, err := cache.OpenBadger(filepath.Join(cfg.Storage.Dir, "cache"), opt)
		if err != nil {
			t.Fatal(err)
		}
		store = b
	}
	p := &testProxy{store: store, cfg: cfg}
	var err error
	p.srv, err = New(cfg, store, testLogger(t))
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	p.http = httptest.NewUnstartedServer(nil)
	p.http.Config = p.srv.HTTPServer("")
	p.http.Start()
	t.Cleanup(p.Close)
	return p
}

// bigRepo makes a repo of the fixture RPMs plus n copies of the ~4 MiB
// dnfpt-big under Packages/bN/ (same bytes, distinct paths, each listed in
// primary.xml), and returns its directory and the package paths.
func bigRepo(t *testing.T, n int) (dir string, bigs []string) {
	t.Helper()
	dir = newRepoDir(t, "", append(testenv.InitialRPMs(), testenv.RPMBig))
	data := readFile(t, testenv.RPMPath(testenv.RPMBig))
	for i := range n {
		rel := fmt.Sprintf("Packages/b%d/%s", i, testenv.RPMBig)
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, rel), data, 0o644); err != nil {
			t.Fatal(err)
		}
		bigs = append(bigs, rel)
	}
	testenv.CreateRepo(t, dir)
	return dir, bigs
}

// repoFiles lists every file of an upstream repo directory, relative to it.
func repoFiles(t *testing.T, dir string) (files []string, size int64) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		files = append(files, filepath.ToSlash(rel))
		size += fi.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files, size
}

// fetchOK GETs a proxy path and checks the answer is the upstream file.
func (p *testProxy) fetchOK(t *testing.T, repo, upDir, rel string) {
	t.Helper()
	code, body, err := p.get(t, "/"+repo+"/"+rel)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET %s: %d, %v", rel, code, err)
	}
	if want := readFile(t, filepath.Join(upDir, rel)); !bytes.Equal(body, want) {
		t.Fatalf("GET %s: %d bytes differ from upstream's %d", rel, len(body), len(want))
	}
	p.settle(t) // the store commit follows the client's last byte
}

func (p *testProxy) cached(t *testing.T, key string) bool {
	t.Helper()
	_, err := p.store.Stat(context.Background(), key)
	if err != nil && !errors.Is(err, cache.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func storeSize(t *testing.T, s cache.Store) int64 {
	t.Helper()
	_, n := s.(cache.Sizer).Size()
	return n
}

func diskUsage(t *testing.T, s cache.Store) int64 {
	t.Helper()
	n, err := s.(cache.DiskUser).DiskUsage()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestEvictWarmOverMaxSize: with max_size below the repo's size, the store
// stays under it after every file was fetched (what a warm does), the
// badger directory is about that size on disk after GC, and repomd.xml and
// every file it lists are still served with upstream down.
func TestEvictWarmOverMaxSize(t *testing.T) {
	const maxSize = 10 << 20
	dir, _ := bigRepo(t, 10) // ~44 MiB
	up := newFakeUpstream(t, dir)
	p := startEvictProxy(t, []config.Repo{testRepo("r", up.URL(), time.Hour)}, maxSize, nil)

	code, repomd, err := p.get(t, "/r/repodata/repomd.xml")
	if err != nil || code != http.StatusOK {
		t.Fatalf("repomd.xml: %d, %v", code, err)
	}
	files, repoSize := repoFiles(t, dir)
	if repoSize < 4*maxSize {
		t.Fatalf("test repo is only %d bytes", repoSize)
	}
	// Metadata first, as dnf and warm do: it is then the least recently
	// used, and only the generation's pin keeps it.
	sort.SliceStable(files, func(i, j int) bool {
		return strings.HasPrefix(files[i], "repodata/") && !strings.HasPrefix(files[j], "repodata/")
	})
	for _, f := range files {
		if strings.HasSuffix(f, "repomd.xml") {
			continue
		}
		p.fetchOK(t, "r", dir, f)
	}
	res, err := p.srv.Evict(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := storeSize(t, p.store); got > maxSize {
		t.Errorf("store holds %d bytes after the warm, max_size is %d", got, maxSize)
	}
	// On disk: the live objects (<= max_size), at most 20% garbage in sealed
	// value-log files (GCFinalDiscardRatio), the file being written (one
	// value-log file, up to twice its size before rotation) and a few MiB of
	// LSM, memtable log and discard stats.
	du := diskUsage(t, p.store)
	limit := int64(maxSize/0.8) + 2*evictVlogSize + 4<<20
	t.Logf("repo %d MiB; store %d MiB; badger dir %d MiB on disk (limit %d MiB); last round: %+v",
		repoSize>>20, storeSize(t, p.store)>>20, du>>20, limit>>20, res)
	if du > limit {
		t.Errorf("badger directory takes %d bytes after GC, want at most %d", du, limit)
	}

	// Metadata is still served, from the cache alone.
	up.down.Store(true)
	code, again, err := p.get(t, "/r/repodata/repomd.xml")
	if err != nil || code != http.StatusOK || !bytes.Equal(again, repomd) {
		t.Fatalf("repomd.xml with upstream down: %d, %v", code, err)
	}
	md, err := metadata.ParseRepomd(repomd)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range md.Records {
		p.fetchOK(t, "r", dir, rec.Href)
	}
}

// TestEvictLRU: objects read recently survive an eviction, the least
// recently read go, and an evicted package comes from upstream again.
func TestEvictLRU(t *testing.T) {
	dir, bigs := bigRepo(t, 4)
	up := newFakeUpstream(t, dir)
	big := int64(len(readFile(t, filepath.Join(dir, bigs[0]))))
	// Room for three big packages and the metadata; not for four.
	maxSize := 3*big + big/2
	p := startEvictProxy(t, []config.Repo{testRepo("r", up.URL(), time.Hour)}, maxSize, nil)

	p.fetchOK(t, "r", dir, "repodata/repomd.xml")
	for _, b := range bigs[:3] {
		p.fetchOK(t, "r", dir, b)
	}
	p.fetchOK(t, "r", dir, bigs[0]) // b0 is now the most recently used
	if n := up.Hits("/" + bigs[0]); n != 1 {
		t.Fatalf("%s fetched %d times from upstream, want once", bigs[0], n)
	}
	p.fetchOK(t, "r", dir, bigs[3]) // over the bound
	if _, err := p.srv.Evict(t.Context()); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false, true, true} {
		if got := p.cached(t, keys.ObjKey("r", bigs[i])); got != want {
			t.Errorf("%s cached = %v, want %v (b1 is the least recently read)", bigs[i], got, want)
		}
	}
	if got := storeSize(t, p.store); got > maxSize {
		t.Errorf("store holds %d bytes, max_size is %d", got, maxSize)
	}
	p.fetchOK(t, "r", dir, bigs[1])
	if n := up.Hits("/" + bigs[1]); n != 2 {
		t.Errorf("evicted %s fetched %d times from upstream, want twice", bigs[1], n)
	}
	p.fetchOK(t, "r", dir, bigs[0])
	if n := up.Hits("/" + bigs[0]); n != 1 {
		t.Errorf("kept %s fetched %d times from upstream, want once", bigs[0], n)
	}
}

// TestEvictMemoryStore: eviction works on the in-memory store too.
func TestEvictMemoryStore(t *testing.T) {
	dir, bigs := bigRepo(t, 3)
	up := newFakeUpstream(t, dir)
	const maxSize = 6 << 20
	p := startEvictProxy(t, []config.Repo{testRepo("r", up.URL(), time.Hour)}, maxSize, cache.NewMemory())
	p.fetchOK(t, "r", dir, "repodata/repomd.xml")
	for _, b := range bigs {
		p.fetchOK(t, "r", dir, b)
		time.Sleep(time.Millisecond) // distinct Accessed times
	}
	if _, err := p.srv.Evict(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := storeSize(t, p.store); got > maxSize {
		t.Errorf("store holds %d bytes, max_size is %d", got, maxSize)
	}
	if !p.cached(t, keys.ObjKey("r", bigs[2])) || p.cached(t, keys.ObjKey("r", bigs[0])) {
		t.Errorf("want the last package kept and the first evicted")
	}
}

// TestPurgeRefetches: a purge removes the objects from the store at once,
// the next request fetches from upstream again, and GC gives the space
// back to the disk.
func TestPurgeRefetches(t *testing.T) {
	dir, bigs := bigRepo(t, 2)
	up := newFakeUpstream(t, dir)
	p := startEvictProxy(t, []config.Repo{testRepo("r", up.URL(), time.Hour)}, 1<<30, nil)
	p.fetchOK(t, "r", dir, "repodata/repomd.xml")
	for _, b := range bigs {
		p.fetchOK(t, "r", dir, b)
	}
	p.fetchOK(t, "r", dir, "Packages/"+testenv.RPMLib)
	sizeBefore := storeSize(t, p.store)
	if _, err := p.srv.Evict(t.Context()); err != nil { // settle: GC of nothing
		t.Fatal(err)
	}
	duBefore := diskUsage(t, p.store)

	res, err := p.srv.Purge(t.Context(), "r", "Packages/b")
	if err != nil {
		t.Fatal(err)
	}
	if res.Objects != len(bigs) {
		t.Errorf("purge removed %d objects, want %d", res.Objects, len(bigs))
	}
	for _, b := range bigs {
		if p.cached(t, keys.ObjKey("r", b)) {
			t.Errorf("%s still in the store after the purge", b)
		}
	}
	if !p.cached(t, keys.ObjKey("r", "Packages/"+testenv.RPMLib)) {
		t.Errorf("purge of Packages/b removed Packages/%s", testenv.RPMLib)
	}
	if got, want := storeSize(t, p.store), sizeBefore-res.Bytes; got != want {
		t.Errorf("store size %d after purge, want %d", got, want)
	}

	// The disk gets the space back at the next GC.
	if _, err := p.srv.Evict(t.Context()); err != nil {
		t.Fatal(err)
	}
	duAfter := diskUsage(t, p.store)
	t.Logf("badger dir: %d KiB before the purge of %d KiB, %d KiB after GC", duBefore>>10, res.Bytes>>10, duAfter>>10)
	if duAfter > duBefore-res.Bytes/2 {
		t.Errorf("badger directory %d bytes after purge and GC, was %d: less than half of the %d purged bytes reclaimed",
			duAfter, duBefore, res.Bytes)
	}

	p.fetchOK(t, "r", dir, bigs[0])
	if n := up.Hits("/" + bigs[0]); n != 2 {
		t.Errorf("purged %s fetched %d times from upstream, want twice", bigs[0], n)
	}
	p.fetchOK(t, "r", dir, "Packages/"+testenv.RPMLib)
	if n := up.Hits("/Packages/" + testenv.RPMLib); n != 1 {
		t.Errorf("unpurged %s fetched %d times from upstream, want once", testenv.RPMLib, n)
	}
}
