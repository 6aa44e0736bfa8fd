package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/fill"
	"github.com/dnfproxy/dnfproxy/internal/upstream"
	"github.com/dnfproxy/dnfproxy/internal/view"
)

// Keys handlers set on the gin context for the access log.
const (
	logRepo       = "dnfproxy.repo"
	logResult     = "dnfproxy.result"
	logUpstreamMS = "dnfproxy.upstream_ms"
	logView       = "dnfproxy.view" // "raw-fallback" when a view could not be served
)

// Sentinel errors of the proxy itself; the owners' errors (upstream, fill,
// view, cache) are mapped to statuses beside them in statusOf.
var (
	ErrNotFound   = errors.New("not found")       // 404
	ErrBadRequest = errors.New("bad request")     // 400
	ErrUpstream   = errors.New("upstream failed") // 502
)

// statusClientGone is logged for a client that hung up before its answer
// was complete (nginx's convention).
const statusClientGone = 499

// trustedProxies lists the CIDRs whose X-Forwarded-For the access log
// believes: none unless configured.
func trustedProxies(cfg config.Config) []string {
	if len(cfg.TrustedProxies) == 0 {
		return nil
	}
	return cfg.TrustedProxies
}

// accessLog writes one line per request and maps the handler's error (if
// any) to a status: the one place errors become HTTP answers.
func (s *Server) accessLog(c *gin.Context) {
	start := time.Now()
	c.Writer = newClientWriter(c.Writer)
	defer func() {
		// An aborted transfer (http.ErrAbortHandler) is logged too, then
		// handed on to net/http, which drops the connection.
		r := recover()
		s.logRequest(c, start, r != nil)
		if r != nil {
			panic(r)
		}
	}()
	c.Next()
}

func (s *Server) logRequest(c *gin.Context, start time.Time, aborted bool) {
	status := c.Writer.Status()
	if v, _ := c.Get(logResult); v == resultClientGone || (c.Request.Context().Err() != nil && !c.Writer.Written()) {
		status = statusClientGone
		c.Set(logResult, resultClientGone)
	}
	var errText string
	if err := c.Errors.Last(); err != nil {
		errText = err.Err.Error()
		if !c.Writer.Written() && !aborted && status != statusClientGone {
			status = statusOf(err.Err)
			c.Header("Cache-Control", "no-store")
			c.String(status, "%s\n", publicMessage(status, err.Err))
		}
	}
	d := time.Since(start)
	result, hasResult := c.Get(logResult)
	if ctx := context.Background(); s.log.Enabled(ctx, slog.LevelInfo) {
		attrs := make([]slog.Attr, 0, 12)
		attrs = append(attrs,
			slog.String("method", c.Request.Method),
			slog.String("path", c.Request.URL.Path),
			slog.Int("status", status),
			slog.Int("bytes", c.Writer.Size()),
			slog.Int64("duration_ms", d.Milliseconds()),
			slog.String("client", s.clientIP(c)),
		)
		if v, ok := c.Get(logRepo); ok {
			attrs = append(attrs, slog.Any("repo", v))
		}
		if hasResult {
			attrs = append(attrs, slog.Any("cache", result))
		}
		if v, ok := c.Get(logView); ok {
			attrs = append(attrs, slog.Any("view", v))
		}
		if v, ok := c.Get(logUpstreamMS); ok {
			attrs = append(attrs, slog.Any("upstream_ms", v))
		}
		if errText != "" {
			attrs = append(attrs, slog.String("err", errText))
		}
		if aborted {
			attrs = append(attrs, slog.Bool("aborted", true))
		}
		// Straight to the handler: a record without a caller's PC (the
		// access log names no source line, and runtime.Callers is a
		// measurable part of a cache hit).
		r := slog.NewRecord(time.Now(), slog.LevelInfo, "request", 0)
		r.AddAttrs(attrs...)
		_ = s.log.Handler().Handle(ctx, r)
	}
	// The one place requests are counted: the cache stats of the admin
	// API and the metrics agree with the access log.
	switch result {
	case resultHit:
		s.stats.hits.Add(1)
	case resultMiss:
		s.stats.misses.Add(1)
	}
	s.metrics.observeRequest(c, status, aborted, d)
}

// clientIP is the client address of the access log: gin's ClientIP, which
// believes X-Forwarded-For from trusted proxies only; with none configured
// it is the peer's address, taken without gin's context lookups.
func (s *Server) clientIP(c *gin.Context) string {
	if len(s.cfg.TrustedProxies) == 0 {
		if host, _, err := net.SplitHostPort(c.Request.RemoteAddr); err == nil {
			return host
		}
	}
	return c.ClientIP()
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, ErrNotFound), errors.Is(err, upstream.ErrNotFound), errors.Is(err, cache.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, upstream.ErrTimeout), errors.Is(err, upstream.ErrTooSlow), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, ErrUpstream), errors.Is(err, upstream.ErrUnavailable), errors.Is(err, fill.ErrVerify),
		errors.Is(err, view.ErrNoView), errors.Is(err, upstream.ErrBadRequest):
		return http.StatusBadGateway
	}
	return http.StatusInternalServerError
}

// publicMessage is what a client is told: the error for 4xx and upstream
// faults, nothing internal for 500.
func publicMessage(status int, err error) string {
	if status == http.StatusInternalServerError {
		return "internal error"
	}
	return err.Error()
}

