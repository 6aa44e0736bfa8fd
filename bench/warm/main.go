// Command warm measures `dnfproxy warm` against a sequential fetch of the
// same URLs, each through a fresh in-process proxy (badger store, as
// dnfproxy serve runs it) in front of a slow upstream.
//
// The repo is generated: -n small packages of random bytes (the proxy checks
// only size and checksum against primary.xml, so they need not be real RPMs)
// described by a hand-built primary.xml.gz. The upstream is an httptest
// server that waits -latency before each answer, to model the round trip
// to a real mirror, and counts requests and bytes per path: every file must
// be fetched from it exactly once in every run.
//
//	go run ./bench/warm [-n 2000] [-concurrency 8] [-latency 2ms] [-reps 3]
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/warm"
	"github.com/dnfproxy/dnfproxy/proxy"
)

type params struct {
	n           int
	minSize     int
	maxSize     int
	latency     time.Duration
	concurrency int
	reps        int
	memory      bool // in-memory store instead of badger
}

func main() {
	var p params
	flag.IntVar(&p.n, "n", 2000, "packages in the repo")
	flag.IntVar(&p.minSize, "min-size", 2<<10, "smallest package, bytes")
	flag.IntVar(&p.maxSize, "max-size", 8<<10, "largest package, bytes")
	flag.DurationVar(&p.latency, "latency", 2*time.Millisecond, "upstream delay before each answer")
	flag.IntVar(&p.concurrency, "concurrency", 8, "warm --concurrency")
	flag.IntVar(&p.reps, "reps", 3, "runs of each mode; the median is reported")
	flag.BoolVar(&p.memory, "memory", false, "use the in-memory store instead of badger")
	flag.Parse()
	if flag.NArg() > 0 || p.n < 1 || p.minSize < 1 || p.maxSize < p.minSize || p.concurrency < 1 || p.reps < 1 {
		flag.Usage()
		os.Exit(2)
	}
	rep, err := measure(context.Background(), p, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/warm:", err)
		os.Exit(1)
	}
	fmt.Print(rep.markdown())
}

// repo is a generated repository on disk.
type repo struct {
	dir   string
	files []string // every path below the root: repomd.xml, repodata, packages
	bytes int64    // their total size
}

// makeRepo writes n packages and their metadata under dir.
func makeRepo(dir string, p params) (*repo, error) {
	if err := os.MkdirAll(filepath.Join(dir, "Packages"), 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "repodata"), 0o755); err != nil {
		return nil, err
	}
	r := &repo{dir: dir}
	rng := rand.New(rand.NewPCG(1, 2))
	var prim bytes.Buffer
	fmt.Fprintf(&prim, `<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="%d">
`, p.n)
	var pkgs []string
	for i := range p.n {
		name := fmt.Sprintf("bench-%05d", i)
		href := fmt.Sprintf("Packages/%s-1.0-1.el9.noarch.rpm", name)
		data := make([]byte, p.minSize+rng.IntN(p.maxSize-p.minSize+1))
		for k := range data {
			data[k] = byte(rng.Uint32())
		}
		if err := os.WriteFile(filepath.Join(dir, href), data, 0o644); err != nil {
			return nil, err
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&prim, `<package type="rpm">
  <name>%s</name>
  <arch>noarch</arch>
  <version epoch="0" ver="1.0" rel="1.el9"/>
  <checksum type="sha256" pkgid="YES">%s</checksum>
  <summary>benchmark package</summary>
  <size package="%d" installed="%d" archive="%d"/>
  <location href="%s"/>
  <format>
    <rpm:provides><rpm:entry name="%s" flags="EQ" epoch="0" ver="1.0" rel="1.el9"/></rpm:provides>
  </format>
</package>
`, name, hex.EncodeToString(sum[:]), len(data), len(data), len(data), href, name)
		pkgs = append(pkgs, href)
		r.bytes += int64(len(data))
	}
	prim.WriteString("</metadata>\n")

	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(prim.Bytes())
	if err := zw.Close(); err != nil {
		return nil, err
	}
	open, sum := sha256.Sum256(prim.Bytes()), sha256.Sum256(gz.Bytes())
	primHref := "repodata/" + hex.EncodeToString(sum[:]) + "-primary.xml.gz"
	if err := os.WriteFile(filepath.Join(dir, primHref), gz.Bytes(), 0o644); err != nil {
		return nil, err
	}
	repomd := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">
  <revision>1704067200</revision>
  <data type="primary">
    <checksum type="sha256">%s</checksum>
    <open-checksum type="sha256">%s</open-checksum>
    <location href="%s"/>
    <timestamp>1704067200</timestamp>
    <size>%d</size>
    <open-size>%d</open-size>
  </data>
