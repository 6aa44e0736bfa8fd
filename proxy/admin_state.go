package proxy

import (
	"net"
	"strings"
	"sync"
)

// adminState is what the admin side keeps of its own: the client
// listener's URL for warm jobs, and the jobs.
type adminState struct {
	mu        sync.Mutex
	clientURL string

	jobs jobList
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
