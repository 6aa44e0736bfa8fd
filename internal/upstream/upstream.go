// Package upstream talks to a repo's upstream servers. It owns the
// connections (one transport per repo, a per-host connection cap) and the
// mirrors' health (which base failed when, and the order they are tried
// in), and for metalink and mirrorlist repos the mirror lists themselves.
//
// It guarantees:
//   - a request is tried on the bases in order (configured url and mirrors,
//     then the list's mirrors by preference, recently failed ones last) and
//     moves on after a connection error, a timeout, a 5xx, a refused
//     redirect, or a 404/410; ErrNotFound only when every base said 404/410;
//   - every error is one of ErrNotFound, ErrUnavailable, ErrTimeout,
//     ErrTooSlow or ErrBadRequest (wrapped with %w), or the caller's own
//     context error;
//   - every response body is guarded: a read that waits Timeout without a
//     byte fails with ErrTimeout, a body averaging below MinRate over a
//     Timeout window fails with ErrTooSlow, a reset with ErrUnavailable;
//   - redirects stay within the configured bases and the mirror lists'
//     hosts, never reach the proxy's own listeners, and custom headers and
//     basic auth go only to the origins of the configured bases (and of
//     the metalink/mirrorlist URL);
//   - URLs in errors and logs carry no user info.
//
// It knows nothing of caching: callers key what they store by repo path,
// never by the mirror that answered.
package upstream

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/net/http/httpproxy"
)

// The errors every failure of this package wraps.
var (
	ErrNotFound    = errors.New("not found upstream")   // every base said 404/410
	ErrUnavailable = errors.New("upstream unavailable") // connection errors, resets, 5xx, bad redirects
	ErrTimeout     = errors.New("upstream timed out")   // connect/header timeout or a stall (no byte for Timeout)
	ErrTooSlow     = errors.New("upstream too slow")    // average below MinRate over a Timeout window
	ErrBadRequest  = errors.New("bad upstream request")
)

const (
	defaultTimeout  = 30 * time.Second
	defaultMaxConns = 8
	keepAlive       = 30 * time.Second
	// defaultCoolDown is how long a base that failed is tried after the
	// healthy ones.
	defaultCoolDown = 5 * time.Minute
	// transportReadBuffer is the transport's buffer under each
	// connection (net/http's default, set so that it is known): a body
	// Read at least this large leaves it empty (see SpliceTo).
	transportReadBuffer = 4 << 10
)

// Options are one repo's settings for talking to its upstream.
type Options struct {
	Repo  string
	Bases []string // url then mirrors, each ending in "/"; may be empty when Metalink/Mirrorlist is set
	// Metalink and Mirrorlist are URL templates; "$root" is replaced by the
	// repo root sub-path (e.g. "9/BaseOS/x86_64/os/"). Without "$root" the
	// list describes the repo's top root "". A metalink wins over a
	// mirrorlist when both are given.
	Metalink, Mirrorlist string
	Timeout              time.Duration // connect, TLS, response headers, and stall (no byte for Timeout); default 30s
	MinRate              int64         // bytes/s; a body averaging below it over a Timeout-long window fails with ErrTooSlow; 0 off

	CAFile, ClientCert, ClientKey string
	Username, Password            string
	Headers                       map[string]string
	MaxConnsPerHost               int                          // default 8; per host of this repo's bases
	DenyAddrs                     []string                     // host:port of the proxy's own listeners: never requested, not even via redirect
	OnFail                        func(base string, err error) // per-mirror accounting, may be nil
	Log                           *slog.Logger
}

// Client sends one repo's requests to its upstream bases.
type Client struct {
	opt    Options
	bases  []string // Options.Bases, each ending in "/"
	client *http.Client
	scope  scope
	health *health
	lists  *lists // nil without Metalink and Mirrorlist
	log    *slog.Logger
	// pipe2 makes the pipe of a spliced body (nil: pipe2(2)); tests make
	// it fail.
	pipe2 func(fds []int, flags int) error
}

// Response is an upstream answer; Base says which base gave it, as
// configured or listed (it may hold user info: Redact it before showing
// it). Its Body is guarded (see Get) and the caller closes it.
type Response struct {
	*http.Response
	Base string
}

