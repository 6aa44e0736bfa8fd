// Package proxy is dnfproxy's HTTP side: the client listener that maps
// /<repo>[@view]/<path> onto the owners of the state (repo generations,
// views, fills, the store), and the admin listener that reads their narrow
// read-only ports. It holds no state another package reads or writes; its
// own state is the access-log counters and the warm jobs.
//
// Guarantees: a client never gets a repomd.xml whose listed files the proxy
// cannot serve; a client with something good to serve never waits on
// upstream; no request reaches outside a repo's upstream base.
package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/evict"
	"github.com/dnfproxy/dnfproxy/internal/fill"
	"github.com/dnfproxy/dnfproxy/internal/repo"
	"github.com/dnfproxy/dnfproxy/internal/upstream"
	"github.com/dnfproxy/dnfproxy/internal/view"
	"github.com/dnfproxy/dnfproxy/metadata"
)

func init() { gin.SetMode(gin.ReleaseMode) }

// repoEntry wires one configured repo's owners together.
type repoEntry struct {
	name string
	cfg  config.Repo
	up   *upstream.Client
	gens *repo.Repo
}

type limits struct {
	repomd, metadata, decompressed int64
	urlLength                      int
}

type counters struct {
	hits, misses, upstreamBytes atomic.Int64
}

// Server is the client-facing proxy and its admin side.
type Server struct {
	cfg    config.Config
	store  cache.Store
	log    *slog.Logger
	repos  map[string]*repoEntry // fixed after New
	limits limits
	stats  counters

	baseCtx context.Context // fills, refreshes and builds run on it
	stop    context.CancelFunc

	filler  *fill.Filler
	views   *view.Views
	evict   *evict.Evictor
	metrics *metrics
	admin   *adminState
	signer  chan struct{} // closed when the signing key warm-up ended
}

