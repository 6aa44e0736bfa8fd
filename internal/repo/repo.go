// Package repo owns a repo's metadata generations: per repo root, the
// current and the previous verified repomd.xml with the files they list,
// their persisted records, the package index built from primary.xml, and
// the background revalidation of repomd.xml with backoff.
//
// Guarantees: a generation becomes current only once every file it lists is
// in the store, verified against its checksum, and its package index is
// built; Current answers from the current generation without waiting on
// upstream (stale-while-revalidate) — only a root with no generation yet
// waits; a refresh never moves a root to an older repomd.xml; Pins lists
// every store key the persisted generations and the running refreshes
// still need.
package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/bg"
	"github.com/dnfproxy/dnfproxy/internal/fill"
	"github.com/dnfproxy/dnfproxy/internal/keys"
	"github.com/dnfproxy/dnfproxy/internal/upstream"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// Upstream is what a Repo needs of its upstream client.
type Upstream interface {
	fill.Source
	Get(ctx context.Context, rel string, hdr http.Header) (*upstream.Response, error)
	GetAt(ctx context.Context, base, rel string, hdr http.Header) (*upstream.Response, error)
	RepomdHashes(ctx context.Context, root string) ([]upstream.Hash, bool, error)
}

// Limits bound what a refresh accepts.
type Limits struct {
	Repomd, Metadata, Decompressed int64
	// Decode bounds the memory of every decoder run on the metadata: xz
	// dictionary, zstd window, one XML element (zero fields: defaults).
	Decode metadata.Limits
}

// Options configure a Repo.
type Options struct {
	Name    string
	TTL     time.Duration
	MinRate int64
	Up      Upstream
	Filler  *fill.Filler
	Store   cache.Store
	Log     *slog.Logger
	Limits  Limits
	// RefreshTimeout bounds one background refresh (default 30 min).
	RefreshTimeout time.Duration
	// OnSwitch is called, outside any lock, once after a root switched to
	// a new generation (views rebuild on it); it must not block. May be nil.
	OnSwitch func(root string, g *Generation)
	// IndexSink, when set, is asked before a refresh scans a new
	// generation's primary.xml for its package index (may be nil); the
	// packages of that same pass go to what it returns. See Sink.
	IndexSink func(ctx context.Context, root string, g *Generation) Sink
}

// Result labels for the access log and metrics.
const (
	ResultHit   = "hit"   // served from a generation within its TTL
	ResultMiss  = "miss"  // waited for upstream
	ResultStale = "stale" // served while a due revalidation runs or fails
)

// Repo is one configured repo's generations.
type Repo struct {
	opt     Options
	baseCtx context.Context

	mu    sync.Mutex
	roots map[string]*rootState

	refreshes singleflight.Group
	bg        bg.Group
}

// rootState is a repo root's generations and refresh state.
type rootState struct {
	mu      sync.RWMutex
	cur     *Generation
	prev    *Generation
	pending map[string]bool // store keys a running refresh ensures (pins)

	health   Health
	fails    int       // consecutive failed refreshes
	retryAt  time.Time // no background refresh before (backoff)
	inFlight bool      // a background refresh runs
}

// Health is a root's record of revalidations.
type Health struct {
	LastAttempt time.Time
	LastSuccess time.Time
	LastError   string
	LastErrorAt time.Time
	Failing     bool
}

// New builds a Repo on ctx (background refreshes run on it) and restores
// its persisted generations.
func New(ctx context.Context, opt Options) (*Repo, error) {
	if opt.RefreshTimeout <= 0 {
		opt.RefreshTimeout = 30 * time.Minute
	}
	r := &Repo{opt: opt, baseCtx: ctx, roots: map[string]*rootState{}}
	if err := r.load(ctx); err != nil {
		return nil, fmt.Errorf("loading metadata generations of %s: %w", opt.Name, err)
	}
	return r, nil
}

// Name is the repo's name.
func (r *Repo) Name() string { return r.opt.Name }

// TTL is the repo's metadata TTL.
func (r *Repo) TTL() time.Duration { return r.opt.TTL }