</repomd>
`, hex.EncodeToString(sum[:]), hex.EncodeToString(open[:]), primHref, gz.Len(), prim.Len())
	if err := os.WriteFile(filepath.Join(dir, "repodata", "repomd.xml"), []byte(repomd), 0o644); err != nil {
		return nil, err
	}
	r.files = append([]string{"repodata/repomd.xml", primHref}, pkgs...)
	r.bytes += int64(gz.Len() + len(repomd))
	return r, nil
}

// upstream serves a repo slowly and counts what it sends.
type upstream struct {
	srv   *httptest.Server
	mu    sync.Mutex
	hits  map[string]int
	bytes int64
}

func newUpstream(dir string, latency time.Duration) *upstream {
	u := &upstream{hits: map[string]int{}}
	files := http.FileServer(http.Dir(dir))
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(latency)
		cw := &countingWriter{ResponseWriter: w}
		files.ServeHTTP(cw, r)
		u.mu.Lock()
		u.hits[r.URL.Path]++
		u.bytes += cw.n
		u.mu.Unlock()
	}))
	return u
}

func (u *upstream) reset() {
	u.mu.Lock()
	u.hits = map[string]int{}
	u.bytes = 0
	u.mu.Unlock()
}

// check reports an error unless every file was fetched exactly once.
func (u *upstream) check(r *repo) (requests int, bytes int64, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, n := range u.hits {
		requests += n
	}
	for _, f := range r.files {
		if n := u.hits["/"+f]; n != 1 {
			return requests, u.bytes, fmt.Errorf("upstream served %s %d times, want 1", f, n)
		}
	}
	// The proxy also asks once for repomd.xml.asc, which this repo has not.
	if extra := requests - len(r.files) - u.hits["/repodata/repomd.xml.asc"] - u.hits["/repodata/repomd.xml.key"]; extra != 0 {
		return requests, u.bytes, fmt.Errorf("upstream served %d requests for %d files", requests, len(r.files))
	}
	return requests, u.bytes, nil
}

// countingWriter counts the body bytes of 200 answers.
type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (c *countingWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(p)
	if c.status == http.StatusOK {
		c.n += int64(n)
	}
	return n, err
}

// startProxy runs a fresh proxy over up; stop closes it and its store.
func startProxy(up *upstream, p params, dir string) (url string, stop func(), err error) {
	cfg := config.Default()
	cfg.Storage.Dir = dir
	rc := config.NewRepo("bench", up.srv.URL+"/")
	rc.MetadataTTL = config.Duration(time.Hour)
	cfg.Repos = []config.Repo{rc}
	var store cache.Store
	if p.memory {
		store = cache.NewMemory()
	} else {
		b, err := cache.OpenBadger(filepath.Join(dir, "cache"), cache.DefaultBadgerOptions())
		if err != nil {
			return "", nil, err
		}
		store = b
	}
	srv, err := proxy.New(cfg, store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		store.Close()
		return "", nil, err
	}
	hs := httptest.NewUnstartedServer(nil)
	hs.Config = srv.HTTPServer("")
	hs.Start()
	return hs.URL, func() { hs.Close(); srv.Close(); store.Close() }, nil
}

// sequential GETs every file of r through the proxy, one after the other.
func sequential(ctx context.Context, proxyURL string, r *repo) error {
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	defer client.CloseIdleConnections()
	for _, f := range r.files {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, proxyURL+"/bench/"+f, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", f, resp.Status)
		}
	}
	return nil
}

// run is one measured run.
type run struct {
	elapsed  time.Duration
	requests int
	bytes    int64
}

type report struct {
	p          params
	files      int
	repoBytes  int64
	seq, conc  []run
	seqMedian  run
	concMedian run
}

func median(rs []run) run {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b run) int { return int(a.elapsed - b.elapsed) })
	return s[len(s)/2]
}

// measure builds the repo and runs both modes p.reps times, alternating.
func measure(ctx context.Context, p params, log io.Writer) (*report, error) {
	tmp, err := os.MkdirTemp("", "dnfproxy-bench-warm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	r, err := makeRepo(filepath.Join(tmp, "repo"), p)
	if err != nil {
		return nil, err
	}
	up := newUpstream(r.dir, p.latency)
	defer up.srv.Close()
	rep := &report{p: p, files: len(r.files), repoBytes: r.bytes}

	for i := range p.reps {
		for _, mode := range []string{"sequential", "warm"} {
			up.reset()
			url, stop, err := startProxy(up, p, filepath.Join(tmp, fmt.Sprintf("store-%s-%d", mode, i)))
			if err != nil {
				return nil, err
			}
			start := time.Now()
			if mode == "sequential" {
				err = sequential(ctx, url, r)
			} else {
				var res warm.Result
				res, err = warm.Run(ctx, warm.Options{Proxy: url, Repo: "bench", Packages: warm.PackagesAll, Concurrency: p.concurrency}, nil)
				if err == nil && res.Files != len(r.files) {
					err = fmt.Errorf("warm fetched %d files, want %d", res.Files, len(r.files))
				}
			}
			elapsed := time.Since(start)
			stop()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", mode, err)
			}
			requests, bytes, err := up.check(r)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", mode, err)
			}
			if bytes != r.bytes {
				return nil, fmt.Errorf("%s: upstream sent %d bytes, the repo has %d", mode, bytes, r.bytes)
			}
			one := run{elapsed: elapsed, requests: requests, bytes: bytes}
			if mode == "sequential" {
				rep.seq = append(rep.seq, one)
			} else {
				rep.conc = append(rep.conc, one)
			}
			fmt.Fprintf(log, "run %d %-10s %8.3fs %d requests %d bytes\n", i+1, mode, elapsed.Seconds(), requests, bytes)
		}
	}
	if len(rep.seq) == 0 || len(rep.conc) == 0 {
		return nil, errors.New("no runs")
	}
	rep.seqMedian, rep.concMedian = median(rep.seq), median(rep.conc)
	return rep, nil
}

func (r *report) markdown() string {
	var b bytes.Buffer
	store := "badger"
	if r.p.memory {
		store = "memory"
	}
	fmt.Fprintf(&b, "### dnfproxy warm: %d packages of %d–%d bytes, upstream latency %s, %s store, median of %d\n\n",
		r.p.n, r.p.minSize, r.p.maxSize, r.p.latency, store, r.p.reps)
	fmt.Fprintf(&b, "| mode | time | files/s | upstream requests | upstream bytes |\n|---|---|---|---|---|\n")
	for _, row := range []struct {
		name string
		run  run
	}{{"sequential GETs", r.seqMedian}, {fmt.Sprintf("warm --concurrency %d", r.p.concurrency), r.concMedian}} {
		fmt.Fprintf(&b, "| %s | %.3fs | %.0f | %d | %d |\n", row.name, row.run.elapsed.Seconds(),
			float64(r.files)/row.run.elapsed.Seconds(), row.run.requests, row.run.bytes)
	}
	fmt.Fprintf(&b, "\nSpeed-up: %.2f×. Repo: %d files, %d bytes; every file fetched from upstream exactly once in every run\n"+
		"(the one more request is the proxy asking for repomd.xml.asc, which this repo has not; a 404).\n",
		r.seqMedian.elapsed.Seconds()/r.concMedian.elapsed.Seconds(), r.files, r.repoBytes)
	return b.String()
}
