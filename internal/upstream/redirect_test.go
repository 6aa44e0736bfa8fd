package upstream

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
)

func redirectTo(target string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, target, http.StatusFound) }
}

// Redirects are followed within the configured bases only, never to the
// proxy's own listeners (even when written as another name), at most 5; a
// refused redirect makes the next base be tried.
func TestRedirectPolicy(t *testing.T) {
	data := []byte("payload")
	for _, tc := range []struct {
		name string
		// setup returns the bases, the deny list, the server that must
		// never be asked, and whether the first base's redirect is followed.
		setup func(t *testing.T) (bases, deny []string, never *server, followed bool)
	}{
		{"within the same base", func(t *testing.T) ([]string, []string, *server, bool) {
			var a *server
			a = newServer(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/r/f" {
					http.Redirect(w, r, "/r/moved/f", http.StatusMovedPermanently)
					return
				}
				files(map[string][]byte{"/r/moved/f": data})(w, r)
			})
			return []string{a.base("/r/")}, nil, nil, true
		}},
		{"to another configured base", func(t *testing.T) ([]string, []string, *server, bool) {
			b := newServer(t, files(map[string][]byte{"/b/f": data}))
			a := newServer(t, redirectTo(b.URL+"/b/f"))
			return []string{a.base("/r/"), b.base("/b/")}, nil, nil, true
		}},
		{"to another host and port", func(t *testing.T) ([]string, []string, *server, bool) {
			x := newServer(t, files(map[string][]byte{"/r/f": data}))
			a := newServer(t, redirectTo(x.URL+"/r/f"))
			b := newServer(t, files(map[string][]byte{"/r/f": data}))
			return []string{a.base("/r/"), b.base("/r/")}, nil, x, false
		}},
		{"outside the base's path on its host", func(t *testing.T) ([]string, []string, *server, bool) {
			var a *server
			a = newServer(t, func(w http.ResponseWriter, r *http.Request) {
				if strings.HasPrefix(r.URL.Path, "/metrics") {
					t.Errorf("%s was requested", r.URL.Path)
				}
				http.Redirect(w, r, "/metrics", http.StatusFound)
			})
			b := newServer(t, files(map[string][]byte{"/r/f": data}))
			return []string{a.base("/r/"), b.base("/r/")}, nil, nil, false
		}},
		{"to a listener of the proxy that is also a base", func(t *testing.T) ([]string, []string, *server, bool) {
			d := newServer(t, files(map[string][]byte{"/r/f": data}))
			a := newServer(t, redirectTo(d.URL+"/r/f"))
			b := newServer(t, files(map[string][]byte{"/r/f": data}))
			return []string{a.base("/r/"), d.base("/r/"), b.base("/r/")}, []string{d.Listener.Addr().String()}, d, false
		}},
		{"to a listener of the proxy by another name", func(t *testing.T) ([]string, []string, *server, bool) {
			d := newServer(t, files(map[string][]byte{"/r/f": data}))
			byName := strings.Replace(d.URL, "127.0.0.1", "localhost", 1)
			a := newServer(t, redirectTo(byName+"/r/f"))
			b := newServer(t, files(map[string][]byte{"/r/f": data}))
			return []string{a.base("/r/"), byName + "/r/", b.base("/r/")}, []string{d.Listener.Addr().String()}, d, false
		}},
		{"to a listener on all addresses", func(t *testing.T) ([]string, []string, *server, bool) {
			d := newServer(t, files(map[string][]byte{"/r/f": data}))
			port := d.URL[strings.LastIndex(d.URL, ":"):]
			a := newServer(t, redirectTo(d.URL+"/r/f"))
			b := newServer(t, files(map[string][]byte{"/r/f": data}))
			return []string{a.base("/r/"), d.base("/r/"), b.base("/r/")}, []string{port}, d, false
		}},
		{"a loop", func(t *testing.T) ([]string, []string, *server, bool) {
			a := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, r.URL.Path+"x", http.StatusFound)
			})
			b := newServer(t, files(map[string][]byte{"/r/f": data}))
			return []string{a.base("/r/"), b.base("/r/")}, nil, nil, false
		}},
		{"to another scheme", func(t *testing.T) ([]string, []string, *server, bool) {
			a := newServer(t, redirectTo("ftp://127.0.0.1/r/f"))
			b := newServer(t, files(map[string][]byte{"/r/f": data}))
			return []string{a.base("/r/"), b.base("/r/")}, nil, nil, false
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bases, deny, never, followed := tc.setup(t)
			fails := &failures{}
			c := newClient(t, Options{Bases: bases, DenyAddrs: deny, OnFail: fails.hook})
			resp, body, err := fetch(t, c, "f")
			if err != nil {
				t.Fatalf("got %v (%s)", err, sentinel(err))
			}
			if !bytes.Equal(body, data) {
				t.Errorf("body %q", body)
			}
			if followed {
				if resp.Base != bases[0] || len(fails.of(bases[0])) != 0 {
					t.Errorf("answered by %s, failures %v: the redirect was not followed", resp.Base, fails.m)
				}
			} else {
				last := bases[len(bases)-1]
				if resp.Base != last {
					t.Errorf("answered by %s, want the last base %s", resp.Base, last)
				}
				errs := fails.of(bases[0])
				if len(errs) != 1 || !errors.Is(errs[0], ErrUnavailable) {
					t.Errorf("the refused redirect counted as %v, want one ErrUnavailable", errs)
				}
			}
			if never != nil {
				if n := never.hits.Load(); n != 0 {
					t.Errorf("the refused target was asked %d times", n)
				}
			}
		})
	}
}