// New builds the client of one repo.
func New(opt Options) (*Client, error) {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Timeout <= 0 {
		opt.Timeout = defaultTimeout
	}
	if opt.MaxConnsPerHost <= 0 {
		opt.MaxConnsPerHost = defaultMaxConns
	}
	if opt.MinRate < 0 {
		return nil, fmt.Errorf("repo %s: minimum rate %d is negative", opt.Repo, opt.MinRate)
	}
	if len(opt.Bases) == 0 && opt.Metalink == "" && opt.Mirrorlist == "" {
		return nil, fmt.Errorf("repo %s: no url, mirrors, metalink or mirrorlist", opt.Repo)
	}
	c := &Client{opt: opt, log: opt.Log, health: newHealth(defaultCoolDown)}
	c.scope.credOrigins = map[string]bool{}
	for _, b := range opt.Bases {
		if !strings.HasSuffix(b, "/") {
			b += "/"
		}
		u, err := parseHTTPURL(b)
		if err != nil {
			return nil, fmt.Errorf("repo %s: base %s: %w", opt.Repo, redact(b), err)
		}
		c.bases = append(c.bases, b)
		c.scope.bases = append(c.scope.bases, u)
		c.scope.credOrigins[origin(u)] = true
	}
	// As in dnf, a metalink wins over a mirrorlist when both are given.
	if tmpl := cmp.Or(opt.Metalink, opt.Mirrorlist); tmpl != "" {
		if opt.Metalink != "" && opt.Mirrorlist != "" {
			opt.Log.Warn("metalink and mirrorlist both given: the metalink is used", "repo", opt.Repo)
		}
		u, err := parseHTTPURL(strings.ReplaceAll(tmpl, "$root", ""))
		if err != nil {
			return nil, fmt.Errorf("repo %s: mirror list URL %s: %w", opt.Repo, redact(tmpl), err)
		}
		c.scope.credOrigins[origin(u)] = true
		c.scope.listOrigin = origin(u)
		c.lists = newLists(c, tmpl, opt.Metalink != "")
	}
	c.scope.listHosts = func() map[string]bool { return nil }
	if c.lists != nil {
		c.scope.listHosts = c.lists.hosts
	}
	deny, err := newDenyList(opt.DenyAddrs)
	if err != nil {
		return nil, fmt.Errorf("repo %s: %w", opt.Repo, err)
	}
	c.scope.deny = deny

	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if opt.CAFile != "" {
		pem, err := os.ReadFile(opt.CAFile)
		if err != nil {
			return nil, fmt.Errorf("repo %s: ca_file: %w", opt.Repo, err)
		}
		// The bundle replaces the system roots: an upstream with its own
		// CA (the RHEL CDN's) is trusted for exactly that CA.
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("repo %s: ca_file %s: no PEM certificates found", opt.Repo, opt.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	if opt.ClientCert != "" || opt.ClientKey != "" {
		cert, err := tls.LoadX509KeyPair(opt.ClientCert, opt.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("repo %s: client_cert/client_key: %w", opt.Repo, err)
		}
		tlsCfg.Certificates = []tls.Certificate{cert}
	}
	// HTTP_PROXY, HTTPS_PROXY and NO_PROXY are read when the client is
	// built (not once per process as http.ProxyFromEnvironment does).
	proxyFor := httpproxy.FromEnvironment().ProxyFunc()
	tr := &http.Transport{
		Proxy:                 func(r *http.Request) (*url.URL, error) { return proxyFor(r.URL) },
		DialContext:           c.dialer(),
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   opt.Timeout,
		ResponseHeaderTimeout: opt.Timeout,
		ExpectContinueTimeout: time.Second,
		MaxConnsPerHost:       opt.MaxConnsPerHost,
		MaxIdleConnsPerHost:   opt.MaxConnsPerHost,
		ReadBufferSize:        transportReadBuffer,
		IdleConnTimeout:       90 * time.Second,
		// The proxy stores upstream bytes exactly: no transparent gunzip.
		DisableCompression: true,
		ForceAttemptHTTP2:  true,
	}
	c.client = &http.Client{Transport: tr, CheckRedirect: c.checkRedirect}
	return c, nil
}

func parseHTTPURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("no host")
	}
	return u, nil
}

