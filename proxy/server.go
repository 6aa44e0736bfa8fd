// Package proxy is dnfproxy's HTTP side: the client listener that maps
// /<repo>/<path> onto upstream repos through the cache, the cache fills,
// and the metadata generations.
//
// Guarantees: a client never gets a repomd.xml whose listed files the proxy
// cannot serve; one upstream transfer per object however many clients ask;
// packages are cached only when they match primary.xml; no request reaches
// outside a repo's upstream base.
package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/singleflight"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/metadata"
)

func init() { gin.SetMode(gin.ReleaseMode) }

// errRetryStore tells a handler that the object is (again) in the store.
var errRetryStore = errors.New("object committed meanwhile")

type repoState struct {
	name string
	cfg  config.Repo
	ttl  time.Duration
	up   *upstream

	mu    sync.Mutex
	roots map[string]*rootState
}

type limits struct {
	repomd, metadata, decompressed int64
	urlLength                      int
}

type counters struct {
	hits, misses, upstreamBytes atomic.Int64
}

// Server is the client-facing proxy.
type Server struct {
	cfg    config.Config
	store  cache.Store
	log    *slog.Logger
	repos  map[string]*repoState
	limits limits
	stats  counters

	baseCtx        context.Context // fills and refreshes run on it, not on clients'
	stop           context.CancelFunc
	refreshTimeout time.Duration
	spoolDir       string

	fillMu sync.Mutex
	fills  map[string]*fill
	fillWG sync.WaitGroup

	refreshes singleflight.Group

	// Metadata rewriting (views.go).
	rules      atomic.Pointer[metadata.RuleSet]
	signerOnce sync.Once
	signer     *metadata.Signer
	signerErr  error
	views      sync.Map // repo\x00root\x00view → *viewSlot
	analyses   sync.Map // repo\x00root → *analysisSlot
	viewBuilds singleflight.Group

	metrics *metrics    // Prometheus metrics (metrics.go)
	admin   *adminState // admin API state (admin_state.go)
	evict   *evictor    // storage.max_size (evict.go)
}

// New builds a Server over an open store and restores the persisted
// metadata generations.
func New(cfg config.Config, store cache.Store, log *slog.Logger) (*Server, error) {
	ctx, stop := context.WithCancel(context.Background())
	s := &Server{
		cfg: cfg, store: store, log: log,
		repos: map[string]*repoState{},
		limits: limits{
			repomd:       int64(cfg.Limits.MaxRepomdSize),
			metadata:     int64(cfg.Limits.MaxMetadataSize),
			decompressed: int64(cfg.Limits.MaxDecompressedSize),
			urlLength:    cfg.Limits.MaxURLLength,
		},
		baseCtx: ctx, stop: stop,
		refreshTimeout: 30 * time.Minute,
		spoolDir:       filepath.Join(cfg.Storage.Dir, "spool"),
		fills:          map[string]*fill{},
	}
	if err := os.MkdirAll(s.spoolDir, 0o750); err != nil {
		stop()
		return nil, fmt.Errorf("storage.dir: %w", err)
	}
	for _, rc := range cfg.Repos {
		up, err := newUpstream(rc.Name, UpstreamOptions{
			Bases: rc.Bases(), Timeout: time.Duration(rc.Timeout),
			CAFile: rc.CAFile, ClientCert: rc.ClientCert, ClientKey: rc.ClientKey,
			Username: rc.Username, Password: rc.Password, Headers: rc.Headers,
		}, log)
		if err != nil {
			stop()
			return nil, err
		}
		s.repos[rc.Name] = &repoState{
			name: rc.Name, cfg: rc, ttl: time.Duration(rc.MetadataTTL), up: up,
			roots: map[string]*rootState{},
		}
	}
	s.initAdmin()
	if err := s.LoadRules(); err != nil {
		stop()
		return nil, fmt.Errorf("rule_files: %w", err)
	}
	if err := s.loadGenerations(ctx); err != nil {
		stop()
		return nil, fmt.Errorf("loading metadata generations: %w", err)
	}
	s.startEvictor()
	return s, nil
}

// Close stops running fills and refreshes and waits for them. The store
// stays open: its owner closes it.
func (s *Server) Close() {
	s.stop()
	s.admin.jobs.wg.Wait() // warm jobs end with the base context
	s.fillWG.Wait()
	s.stopEvictor()
}