// Custom headers and basic auth go to the configured bases' origins only:
// not to a list mirror, whether reached by a redirect (which Go would
// carry them on: it copies custom headers always and drops Authorization
// only when the host name changes, not the port) or directly.
func TestCredentialsStayWithTheirOrigins(t *testing.T) {
	data := []byte("payload")
	creds := func(r *http.Request) string {
		u, p, _ := r.BasicAuth()
		return r.Header.Get("X-Token") + "|" + u + ":" + p
	}
	mirror := newServer(t, files(map[string][]byte{"/m/f": data, "/m/only-here": data}))
	list := newServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(mirror.base("/m/") + "\n")) })
	other := newServer(t, files(map[string][]byte{"/b/f": data}))
	first := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/r/f":
			redirectTo(mirror.URL+"/m/f")(w, r)
		case "/r/g":
			redirectTo(other.URL+"/b/f")(w, r)
		default:
			http.NotFound(w, r)
		}
	})
	c := newClient(t, Options{
		Bases:      []string{first.base("/r/"), other.base("/b/")},
		Mirrorlist: list.URL + "/mirrorlist",
		Headers:    map[string]string{"X-Token": "t0ken"},
		Username:   "u", Password: "p",
	})
	const want = "t0ken|u:p"
	for _, rel := range []string{"f", "g", "only-here"} {
		if _, body, err := fetch(t, c, rel); err != nil || !bytes.Equal(body, data) {
			t.Fatalf("%s: %v", rel, err)
		}
	}
	for _, r := range first.requests() {
		if got := creds(r); got != want {
			t.Errorf("configured base got %q, want %q", got, want)
		}
	}
	if got := creds(list.requests()[0]); got != want {
		t.Errorf("mirrorlist server got %q, want %q", got, want)
	}
	// other is a configured base too, reached by redirect: it gets them.
	for _, r := range other.requests() {
		if got := creds(r); got != want {
			t.Errorf("second configured base got %q, want %q", got, want)
		}
	}
	reqs := mirror.requests()
	if len(reqs) != 2 {
		t.Fatalf("mirror saw %d requests, want the redirected one and the direct one", len(reqs))
	}
	for _, r := range reqs {
		if got := creds(r); got != "|:" {
			t.Errorf("list mirror %s got credentials %q", r.URL.Path, got)
		}
	}
}
