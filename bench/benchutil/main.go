// Command benchutil holds the small chores of bench/run.sh that bash does
// badly: free ports, waiting for a listener, medians and ratios, reading a
// field of loadgen's JSON, and turning the result rows into Markdown and
// JSON.
//
//	benchutil ports N               N free loopback TCP ports, one a line
//	benchutil wait URL SECONDS      wait until URL answers HTTP (any status)
//	benchutil median X...           median of numbers
//	benchutil ratio A B             A/B
//	benchutil field NAME            a top-level field of the JSON on stdin
//	benchutil report ROWS MD JSON   rows (tab-separated, see below) to files
//	benchutil static ADDR DIR       serve DIR with net/http's file server
//	                                (the Go floor next to nginx) until killed
//	benchutil relay ADDR UPSTREAM   pass every GET on to UPSTREAM and stream
//	                                the answer back, storing nothing (the
//	                                floor of any Go proxy on a cold miss)
//	benchutil splicerelay ADDR UPSTREAM
//	                                the same with splice(2), the bytes never
//	                                in user space (the floor of any relay)
//	benchutil spoolrelay ADDR UPSTREAM DIR
//	                                splice(2) into a spool file in DIR and
//	                                sendfile(2) out as it grows (the floor of
//	                                a proxy that keeps the bytes)
//
// A row of ROWS is: id, title, unit, proxy, direct, ratio, target, verdict,
// note (tab-separated; empty fields allowed). Lines starting with "#" set
// header values: "#key<TAB>value" (machine, date, go, ...).
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "ports":
		err = ports(args)
	case "wait":
		err = wait(args)
	case "median":
		err = median(args)
	case "ratio":
		err = ratio(args)
	case "field":
		err = field(args)
	case "report":
		err = report(args)
	case "static":
		err = static(args)
	case "relay":
		err = relay(args)
	case "splicerelay":
		err = splicerelay(args)
	case "spoolrelay":
		err = spoolrelay(args)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchutil:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: benchutil ports N | wait URL SECONDS | median X... | ratio A B | field NAME | report ROWS MD JSON | static ADDR DIR | relay ADDR UPSTREAM | splicerelay ADDR UPSTREAM | spoolrelay ADDR UPSTREAM DIR")
	os.Exit(2)
}

// ports holds all N listeners open at once so the ports are distinct.
func ports(args []string) error {
	if len(args) != 1 {
		usage()
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 1 || n > 64 {
		return fmt.Errorf("ports: bad count %q", args[0])
	}
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		lns = append(lns, ln)
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	}
	return nil
}