// Wait waits for background refreshes (after the base context ends).
func (r *Repo) Wait() { r.bg.Close() }

type genRecord struct {
	Cur  *Generation `json:"cur"`
	Prev *Generation `json:"prev,omitempty"`
}

func (r *Repo) load(ctx context.Context) error {
	prefix := keys.GenKey(r.opt.Name, "")
	var ks []string
	if err := r.opt.Store.List(ctx, prefix, func(i cache.Info) error {
		ks = append(ks, i.Key)
		return nil
	}); err != nil {
		return err
	}
	for _, k := range ks {
		rec, err := r.readRecord(ctx, k)
		if err != nil {
			r.opt.Log.Warn("ignoring unreadable metadata generation", "key", k, "err", err)
			continue
		}
		st := r.state(strings.TrimPrefix(k, prefix))
		st.cur, st.prev = rec.Cur, rec.Prev
	}
	return nil
}

func (r *Repo) readRecord(ctx context.Context, key string) (*genRecord, error) {
	obj, err := r.opt.Store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer obj.Close()
	var rec genRecord
	if err := json.NewDecoder(obj).Decode(&rec); err != nil {
		return nil, err
	}
	if rec.Cur == nil {
		return nil, errors.New("no current generation")
	}
	for _, g := range []*Generation{rec.Cur, rec.Prev} {
		if g != nil {
			if err := g.init(); err != nil {
				return nil, err
			}
		}
	}
	return &rec, nil
}

// PutSmall stores a small object in one piece.
func PutSmall(ctx context.Context, store cache.Store, key string, data []byte, ctype string) error {
	w, err := store.Create(ctx, key, cache.Meta{ContentType: ctype, Fetched: time.Now()})
	if err != nil {
		return err
	}
	defer w.Cancel()
	if _, err := w.Write(data); err != nil {
		return err
	}
	return w.Commit(ctx)
}

// state returns a root's state, creating an empty one.
func (r *Repo) state(root string) *rootState {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.roots[root]
	if !ok {
		st = &rootState{}
		r.roots[root] = st
	}
	return st
}

func (r *Repo) known(root string) *rootState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.roots[root]
}

// forgetEmpty drops a root's state if it never got a generation: any
// client can name a root, and made-up paths must not grow the state.
func (r *Repo) forgetEmpty(root string, st *rootState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st.mu.RLock()
	empty := st.cur == nil
	st.mu.RUnlock()
	if empty && r.roots[root] == st {
		delete(r.roots, root)
	}
}

// Generations returns a root's current and previous generation (nil when
// none), without touching upstream.
func (r *Repo) Generations(root string) (cur, prev *Generation) {
	st := r.known(root)
	if st == nil {
		return nil, nil
	}
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.cur, st.prev
}

// Current returns the generation to serve for a root. Within the TTL it
// is the current one; past it, the current one too, while a revalidation
// runs in the background (stale-while-revalidate, with backoff after
// failures). Only a root without any generation waits for upstream.
func (r *Repo) Current(ctx context.Context, root string) (*Generation, string, error) {
	st := r.state(root)
	st.mu.RLock()
	cur := st.cur
	st.mu.RUnlock()
	if cur != nil {
		if time.Since(cur.Fetched) < r.opt.TTL {
			return cur, ResultHit, nil
		}
		r.kick(root, st)
		return cur, ResultStale, nil
	}
	res, err := r.refreshWait(ctx, root, st)
	if err != nil {
		return nil, ResultMiss, err
	}
	return res.Gen, ResultMiss, nil
}

// Prefetch starts fetching a root that has no generation yet, in the
// background (unless a refresh of it runs or it backs off after
// failures), for a caller that will need it soon: a view's reference is
// then fetched beside the repo's own metadata, not after it.
func (r *Repo) Prefetch(root string) {
	st := r.state(root)
	st.mu.RLock()
	cur := st.cur
	st.mu.RUnlock()
	if cur == nil {
		r.kick(root, st)
	}
}