// New builds a Server over an open store and restores the persisted
// metadata generations and views.
func New(cfg config.Config, store cache.Store, log *slog.Logger) (*Server, error) {
	ctx, stop := context.WithCancel(context.Background())
	s := &Server{
		cfg: cfg, store: store, log: log,
		repos: map[string]*repoEntry{},
		limits: limits{
			repomd:       int64(cfg.Limits.MaxRepomdSize),
			metadata:     int64(cfg.Limits.MaxMetadataSize),
			decompressed: int64(cfg.Limits.MaxDecompressedSize),
			urlLength:    cfg.Limits.MaxURLLength,
		},
		baseCtx: ctx, stop: stop,
	}
	s.metrics = newMetrics(s)
	s.admin = &adminState{}
	fail := func(err error) (*Server, error) {
		stop()
		return nil, err
	}
	var err error
	s.filler, err = fill.New(ctx, store, filepath.Join(cfg.Storage.Dir, "spool"), log, fill.Hooks{
		Committed: func(repo string, d time.Duration, n int64) {
			s.stats.upstreamBytes.Add(n)
			s.metrics.fillDone(repo, d, n)
			if s.evict != nil {
				s.evict.Soon()
			}
		},
	})
	if err != nil {
		return fail(fmt.Errorf("storage.dir: %w", err))
	}
	rules, err := metadata.LoadRules(cfg.RuleFiles...)
	if err != nil {
		return fail(fmt.Errorf("rule_files: %w", err))
	}
	entries := map[string]view.Entry{}
	for _, rc := range cfg.Repos {
		name := rc.Name
		up, err := upstream.New(upstream.Options{
			Repo: name, Bases: rc.Bases(), Metalink: rc.Metalink, Mirrorlist: rc.Mirrorlist,
			Timeout: time.Duration(rc.Timeout), MinRate: int64(rc.MinRate),
			CAFile: rc.CAFile, ClientCert: rc.ClientCert, ClientKey: rc.ClientKey,
			Username: rc.Username, Password: rc.Password, Headers: rc.Headers,
			DenyAddrs: []string{cfg.Listen, cfg.Admin.Listen},
			OnFail:    func(base string, err error) { s.metrics.upstreamError(name, upstream.Redact(base)) },
			Log:       log,
		})
		if err != nil {
			return fail(err)
		}
		gens, err := repo.New(ctx, repo.Options{
			Name: name, TTL: time.Duration(rc.MetadataTTL), MinRate: int64(rc.MinRate),
			Up: up, Filler: s.filler, Store: store, Log: log,
			Limits:   repo.Limits{Repomd: s.limits.repomd, Metadata: s.limits.metadata, Decompressed: s.limits.decompressed, Decode: decodeLimits(cfg)},
			OnSwitch: func(root string, _ *repo.Generation) { s.views.Switched(name, root) },
			IndexSink: func(ctx context.Context, root string, g *repo.Generation) repo.Sink {
				return s.views.SwitchScan(ctx, name, root, g)
			},
		})
		if err != nil {
			return fail(err)
		}
		s.repos[name] = &repoEntry{name: name, cfg: rc, up: up, gens: gens}
		entries[name] = view.Entry{Repo: gens, Compat: rc.Compat}
	}
	s.views, err = view.New(ctx, view.Options{
		Store: store, Log: log, Repos: entries,
		KeyFile: cfg.Signing.KeyFile, StorageDir: cfg.Storage.Dir, Decompressed: s.limits.decompressed,
		Limits:      decodeLimits(cfg),
		BuildFailed: s.metrics.viewBuildFailed,
		Built:       s.metrics.viewBuilt,
	}, rules)
	if err != nil {
		return fail(fmt.Errorf("loading views: %w", err))
	}
	// A rewriting view needs the signing key before its first repomd.xml
	// is served; generating one (first start without signing.key_file)
	// takes a second or more of CPU. Start now, beside the first
	// metadata fetch, rather than after it on the first client's wait.
	s.signer = make(chan struct{})
	go func() {
		defer close(s.signer)
		for _, rc := range cfg.Repos {
			if rc.Compat.Mode != config.ModeOff && rc.Compat.Mode != "" {
				if _, err := s.views.Signer(); err != nil {
					log.Warn("signing key", "err", err) // the first view build reports it too
				}
				return
			}
		}
	}()
	pinners := []evict.Pinner{s.views}
	for _, re := range s.repos {
		pinners = append(pinners, re.gens)
		re.gens.WarmIndexes()
	}
	s.evict = evict.New(store, int64(cfg.Storage.MaxSize), log, s.metrics.observeEviction, pinners...)
	go s.evict.Run(ctx)
	return s, nil
}

// Close stops running fills, refreshes and builds and waits for them. The
// store stays open: its owner closes it.
func (s *Server) Close() {
	s.stop()
	s.admin.jobs.wg.Wait() // warm jobs end with the base context
	for _, re := range s.repos {
		re.gens.Wait()
	}
	<-s.signer
	s.views.Wait()
	s.filler.Wait()
	<-s.evict.Done()
}

// LoadRules (re)reads the configured rule files. On error the previous
// rules stay in force. Views are rebuilt in the background: clients keep
// getting the previous views until the new ones are complete.
func (s *Server) LoadRules() error {
	rs, err := metadata.LoadRules(s.cfg.RuleFiles...)
	if err != nil {
		return err
	}
	s.log.Info("rules loaded", "files", len(s.cfg.RuleFiles), "rules", rs.Len(), "version", rs.Version()[:12])
	s.views.SetRules(rs)
	return nil
}

// Evict runs one eviction round now, then the store's GC.
func (s *Server) Evict(ctx context.Context) (evict.Result, error) { return s.evict.Evict(ctx) }

// EvictResult says what an eviction round did.
type EvictResult = evict.Result

// clientWriteStall drops a client that accepts no byte for this long.
const clientWriteStall = time.Minute

