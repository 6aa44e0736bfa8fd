package proxy

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
	"strings"
	"time"

	"golang.org/x/net/http/httpproxy"
)

// Sentinel errors that the error middleware maps to HTTP statuses.
var (
	ErrNotFound        = errors.New("not found")                 // 404
	ErrBadRequest      = errors.New("bad request")               // 400
	ErrUpstream        = errors.New("upstream failed")           // 502
	ErrUpstreamTimeout = errors.New("upstream timed out")        // 504
	ErrVerify          = errors.New("upstream content is wrong") // 502
)

// UpstreamOptions are one repo's settings for talking to its upstream.
type UpstreamOptions struct {
	Bases      []string // url, then mirrors, each ending in "/"
	Timeout    time.Duration
	CAFile     string
	ClientCert string
	ClientKey  string
	Username   string
	Password   string
	Headers    map[string]string
}

// upstream sends requests to a repo's bases in order, moving on to the next
// base on connection errors, timeouts and 5xx answers.
type upstream struct {
	repo   string
	opt    UpstreamOptions
	client *http.Client
	log    *slog.Logger
	onFail func(base string, err error) // per-mirror error accounting; may be nil
}

func newUpstream(repo string, opt UpstreamOptions, log *slog.Logger) (*upstream, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if opt.CAFile != "" {
		pem, err := os.ReadFile(opt.CAFile)
		if err != nil {
			return nil, fmt.Errorf("repo %s: ca_file: %w", repo, err)
		}
		// The bundle replaces the system roots: an upstream with its own
		// CA (the RHEL CDN's) is trusted for exactly that CA.
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("repo %s: ca_file %s: no PEM certificates found", repo, opt.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	if opt.ClientCert != "" || opt.ClientKey != "" {
		cert, err := tls.LoadX509KeyPair(opt.ClientCert, opt.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("repo %s: client_cert/client_key: %w", repo, err)
		}
		tlsCfg.Certificates = []tls.Certificate{cert}
	}
	timeout := opt.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	opt.Timeout = timeout
	// HTTP_PROXY, HTTPS_PROXY and NO_PROXY are read when the upstream is
	// built (not once per process as http.ProxyFromEnvironment does).
	proxyFor := httpproxy.FromEnvironment().ProxyFunc()
	tr := &http.Transport{
		Proxy:                 func(r *http.Request) (*url.URL, error) { return proxyFor(r.URL) },
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		// The proxy stores upstream bytes exactly: no transparent gunzip.
		DisableCompression: true,
		ForceAttemptHTTP2:  true,
	}
	return &upstream{
		repo: repo, opt: opt, log: log,
		client: &http.Client{
			Transport: tr,
			CheckRedirect: func(req *http.Request, via []*http.Request) error {
				if len(via) >= 5 {
					return errors.New("too many redirects")
				}
				return nil
			},
		},
	}, nil
}

// urlFor joins a base and a cleaned relative path.
func urlFor(base, rel string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	ref := &url.URL{Path: rel}
	return u.ResolveReference(ref).String(), nil
}

// get fetches rel from the first base that answers without a connection
// error, timeout or 5xx. hdr adds request headers (conditional GET). A 404
// from a base is final: mirrors are copies, not alternatives. The caller
// closes the body.
func (u *upstream) get(ctx context.Context, rel string, hdr http.Header) (*http.Response, error) {
	var errs []error
	for _, base := range u.opt.Bases {
		target, err := urlFor(base, rel)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
		req.Header.Set("User-Agent", "dnfproxy")
		for k, v := range u.opt.Headers {
			req.Header.Set(k, v)
		}
		for k, vs := range hdr {
			req.Header[k] = vs
		}
		if u.opt.Username != "" || u.opt.Password != "" {
			req.SetBasicAuth(u.opt.Username, u.opt.Password)
		}
		resp, err := u.client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			errs = append(errs, fmt.Errorf("%s: %w", redact(target), err))
			u.failed(base, err)
			continue
		}
		if resp.StatusCode >= 500 {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			err := fmt.Errorf("%s: %s", redact(target), resp.Status)
			errs = append(errs, err)
			u.failed(base, err)
			continue
		}
		return resp, nil
	}
	err := errors.Join(errs...)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil, fmt.Errorf("%w: %v", ErrUpstreamTimeout, err)
	}
	return nil, fmt.Errorf("%w: %v", ErrUpstream, err)
}

func (u *upstream) failed(base string, err error) {
	u.log.Warn("upstream error", "repo", u.repo, "mirror", redact(base), "err", err)
	if u.onFail != nil {
		u.onFail(base, err)
	}
}

// redact drops user info from a URL for logs.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	u.User = nil
	return u.String()
}

// statusError turns a non-2xx, non-5xx upstream answer into an error.
func statusError(resp *http.Response) error {
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone {
		return fmt.Errorf("%w: upstream says %s", ErrNotFound, resp.Status)
	}
	return fmt.Errorf("%w: upstream says %s", ErrUpstream, resp.Status)
}

// isTimeout reports whether err is a timeout of any kind.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrUpstreamTimeout) ||
		(errors.As(err, &ne) && ne.Timeout()) || strings.Contains(fmt.Sprint(err), "stalled")
}