// Handler returns the client-facing HTTP handler.
func (s *Server) Handler() http.Handler {
	r := gin.New()
	r.HandleMethodNotAllowed = false
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.Use(s.accessLog, s.guard, recoverAbort)
	r.GET("/*path", s.handle)
	r.HEAD("/*path", s.handle)
	r.NoRoute(func(c *gin.Context) {
		c.Header("Allow", "GET, HEAD")
		c.String(http.StatusMethodNotAllowed, "method not allowed\n")
	})
	return r
}

// HTTPServer wraps the handler with the listener limits.
func (s *Server) HTTPServer(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           s.Handler(),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    s.cfg.Limits.MaxHeaderBytes,
	}
}

func (s *Server) handle(c *gin.Context) {
	t, err := parseTarget(c.Request.URL.EscapedPath(), c.Request.URL.Path)
	if err != nil {
		c.Error(err)
		return
	}
	rp, ok := s.repos[t.repo]
	if !ok {
		c.Error(fmt.Errorf("%w: no repo %q", ErrNotFound, t.repo))
		return
	}
	view := effectiveView(rp, t.view)
	if view != ViewRaw && view != ViewAnnotate && view != ViewFilter {
		c.Error(fmt.Errorf("%w: repo %s has no view %q", ErrNotFound, t.repo, t.view))
		return
	}
	c.Set(logRepo, t.repo)
	kind, root := classify(t.rel)
	if view != ViewRaw && (kind == kindRepomd || kind == kindSignature || kind == kindRepodata) {
		err = s.serveView(c, rp, view, t.rel, kind, root)
		if err != nil {
			c.Error(err)
		}
		return
	}
	switch kind {
	case kindRepomd:
		err = s.serveRepomd(c, rp, root)
	case kindSignature:
		err = s.serveSignature(c, rp, root)
	case kindRepodata:
		err = s.serveRepodata(c, rp, t.rel, root)
	case kindPackage:
		err = s.servePackage(c, rp, t.rel)
	case kindDir:
		err = s.passThrough(c, rp, t.rel)
	default:
		err = s.serveFile(c, rp, t.rel)
	}
	if err != nil {
		c.Error(err)
	}
}

func (s *Server) serveRepomd(c *gin.Context, rp *repoState, root string) error {
	g, result, err := s.generationFor(c.Request.Context(), rp, root, rp.ttl)
	if err != nil {
		return err
	}
	c.Set(logResult, result)
	serveMetadata(c, "repomd.xml", g.Created, g.Repomd)
	return nil
}

func (s *Server) serveSignature(c *gin.Context, rp *repoState, root string) error {
	g, result, err := s.generationFor(c.Request.Context(), rp, root, rp.ttl)
	if err != nil {
		return err
	}
	if g.Signature == nil {
		return fmt.Errorf("%w: upstream has no repomd.xml.asc", ErrNotFound)
	}
	c.Set(logResult, result)
	serveMetadata(c, "repomd.xml.asc", g.Created, g.Signature)
	return nil
}

// serveMetadata answers with a small document the proxy holds in memory
// (repomd.xml, its signature, the signing key): never cached by clients
// without revalidation, with an ETag of its content.
func serveMetadata(c *gin.Context, name string, mod time.Time, body []byte) {
	h := c.Writer.Header()
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Type", contentType(name))
	h.Set("ETag", fmt.Sprintf(`"%x"`, sha256.Sum256(body)))
	http.ServeContent(c.Writer, c.Request, name, mod, bytes.NewReader(body))
}

// serveRepodata serves a file a generation lists, verified by checksum.
// Files of the previous generation stay servable.
func (s *Server) serveRepodata(c *gin.Context, rp *repoState, rel, root string) error {
	st := rp.knownRoot(root)
	if st == nil || func() bool { cur, _ := st.get(); return cur == nil }() {
		// No generation yet: make one (a client with an old repomd.xml).
		if _, _, err := s.generationFor(c.Request.Context(), rp, root, rp.ttl); err != nil {
			return err
		}
		st = rp.knownRoot(root)
	}
	cur, prev := st.get()
	href := rel[len(root):]
	for _, g := range []*generation{cur, prev} {
		if g == nil {
			continue
		}
		if rec, ok := g.files[href]; ok {
			return s.serveVerified(c, rp, mdKey(rp.name, rel, rec.Checksum.String()), rel,
				expect{size: rec.Size, sum: rec.Checksum, maxSize: s.limits.metadata}, immutable)
		}
	}
	// Not listed (e.g. a comps or key file beside repomd): a plain file.
	return s.serveFile(c, rp, rel)
}