// kick starts a background refresh of a due root unless one runs or the
// root is backing off after failures.
func (r *Repo) kick(root string, st *rootState) {
	st.mu.Lock()
	if st.inFlight || time.Now().Before(st.retryAt) || r.baseCtx.Err() != nil {
		st.mu.Unlock()
		return
	}
	st.inFlight = true
	st.mu.Unlock()
	r.bg.Go(func() {
		defer func() {
			st.mu.Lock()
			st.inFlight = false
			st.mu.Unlock()
		}()
		if _, err := r.refreshWait(r.baseCtx, root, st); err != nil && r.baseCtx.Err() == nil {
			r.opt.Log.Warn("metadata refresh failed; serving the last good generation",
				"repo", r.opt.Name, "root", root, "err", err)
		}
	})
}

// RefreshResult says what a refresh did.
type RefreshResult struct {
	Gen     *Generation
	Changed bool
}

// Refresh revalidates a root's repomd.xml now, whatever its TTL, and
// waits for the outcome. On failure the last good generation stays.
func (r *Repo) Refresh(ctx context.Context, root string) (RefreshResult, error) {
	return r.refreshWait(ctx, root, r.state(root))
}

// refreshWait joins or starts the root's refresh (one at a time) and waits
// for it or for ctx.
func (r *Repo) refreshWait(ctx context.Context, root string, st *rootState) (RefreshResult, error) {
	ch := r.refreshes.DoChan(root, func() (any, error) {
		if !r.bg.Enter() {
			return RefreshResult{}, context.Canceled // shutting down
		}
		defer r.bg.Leave()
		res, err := r.refresh(root, st)
		r.record(st, err)
		if err != nil {
			r.forgetEmpty(root, st)
		} else if res.Changed && r.opt.OnSwitch != nil {
			r.opt.OnSwitch(root, res.Gen)
		}
		return res, err
	})
	select {
	case v := <-ch:
		if v.Err != nil {
			return RefreshResult{}, v.Err
		}
		return v.Val.(RefreshResult), nil
	case <-ctx.Done():
		return RefreshResult{}, ctx.Err()
	}
}

// record notes a refresh outcome and sets the backoff.
func (r *Repo) record(st *rootState, err error) {
	now := time.Now()
	st.mu.Lock()
	defer st.mu.Unlock()
	h := &st.health
	h.LastAttempt = now
	if err == nil {
		h.LastSuccess, h.Failing = now, false
		st.fails, st.retryAt = 0, time.Time{}
		return
	}
	h.LastError, h.LastErrorAt, h.Failing = err.Error(), now, true
	st.fails++
	backoff := min(time.Second<<min(st.fails-1, 9), 5*time.Minute)
	st.retryAt = now.Add(backoff)
}