func wait(args []string) error {
	if len(args) != 2 {
		usage()
	}
	secs, err := strconv.ParseFloat(args[1], 64)
	if err != nil || secs <= 0 || secs > 600 {
		return fmt.Errorf("wait: bad timeout %q", args[1])
	}
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	deadline := time.Now().Add(time.Duration(secs * float64(time.Second)))
	for time.Now().Before(deadline) {
		resp, err := client.Get(args[0])
		if err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("wait: %s did not answer within %ss", args[0], args[1])
}

func nums(args []string) ([]float64, error) {
	var xs []float64
	for _, a := range args {
		x, err := strconv.ParseFloat(a, 64)
		if err != nil {
			return nil, fmt.Errorf("not a number: %q", a)
		}
		xs = append(xs, x)
	}
	return xs, nil
}

func median(args []string) error {
	xs, err := nums(args)
	if err != nil {
		return err
	}
	if len(xs) == 0 {
		return errors.New("median: no numbers")
	}
	slices.Sort(xs)
	m := xs[len(xs)/2]
	if len(xs)%2 == 0 {
		m = (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
	}
	fmt.Println(strconv.FormatFloat(m, 'f', -1, 64))
	return nil
}

func ratio(args []string) error {
	if len(args) != 2 {
		usage()
	}
	xs, err := nums(args)
	if err != nil {
		return err
	}
	if xs[1] == 0 {
		return errors.New("ratio: division by zero")
	}
	fmt.Printf("%.3f\n", xs[0]/xs[1])
	return nil
}

func field(args []string) error {
	if len(args) != 1 {
		usage()
	}
	var m map[string]any
	if err := json.NewDecoder(os.Stdin).Decode(&m); err != nil {
		return fmt.Errorf("field: %w", err)
	}
	v, ok := m[args[0]]
	if !ok {
		return fmt.Errorf("field: no %q", args[0])
	}
	switch v := v.(type) {
	case float64:
		fmt.Println(strconv.FormatFloat(v, 'f', -1, 64))
	case string:
		fmt.Println(v)
	default:
		b, _ := json.Marshal(v)
		fmt.Println(string(b))
	}
	return nil
}

// Row is one measurement of the report.
type Row struct {
	ID      string   `json:"id"`
	Title   string   `json:"title"`
	Unit    string   `json:"unit"`
	Proxy   *float64 `json:"proxy"`
	Direct  *float64 `json:"direct"`
	Ratio   *float64 `json:"ratio"`
	Target  string   `json:"target"`
	Verdict string   `json:"verdict"`
	Note    string   `json:"note,omitempty"`
}

func report(args []string) error {
	if len(args) != 3 {
		usage()
	}
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	header := map[string]string{}
	var keys []string
	var rows []Row
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		if k, ok := strings.CutPrefix(line, "#"); ok {
			k, v, _ := strings.Cut(k, "\t")
			if _, seen := header[k]; !seen {
				keys = append(keys, k)
			}
			header[k] = v
			continue
		}
		c := strings.Split(line, "\t")
		for len(c) < 9 {
			c = append(c, "")
		}
		rows = append(rows, Row{
			ID: c[0], Title: c[1], Unit: c[2],
			Proxy: num(c[3]), Direct: num(c[4]), Ratio: num(c[5]),
			Target: c[6], Verdict: c[7], Note: c[8],
		})
	}
	if err := sc.Err(); err != nil {
		return err
	}

	var md strings.Builder
	md.WriteString("# dnfproxy benchmark results\n\n")
	for _, k := range keys {
		fmt.Fprintf(&md, "- %s: %s\n", k, header[k])
	}
	md.WriteString("\n| # | measurement | unit | proxy | direct (nginx) | ratio proxy/direct | target | result | notes |\n")
	md.WriteString("|---|---|---|---:|---:|---:|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&md, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			r.ID, r.Title, r.Unit, show(r.Proxy), show(r.Direct), show(r.Ratio), r.Target, r.Verdict, r.Note)
	}
	if err := os.WriteFile(args[1], []byte(md.String()), 0o644); err != nil {
		return err
	}
	out, err := json.MarshalIndent(struct {
		Header map[string]string `json:"header"`
		Rows   []Row             `json:"rows"`
	}{header, rows}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(args[2], append(out, '\n'), 0o644)
}

func num(s string) *float64 {
	x, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return nil
	}
	return &x
}

func show(x *float64) string {
	if x == nil {
		return "–"
	}
	switch {
	case *x >= 1000:
		return strconv.FormatFloat(*x, 'f', 0, 64)
	case *x >= 10:
		return strconv.FormatFloat(*x, 'f', 1, 64)
	}
	return strconv.FormatFloat(*x, 'f', 3, 64)
}

// static serves a directory as a plain net/http server would: a Go server
// doing the least a server can, to tell the Go HTTP stack's own cost from
// the proxy's.
func static(args []string) error {
	if len(args) != 2 {
		usage()
	}
	srv := &http.Server{
		Addr:              args[0],
		Handler:           http.FileServer(http.Dir(args[1])),
		ReadHeaderTimeout: 30 * time.Second,
	}
	return srv.ListenAndServe()
}

// relay is the least a Go proxy can do on a cold miss: receive upstream's
// body and send it on, through 1 MiB buffers, with no spool, no store and
// no verification. Next to nginx's caching proxy it tells what two
// loopback transfers cost on this machine, whatever the proxy does.
func relay(args []string) error {
	if len(args) != 2 {
		usage()
	}
	up, err := url.Parse(args[1])
	if err != nil {
		return err
	}
	rp := httputil.NewSingleHostReverseProxy(up)
	rp.BufferPool = relayBuffers{}
	srv := &http.Server{Addr: args[0], Handler: rp, ReadHeaderTimeout: 30 * time.Second}
	return srv.ListenAndServe()
}

type relayBuffers struct{}

var relayPool = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

func (relayBuffers) Get() []byte  { return *relayPool.Get().(*[]byte) }
func (relayBuffers) Put(b []byte) { relayPool.Put(&b) }
