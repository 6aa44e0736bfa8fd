// Command coldannotate measures a cold annotate view end to end: from the
// first repomd.xml request to a fresh proxy until the rewritten primary.xml
// is served, against fetching primary, filelists and other from the same
// upstream and decompressing and recompressing them with the same codecs
// (metadata.Decompress, metadata.NewFileWriter). Rounds alternate the
// order; the ratio of each round is reported with the median.
//
//	go run ./bench/genrepo -n 30000 /tmp/gen-a
//	go run ./bench/coldannotate -repo /tmp/gen-a
//
// The proxy side runs in a child process (this command re-executed with
// -child), so its peak RSS (VmHWM) is the proxy's and its client's alone;
// the upstream HTTP server and the baseline run in the parent.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"time"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/metadata"
	"github.com/dnfproxy/dnfproxy/proxy"
)

// The rule matches names ending in 00, 10, 20, 30 or 40: 5% of genrepo's.
const rules = `rules:
  - name: five-percent
    match: {name: "*[0-4]0"}
    class: abi-changed
    reason: "benchmark rule"
`

type childResult struct {
	Seconds float64 `json:"seconds"`
	HWMKiB  int64   `json:"hwm_kib"`
}

func main() {
	repoDir := flag.String("repo", "", "genrepo output")
	reps := flag.Int("reps", 3, "rounds")
	key := flag.String("key", "proxy/testdata/signing-key.asc", "signing key (armored)")
	child := flag.String("child", "", "internal: run the proxy side against this upstream URL")
	cpuprofile := flag.String("cpuprofile", "", "write the proxy side's CPU profile here (of the last round)")
	mode := flag.String("mode", "annotate", "the repo's compat mode: annotate, or filter (5% of the packages filtered: every package file rewritten)")
	verbose := flag.Bool("v", false, "the proxy side logs to stderr (timings of the switch and the view build)")
	flag.Parse()
	if *verbose {
		os.Setenv("COLDANNOTATE_LOG", "1") // the children inherit it
	}
	if *child != "" {
		if *cpuprofile != "" {
			f, err := os.Create(*cpuprofile)
			check(err)
			check(pprof.StartCPUProfile(f))
			defer pprof.StopCPUProfile()
		}
		res, err := proxySide(*child, *key, *mode)
		check(err)
		check(json.NewEncoder(os.Stdout).Encode(res))
		pprof.StopCPUProfile()
		return
	}
	if *repoDir == "" {
		flag.Usage()
		os.Exit(2)
	}
	up := httptest.NewServer(http.FileServer(http.Dir(*repoDir)))
	defer up.Close()
	var ratios, proxyS, baseS []float64
	var hwm int64
	for i := range *reps {
		var p childResult
		var b float64
		var err error
		if i%2 == 0 {
			p, err = runChild(up.URL+"/", *key, *mode, profileOf(i, *reps, *cpuprofile))
			check(err)
			b, err = baseline(up.URL + "/")
		} else {
			b, err = baseline(up.URL + "/")
			check(err)
			p, err = runChild(up.URL+"/", *key, *mode, profileOf(i, *reps, *cpuprofile))
		}
		check(err)
		ratios, proxyS, baseS = append(ratios, p.Seconds/b), append(proxyS, p.Seconds), append(baseS, b)
		hwm = max(hwm, p.HWMKiB)
		fmt.Fprintf(os.Stderr, "round %d: proxy %.2fs (VmHWM %d MiB), baseline %.2fs, ratio %.2f\n", i+1, p.Seconds, p.HWMKiB>>10, b, p.Seconds/b)
	}
	fmt.Printf("cold %s, first repomd.xml request to rewritten primary served: proxy %.2fs, fetch+decompress+recompress %.2fs (medians of %d), ratio %.2f (median of rounds; rounds %s); proxy peak RSS %d MiB\n", *mode,
		median(proxyS), median(baseS), *reps, median(ratios), fmtAll(ratios), hwm>>10)
}

// profileOf is the profile path to pass to round i's child: the last
// round's only.
func profileOf(i, reps int, path string) string {
	if i == reps-1 {
		return path
	}
	return ""
}

func runChild(upURL, key, mode, cpuprofile string) (childResult, error) {
	cmd := exec.Command(os.Args[0], "-child", upURL, "-key", key, "-mode", mode, "-cpuprofile", cpuprofile)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return childResult{}, fmt.Errorf("proxy side: %w", err)
	}
	var r childResult
	return r, json.Unmarshal(out, &r)
}