// servePackage serves an RPM that primary.xml lists, verified by size and
// checksum. An RPM no generation lists passes through uncached.
func (s *Server) servePackage(c *gin.Context, rp *repoState, rel string) error {
	ref, ok := s.lookupPackage(c.Request.Context(), rp, rel)
	if !ok {
		return s.passThrough(c, rp, rel)
	}
	return s.serveVerified(c, rp, objKey(rp.name, rel), rel,
		expect{size: ref.size, sum: ref.sum}, immutable)
}

type cachePolicy int

const (
	immutable cachePolicy = iota
	revalidate
)

func (p cachePolicy) header(ttl time.Duration) string {
	if p == immutable {
		return "public, max-age=31536000, immutable"
	}
	return fmt.Sprintf("public, max-age=%d", int(ttl.Seconds()))
}

// serveVerified serves key from the store when it holds the expected
// bytes, otherwise fills it from upstream.
func (s *Server) serveVerified(c *gin.Context, rp *repoState, key, rel string, exp expect, policy cachePolicy) error {
	for range 3 {
		obj, err := s.store.Get(c.Request.Context(), key)
		if err == nil {
			info := obj.Info()
			if exp.sum.IsZero() || info.Meta.Checksum == exp.sum.String() {
				c.Set(logResult, resultHit)
				s.serveObject(c, obj, rel, policy, rp.ttl)
				return nil
			}
			obj.Close() // same path, other bytes: primary changed; refetch
			f := s.startFill(rp, key, rel, exp, nil, true)
			if err := s.follow(c, f, policy, rp.ttl); !errors.Is(err, errRetryStore) {
				return err
			}
			continue
		}
		if !errors.Is(err, cache.ErrNotFound) {
			return err
		}
		f := s.startFill(rp, key, rel, exp, nil, false)
		if f == nil {
			continue
		}
		if err := s.follow(c, f, policy, rp.ttl); !errors.Is(err, errRetryStore) {
			return err
		}
	}
	return fmt.Errorf("%w: %s: object keeps changing", ErrUpstream, rel)
}

// follow serves a client from a running fill. Range and HEAD requests
// wait for the object to be complete and are then served from the store.
func (s *Server) follow(c *gin.Context, f *fill, policy cachePolicy, ttl time.Duration) error {
	// Bytes already verified (the store commit may still be running) are
	// served locally: a hit.
	f.mu.Lock()
	verified := f.finished && f.err == nil && !f.notModified
	f.mu.Unlock()
	if verified {
		c.Set(logResult, resultHit)
	} else {
		c.Set(logResult, resultMiss)
	}
	if c.Request.Method == http.MethodHead || c.GetHeader("Range") != "" {
		err := f.await(c.Request.Context())
		f.release()
		if err != nil {
			return err
		}
		return errRetryStore
	}
	start := time.Now()
	err := s.streamFill(c, f, func(h http.Header) { h.Set("Cache-Control", policy.header(ttl)) })
	c.Set(logUpstreamMS, time.Since(start).Milliseconds())
	return err
}

