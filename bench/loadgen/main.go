// Command loadgen is dnfproxy's HTTP load generator for bench/run.sh.
//
// It sends GET requests to a set of URLs from -c workers, each with its own
// keep-alive connection, reads every body to the end and checks it: status
// 200, a Content-Length header, and exactly that many body bytes (and, when
// a URL comes with an expected size, that size too). The run ends after -n
// requests or -d of wall time, whichever is given. It prints one JSON
// object on stdout; any failed check makes it exit 1 after printing.
//
// -mode only says which figure the run is about (throughput: bytes/s of a
// few large bodies; rps: requests/s of many small ones) and sets the
// defaults that suit it; both figures are always reported.
//
// -sample-pid PID polls /proc/PID/status every -sample-every while the
// requests run and reports the peak VmRSS and RssAnon; -cpu-pids reports
// the CPU time the given processes used during the run, in total and per
// request, a figure that other load on the machine disturbs much less than
// requests/s (Linux only).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type target struct {
	url  string
	size int64 // expected body size, -1 unknown
}

type urlList []string

func (u *urlList) String() string     { return strings.Join(*u, ",") }
func (u *urlList) Set(v string) error { *u = append(*u, v); return nil }

// Result is what loadgen prints.
type Result struct {
	Mode          string   `json:"mode"`
	URLs          int      `json:"urls"`
	Concurrency   int      `json:"concurrency"`
	Requests      int64    `json:"requests"`
	Errors        int64    `json:"errors"`
	Bytes         int64    `json:"bytes"`
	Seconds       float64  `json:"seconds"`
	BytesPerSec   float64  `json:"bytes_per_sec"`
	MiBPerSec     float64  `json:"mib_per_sec"`
	RequestsPerS  float64  `json:"requests_per_sec"`
	P50ms         float64  `json:"p50_ms"`
	P90ms         float64  `json:"p90_ms"`
	P99ms         float64  `json:"p99_ms"`
	MaxMs         float64  `json:"max_ms"`
	PeakVmRSSKiB  int64    `json:"peak_vmrss_kib,omitempty"`
	PeakRssAnonKB int64    `json:"peak_rssanon_kib,omitempty"`
	RSSSamples    int      `json:"rss_samples,omitempty"`
	CPUSeconds    float64  `json:"cpu_seconds,omitempty"`
	CPUPerReqUs   float64  `json:"cpu_us_per_request,omitempty"`
	ErrorSamples  []string `json:"error_samples,omitempty"`
}

func main() {
	var urls urlList
	flag.Var(&urls, "url", "URL to GET (repeatable); `URL` or URL=SIZE to also check the body size")
	urlFile := flag.String("urls", "", "file of URLs, one a line: `URL [SIZE]` (# starts a comment)")
	conc := flag.Int("c", 0, "concurrent clients (default 1 in throughput mode, 64 in rps mode)")
	n := flag.Int64("n", 0, "total requests (0: run for -d)")
	dur := flag.Duration("d", 0, "run duration when -n is 0 (default 10s)")
	mode := flag.String("mode", "throughput", "throughput | rps (which figure the run is about)")
	timeout := flag.Duration("timeout", 2*time.Minute, "per-request timeout")
	warmup := flag.Int("warmup", 0, "requests per URL sent (and checked) before measuring")
	pid := flag.Int("sample-pid", 0, "sample VmRSS/RssAnon of this process while running")
	every := flag.Duration("sample-every", 50*time.Millisecond, "RSS sampling period")
	cpuPids := flag.String("cpu-pids", "", "comma-separated `PIDS` whose CPU time (user+system) over the run is reported")
	flag.Parse()

	if err := run(urls, *urlFile, *conc, *n, *dur, *mode, *timeout, *warmup, *pid, *every, *cpuPids); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
}

