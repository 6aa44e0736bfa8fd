package proxy

import (
	"net"
	"strings"
	"sync"
	"time"
)

// adminState is what the admin API keeps beside the proxy: upstream health
// per repo, the client listener's URL for warm jobs, and the jobs.
type adminState struct {
	upstreams map[string]*upstreamHealth // by repo; the map is fixed after New

	mu        sync.Mutex
	clientURL string

	jobs jobList
}

// upstreamHealth is a repo's record of upstream failures, fed by the
// upstream's onFail hook.
type upstreamHealth struct {
	mu        sync.Mutex
	lastErr   string
	lastErrAt time.Time
	errors    map[string]int64 // by mirror base (redacted)
}

func (h *upstreamHealth) record(mirror string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastErrAt = time.Now()
	if err != nil {
		h.lastErr = mirror + ": " + err.Error()
	} else {
		h.lastErr = mirror + ": failed"
	}
	h.errors[mirror]++
}

// refreshHealth is a repo root's record of metadata revalidations: when one
// was last tried, when one last succeeded and the last failure.
type refreshHealth struct {
	mu          sync.Mutex
	lastAttempt time.Time
	lastSuccess time.Time
	lastErr     string
	lastErrAt   time.Time
	failing     bool // the last attempt failed
}

func (h *refreshHealth) record(at time.Time, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastAttempt = at
	if err != nil {
		h.lastErr, h.lastErrAt, h.failing = err.Error(), at, true
		return
	}
	h.lastSuccess, h.failing = at, false
}

type refreshSnapshot struct {
	lastAttempt, lastSuccess, lastErrAt time.Time
	lastErr                             string
	failing                             bool
}

func (h *refreshHealth) snapshot() refreshSnapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	return refreshSnapshot{h.lastAttempt, h.lastSuccess, h.lastErrAt, h.lastErr, h.failing}
}

// initAdmin sets up the metrics and the admin state, and hooks the
// upstreams' failure accounting into both.
func (s *Server) initAdmin() {
	s.metrics = newMetrics(s)
	s.admin = &adminState{upstreams: map[string]*upstreamHealth{}}
	for name, rp := range s.repos {
		h := &upstreamHealth{errors: map[string]int64{}}
		s.admin.upstreams[name] = h
		rp.up.onFail = func(base string, err error) {
			mirror := redact(base)
			h.record(mirror, err)
			s.metrics.upstreamError(name, mirror)
		}
	}
}

// SetClientURL tells the Server the base URL of its client listener
// (e.g. "http://127.0.0.1:8080"), which warm jobs fetch through. A bare
// listen address ("[::]:8080") is accepted too: a wildcard host becomes
// loopback. Without it the URL is derived from the configured listen
// address.
func (s *Server) SetClientURL(u string) {
	if !strings.Contains(u, "://") {
		u = listenURL(u)
	}
	s.admin.mu.Lock()
	s.admin.clientURL = strings.TrimSuffix(u, "/")
	s.admin.mu.Unlock()
}

// clientURL returns the client listener's base URL, without a trailing "/".
func (s *Server) clientURL() string {
	s.admin.mu.Lock()
	u := s.admin.clientURL
	s.admin.mu.Unlock()
	if u != "" {
		return u
	}
	return listenURL(s.cfg.Listen)
}

// listenURL turns a listen address into a URL a local client can dial:
// an empty or wildcard host becomes the loopback address.
func listenURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port)
}