// refresh revalidates a root's repomd.xml; a new one becomes current only
// after every file it lists is in the store, verified, and its package
// index is built. It runs detached from clients.
func (r *Repo) refresh(root string, st *rootState) (RefreshResult, error) {
	ctx, cancel := context.WithTimeout(r.baseCtx, r.opt.RefreshTimeout)
	defer cancel()
	st.mu.RLock()
	cur, prev := st.cur, st.prev
	st.mu.RUnlock()
	hdr := http.Header{}
	if cur != nil {
		if cur.ETag != "" {
			hdr.Set("If-None-Match", cur.ETag)
		}
		if cur.LastModified != "" {
			hdr.Set("If-Modified-Since", cur.LastModified)
		}
	}
	rel := root + "repodata/repomd.xml"
	resp, err := r.opt.Up.Get(ctx, rel, hdr)
	if err != nil {
		return RefreshResult{}, err
	}
	defer resp.Body.Close()
	var body []byte
	switch {
	case resp.StatusCode == http.StatusNotModified && cur != nil:
	case resp.StatusCode == http.StatusOK:
		if body, err = metadata.ReadLimited(resp.Body, r.opt.Limits.Repomd); err != nil {
			return RefreshResult{}, fmt.Errorf("%w: %s: %v", upstream.ErrUnavailable, rel, err)
		}
	default:
		return RefreshResult{}, upstream.StatusError(resp.Response)
	}
	now := time.Now()
	if body == nil || (cur != nil && bytes.Equal(body, cur.Repomd)) {
		// Unchanged: only the confirmation time moves.
		ng := *cur
		ng.Fetched = now
		if v := resp.Header.Get("ETag"); v != "" {
			ng.ETag = v
		}
		if err := r.commit(ctx, root, st, &ng, prev); err != nil {
			return RefreshResult{}, err
		}
		return RefreshResult{Gen: &ng}, nil
	}
	if hashes, ok, err := r.opt.Up.RepomdHashes(ctx, root); err != nil {
		return RefreshResult{}, err
	} else if ok {
		if err := upstream.VerifyRepomd(body, hashes); err != nil {
			return RefreshResult{}, fmt.Errorf("%w: %s: %v", fill.ErrVerify, rel, err)
		}
	}
	g := &Generation{
		Repomd: body, ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified"),
		Created: now, Fetched: now, Mirror: upstream.Redact(resp.Base),
	}
	if err := g.init(); err != nil {
		return RefreshResult{}, fmt.Errorf("%w: %s/%s: %v", upstream.ErrUnavailable, r.opt.Name, rel, err)
	}
	if cur != nil && older(g.md, cur.md) {
		return RefreshResult{}, fmt.Errorf("%w: %s from %s is older than the one served (revision %q < %q): keeping it",
			upstream.ErrUnavailable, rel, upstream.Redact(resp.Base), g.md.Revision, cur.md.Revision)
	}
	// Pin what this refresh ensures until it is committed or given up.
	pending := map[string]bool{}
	for _, rec := range g.md.Records {
		pending[r.mdKey(root, rec)] = true
	}
	st.mu.Lock()
	st.pending = pending
	st.mu.Unlock()
	defer func() {
		st.mu.Lock()
		st.pending = nil
		st.mu.Unlock()
	}()
	if err := r.fetchFiles(ctx, root, g); err != nil {
		return RefreshResult{}, err
	}
	if g.Signature, err = r.fetchBeside(ctx, root, "repomd.xml.asc", resp.Base); err != nil {
		return RefreshResult{}, err
	}
	// Upstream's public key beside repomd.xml, when it has one, belongs to
	// the generation too: gpgkey= may point at it, and it must outlive an
	// eviction round and an upstream outage like the signature.
	if g.Key, err = r.fetchBeside(ctx, root, "repomd.xml.key", resp.Base); err != nil {
		return RefreshResult{}, err
	}
	var sink Sink
	if r.opt.IndexSink != nil {
		sink = r.opt.IndexSink(ctx, root, g)
	}
	if err := r.buildIndexWith(ctx, root, g, sink); err != nil {
		return RefreshResult{}, err
	}
	if err := r.commit(ctx, root, st, g, cur); err != nil {
		return RefreshResult{}, err
	}
	r.opt.Log.Info("metadata generation switched", "repo", r.opt.Name, "root", root,
		"revision", g.md.Revision, "files", len(g.md.Records))
	return RefreshResult{Gen: g, Changed: true}, nil
}

// older reports whether repomd a is older than b: by numeric revision
// when both have one, else by the newest record timestamp. A lagging
// mirror must not move a root back.
func older(a, b *metadata.Repomd) bool {
	ra, erra := strconv.ParseInt(a.Revision, 10, 64)
	rb, errb := strconv.ParseInt(b.Revision, 10, 64)
	if erra == nil && errb == nil && ra != rb {
		return ra < rb
	}
	return newest(a) < newest(b)
}

func newest(md *metadata.Repomd) int64 {
	var t int64
	for _, r := range md.Records {
		t = max(t, r.Timestamp)
	}
	return t
}

// commit persists cur/prev, then makes them visible.
func (r *Repo) commit(ctx context.Context, root string, st *rootState, cur, prev *Generation) error {
	data, err := json.Marshal(genRecord{Cur: cur, Prev: prev})
	if err != nil {
		return err
	}
	if err := PutSmall(ctx, r.opt.Store, keys.GenKey(r.opt.Name, root), data, "application/json"); err != nil {
		return fmt.Errorf("saving metadata generation: %w", err)
	}
	st.mu.Lock()
	st.cur, st.prev = cur, prev
	st.mu.Unlock()
	return nil
}

