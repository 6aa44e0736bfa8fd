// Package upstream talks to a repo's upstream bases: mirrors in order,
// typed errors, and a stall guard on every body read.
//
// interim.go is the lead's stand-in with the package's API while the full
// package (min-rate, redirects, metalinks) is built beside it.
package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"golang.org/x/net/http/httpproxy"
)

// Sentinel errors.
var (
	ErrNotFound    = errors.New("not found upstream")
	ErrUnavailable = errors.New("upstream unavailable")
	ErrTimeout     = errors.New("upstream timed out")
	ErrTooSlow     = errors.New("upstream too slow")
	ErrBadRequest  = errors.New("bad upstream request")
)

// Options are one repo's settings for talking to its upstream.
type Options struct {
	Repo                 string
	Bases                []string
	Metalink, Mirrorlist string
	Timeout              time.Duration
	MinRate              int64
	CAFile               string
	ClientCert           string
	ClientKey            string
	Username             string
	Password             string
	Headers              map[string]string
	MaxConnsPerHost      int
	DenyAddrs            []string
	OnFail               func(base string, err error)
	Log                  *slog.Logger
}

// Client sends requests to a repo's bases in order.
type Client struct {
	opt    Options
	client *http.Client

	mu     sync.Mutex
	status map[string]*MirrorStatus
}

// MirrorStatus is what the client knows of one base.
type MirrorStatus struct {
	Base        string    `json:"base"`
	Failures    int64     `json:"failures"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitempty"`
}

// Hash is one checksum a metalink gives for a file.
type Hash struct{ Type, Value string }

// Response is an upstream answer and the base that gave it.
type Response struct {
	*http.Response
	Base string
}