// Handler returns the client-facing HTTP handler.
func (s *Server) Handler() http.Handler {
	r := gin.New()
	r.HandleMethodNotAllowed = false
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	if err := r.SetTrustedProxies(trustedProxies(s.cfg)); err != nil {
		s.log.Warn("trusted_proxies", "err", err)
	}
	r.Use(s.accessLog, s.guard, recoverAbort)
	r.GET("/*path", s.handle)
	r.HEAD("/*path", s.handle)
	r.NoRoute(func(c *gin.Context) {
		c.Header("Allow", "GET, HEAD")
		c.String(http.StatusMethodNotAllowed, "method not allowed\n")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		cd, _ := req.Context().Value(connDeadlineKey{}).(*connDeadline)
		r.ServeHTTP(&deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), stall: clientWriteStall, conn: cd}, req)
	})
}

// HTTPServer wraps the handler with the listener limits.
func (s *Server) HTTPServer(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           s.Handler(),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    headerLimit(s.cfg.Limits.MaxHeaderBytes),
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, connDeadlineKey{}, &connDeadline{})
		},
	}
}

// connDeadline is the write deadline last set on one client connection
// (its requests run one after another), so that a write that finds it far
// enough away does not set it again.
type connDeadline struct{ until time.Time }

type connDeadlineKey struct{}

// deadlineSlack is how much of clientWriteStall a write may find used up
// before it sets the deadline again: a client is dropped after 59–60 s
// without progress.
const deadlineSlack = time.Second

// headerLimit turns the configured request-header bound into
// http.Server.MaxHeaderBytes, to which net/http adds 4096 bytes of slack.
func headerLimit(n int) int {
	if n > 8192 {
		return n - 4096
	}
	return n
}

// deadlineWriter gives every write to a client its own deadline, so a
// client that stops reading is dropped without bounding a slow download.
type deadlineWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
	conn  *connDeadline // nil outside HTTPServer's connections: always set
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.extend()
	return d.ResponseWriter.Write(p)
}

// extend moves the connection's write deadline to stall from now, unless
// it is less than deadlineSlack short of that already.
func (d *deadlineWriter) extend() {
	now := time.Now()
	if d.conn != nil && d.conn.until.Sub(now) > d.stall-deadlineSlack {
		return
	}
	until := now.Add(d.stall)
	if d.rc.SetWriteDeadline(until) == nil && d.conn != nil {
		d.conn.until = until
	}
}

func (d *deadlineWriter) Flush() { _ = d.rc.Flush() }

// clientSection bounds the bytes one write deadline covers in ReadFrom.
const clientSection = 1 << 20

// ReadFrom hands net/http's response, whose ReadFrom sends an *os.File
// under an io.LimitedReader with sendfile on a TCP connection, such a
// reader in sections of at most clientSection bytes, each under a fresh
// write deadline. Any other reader is copied through Write.
func (d *deadlineWriter) ReadFrom(r io.Reader) (int64, error) {
	rf, ok := d.ResponseWriter.(io.ReaderFrom)
	lr, limited := r.(*io.LimitedReader)
	if !ok || !limited {
		return io.Copy(writerOnly{d}, r)
	}
	var n int64
	for lr.N > 0 {
		want := min(lr.N, clientSection)
		d.extend()
		m, err := rf.ReadFrom(&io.LimitedReader{R: lr.R, N: want})
		n += m
		lr.N -= m
		if err != nil || m < want { // an error, or the end of the reader
			return n, err
		}
	}
	return n, nil
}

// writerOnly hides a writer's ReadFrom from io.Copy.
type writerOnly struct{ io.Writer }

func (d *deadlineWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }

// decodeLimits is the configured memory bound of every metadata decoder.
func decodeLimits(cfg config.Config) metadata.Limits {
	return metadata.Limits{
		MaxXzDict:     int64(cfg.Limits.MaxXZDictionary),
		MaxZstdWindow: int64(cfg.Limits.MaxZstdWindow),
		MaxElement:    int64(cfg.Limits.MaxXMLElement),
	}
}