func (r *Repo) mdKey(root string, rec metadata.Record) string {
	return keys.MDKey(r.opt.Name, root+rec.Href, rec.Checksum.String())
}

// FileRequest is the fill request of a generation's listed file.
func (r *Repo) FileRequest(root string, rec metadata.Record) fill.Request {
	return fill.Request{
		Src: r.opt.Up, Repo: r.opt.Name, Key: r.mdKey(root, rec), Rel: root + rec.Href,
		Exp:     fill.Expect{Size: rec.Size, Sum: rec.Checksum, MaxSize: r.opt.Limits.Metadata},
		MinRate: r.opt.MinRate,
	}
}

// Request is the fill request of a plain object of the repo.
func (r *Repo) Request(rel string, exp fill.Expect) fill.Request {
	return fill.Request{Src: r.opt.Up, Repo: r.opt.Name, Key: keys.ObjKey(r.opt.Name, rel), Rel: rel, Exp: exp, MinRate: r.opt.MinRate}
}

// fetchFiles brings every file a repomd lists into the store, verified.
// Files already stored under their checksum are not fetched.
func (r *Repo) fetchFiles(ctx context.Context, root string, g *Generation) error {
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(4)
	for _, rec := range g.md.Records {
		eg.Go(func() error { return r.opt.Filler.Ensure(ctx, r.FileRequest(root, rec)) })
	}
	return eg.Wait()
}

// fetchBeside gets a small file beside repomd.xml (its signature, the
// key) from the base that served repomd.xml (a signature belongs to its
// mirror's copy); none (404) is fine.
func (r *Repo) fetchBeside(ctx context.Context, root, name, base string) ([]byte, error) {
	resp, err := r.opt.Up.GetAt(ctx, base, root+"repodata/"+name, nil)
	if errors.Is(err, upstream.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return metadata.ReadLimited(resp.Body, 1<<20)
	case http.StatusForbidden:
		return nil, nil
	}
	return nil, upstream.StatusError(resp.Response)
}

// Open opens a generation's stored file of a record type, fetching it
// again (verified) when it was evicted or purged meanwhile.
func (r *Repo) Open(ctx context.Context, root string, g *Generation, typ string) (cache.Object, metadata.Record, error) {
	rec, ok := g.md.Record(typ)
	if !ok {
		return nil, rec, cache.ErrNotFound
	}
	obj, err := r.OpenRecord(ctx, root, rec)
	return obj, rec, err
}

// OpenRecord opens a listed file, refetching it when it is gone.
func (r *Repo) OpenRecord(ctx context.Context, root string, rec metadata.Record) (cache.Object, error) {
	key := r.mdKey(root, rec)
	obj, err := r.opt.Store.Get(ctx, key)
	if errors.Is(err, cache.ErrNotFound) {
		if err = r.opt.Filler.Ensure(ctx, r.FileRequest(root, rec)); err == nil {
			obj, err = r.opt.Store.Get(ctx, key)
		}
	}
	return obj, err
}

// OpenContent opens a record's file decompressed, within the size limit
// and the decoder limits (Limits.Decode).
// Closing the result closes the stored object too.
func (r *Repo) OpenContent(ctx context.Context, root string, g *Generation, typ string) (io.ReadCloser, metadata.Record, error) {
	obj, rec, err := r.Open(ctx, root, g, typ)
	if err != nil {
		return nil, rec, err
	}
	zr, err := r.opt.Limits.Decode.Decompress(obj, metadata.CodecOf(rec.Href), r.opt.Limits.Decompressed)
	if err != nil {
		obj.Close()
		return nil, rec, err
	}
	return closeBoth{zr, obj}, rec, nil
}

type closeBoth struct {
	io.ReadCloser
	obj io.Closer
}

