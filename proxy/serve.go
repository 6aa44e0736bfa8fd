package proxy

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/fill"
	"github.com/dnfproxy/dnfproxy/internal/keys"
	"github.com/dnfproxy/dnfproxy/internal/repo"
	"github.com/dnfproxy/dnfproxy/internal/view"
)

// Result labels for the access log and metrics, beyond repo's.
const (
	resultHit        = repo.ResultHit
	resultMiss       = repo.ResultMiss
	resultStale      = repo.ResultStale
	resultPass       = "pass"
	resultClientGone = "client_gone"
)

func (s *Server) handle(c *gin.Context) {
	t, err := parseTarget(c.Request.URL.EscapedPath(), c.Request.URL.Path)
	if err != nil {
		c.Error(err)
		return
	}
	re, ok := s.repos[t.repo]
	if !ok {
		c.Error(fmt.Errorf("%w: no repo %q", ErrNotFound, t.repo))
		return
	}
	v := effectiveView(re, t.view)
	if v != ViewRaw && v != view.Annotate && v != view.Filter {
		c.Error(fmt.Errorf("%w: repo %s has no view %q", ErrNotFound, t.repo, t.view))
		return
	}
	c.Set(logRepo, t.repo)
	kind, root := classify(t.rel)
	if kind == kindMetalink {
		err = s.serveMetalink(c, re, v, root)
	} else if v != ViewRaw && (kind == kindRepomd || kind == kindSignature || kind == kindRepodata) {
		err = s.serveView(c, re, v, t.rel, kind, root)
	} else {
		switch kind {
		case kindRepomd:
			err = s.serveRepomd(c, re, root)
		case kindSignature:
			err = s.serveSignature(c, re, t.rel, root)
		case kindRepodata:
			err = s.serveRepodata(c, re, t.rel, root)
		case kindPackage:
			err = s.servePackage(c, re, t.rel)
		case kindDir:
			err = s.passThrough(c, re, t.rel)
		default:
			err = s.serveFile(c, re, t.rel)
		}
	}
	if err != nil {
		c.Error(err)
	}
}

// effectiveView maps a request's view to the one served: no view means the
// repo's compat mode, and mode off means raw.
func effectiveView(re *repoEntry, v string) string {
	if v == ViewDefault {
		v = string(re.cfg.Compat.Mode)
	}
	if v == "off" {
		return ViewRaw
	}
	return v
}

func (s *Server) serveRepomd(c *gin.Context, re *repoEntry, root string) error {
	g, result, err := re.gens.Current(c.Request.Context(), root)
	if err != nil {
		return err
	}
	c.Set(logResult, result)
	serveMetadataSum(c, "repomd.xml", g.Created, g.Repomd, g.Sum())
	return nil
}

