package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
)

// maxRedirects is how many redirects one request follows.
const maxRedirects = 5

var (
	errDenied        = errors.New("refused: that address is one of the proxy's own listeners")
	errRedirectScope = errors.New("refused: redirect leaves the repo's configured bases and mirror hosts")
)

// origin is scheme://host:port with the default port made explicit, the
// unit a credential is scoped to.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(net.JoinHostPort(u.Hostname(), port))
}

// hostPort is host:port with the default port made explicit.
func hostPort(u *url.URL) string {
	o := origin(u)
	return o[strings.Index(o, "://")+3:]
}

// denyList holds the proxy's own listeners. A listener on an unspecified
// address (":8080", "0.0.0.0:8080") denies that port on every local
// address.
type denyList struct {
	exact map[string]bool // ip:port and host:port as configured
	ports map[string]bool // ports of unspecified-address listeners
	local map[string]bool // this machine's addresses, for ports
}

func newDenyList(addrs []string) (*denyList, error) {
	d := &denyList{exact: map[string]bool{}, ports: map[string]bool{}, local: map[string]bool{}}
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("deny address %q: %w", a, err)
		}
		ip := net.ParseIP(host)
		switch {
		case host == "" || (ip != nil && ip.IsUnspecified()):
			d.ports[port] = true
		case ip != nil:
			d.exact[net.JoinHostPort(ip.String(), port)] = true
		default:
			d.exact[strings.ToLower(net.JoinHostPort(host, port))] = true
			// A name is denied under every address it has now as well.
			if ips, err := net.LookupIP(host); err == nil {
				for _, ip := range ips {
					d.exact[net.JoinHostPort(ip.String(), port)] = true
				}
			}
		}
	}
	if len(d.ports) > 0 {
		d.local["127.0.0.1"], d.local["::1"] = true, true
		if as, err := net.InterfaceAddrs(); err == nil {
			for _, a := range as {
				if n, ok := a.(*net.IPNet); ok {
					d.local[n.IP.String()] = true
				}
			}
		}
	}
	return d, nil
}

// deniedHostPort checks a host:port, a name or an address.
func (d *denyList) deniedHostPort(hp string) bool {
	if d == nil || len(d.exact)+len(d.ports) == 0 {
		return false
	}
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		hp = net.JoinHostPort(ip.String(), port)
		if d.ports[port] && (d.local[ip.String()] || ip.IsLoopback() || ip.IsUnspecified()) {
			return true
		}
	} else if d.ports[port] && strings.EqualFold(host, "localhost") {
		return true
	}
	return d.exact[strings.ToLower(hp)]
}

// control runs before every connect, with the address actually dialled:
// a name that resolves to a listener of the proxy is caught here.
func (d *denyList) control(network, address string, _ syscall.RawConn) error {
	if d.deniedHostPort(address) {
		return fmt.Errorf("%w (%s)", errDenied, address)
	}
	return nil
}

// scope decides where a request may go and what it may carry.
type scope struct {
	bases       []*url.URL      // configured bases: redirects may go anywhere under them
	credOrigins map[string]bool // origins that get Headers and basic auth
	deny        *denyList
	listHosts   func() map[string]bool // origins of the current mirror lists' mirrors
	listOrigin  string                 // origin of the metalink/mirrorlist URL
}

// under reports whether u lies under one of the configured bases.
func (s *scope) under(u *url.URL) bool {
	o := origin(u)
	for _, b := range s.bases {
		if origin(b) == o && strings.HasPrefix(u.EscapedPath(), b.EscapedPath()) {
			return true
		}
	}
	return false
}

// checkRedirect is the http.Client's redirect policy. It also scopes the
// credentials: Go copies every header of the first request to the next
// one and drops Authorization only when the host name changes (not on a
// port change), so both are set again here from the target's origin.
func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("refused: more than %d redirects", maxRedirects)
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return fmt.Errorf("%w: scheme %q", errRedirectScope, req.URL.Scheme)
	}
	if c.scope.deny.deniedHostPort(hostPort(req.URL)) {
		return fmt.Errorf("%w (%s)", errDenied, hostPort(req.URL))
	}
	o := origin(req.URL)
	if !c.scope.under(req.URL) && !c.scope.listHosts()[o] && o != c.scope.listOrigin {
		return fmt.Errorf("%w: %s", errRedirectScope, redact(req.URL.String()))
	}
	c.setCredentials(req)
	return nil
}

// setCredentials adds Headers and basic auth when req goes to an origin
// they were configured for, and removes them otherwise.
func (c *Client) setCredentials(req *http.Request) {
	for k := range c.opt.Headers {
		req.Header.Del(k)
	}
	req.Header.Del("Authorization")
	if !c.scope.credOrigins[origin(req.URL)] {
		return
	}
	for k, v := range c.opt.Headers {
		req.Header.Set(k, v)
	}
	if c.opt.Username != "" || c.opt.Password != "" {
		req.SetBasicAuth(c.opt.Username, c.opt.Password)
	}
}

// dialContext is the transport's dialer with the deny list applied.
func (c *Client) dialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: c.opt.Timeout, KeepAlive: keepAlive, Control: c.scope.deny.control}
	return d.DialContext
}