func (c closeBoth) Close() error {
	err := c.ReadCloser.Close()
	if oerr := c.obj.Close(); err == nil {
		err = oerr
	}
	return err
}

// ChecksumNamed reports whether a repodata file name starts with its
// checksum (<hex>-<type>.<ext>): only such a name never changes bytes, so
// only it may be retained across generations or cached as immutable.
func ChecksumNamed(name string) bool { return checksumName.MatchString(path.Base(name)) }

// checksumName matches a checksum-named repodata file: <hex>-<type>.<ext>.
var checksumName = regexp.MustCompile(`^([0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{56}|[0-9a-f]{64}|[0-9a-f]{96}|[0-9a-f]{128})-`)

// Retained returns the store key of a checksum-named repodata file that
// some earlier generation listed and that is still stored, so a client
// that read an old repomd.xml gets its files as long as the store keeps
// them (eviction decides, not a generation counter).
func (r *Repo) Retained(ctx context.Context, rel string) (string, bool) {
	i := strings.LastIndexByte(rel, '/')
	m := checksumName.FindStringSubmatch(rel[i+1:])
	if m == nil {
		return "", false
	}
	typ := map[int]string{32: "md5", 40: "sha1", 56: "sha224", 64: "sha256", 96: "sha384", 128: "sha512"}[len(m[1])]
	key := keys.MDKey(r.opt.Name, rel, typ+":"+m[1])
	if _, err := r.opt.Store.Stat(ctx, key); err != nil {
		return "", false
	}
	return key, true
}

// Pins lists the store keys the repo's generations need: the generation
// records, every file of every root's current and previous generation,
// and the files running refreshes are bringing in.
func (r *Repo) Pins(add func(key string)) {
	r.mu.Lock()
	roots := make(map[string]*rootState, len(r.roots))
	for k, v := range r.roots {
		roots[k] = v
	}
	r.mu.Unlock()
	for root, st := range roots {
		st.mu.RLock()
		if st.cur != nil {
			add(keys.GenKey(r.opt.Name, root))
		}
		for _, g := range []*Generation{st.cur, st.prev} {
			if g == nil {
				continue
			}
			for _, rec := range g.md.Records {
				add(r.mdKey(root, rec))
			}
		}
		for k := range st.pending {
			add(k)
		}
		st.mu.RUnlock()
	}
}

// Forget drops the generations of roots under prefix (a purge).
func (r *Repo) Forget(prefix string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for root := range r.roots {
		if strings.HasPrefix(root, prefix) {
			delete(r.roots, root)
		}
	}
}

// RootStatus is what the admin API shows of a root.
type RootStatus struct {
	Root     string
	Cur      *Generation
	HasPrev  bool
	Health   Health
	Packages int // -1 when the index is not built
}

// Status lists the repo's roots with generations, sorted.
func (r *Repo) Status() []RootStatus {
	r.mu.Lock()
	names := make([]string, 0, len(r.roots))
	for k := range r.roots {
		names = append(names, k)
	}
	r.mu.Unlock()
	sort.Strings(names)
	var out []RootStatus
	for _, root := range names {
		st := r.known(root)
		if st == nil {
			continue
		}
		st.mu.RLock()
		rs := RootStatus{Root: root, Cur: st.cur, HasPrev: st.prev != nil, Health: st.health, Packages: -1}
		st.mu.RUnlock()
		if rs.Cur == nil {
			continue
		}
		if n, ok := rs.Cur.idx.count(); ok {
			rs.Packages = n
		}
		out = append(out, rs)
	}
	return out
}

// RootStatus returns one root's status (ok=false without a generation).
func (r *Repo) RootStatus(root string) (RootStatus, bool) {
	for _, rs := range r.Status() {
		if rs.Root == root {
			return rs, true
		}
	}
	return RootStatus{}, false
}

// Stale reports whether a root's metadata is past its TTL or its last
// revalidation failed.
func (rs RootStatus) Stale(ttl time.Duration) bool {
	return rs.Health.Failing || time.Since(rs.Cur.Fetched) >= ttl
}
