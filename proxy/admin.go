package proxy

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dnfproxy/dnfproxy/cache"
)

// AdminServer returns the admin listener. It answers the open health
// endpoints; the token-protected API lives beside them.
func (s *Server) AdminServer(addr string, store cache.Store) *http.Server {
	r := gin.New()
	r.Use(s.accessLog, recoverAbort)
	r.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok\n") })
	r.GET("/readyz", func(c *gin.Context) {
		if _, err := store.Stat(c.Request.Context(), "readyz-probe"); err != nil && err != cache.ErrNotFound {
			c.String(http.StatusServiceUnavailable, "store not ready: %v\n", err)
			return
		}
		c.String(http.StatusOK, "ready\n")
	})
	return &http.Server{Addr: addr, Handler: r, ReadHeaderTimeout: 30 * time.Second, MaxHeaderBytes: s.cfg.Limits.MaxHeaderBytes}
}