// candidate is one URL a request may go to.
type candidate struct {
	base   string // what Response.Base and GetFrom name
	target string // base joined with the path below it
	source string // "url", "metalink" or "mirrorlist"
	root   string // the root the list was fetched for; "" for configured bases
}

// Get fetches rel (a cleaned path below the repo, may include a root) from
// the first base that answers; hdr adds headers (conditional GET, Range).
// The returned Body is guarded: a read that stalls for Timeout returns an
// error wrapping ErrTimeout, below MinRate ErrTooSlow, a reset
// ErrUnavailable; the caller closes it. Base says which base answered.
//
// An answer is a 2xx, a 304, or a 416; every other status makes the next
// base be tried.
func (c *Client) Get(ctx context.Context, rel string, hdr http.Header) (*Response, error) {
	return c.get(ctx, rel, hdr, "")
}

// GetFrom is Get that starts with the bases after `after` (so a fill that
// failed mid-body with ErrTooSlow/ErrTimeout/ErrUnavailable retries on the
// next mirror). `after` itself is tried last, so a repo with one base
// retries that base. Callers bound their retries.
func (c *Client) GetFrom(ctx context.Context, rel string, hdr http.Header, after string) (*Response, error) {
	return c.get(ctx, rel, hdr, after)
}

func (c *Client) get(ctx context.Context, rel string, hdr http.Header, after string) (*Response, error) {
	if err := checkRel(rel); err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrBadRequest, rel, err)
	}
	cands, root, err := c.candidates(ctx, rel)
	if err != nil {
		return nil, err
	}
	cands = c.health.order(cands)
	if after != "" {
		for i, cd := range cands {
			if cd.base == after {
				cands = append(append(append([]candidate{}, cands[:i]...), cands[i+1:]...), cd)
				break
			}
		}
	}
	var errs []error
	notFound, timeouts := 0, 0
	for _, cd := range cands {
		resp, err := c.try(ctx, cd, hdr)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		errs = append(errs, err)
		switch {
		case errors.Is(err, ErrNotFound):
			notFound++
		case errors.Is(err, ErrTimeout):
			timeouts++
		}
	}
	joined := errors.Join(errs...)
	switch {
	case notFound == len(cands):
		return nil, fmt.Errorf("%w: %v", ErrNotFound, joined)
	case timeouts+notFound == len(cands):
		c.listFailed(root)
		return nil, fmt.Errorf("%w: %v", ErrTimeout, joined)
	default:
		c.listFailed(root)
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, joined)
	}
}

// checkRel refuses what is not a cleaned relative path.
func checkRel(rel string) error {
	switch {
	case rel == "":
		return errors.New("empty path")
	case strings.HasPrefix(rel, "/"):
		return errors.New("absolute path")
	case strings.ContainsAny(rel, "?#\\\x00"):
		return errors.New("query, fragment, backslash or NUL in path")
	}
	for _, seg := range strings.Split(rel, "/") {
		if seg == "." || seg == ".." {
			return errors.New("dot segment in path")
		}
	}
	for _, r := range rel {
		if r < 0x20 || r == 0x7f {
			return errors.New("control character in path")
		}
	}
	return nil
}

// joinURL appends a cleaned relative path to a base ending in "/".
func joinURL(base, rel string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	return u.ResolveReference(&url.URL{Path: rel}).String(), nil
}