// serveObject serves a committed object with Range, multi-range, HEAD and
// conditional requests (http.ServeContent), then closes it.
func (s *Server) serveObject(c *gin.Context, obj cache.Object, rel string, policy cachePolicy, ttl time.Duration) {
	defer obj.Close()
	info := obj.Info()
	h := c.Writer.Header()
	h.Set("Cache-Control", policy.header(ttl))
	ct := info.Meta.ContentType
	if ct == "" {
		ct = contentType(rel)
	}
	h.Set("Content-Type", ct)
	if info.Meta.Checksum != "" {
		h.Set("ETag", `"`+info.Meta.Checksum+`"`)
	}
	mod := info.Stored
	if lm, err := http.ParseTime(info.Meta.LastModified); err == nil {
		mod = lm
	}
	if rng := c.Request.Header.Get("Range"); rng != "" {
		clean, satisfiable := normalizeRange(rng)
		if !satisfiable {
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", info.Size))
			c.Status(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		if clean == "" {
			c.Request.Header.Del("Range")
		} else {
			c.Request.Header.Set("Range", clean)
		}
	}
	if wt, ok := obj.(io.WriterTo); ok && plainGet(c.Request) {
		// The common case, a whole object: straight from the store's
		// chunks. Range, HEAD and conditional requests take ServeContent.
		h.Set("Accept-Ranges", "bytes")
		h.Set("Content-Length", strconv.FormatInt(info.Size, 10))
		if !mod.IsZero() {
			h.Set("Last-Modified", mod.UTC().Format(http.TimeFormat))
		}
		c.Writer.WriteHeader(http.StatusOK)
		if _, err := wt.WriteTo(c.Writer); err != nil && c.Request.Context().Err() == nil {
			abortConn(c, err)
		}
	} else {
		http.ServeContent(c.Writer, c.Request, "", mod, obj)
	}
}

// plainGet reports whether a request asks for a whole object with no
// conditions, so that http.ServeContent has nothing to decide.
func plainGet(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	for _, k := range []string{"Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range"} {
		if r.Header.Get(k) != "" {
			return false
		}
	}
	return true
}

// normalizeRange parses a Range header strictly (RFC 9110 14.1.2: digits
// only) before http.ServeContent sees it, whose parser accepts "+0" and
// answers an empty suffix range ("-0") with an invalid Content-Range. It
// returns the header to use: "" to ignore a header that is not a valid
// bytes range (the full object is served), or satisfiable=false when only
// empty suffix ranges were asked for.
func normalizeRange(rng string) (clean string, satisfiable bool) {
	specs, ok := strings.CutPrefix(rng, "bytes=")
	if !ok {
		return "", true
	}
	var kept []string
	for _, spec := range strings.Split(specs, ",") {
		spec = strings.TrimSpace(spec)
		if spec == "" {
			continue
		}
		start, end, ok := strings.Cut(spec, "-")
		start, end = strings.TrimSpace(start), strings.TrimSpace(end)
		if !ok || !allDigits(start) || !allDigits(end) || start == "" && end == "" {
			return "", true
		}
		if start == "" && strings.Trim(end, "0") == "" {
			continue // "-0" selects nothing
		}
		kept = append(kept, start+"-"+end)
	}
	if len(kept) == 0 {
		return "", false
	}
	return "bytes=" + strings.Join(kept, ","), true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// serveFile serves a file no metadata lists (.treeinfo, GPG keys, images):
// cached with a length check, revalidated after the repo's TTL with a
// conditional GET; when upstream fails the cached copy is served.
func (s *Server) serveFile(c *gin.Context, rp *repoState, rel string) error {
	key := objKey(rp.name, rel)
	exp := expect{size: -1}
	for range 3 {
		obj, err := s.store.Get(c.Request.Context(), key)
		if err != nil && !errors.Is(err, cache.ErrNotFound) {
			return err
		}
		if err == nil {
			info := obj.Info()
			if time.Since(info.Meta.Fetched) < rp.ttl {
				c.Set(logResult, resultHit)
				s.serveObject(c, obj, rel, revalidate, rp.ttl)
				return nil
			}
			cond := http.Header{}
			if info.Meta.ETag != "" {
				cond.Set("If-None-Match", info.Meta.ETag)
			}
			if info.Meta.LastModified != "" {
				cond.Set("If-Modified-Since", info.Meta.LastModified)
			}
			f := s.startFill(rp, key, rel, exp, cond, true)
			ferr := f.await(c.Request.Context())
			f.release()
			if ferr != nil && !errors.Is(ferr, ErrNotFound) {
				s.log.Warn("revalidation failed; serving the cached copy", "repo", rp.name, "path", rel, "err", ferr)
				c.Set(logResult, resultStale)
				s.serveObject(c, obj, rel, revalidate, rp.ttl)
				return nil
			}
			obj.Close()
			if ferr != nil {
				return ferr
			}
			continue
		}
		f := s.startFill(rp, key, rel, exp, nil, false)
		if f == nil {
			continue
		}
		if err := s.follow(c, f, revalidate, rp.ttl); !errors.Is(err, errRetryStore) {
			return err
		}
	}
	return fmt.Errorf("%w: %s: object keeps changing", ErrUpstream, rel)
}