// New builds a Client.
func New(opt Options) (*Client, error) {
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if opt.CAFile != "" {
		pem, err := os.ReadFile(opt.CAFile)
		if err != nil {
			return nil, fmt.Errorf("repo %s: ca_file: %w", opt.Repo, err)
		}
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
	if opt.Timeout <= 0 {
		opt.Timeout = 30 * time.Second
	}
	if opt.MaxConnsPerHost <= 0 {
		opt.MaxConnsPerHost = 8
	}
	proxyFor := httpproxy.FromEnvironment().ProxyFunc()
	tr := &http.Transport{
		Proxy:                 func(r *http.Request) (*url.URL, error) { return proxyFor(r.URL) },
		DialContext:           (&net.Dialer{Timeout: opt.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   opt.Timeout,
		ResponseHeaderTimeout: opt.Timeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConnsPerHost:   16,
		MaxConnsPerHost:       opt.MaxConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     true,
	}
	return &Client{opt: opt, status: map[string]*MirrorStatus{}, client: &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			return nil
		},
	}}, nil
}

// Timeout is the client's connect and stall timeout.
func (c *Client) Timeout() time.Duration { return c.opt.Timeout }

// Get fetches rel from the first base that answers.
func (c *Client) Get(ctx context.Context, rel string, hdr http.Header) (*Response, error) {
	return c.GetFrom(ctx, rel, hdr, "")
}

// GetFrom is Get starting after base after.
func (c *Client) GetFrom(ctx context.Context, rel string, hdr http.Header, after string) (*Response, error) {
	var errs []error
	bases := c.opt.Bases
	for i, b := range bases {
		if b == after {
			bases = append(append([]string{}, bases[i+1:]...), bases[:i+1]...)
			break
		}
	}
	notFound := 0
	for _, base := range bases {
		target, err := urlFor(base, rel)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
		rctx, cancel := context.WithCancelCause(ctx)
		req, err := http.NewRequestWithContext(rctx, http.MethodGet, target, nil)
		if err != nil {
			cancel(nil)
			return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
		req.Header.Set("User-Agent", "dnfproxy")
		for k, v := range c.opt.Headers {
			req.Header.Set(k, v)
		}
		for k, vs := range hdr {
			req.Header[k] = vs
		}
		if c.opt.Username != "" || c.opt.Password != "" {
			req.SetBasicAuth(c.opt.Username, c.opt.Password)
		}
		resp, err := c.client.Do(req)
		if err != nil {
			cancel(nil)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			errs = append(errs, fmt.Errorf("%s: %w", Redact(target), err))
			c.failed(base, err)
			continue
		}
		switch {
		case resp.StatusCode >= 500:
			io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			cancel(nil)
			err := fmt.Errorf("%s: %s", Redact(target), resp.Status)
			errs = append(errs, err)
			c.failed(base, err)
			continue
		case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
			resp.Body.Close()
			cancel(nil)
			notFound++
			errs = append(errs, fmt.Errorf("%s: %s", Redact(target), resp.Status))
			continue
		}
		resp.Body = &guard{body: resp.Body, cancel: cancel, ctx: rctx, stall: c.opt.Timeout, minRate: c.opt.MinRate}
		return &Response{Response: resp, Base: base}, nil
	}
	err := errors.Join(errs...)
	// Every base that answered said 404: the file is not there.
	if notFound > 0 {
		return nil, fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil, fmt.Errorf("%w: %v", ErrTimeout, err)
	}
	return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// RepomdHashes: the interim client knows no metalinks.
func (c *Client) RepomdHashes(ctx context.Context, root string) ([]Hash, bool, error) {
	return nil, false, nil
}

// Status reports per-base failures.
func (c *Client) Status() []MirrorStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []MirrorStatus
	for _, b := range c.opt.Bases {
		if s, ok := c.status[b]; ok {
			out = append(out, *s)
		} else {
			out = append(out, MirrorStatus{Base: Redact(b)})
		}
	}
	return out
}

func (c *Client) failed(base string, err error) {
	c.opt.Log.Warn("upstream error", "repo", c.opt.Repo, "mirror", Redact(base), "err", err)
	c.mu.Lock()
	s, ok := c.status[base]
	if !ok {
		s = &MirrorStatus{Base: Redact(base)}
		c.status[base] = s
	}
	s.Failures++
	s.LastError, s.LastErrorAt = err.Error(), time.Now()
	c.mu.Unlock()
	if c.opt.OnFail != nil {
		c.opt.OnFail(base, err)
	}
}

var errStalled = errors.New("stalled")

// guard fails a body read that gets no byte for the stall timeout.
type guard struct {
	body    io.ReadCloser
	cancel  context.CancelCauseFunc
	ctx     context.Context
	stall   time.Duration
	minRate int64
	timer   *time.Timer
}

func (g *guard) Read(p []byte) (int, error) {
	if g.timer == nil {
		g.timer = time.AfterFunc(g.stall, func() { g.cancel(errStalled) })
	} else {
		g.timer.Reset(g.stall)
	}
	n, err := g.body.Read(p)
	g.timer.Stop()
	if err != nil && err != io.EOF {
		if errors.Is(context.Cause(g.ctx), errStalled) {
			return n, fmt.Errorf("%w: no data for %s", ErrTimeout, g.stall)
		}
		return n, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return n, err
}

func (g *guard) Close() error {
	if g.timer != nil {
		g.timer.Stop()
	}
	err := g.body.Close()
	g.cancel(nil)
	return err
}

func urlFor(base, rel string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	return u.ResolveReference(&url.URL{Path: rel}).String(), nil
}

// Redact drops user info from a URL for logs.
func Redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	u.User = nil
	return u.String()
}

// StatusError turns a non-2xx upstream answer into an error.
func StatusError(resp *http.Response) error {
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone {
		return fmt.Errorf("%w: upstream says %s", ErrNotFound, resp.Status)
	}
	return fmt.Errorf("%w: upstream says %s", ErrUnavailable, resp.Status)
}

// VerifyRepomd checks a repomd.xml body against a metalink's hashes.
func VerifyRepomd(body []byte, hashes []Hash) error {
	if len(hashes) == 0 {
		return nil
	}
	return errors.New("metalink verification is not available in the interim client")
}
