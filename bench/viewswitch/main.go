// Command viewswitch measures the time from a new upstream repomd.xml to
// the proxy serving it: in the raw view (fetch and verify every listed file,
// build the package index) and in the annotate view (the same, plus the
// rules analysis, the rewrite of primary, filelists and other, and the
// signature). Both are measured in the same run, on the same repos.
//
//	go run ./bench/genrepo -n 30000 /tmp/gen-a
//	go run ./bench/genrepo -n 30001 /tmp/gen-b
//	go run ./bench/viewswitch -old /tmp/gen-a -new /tmp/gen-b
//
// The upstream serves -old until the proxy has loaded it, then -new; the
// timed request is the first repomd.xml request after the TTL.
package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/proxy"
)

// The rule matches names ending in 00, 10, 20, 30 or 40: 5% of genrepo's.
const rules = `rules:
  - name: five-percent
    match: {name: "*[0-4]0"}
    class: abi-changed
    reason: "benchmark rule"
`

func main() {
	oldDir := flag.String("old", "", "genrepo output served first")
	newDir := flag.String("new", "", "genrepo output served after the switch")
	reps := flag.Int("reps", 3, "rounds per view")
	key := flag.String("key", "proxy/testdata/signing-key.asc", "signing key (armored)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the rounds to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		check(err)
		check(pprof.StartCPUProfile(f))
		defer pprof.StopCPUProfile()
	}
	if *oldDir == "" || *newDir == "" {
		flag.Usage()
		os.Exit(2)
	}
	var serveNew atomic.Bool
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dir := *oldDir
		if serveNew.Load() {
			dir = *newDir
		}
		http.StripPrefix("/", http.FileServer(http.Dir(dir))).ServeHTTP(w, r)
	}))
	defer up.Close()
	tmp, err := os.MkdirTemp("", "viewswitch-")
	check(err)
	defer os.RemoveAll(tmp)
	rulesFile := filepath.Join(tmp, "rules.yaml")
	check(os.WriteFile(rulesFile, []byte(rules), 0o644))

	times := map[string][]time.Duration{}
	for i := 0; i < *reps; i++ {
		for _, mode := range []config.Mode{config.ModeOff, config.ModeAnnotate} {
			serveNew.Store(false)
			d, err := round(tmp, up.URL+"/", mode, rulesFile, *key, &serveNew)
			check(err)
			times[string(mode)] = append(times[string(mode)], d)
			fmt.Fprintf(os.Stderr, "round %d %-8s %v\n", i+1, mode, d.Round(time.Millisecond))
		}
	}
	off, ann := median(times["off"]), median(times["annotate"])
	fmt.Printf("new repomd.xml to served generation: raw %v, annotate %v (median of %d), ratio %.2f\n",
		off.Round(time.Millisecond), ann.Round(time.Millisecond), *reps, ann.Seconds()/off.Seconds())
	fmt.Printf("peak RSS of this process (VmHWM): %s\n", vmHWM())
}

// round loads the old generation into a fresh proxy, switches upstream to
// the new one and times the request that brings the new one in.
func round(tmp, upURL string, mode config.Mode, rulesFile, key string, serveNew *atomic.Bool) (time.Duration, error) {
	dir, err := os.MkdirTemp(tmp, "store-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	cfg := config.Default()
	cfg.Storage.Dir = dir
	cfg.RuleFiles = []string{rulesFile}
	cfg.Signing.KeyFile = key
	r := config.NewRepo("r", upURL)
	r.MetadataTTL = config.Duration(200 * time.Millisecond)
	r.Compat.Mode = mode
	cfg.Repos = []config.Repo{r}
	store, err := cache.OpenBadger(filepath.Join(dir, "cache"), cache.DefaultBadgerOptions())
	if err != nil {
		return 0, err
	}
	defer store.Close()
	srv, err := proxy.New(cfg, store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return 0, err
	}
	defer srv.Close()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	get := func() ([]byte, error) {
		resp, err := http.Get(hs.URL + "/r/repodata/repomd.xml")
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("repomd.xml: %s", resp.Status)
		}
		return io.ReadAll(resp.Body)
	}
	first, err := get()
	if err != nil {
		return 0, err
	}
	serveNew.Store(true)
	time.Sleep(300 * time.Millisecond) // past the TTL
	start := time.Now()
	second, err := get()
	d := time.Since(start)
	if err != nil {
		return 0, err
	}
	if string(first) == string(second) {
		return 0, fmt.Errorf("the proxy did not switch to the new generation")
	}
	if mode == config.ModeAnnotate && !strings.Contains(string(second), "abi-divergence") {
		return 0, fmt.Errorf("annotate view lacks the abi-divergence record")
	}
	return d, nil
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func vmHWM() string {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:"))
		}
	}
	return "unknown"
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "viewswitch:", err)
		os.Exit(1)
	}
}
