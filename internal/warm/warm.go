// Package warm fetches a repo's metadata and packages through a running
// dnfproxy, so that they are in its cache before clients ask. The command
// `dnfproxy warm` and the admin API's warm jobs both use it.
//
// Everything goes through the proxy's client listener, exactly as dnf would
// ask for it, so the proxy verifies and stores each file as usual; warm only
// checks that each file arrived whole (status 200 and the length that
// repomd.xml or primary.xml announces). A file that fails is recorded and
// the run goes on; Run then returns ErrIncomplete.
package warm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/dnfproxy/dnfproxy/metadata"
)

// Package selections.
const (
	PackagesNone   = "none"
	PackagesLatest = "latest" // newest build per name.arch
	PackagesAll    = "all"
)

// DefaultConcurrency is the number of parallel downloads when Options say 0.
const DefaultConcurrency = 4

// Limits on what warm reads into memory.
const (
	maxRepomdSize  = 16 << 20 // repomd.xml
	maxPrimarySize = 4 << 30  // uncompressed primary.xml when repomd gives no open-size
)

// Options say what to warm.
//
// Packages and Names combine: the packages warmed are those Packages selects
// plus those Names selects. Packages "" means "latest" when Names is empty
// and "none" when it is not.
type Options struct {
	Proxy       string   // base URL of the proxy's client listener, e.g. http://127.0.0.1:8080
	Repo        string   // repo name (the URL prefix)
	Path        string   // sub-path of the repo root below the prefix, "" or ending in "/"
	Packages    string   // none | latest | all
	Names       []string // --from-file: these packages plus their dependencies in the repo
	Concurrency int      // parallel downloads, default 4
}

// Progress is reported as work advances.
type Progress struct {
	Total   int    // files to fetch (known once metadata is read)
	Done    int    // files fetched or failed
	Failed  int    // files that failed
	Bytes   int64  // bytes received
	Current string // last file finished
}

// Failure is one file that did not arrive.
type Failure struct {
	Path string `json:"path"`
	Err  string `json:"error"`
}

// Result is the outcome of a warm run.
type Result struct {
	Files  int       `json:"files"` // files that arrived whole, metadata included
	Bytes  int64     `json:"bytes"`
	Failed []Failure `json:"failed,omitempty"`

	// Packages is the number of packages chosen (arrived or not).
	Packages int `json:"packages"`
	// NotFound lists the Names that no package of the repo has as its
	// name or provides. They are not failures: with a list taken from a
	// host (rpm -qa), many packages come from other repos.
	NotFound []string `json:"not_found,omitempty"`
	// Unresolved counts the distinct requirements of the chosen packages
	// that no package of the repo provides; other repos may provide them.
	Unresolved int `json:"unresolved"`
}

// ErrIncomplete is returned (wrapped) when some files failed.
var ErrIncomplete = errors.New("warm: some files failed")

// Run warms what opt says. progress may be nil; it is called after each
// file, never concurrently. It returns ErrIncomplete (with the Result
// listing failures) when anything asked for did not arrive, and other errors
// only for bad Options. When ctx ends, Run stops at once and returns
// ErrIncomplete wrapping ctx's cause; the files cut short are not listed.
func Run(ctx context.Context, opt Options, progress func(Progress)) (Result, error) {
	r, err := newRun(opt, progress)
	if err != nil {
		return Result{}, err
	}
	defer r.close()
	return r.run(ctx)
}

// Normalize checks opt and fills in defaults: Path gets its trailing "/",
// Packages its default, Concurrency 4 when 0.
func (opt Options) Normalize() (Options, error) {
	u, err := url.Parse(opt.Proxy)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return opt, fmt.Errorf("warm: proxy %q is not an http(s) URL", opt.Proxy)
	}
	if opt.Repo == "" || strings.ContainsAny(opt.Repo, "/@?#") || opt.Repo == "." || opt.Repo == ".." {
		return opt, fmt.Errorf("warm: bad repo name %q", opt.Repo)
	}
	p := strings.Trim(opt.Path, "/")
	if p != "" {
		if _, err := metadata.CleanHref(p); err != nil {
			return opt, fmt.Errorf("warm: path: %v", err)
		}
		p += "/"
	}
	opt.Path = p
	switch opt.Packages {
	case "":
		opt.Packages = PackagesLatest
		if len(opt.Names) > 0 {
			opt.Packages = PackagesNone
		}
	case PackagesNone, PackagesLatest, PackagesAll:
	default:
		return opt, fmt.Errorf("warm: packages %q: want none, latest or all", opt.Packages)
	}
	switch {
	case opt.Concurrency == 0:
		opt.Concurrency = DefaultConcurrency
	case opt.Concurrency < 0:
		return opt, fmt.Errorf("warm: concurrency %d: want at least 1", opt.Concurrency)
	}
	return opt, nil
}