func (s *Server) serveSignature(c *gin.Context, re *repoEntry, rel, root string) error {
	g, result, err := re.gens.Current(c.Request.Context(), root)
	if err != nil {
		// No metadata to go with: upstream's own answer (404 when it has
		// no signature) rather than the repomd's failure.
		return s.passThrough(c, re, rel)
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
	serveMetadataSum(c, name, mod, body, fmt.Sprintf("%x", sha256.Sum256(body)))
}

// serveMetadataSum is serveMetadata with the body's hex sha256 known
// already (a repomd.xml's, computed once per generation or view).
func serveMetadataSum(c *gin.Context, name string, mod time.Time, body []byte, sum string) {
	h := c.Writer.Header()
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Type", keys.ContentType(name))
	h.Set("ETag", `"`+sum+`"`)
	http.ServeContent(c.Writer, c.Request, name, mod, bytes.NewReader(body))
}

// repodataPolicy is the client caching policy of a repodata file.
func repodataPolicy(rel string) cachePolicy {
	if repo.ChecksumNamed(rel) {
		return immutable
	}
	return revalidate
}

// serveRepodata serves a file a generation lists, verified by checksum.
// Files of the previous generation stay servable, and any checksum-named
// file some generation listed as long as the store keeps it.
func (s *Server) serveRepodata(c *gin.Context, re *repoEntry, rel, root string) error {
	ctx := c.Request.Context()
	cur, prev := re.gens.Generations(root)
	if cur == nil {
		// No generation yet (a client with an old repomd.xml): make one.
		if _, _, err := re.gens.Current(ctx, root); err != nil {
			return err
		}
		cur, prev = re.gens.Generations(root)
	}
	href := rel[len(root):]
	if href == "repodata/repomd.xml.key" && cur.Key != nil {
		c.Set(logResult, resultHit)
		serveMetadata(c, "repomd.xml.key", cur.Created, cur.Key)
		return nil
	}
	for _, g := range []*repo.Generation{cur, prev} {
		if g == nil {
			continue
		}
		if rec, ok := g.File(href); ok {
			return s.serveVerified(c, re, re.gens.FileRequest(root, rec), repodataPolicy(rel))
		}
	}
	if key, ok := re.gens.Retained(ctx, rel); ok {
		if obj, err := s.store.Get(ctx, key); err == nil {
			c.Set(logResult, resultHit)
			s.serveObject(c, obj, rel, immutable, re.gens.TTL())
			return nil
		}
	}
	// Not listed (e.g. a comps or key file beside repomd): a plain file.
	return s.serveFile(c, re, rel)
}

// servePackage serves an RPM that primary.xml lists, verified by size and
// checksum. An RPM no generation lists passes through uncached.
func (s *Server) servePackage(c *gin.Context, re *repoEntry, rel string) error {
	ref, ok := re.gens.LookupPackage(c.Request.Context(), rel)
	if !ok {
		return s.passThrough(c, re, rel)
	}
	return s.serveVerified(c, re, re.gens.Request(rel, fill.Expect{Size: ref.Size, Sum: ref.Sum}), immutable)
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

// serveVerified serves a key from the store when it holds the expected
// bytes, otherwise fills it from upstream.
func (s *Server) serveVerified(c *gin.Context, re *repoEntry, req fill.Request, policy cachePolicy) error {
	ctx := c.Request.Context()
	for range 3 {
		obj, err := s.store.Get(ctx, req.Key)
		switch {
		case err == nil:
			if req.Exp.Sum.IsZero() || obj.Info().Meta.Checksum == req.Exp.Sum.String() {
				c.Set(logResult, resultHit)
				s.serveObject(c, obj, req.Rel, policy, re.gens.TTL())
				return nil
			}
			obj.Close() // same path, other bytes: primary changed; refetch
			req.RequireFresh = true
		case !errors.Is(err, cache.ErrNotFound):
			return err
		}
		f, joined := s.filler.Join(req)
		if f == nil {
			continue
		}
		if err := s.follow(c, f, joined, req.Rel, policy, re.gens.TTL()); !errors.Is(err, fill.ErrRetryStore) {
			return err
		}
	}
	return fmt.Errorf("%w: %s: object keeps changing", ErrUpstream, req.Rel)
}

// follow serves a client from a running fill: a plain GET streams bytes as
// they arrive; HEAD, Range and conditional requests are answered from the
// spool as soon as upstream's headers (and the asked bytes) are in. The
// access log says hit for a client that joined a fill already verified
// (joined: fill.Filler.Join), miss otherwise.
func (s *Server) follow(c *gin.Context, f *fill.Fill, joined bool, rel string, policy cachePolicy, ttl time.Duration) error {
	defer f.Release()
	ctx := c.Request.Context()
	if joined && f.Verified() {
		c.Set(logResult, resultHit) // bytes verified; the commit may still run
	} else {
		c.Set(logResult, resultMiss)
	}
	start := time.Now()
	defer func() { c.Set(logUpstreamMS, time.Since(start).Milliseconds()) }()
	total, meta, err := f.Ready(ctx)
	if err != nil {
		return err
	}
	h := c.Writer.Header()
	h.Set("Cache-Control", policy.header(ttl))
	if meta.ContentType != "" {
		h.Set("Content-Type", meta.ContentType)
	}
	if meta.Checksum != "" {
		h.Set("ETag", `"`+meta.Checksum+`"`)
	}
	if !plainGet(c.Request) {
		if total < 0 {
			// Size unknown: the whole object must be in first.
			if err := f.Await(ctx); err != nil {
				return err
			}
			return fill.ErrRetryStore
		}
		mod, _ := http.ParseTime(meta.LastModified)
		s.serveContent(c, f.Content(ctx, total), total, mod)
		return nil
	}
	if meta.LastModified != "" {
		h.Set("Last-Modified", meta.LastModified)
	}
	if total >= 0 {
		h.Set("Content-Length", strconv.FormatInt(total, 10))
	}
	h.Set("Accept-Ranges", "bytes")
	c.Writer.WriteHeader(http.StatusOK)
	_, err = f.CopyTo(ctx, c.Writer, c.Writer.Flush)
	switch {
	case err == nil:
	case errors.Is(err, fill.ErrClientGone) || ctx.Err() != nil:
		c.Set(logResult, resultClientGone)
	default:
		abortConn(c, err)
	}
	return nil
}

// serveContent answers a Range, HEAD or conditional request with
// http.ServeContent, after parsing Range strictly.
func (s *Server) serveContent(c *gin.Context, content io.ReadSeeker, size int64, mod time.Time) {
	if rng := c.Request.Header.Get("Range"); rng != "" {
		clean, satisfiable := normalizeRange(rng)
		if !satisfiable {
			c.Writer.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			c.Status(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		if clean == "" {
			c.Request.Header.Del("Range")
		} else {
			c.Request.Header.Set("Range", clean)
		}
	}
	http.ServeContent(c.Writer, c.Request, "", mod, content)
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
		ct = keys.ContentType(rel)
	}
	h.Set("Content-Type", ct)
	if info.Meta.Checksum != "" {
		h.Set("ETag", `"`+info.Meta.Checksum+`"`)
	}
	wt, ok := obj.(io.WriterTo)
	if !ok || !plainGet(c.Request) {
		mod := info.Stored
		if lm, err := http.ParseTime(info.Meta.LastModified); err == nil {
			mod = lm
		}
		s.serveContent(c, obj, info.Size, mod)
		return
	}
	// The common case, a whole object: straight from the store's chunks.
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Length", strconv.FormatInt(info.Size, 10))
	if lm := lastModified(info); lm != "" {
		h.Set("Last-Modified", lm)
	}
	c.Writer.WriteHeader(http.StatusOK)
	if _, err := wt.WriteTo(c.Writer); err != nil {
		if c.Request.Context().Err() != nil {
			c.Set(logResult, resultClientGone)
			return
		}
		abortConn(c, err)
	}
}

// plainGet reports whether a request asks for a whole object with no
// conditions, so that http.ServeContent has nothing to decide.
func plainGet(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	// One pass over the few headers a client sends (net/http has put
	// their names in canonical form), not a lookup per condition.
	for k, v := range r.Header {
		switch k {
		case "Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range":
			if len(v) > 0 && v[0] != "" {
				return false
			}
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
// cached with a length check. Past the repo's TTL the cached copy is
// served at once and revalidated in the background with a conditional
// GET; only a client with nothing cached waits for upstream.
func (s *Server) serveFile(c *gin.Context, re *repoEntry, rel string) error {
	ctx := c.Request.Context()
	req := re.gens.Request(rel, fill.Expect{Size: -1})
	for range 3 {
		obj, err := s.store.Get(ctx, req.Key)
		if err != nil && !errors.Is(err, cache.ErrNotFound) {
			return err
		}
		if err == nil {
			info := obj.Info()
			result := resultHit
			if time.Since(info.Meta.Fetched) >= re.gens.TTL() {
				s.revalidateFile(req, info.Meta)
				result = resultStale
			}
			c.Set(logResult, result)
			s.serveObject(c, obj, rel, revalidate, re.gens.TTL())
			return nil
		}
		f, joined := s.filler.Join(req)
		if f == nil {
			continue
		}
		if err := s.follow(c, f, joined, rel, revalidate, re.gens.TTL()); !errors.Is(err, fill.ErrRetryStore) {
			return err
		}
	}
	return fmt.Errorf("%w: %s: object keeps changing", ErrUpstream, rel)
}

// revalidateFile starts (or joins) a background conditional GET of a
// cached plain file.
func (s *Server) revalidateFile(req fill.Request, m cache.Meta) {
	cond := http.Header{}
	if m.ETag != "" {
		cond.Set("If-None-Match", m.ETag)
	}
	if m.LastModified != "" {
		cond.Set("If-Modified-Since", m.LastModified)
	}
	req.Cond, req.RequireFresh = cond, true
	f := s.filler.Start(req)
	if f == nil {
		return
	}
	go func() {
		defer f.Release()
		if err := f.Await(s.baseCtx); err != nil && s.baseCtx.Err() == nil {
			s.log.Warn("revalidation failed; the cached copy stays in service", "repo", req.Repo, "path", req.Rel, "err", err)
		}
	}()
}

// serveView answers the metadata paths of a rewriting view: the rewritten
// repomd.xml, the proxy's signature and public key, and the files the
// view's current or retired repomd.xml lists. A file a view lists is
// served without asking upstream anything; one found missing is rebuilt
// or refetched. A view that cannot be built yet is served raw, loudly.
func (s *Server) serveView(c *gin.Context, re *repoEntry, v, rel, kind, root string) error {
	ctx := c.Request.Context()
	if kind == kindRepodata && strings.HasSuffix(rel, "/repomd.xml.key") || rel == "repodata/repomd.xml.key" {
		signer, err := s.views.Signer()
		if err != nil {
			return err
		}
		serveMetadata(c, "repomd.xml.key", time.Time{}, signer.PublicKey())
		return nil
	}
	if kind == kindRepodata {
		href := rel[len(root):]
		if f, ok := s.views.Lookup(re.name, root, v, href); ok {
			obj, err := s.store.Get(ctx, f.Key)
			if errors.Is(err, cache.ErrNotFound) {
				var key string
				if key, err = s.views.Repair(ctx, re.name, root, v, href); err == nil {
					obj, err = s.store.Get(ctx, key)
				}
			}
			if err != nil {
				return fmt.Errorf("%w: %s: %v", ErrUpstream, rel, err)
			}
			c.Set(logResult, resultHit)
			s.serveObject(c, obj, rel, repodataPolicy(rel), re.gens.TTL())
			return nil
		}
		// Not a file of the view (a key or comps file beside repomd.xml,
		// or an upstream file of a view not built yet).
		return s.serveRepodata(c, re, rel, root)
	}
	if ref, ok := s.repos[re.cfg.Compat.Reference]; ok && kind == kindRepomd {
		// A cold view waits for its reference's metadata too: fetch it
		// now, beside the repo's own, rather than after it.
		ref.gens.Prefetch(root)
	}
	vg, result, err := s.views.Get(ctx, re.name, root, v)
	if errors.Is(err, view.ErrNoView) {
		s.log.Warn("view unavailable; serving the raw metadata", "repo", re.name, "root", root, "view", v, "err", err)
		c.Set(logView, "raw-fallback")
		if kind == kindRepomd {
			return s.serveRepomd(c, re, root)
		}
		return s.serveSignature(c, re, rel, root)
	}
	if err != nil {
		if kind == kindSignature {
			// No metadata at all for the root: upstream's own answer for
			// the signature (404 when it has none), as in raw.
			return s.serveSignature(c, re, rel, root)
		}
		return err
	}
	c.Set(logResult, result)
	if kind == kindRepomd {
		serveMetadataSum(c, "repomd.xml", vg.Created, vg.Repomd, vg.Sum())
	} else {
		serveMetadata(c, "repomd.xml.asc", vg.Created, vg.Signature)
	}
	return nil
}

// lastModified is a stored object's Last-Modified header. Fills store
// upstream's date in canonical form, sent as it is; an object an older
// version stored with upstream's own string has it parsed, and one
// without a date that parses gets its store time.
func lastModified(info cache.Info) string {
	lm := info.Meta.LastModified
	if len(lm) == len(http.TimeFormat) && strings.HasSuffix(lm, " GMT") {
		return lm
	}
	if t, err := http.ParseTime(lm); err == nil {
		return httpDate(t)
	}
	return httpDate(info.Stored)
}

func httpDate(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(http.TimeFormat)
}