// proxySide starts a fresh proxy in annotate mode over upURL and times the
// first repomd.xml request and the rewritten primary's.
func proxySide(upURL, key, mode string) (childResult, error) {
	tmp, err := os.MkdirTemp("", "coldannotate-")
	if err != nil {
		return childResult{}, err
	}
	defer os.RemoveAll(tmp)
	rulesFile := filepath.Join(tmp, "rules.yaml")
	if err := os.WriteFile(rulesFile, []byte(rules), 0o644); err != nil {
		return childResult{}, err
	}
	cfg := config.Default()
	cfg.Storage.Dir = tmp
	cfg.RuleFiles = []string{rulesFile}
	cfg.Signing.KeyFile = key
	r := config.NewRepo("r", upURL)
	r.Compat.Mode = config.ModeAnnotate
	if mode == "filter" {
		r.Compat.Mode = config.ModeFilter
	}
	cfg.Repos = []config.Repo{r}
	store, err := cache.OpenBadger(filepath.Join(tmp, "cache"), cache.DefaultBadgerOptions())
	if err != nil {
		return childResult{}, err
	}
	defer store.Close()
	logTo := io.Discard
	if os.Getenv("COLDANNOTATE_LOG") != "" {
		logTo = os.Stderr
	}
	srv, err := proxy.New(cfg, store, slog.New(slog.NewTextHandler(logTo, nil)))
	if err != nil {
		return childResult{}, err
	}
	defer srv.Close()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	start := time.Now()
	if os.Getenv("COLDANNOTATE_LOG") != "" {
		// The resident set every 50 ms, to tell which stage peaks.
		go func() {
			for range time.Tick(50 * time.Millisecond) {
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				fmt.Fprintf(os.Stderr, "child %5dms rss %d MiB heap in use %d MiB, goal %d MiB\n", time.Since(start).Milliseconds(), vmRSSKiB()>>10, ms.HeapInuse>>20, ms.NextGC>>20)
			}
		}()
	}
	md, err := get(hs.URL + "/r/repodata/repomd.xml")
	if err != nil {
		return childResult{}, err
	}
	if !strings.Contains(string(md), "abi-divergence") {
		return childResult{}, fmt.Errorf("annotate view lacks the abi-divergence record")
	}
	repomd, err := metadata.ParseRepomd(md)
	if err != nil {
		return childResult{}, err
	}
	rec, ok := repomd.Record("primary")
	if !ok {
		return childResult{}, fmt.Errorf("no primary record")
	}
	// The client reads the primary through and drops it: holding 11 MB
	// of it would count in the peak RSS measured for the proxy.
	if n, err := discard(hs.URL + "/r/" + rec.Href); err != nil {
		return childResult{}, err
	} else if n != rec.Size {
		return childResult{}, fmt.Errorf("rewritten primary: %d bytes, repomd.xml says %d", n, rec.Size)
	}
	res := childResult{Seconds: time.Since(start).Seconds(), HWMKiB: vmHWMKiB()}
	if os.Getenv("COLDANNOTATE_LOG") != "" {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		status, _ := os.ReadFile("/proc/self/status")
		for _, l := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(l, "Vm") || strings.HasPrefix(l, "Rss") {
				fmt.Fprintln(os.Stderr, "child", strings.Join(strings.Fields(l), " "))
			}
		}
		if hp := os.Getenv("COLDANNOTATE_HEAPPROFILE"); hp != "" {
			if f, err := os.Create(hp); err == nil {
				pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
		}
		fmt.Fprintf(os.Stderr, "child heap: sys %d MiB, peak in use %d MiB now %d MiB, GC runs %d\n", ms.HeapSys>>20, ms.HeapSys>>20-ms.HeapReleased>>20, ms.HeapInuse>>20, ms.NumGC)
	}
	return res, nil
}

// baseline fetches upstream's repomd.xml and its primary, filelists and
// other, decompressing and recompressing each with the same codec.
func baseline(upURL string) (float64, error) {
	start := time.Now()
	md, err := get(upURL + "repodata/repomd.xml")
	if err != nil {
		return 0, err
	}
	repomd, err := metadata.ParseRepomd(md)
	if err != nil {
		return 0, err
	}
	for _, typ := range []string{"primary", "filelists", "other"} {
		rec, ok := repomd.Record(typ)
		if !ok {
			return 0, fmt.Errorf("no %s record", typ)
		}
		resp, err := http.Get(upURL + rec.Href)
		if err != nil {
			return 0, err
		}
		codec := metadata.CodecOf(rec.Href)
		zr, err := metadata.Decompress(resp.Body, codec, 8<<30)
		if err != nil {
			resp.Body.Close()
			return 0, err
		}
		fw, err := metadata.NewFileWriter(io.Discard, codec)
		if err == nil {
			_, err = io.Copy(fw, zr)
		}
		if err == nil {
			err = fw.Close()
		}
		zr.Close()
		resp.Body.Close()
		if err != nil {
			return 0, fmt.Errorf("%s: %w", typ, err)
		}
	}
	return time.Since(start).Seconds(), nil
}

func get(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

func discard(url string) (int64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return io.Copy(io.Discard, resp.Body)
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func fmtAll(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, " ")
}

func vmHWMKiB() int64 { return statusKiB("VmHWM:") }

func vmRSSKiB() int64 { return statusKiB("VmRSS:") }

func statusKiB(field string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			return kb
		}
	}
	return -1
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "coldannotate:", err)
		os.Exit(1)
	}
}
