package proxy

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/config"
)

// AdminServer returns the admin listener: the open health and metrics
// endpoints, the token-protected API under /api/ and the dashboard at /.
//
// Every path but /healthz, /readyz and /metrics needs the admin token as
// "Authorization: Bearer <token>"; the dashboard also takes it as the
// password of HTTP Basic auth, so that a browser can open it. Without a
// configured token those paths answer 403.
func (s *Server) AdminServer(addr string) *http.Server {
	if s.cfg.Admin.Token == "" {
		s.log.Warn("no admin token: the admin API and dashboard answer 403; set admin.token in the config file or the environment variable " +
			config.EnvAdminToken)
	}
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.Use(s.accessLog, recoverAbort, s.adminAuth)

	r.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok\n") })
	r.GET("/readyz", func(c *gin.Context) {
		_, err := s.store.Stat(c.Request.Context(), "readyz-probe")
		if err != nil && !errors.Is(err, cache.ErrNotFound) {
			c.String(http.StatusServiceUnavailable, "store not ready: %v\n", err)
			return
		}
		c.String(http.StatusOK, "ready\n")
	})
	r.GET("/metrics", gin.WrapH(s.metrics.handler()))

	api := r.Group("/api/v1")
	api.GET("/repos", s.apiRepos)
	api.GET("/repos/:name/divergences", s.apiDivergences)
	api.GET("/repos/:name/repofile", s.apiRepofile)
	api.POST("/repos/:name/refresh", s.apiRefresh)
	api.GET("/cache", s.apiCacheStats)
	api.DELETE("/cache", s.apiPurge)
	api.POST("/warm", s.apiWarm)
	api.GET("/jobs", s.apiJobs)
	api.GET("/jobs/:id", s.apiJob)

	r.GET("/", s.dashboard)
	r.GET("/package", s.dashboardPackage)
	r.GET("/repofile", func(c *gin.Context) { s.repofile(c, c.Query("repo")) })

	// The Go profiler, behind the token like the API.
	r.GET("/debug/pprof/*name", gin.WrapF(pprofHandler))
	r.POST("/debug/pprof/symbol", gin.WrapF(pprof.Symbol))

	r.NoRoute(func(c *gin.Context) { apiError(c, http.StatusNotFound, "no such admin path") })
	r.NoMethod(func(c *gin.Context) { apiError(c, http.StatusMethodNotAllowed, "method not allowed") })
	return &http.Server{
		Addr:              addr,
		Handler:           r,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    s.cfg.Limits.MaxHeaderBytes,
	}
}

// openAdminPaths need no token.
var openAdminPaths = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// dashboardPaths are the pages a browser opens: they also take the token as
// the password of HTTP Basic auth. They only read.
var dashboardPaths = map[string]bool{"/": true, "/package": true, "/repofile": true}

// pprofHandler serves net/http/pprof's pages under /debug/pprof/.
func pprofHandler(w http.ResponseWriter, r *http.Request) {
	switch strings.TrimPrefix(r.URL.Path, "/debug/pprof/") {
	case "cmdline":
		pprof.Cmdline(w, r)
	case "profile":
		pprof.Profile(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "trace":
		pprof.Trace(w, r)
	default:
		pprof.Index(w, r) // the index and the named profiles (heap, goroutine, ...)
	}
}

// adminAuth checks the admin token on every path but the open ones. It runs
// before routing (also for unknown paths and methods), so an unauthorized
// client learns nothing about which paths exist.
func (s *Server) adminAuth(c *gin.Context) {
	p := c.Request.URL.Path
	if openAdminPaths[p] {
		c.Next()
		return
	}
	dashboard := dashboardPaths[p] && (c.Request.Method == http.MethodGet || c.Request.Method == http.MethodHead)
	if s.cfg.Admin.Token == "" {
		c.Abort()
		apiError(c, http.StatusForbidden, "the admin API is disabled: no admin token is configured (admin.token or "+config.EnvAdminToken+")")
		return
	}
	if s.tokenOK(c.Request, dashboard) {
		c.Next()
		return
	}
	c.Abort()
	if dashboard {
		c.Header("WWW-Authenticate", `Basic realm="dnfproxy admin", charset="UTF-8"`)
		c.Writer.Header().Add("WWW-Authenticate", `Bearer realm="dnfproxy admin"`)
	} else {
		c.Header("WWW-Authenticate", `Bearer realm="dnfproxy admin"`)
	}
	apiError(c, http.StatusUnauthorized, "missing or wrong admin token")
}

// tokenOK reports whether the request carries the admin token: as a bearer
// token, or (when basic is set) as the password of HTTP Basic auth. Both
// sides are hashed first so the comparison takes the same time whatever
// the length of the guess.
func (s *Server) tokenOK(r *http.Request, basic bool) bool {
	var got string
	h := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(h, " ")
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		got = strings.TrimSpace(cred)
	case basic && strings.EqualFold(scheme, "Basic"):
		_, pw, ok := r.BasicAuth()
		if !ok {
			return false
		}
		got = pw
	default:
		return false
	}
	if got == "" {
		return false
	}
	a := sha256.Sum256([]byte(got))
	b := sha256.Sum256([]byte(s.cfg.Admin.Token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// apiError answers with {"error": msg}.
func apiError(c *gin.Context, status int, msg string) {
	c.Header("Cache-Control", "no-store")
	c.JSON(status, gin.H{"error": msg})
}