func run(urls urlList, urlFile string, conc int, n int64, dur time.Duration, mode string,
	timeout time.Duration, warmup, pid int, every time.Duration, cpuPids string) error {
	switch mode {
	case "throughput":
		if conc == 0 {
			conc = 1
		}
	case "rps":
		if conc == 0 {
			conc = 64
		}
	default:
		return fmt.Errorf("-mode %q: want throughput or rps", mode)
	}
	if conc < 1 || conc > 4096 {
		return fmt.Errorf("-c %d: want 1..4096", conc)
	}
	if n < 0 {
		return fmt.Errorf("-n %d: want >= 0", n)
	}
	if n == 0 && dur == 0 {
		dur = 10 * time.Second
	}
	if n == 0 && (dur < 0 || dur > time.Hour) {
		return fmt.Errorf("-d %s: want (0, 1h]", dur)
	}
	targets, err := loadTargets(urls, urlFile)
	if err != nil {
		return err
	}

	client := &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil, // loopback benchmarks never go through a proxy
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        conc * 2,
			MaxIdleConnsPerHost: conc * 2,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true, // bytes as served: no Accept-Encoding added
			ReadBufferSize:      64 << 10,
			WriteBufferSize:     4 << 10,
		},
	}
	defer client.CloseIdleConnections()

	for range warmup {
		for _, t := range targets {
			if _, err := fetch(client, t, make([]byte, 256<<10)); err != nil {
				return fmt.Errorf("warmup: %w", err)
			}
		}
	}

	res := Result{Mode: mode, URLs: len(targets), Concurrency: conc}
	var pids []int
	for _, f := range strings.FieldsFunc(cpuPids, func(r rune) bool { return r == ',' || r == ' ' }) {
		p, err := strconv.Atoi(f)
		if err != nil || p <= 0 {
			return fmt.Errorf("-cpu-pids: bad pid %q", f)
		}
		pids = append(pids, p)
	}
	cpu0, err := cpuTicks(pids)
	if err != nil {
		return err
	}
	var sampler *rssSampler
	if pid > 0 {
		sampler = startSampler(pid, every)
	}

	var (
		next     atomic.Int64 // request numbers handed out
		bytes    atomic.Int64
		errCount atomic.Int64
		mu       sync.Mutex
		lats     []time.Duration
		samples  []string
	)
	ctx := context.Background()
	if n == 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, dur)
		defer cancel()
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256<<10)
			var mine []time.Duration
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if n > 0 && i >= n {
					break
				}
				t := targets[int(i)%len(targets)]
				t0 := time.Now()
				got, err := fetch(client, t, buf)
				lat := time.Since(t0)
				if err != nil {
					if n == 0 && ctx.Err() != nil {
						break // the clock ran out mid-request: not an error
					}
					errCount.Add(1)
					mu.Lock()
					if len(samples) < 5 {
						samples = append(samples, err.Error())
					}
					mu.Unlock()
					continue
				}
				bytes.Add(got)
				mine = append(mine, lat)
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(pids) > 0 {
		cpu1, err := cpuTicks(pids)
		if err != nil {
			return err
		}
		res.CPUSeconds = float64(cpu1-cpu0) / clockTicks
	}
	if sampler != nil {
		res.PeakVmRSSKiB, res.PeakRssAnonKB, res.RSSSamples = sampler.stop()
	}

	slices.Sort(lats)
	res.Requests = int64(len(lats))
	res.Errors = errCount.Load()
	res.Bytes = bytes.Load()
	res.Seconds = elapsed.Seconds()
	res.BytesPerSec = float64(res.Bytes) / res.Seconds
	res.MiBPerSec = res.BytesPerSec / (1 << 20)
	res.RequestsPerS = float64(res.Requests) / res.Seconds
	if res.Requests > 0 {
		res.CPUPerReqUs = res.CPUSeconds * 1e6 / float64(res.Requests)
	}
	res.P50ms = ms(quantile(lats, 0.50))
	res.P90ms = ms(quantile(lats, 0.90))
	res.P99ms = ms(quantile(lats, 0.99))
	if len(lats) > 0 {
		res.MaxMs = ms(lats[len(lats)-1])
	}
	res.ErrorSamples = samples

	out, err := json.Marshal(res)
	if err != nil {
		return err
	}
	fmt.Println(string(out))
	if res.Errors > 0 || res.Requests == 0 {
		os.Exit(1)
	}
	return nil
}