// guard refuses what a repo proxy must never do: act as an open forward
// proxy (absolute-URI requests, CONNECT), or take over-long URLs.
func (s *Server) guard(c *gin.Context) {
	r := c.Request
	switch {
	case r.Method == http.MethodConnect:
		c.AbortWithError(http.StatusMethodNotAllowed, fmt.Errorf("%w: CONNECT is not served", ErrBadRequest))
		c.String(http.StatusMethodNotAllowed, "CONNECT is not served: this is not a forward proxy\n")
	case !strings.HasPrefix(r.RequestURI, "/"):
		c.AbortWithError(http.StatusBadRequest, fmt.Errorf("%w: absolute-URI request", ErrBadRequest))
		c.String(http.StatusBadRequest, "absolute-URI requests are not served: this is not a forward proxy\n")
	case s.limits.urlLength > 0 && len(r.RequestURI) > s.limits.urlLength:
		c.AbortWithError(http.StatusRequestURITooLong, fmt.Errorf("%w: URL longer than %d", ErrBadRequest, s.limits.urlLength))
		c.String(http.StatusRequestURITooLong, "URL too long\n")
	case len(r.TransferEncoding) > 0 || r.ContentLength > 0:
		// A GET or HEAD has no body; one that claims one (both
		// Transfer-Encoding and Content-Length, RFC 9112 6.1) may be a
		// smuggling attempt: answer and close the connection.
		c.Header("Connection", "close")
		r.Close = true
		c.AbortWithError(http.StatusBadRequest, fmt.Errorf("%w: request body on %s", ErrBadRequest, r.Method))
		c.String(http.StatusBadRequest, "GET and HEAD requests take no body\n")
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		c.Header("Allow", "GET, HEAD")
		c.AbortWithError(http.StatusMethodNotAllowed, fmt.Errorf("%w: method %s", ErrBadRequest, r.Method))
		c.String(http.StatusMethodNotAllowed, "method not allowed\n")
	default:
		c.Next()
	}
}

// abortConn ends a response whose body cannot be completed: the client
// must see a broken transfer, not a short body that looks whole.
func abortConn(c *gin.Context, err error) {
	c.Error(fmt.Errorf("transfer aborted: %w", err))
	panic(http.ErrAbortHandler)
}

// recoverAbort lets http.ErrAbortHandler through to net/http (which then
// drops the connection) and turns other panics into a 500.
func recoverAbort(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			c.Error(fmt.Errorf("panic: %v", r))
			if !c.Writer.Written() {
				c.AbortWithStatus(http.StatusInternalServerError)
			}
		}
	}()
	c.Next()
}

// passThrough relays an uncached answer (directory listings, RPMs no
// metadata lists). Nothing is stored.
func (s *Server) passThrough(c *gin.Context, re *repoEntry, rel string) error {
	start := time.Now()
	resp, err := re.up.Get(c.Request.Context(), rel, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	c.Set(logResult, resultPass)
	c.Set(logUpstreamMS, time.Since(start).Milliseconds())
	if resp.StatusCode != http.StatusOK {
		return upstream.StatusError(resp.Response)
	}
	h := c.Writer.Header()
	for _, k := range []string{"Content-Type", "Content-Length", "Last-Modified", "ETag"} {
		if v := resp.Header.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	h.Set("Cache-Control", "no-store")
	c.Writer.WriteHeader(http.StatusOK)
	if c.Request.Method == http.MethodHead {
		return nil
	}
	n, err := io.Copy(c.Writer, resp.Body)
	if err != nil && c.Request.Context().Err() == nil && (resp.ContentLength < 0 || n != resp.ContentLength) {
		abortConn(c, err)
	}
	return nil
}

// clientWriter is the gin.ResponseWriter of every client request. Beyond
// gin's, it is an io.ReaderFrom: a file section (an *os.File under an
// io.LimitedReader, as fill.Fill.CopyTo hands over its spool) goes to the
// net/http response beneath the deadline writer, which sends it with
// sendfile on a TCP connection; the bytes sent that way count in Size, so
// the access log and the metrics see them.
type clientWriter struct {
	gin.ResponseWriter
	base io.ReaderFrom // the writer under gin's, nil when it has no ReadFrom
	sent int           // body bytes sent through base
}

func newClientWriter(w gin.ResponseWriter) *clientWriter {
	cw := &clientWriter{ResponseWriter: w}
	if u, ok := w.(interface{ Unwrap() http.ResponseWriter }); ok {
		cw.base, _ = u.Unwrap().(io.ReaderFrom)
	}
	return cw
}

func (w *clientWriter) ReadFrom(r io.Reader) (int64, error) {
	if lr, ok := r.(*io.LimitedReader); ok && w.base != nil {
		if _, ok := lr.R.(*os.File); ok {
			w.ResponseWriter.WriteHeaderNow()
			n, err := w.base.ReadFrom(r)
			w.sent += int(n)
			return n, err
		}
	}
	return io.Copy(writerOnly{w}, r)
}

// Size is gin's count of the body bytes plus those sent by ReadFrom.
func (w *clientWriter) Size() int {
	if w.sent == 0 {
		return w.ResponseWriter.Size()
	}
	return max(w.ResponseWriter.Size(), 0) + w.sent
}

// Unwrap gives http.ResponseController the writer beneath.
func (w *clientWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