// candidates lists where rel may be fetched: the configured bases, then
// the mirrors of the list of rel's root.
func (c *Client) candidates(ctx context.Context, rel string) ([]candidate, string, error) {
	var out []candidate
	for _, b := range c.bases {
		t, err := joinURL(b, rel)
		if err != nil {
			return nil, "", fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
		out = append(out, candidate{base: b, target: t, source: "url"})
	}
	if c.lists == nil {
		return out, "", nil
	}
	root, ml, err := c.lists.forRel(ctx, rel)
	if err != nil {
		if len(out) > 0 {
			c.log.Warn("mirror list unavailable, using the configured bases", "repo", c.opt.Repo, "err", err)
			return out, "", nil
		}
		return nil, "", err
	}
	for _, b := range ml.bases {
		t, err := joinURL(b, strings.TrimPrefix(rel, root))
		if err != nil {
			continue
		}
		out = append(out, candidate{base: b, target: t, source: ml.source, root: root})
	}
	if len(out) == 0 {
		return nil, "", fmt.Errorf("%w: no mirror for %s", ErrUnavailable, rel)
	}
	return out, root, nil
}

func (c *Client) listFailed(root string) {
	if c.lists != nil {
		c.lists.failed(root)
	}
}

// try sends one request. Its error wraps one of the package's sentinels.
func (c *Client) try(ctx context.Context, cd candidate, hdr http.Header) (*Response, error) {
	red := redact(cd.target)
	u, err := url.Parse(cd.target)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadRequest, red, err)
	}
	if c.scope.deny.deniedHostPort(hostPort(u)) {
		err := fmt.Errorf("%w: %s: %w", ErrUnavailable, red, errDenied)
		c.failed(cd.base, err)
		return nil, err
	}
	rctx, cancel := context.WithCancelCause(ctx)
	// The connection the answer comes on (the last one, after redirects),
	// for SpliceTo.
	var conn net.Conn
	tctx := httptrace.WithClientTrace(rctx, &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { conn = info.Conn },
	})
	req, err := http.NewRequestWithContext(tctx, http.MethodGet, cd.target, nil)
	if err != nil {
		cancel(nil)
		return nil, fmt.Errorf("%w: %s: %v", ErrBadRequest, red, err)
	}
	req.Header.Set("User-Agent", "dnfproxy")
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	c.setCredentials(req)
	resp, err := c.client.Do(req)
	if err != nil {
		cancel(nil)
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		err = classify(red, err)
		c.failed(cd.base, err)
		return nil, err
	}
	st := resp.StatusCode
	switch {
	case st >= 200 && st < 300, st == http.StatusNotModified, st == http.StatusRequestedRangeNotSatisfiable:
		c.health.ok(cd.base)
		g := newGuardedBody(rctx, ctx, cancel, resp.Body, c.opt.Timeout, c.opt.MinRate, red,
			func(err error) { c.failed(cd.base, err) })
		g.splice.set(conn, resp, c.pipe2)
		resp.Body = g
		return &Response{Response: resp, Base: cd.base}, nil
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	cancel(nil)
	if st == http.StatusNotFound || st == http.StatusGone {
		// A lagging mirror, not a sick one: no failure is counted.
		return nil, fmt.Errorf("%w: %s: %s", ErrNotFound, red, resp.Status)
	}
	err = fmt.Errorf("%w: %s: %s", ErrUnavailable, red, resp.Status)
	c.failed(cd.base, err)
	return nil, err
}

// classify maps a transport error to the package's sentinels.
func classify(target string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s: %v", ErrTimeout, target, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrUnavailable, target, err)
}

func (c *Client) failed(base string, err error) {
	c.log.Warn("upstream error", "repo", c.opt.Repo, "mirror", redact(base), "err", err)
	c.health.failed(base, err)
	if c.opt.OnFail != nil {
		c.opt.OnFail(base, err)
	}
}

// MarkFailed counts a failure the caller found in what base sent (a
// repomd.xml that matches no metalink hash, a checksum mismatch), so that
// base cools down like one that failed here.
func (c *Client) MarkFailed(base string, err error) {
	c.failed(base, err)
}

// Status reports every base's health: the configured bases in try order,
// then each known root's list mirrors in try order.
func (c *Client) Status() []MirrorStatus {
	var cands []candidate
	for _, b := range c.bases {
		cands = append(cands, candidate{base: b, source: "url"})
	}
	out := c.health.status(cands)
	if c.lists != nil {
		for _, group := range c.lists.candidates() {
			out = append(out, c.health.status(group)...)
		}
	}
	return out
}

// Redact drops user info from a URL, for logs, errors and pages.
func Redact(s string) string { return redact(s) }

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User == nil {
		return s
	}
	u.User = nil
	return u.String()
}