// runner is one Run.
type runner struct {
	opt      Options
	base     *url.URL
	client   *http.Client
	ownTrans *http.Transport // closed at the end when we made the client

	mu       sync.Mutex
	total    int    // files to fetch, as known so far
	current  string // the last file that finished
	res      Result
	progress func(Progress)
}

func newRun(opt Options, progress func(Progress)) (*runner, error) {
	opt, err := opt.Normalize()
	if err != nil {
		return nil, err
	}
	base, _ := url.Parse(opt.Proxy)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = opt.Concurrency
	// We count and check the bytes of the file itself.
	tr.DisableCompression = true
	return &runner{opt: opt, base: base, client: &http.Client{Transport: tr}, ownTrans: tr, progress: progress}, nil
}

func (r *runner) close() {
	if r.ownTrans != nil {
		r.ownTrans.CloseIdleConnections()
	}
}

// file is one file to fetch, relative to the repo root.
type file struct {
	href string
	size int64 // -1: unknown
}

func (r *runner) run(ctx context.Context) (Result, error) {
	// 1. repomd.xml: without it nothing else is known.
	r.addTotal(1)
	var repomd bytes.Buffer
	repomdFile := file{"repodata/repomd.xml", -1}
	n, err := r.get(ctx, repomdFile, &limitedWriter{w: &repomd, left: maxRepomdSize})
	var md *metadata.Repomd
	if err == nil {
		md, err = metadata.ParseRepomd(repomd.Bytes())
	}
	r.record(ctx, repomdFile, n, err)
	if err != nil {
		return r.finish(ctx, fmt.Errorf("%w: %srepodata/repomd.xml: %v", ErrIncomplete, r.opt.Path, err))
	}

	// 2. Every file repomd.xml lists; primary.xml is kept to choose packages.
	wantPackages := r.opt.Packages != PackagesNone || len(r.opt.Names) > 0
	primaryRec, hasPrimary := md.Record("primary")
	var primary bytes.Buffer
	files := make([]file, 0, len(md.Records))
	for _, rec := range md.Records {
		files = append(files, file{rec.Href, rec.Size})
	}
	r.addTotal(len(files))
	r.fetchAll(ctx, files, func(f file) io.Writer {
		if wantPackages && hasPrimary && f.href == primaryRec.Href {
			return &primary
		}
		return io.Discard
	})
	if !wantPackages {
		return r.finish(ctx, nil)
	}

	// 3. The packages.
	pkgs, err := r.readPrimary(primaryRec, hasPrimary, primary.Bytes())
	if err != nil {
		return r.finish(ctx, fmt.Errorf("%w: packages not chosen: %v", ErrIncomplete, err))
	}
	sel := choose(pkgs, r.opt.Packages, r.opt.Names)
	r.mu.Lock()
	r.res.Packages = len(sel.packages)
	r.res.NotFound = sel.notFound
	r.res.Unresolved = sel.unresolved
	r.mu.Unlock()
	files = files[:0]
	for _, p := range sel.packages {
		files = append(files, file{p.Href, p.Size})
	}
	r.addTotal(len(files))
	r.fetchAll(ctx, files, func(file) io.Writer { return io.Discard })
	return r.finish(ctx, nil)
}