// fetch GETs t and reads the whole body, checking status and sizes.
func fetch(client *http.Client, t target, buf []byte) (int64, error) {
	resp, err := client.Get(t.url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var got int64
	for {
		k, rerr := resp.Body.Read(buf)
		got += int64(k)
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return got, fmt.Errorf("%s: body after %d bytes: %w", t.url, got, rerr)
		}
	}
	if resp.StatusCode != http.StatusOK {
		return got, fmt.Errorf("%s: status %s", t.url, resp.Status)
	}
	if resp.ContentLength < 0 {
		return got, fmt.Errorf("%s: no Content-Length", t.url)
	}
	if got != resp.ContentLength {
		return got, fmt.Errorf("%s: body %d bytes, Content-Length %d", t.url, got, resp.ContentLength)
	}
	if t.size >= 0 && got != t.size {
		return got, fmt.Errorf("%s: body %d bytes, expected %d", t.url, got, t.size)
	}
	return got, nil
}

func loadTargets(urls urlList, file string) ([]target, error) {
	var ts []target
	add := func(u, size string) error {
		t := target{url: u, size: -1}
		if size != "" {
			v, err := strconv.ParseInt(size, 10, 64)
			if err != nil || v < 0 {
				return fmt.Errorf("bad size %q for %s", size, u)
			}
			t.size = v
		}
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return fmt.Errorf("not an http(s) URL: %q", u)
		}
		ts = append(ts, t)
		return nil
	}
	for _, u := range urls {
		// URL=SIZE; the size is digits after the last '=' (URLs may hold '=').
		if i := strings.LastIndexByte(u, '='); i > 0 && isDigits(u[i+1:]) {
			if err := add(u[:i], u[i+1:]); err != nil {
				return nil, err
			}
			continue
		}
		if err := add(u, ""); err != nil {
			return nil, err
		}
	}
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for line := 1; sc.Scan(); line++ {
			fields := strings.Fields(sc.Text())
			if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
				continue
			}
			size := ""
			if len(fields) > 1 {
				size = fields[1]
			}
			if err := add(fields[0], size); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", file, line, err)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	if len(ts) == 0 {
		return nil, errors.New("no URLs: give -url or -urls")
	}
	return ts, nil
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted)-1) + 0.5)
	return sorted[i]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// rssSampler polls /proc/PID/status for VmRSS and RssAnon and keeps the
// peaks.
type rssSampler struct {
	stopCh            chan struct{}
	done              chan struct{}
	peakRSS, peakAnon int64
	samples           int
}

func startSampler(pid int, every time.Duration) *rssSampler {
	s := &rssSampler{stopCh: make(chan struct{}), done: make(chan struct{})}
	path := fmt.Sprintf("/proc/%d/status", pid)
	go func() {
		defer close(s.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			s.sample(path)
			select {
			case <-s.stopCh:
				s.sample(path)
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) sample(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	s.samples++
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &s.peakRSS
		case "RssAnon":
			dst = &s.peakAnon
		default:
			continue
		}
		f := strings.Fields(v) // "123456 kB"
		if len(f) == 0 {
			continue
		}
		if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil && kb > *dst {
			*dst = kb
		}
	}
}

func (s *rssSampler) stop() (rss, anon int64, samples int) {
	close(s.stopCh)
	<-s.done
	return s.peakRSS, s.peakAnon, s.samples
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// cpuTicks sums utime and stime of pids (all their threads), in ticks.
func cpuTicks(pids []int) (int64, error) {
	var sum int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, fmt.Errorf("-cpu-pids: %w", err)
		}
		// The command name may hold spaces and parentheses: fields count
		// from the last ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			return 0, fmt.Errorf("-cpu-pids: cannot parse /proc/%d/stat", pid)
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 13 {
			return 0, fmt.Errorf("-cpu-pids: short /proc/%d/stat", pid)
		}
		// f[0] is field 3 (state); utime and stime are fields 14 and 15.
		for _, v := range f[11:13] {
			t, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("-cpu-pids: /proc/%d/stat: %w", pid, err)
			}
			sum += t
		}
	}
	return sum, nil
}