// readPrimary decodes the primary.xml fetched in step 2.
func (r *runner) readPrimary(rec metadata.Record, ok bool, data []byte) ([]metadata.PackageDeps, error) {
	if !ok {
		return nil, errors.New("repomd.xml lists no primary")
	}
	if rec.Size >= 0 && int64(len(data)) != rec.Size {
		return nil, fmt.Errorf("%s%s did not arrive", r.opt.Path, rec.Href)
	}
	limit := int64(maxPrimarySize)
	if rec.OpenSize >= 0 {
		limit = rec.OpenSize
	}
	zr, err := metadata.Decompress(bytes.NewReader(data), metadata.CodecOf(rec.Href), limit)
	if err != nil {
		return nil, fmt.Errorf("%s%s: %w", r.opt.Path, rec.Href, err)
	}
	defer zr.Close()
	var pkgs []metadata.PackageDeps
	err = metadata.ScanPrimaryDeps(zr, func(p metadata.PackageDeps) error {
		pkgs = append(pkgs, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s%s: %w", r.opt.Path, rec.Href, err)
	}
	return pkgs, nil
}

// fetchAll fetches files with at most Concurrency at a time. A failure is
// recorded, not returned.
func (r *runner) fetchAll(ctx context.Context, files []file, sink func(file) io.Writer) {
	var g errgroup.Group
	g.SetLimit(r.opt.Concurrency)
	for _, f := range files {
		if ctx.Err() != nil {
			break // finish reports the cancellation, not each file
		}
		w := sink(f)
		g.Go(func() error {
			r.fetch(ctx, f, w)
			return nil
		})
	}
	g.Wait()
}

// fetch GETs one file through the proxy into w, checks its length and
// records the outcome.
func (r *runner) fetch(ctx context.Context, f file, w io.Writer) {
	n, err := r.get(ctx, f, w)
	r.record(ctx, f, n, err)
}

// record counts a file that arrived (n bytes) or failed. Failures caused by
// the cancellation are not listed: finish reports the cancellation.
func (r *runner) record(ctx context.Context, f file, n int64, err error) {
	if err != nil && ctx.Err() != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.current = r.opt.Path + f.href
	if err != nil {
		r.res.Failed = append(r.res.Failed, Failure{Path: r.current, Err: err.Error()})
	} else {
		r.res.Files++
		r.res.Bytes += n
	}
	r.reportLocked()
}

func (r *runner) get(ctx context.Context, f file, w io.Writer) (int64, error) {
	u := r.base.JoinPath(r.opt.Repo, r.opt.Path+f.href)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("User-Agent", "dnfproxy-warm")
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		if s := strings.TrimSpace(string(msg)); s != "" && !strings.ContainsRune(s, '<') {
			return 0, fmt.Errorf("%s: %s", resp.Status, s)
		}
		return 0, errors.New(resp.Status)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("after %d bytes: %w", n, err)
	}
	if f.size >= 0 && n != f.size {
		return n, fmt.Errorf("got %d bytes, metadata says %d", n, f.size)
	}
	return n, nil
}

func (r *runner) addTotal(n int) {
	r.mu.Lock()
	r.total += n
	r.reportLocked()
	r.mu.Unlock()
}

// reportLocked tells the progress callback where the run stands, derived
// from the result so far.
func (r *runner) reportLocked() {
	if r.progress != nil {
		r.progress(Progress{
			Total: r.total, Done: r.res.Files + len(r.res.Failed), Failed: len(r.res.Failed),
			Bytes: r.res.Bytes, Current: r.current,
		})
	}
}

// finish returns the result with err, or ErrIncomplete when files failed
// or ctx ended.
func (r *runner) finish(ctx context.Context, err error) (Result, error) {
	r.mu.Lock()
	res := r.res
	r.mu.Unlock()
	if ctx.Err() != nil {
		// Whatever failed on the way, the cause is the cancellation.
		err = fmt.Errorf("%w: %w", ErrIncomplete, context.Cause(ctx))
	}
	if err == nil && len(res.Failed) > 0 {
		err = fmt.Errorf("%w: %d of %d files", ErrIncomplete, len(res.Failed), len(res.Failed)+res.Files)
	}
	return res, err
}

// limitedWriter fails once more than left bytes are written.
type limitedWriter struct {
	w    io.Writer
	left int64
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		return 0, fmt.Errorf("larger than %d bytes", l.left)
	}
	l.left -= int64(len(p))
	return l.w.Write(p)
}
