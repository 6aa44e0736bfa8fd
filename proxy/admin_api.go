package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/internal/repo"
	"github.com/dnfproxy/dnfproxy/internal/repofile"
	"github.com/dnfproxy/dnfproxy/internal/upstream"
	"github.com/dnfproxy/dnfproxy/internal/warm"
)

// RepoStatus is one repo of GET /api/v1/repos.
type RepoStatus struct {
	Name               string         `json:"name"`
	URL                string         `json:"url"`
	Mirrors            []string       `json:"mirrors"`
	MetadataTTLSeconds float64        `json:"metadata_ttl_seconds"`
	Compat             CompatStatus   `json:"compat"`
	Upstream           UpstreamStatus `json:"upstream"`
	Roots              []RootStatus   `json:"roots"`
}

// CompatStatus is a repo's compat setting.
type CompatStatus struct {
	Mode      string `json:"mode"`
	Reference string `json:"reference"`
}

// UpstreamStatus is what the proxy knows of a repo's upstream: the last
// failure of any request to it, the last metadata revalidation tried and
// the last that succeeded (over all roots), and failures per mirror.
type UpstreamStatus struct {
	LastError    string           `json:"last_error,omitempty"`
	LastErrorAt  *time.Time       `json:"last_error_at,omitempty"`
	LastAttempt  *time.Time       `json:"last_refresh_attempt,omitempty"`
	LastSuccess  *time.Time       `json:"last_refresh_success,omitempty"`
	MirrorErrors map[string]int64 `json:"mirror_errors"`
}

// RootStatus is one repo root (a directory holding repodata/repomd.xml)
// and its current metadata generation.
type RootStatus struct {
	Path     string     `json:"path"`
	Revision string     `json:"revision"`
	Created  *time.Time `json:"created,omitempty"` // when the proxy switched to this generation
	Fetched  *time.Time `json:"fetched,omitempty"` // when upstream last confirmed it
	// AgeSeconds is the time since upstream last confirmed the generation:
	// how far behind upstream the proxy may be.
	AgeSeconds float64 `json:"age_seconds"`
	// Stale is set when the generation is older than the TTL or the last
	// revalidation failed: clients get metadata upstream may have replaced.
	Stale          bool         `json:"stale"`
	RefreshFailing bool         `json:"refresh_failing"`
	LastAttempt    *time.Time   `json:"last_refresh_attempt,omitempty"`
	LastSuccess    *time.Time   `json:"last_refresh_success,omitempty"`
	LastError      string       `json:"last_error,omitempty"`
	LastErrorAt    *time.Time   `json:"last_error_at,omitempty"`
	Packages       int          `json:"packages"` // packages in primary.xml
	Files          int          `json:"files"`    // files repomd.xml lists
	IndexError     string       `json:"index_error,omitempty"`
	HasPrevious    bool         `json:"has_previous"`     // the previous generation is still served
	Mirror         string       `json:"mirror,omitempty"` // the base the generation came from
	Views          []ViewStatus `json:"views,omitempty"`  // the rewriting views of the root
}

// ViewStatus is one rewriting view of a root.
type ViewStatus struct {
	View        string     `json:"view"`
	Created     *time.Time `json:"created,omitempty"`    // when the served view was built
	LastError   string     `json:"last_error,omitempty"` // the last failed build (the last good view stays)
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
}

// CacheStats is GET /api/v1/cache.
type CacheStats struct {
	Objects       int64 `json:"objects"`
	Bytes         int64 `json:"bytes"`
	MaxBytes      int64 `json:"max_bytes"`
	Hits          int64 `json:"hits"`
	Misses        int64 `json:"misses"`
	UpstreamBytes int64 `json:"upstream_bytes"`
}

// RefreshStatus is POST /api/v1/repos/<name>/refresh.
type RefreshStatus struct {
	Repo   string     `json:"repo"`
	Path   string     `json:"path"`
	Result string     `json:"result"` // changed | unchanged | failed
	Error  string     `json:"error,omitempty"`
	Root   RootStatus `json:"root"`
}

// PurgeStatus is DELETE /api/v1/cache.
type PurgeStatus struct {
	Repo    string `json:"repo"`
	Prefix  string `json:"prefix"`
	Objects int    `json:"objects"`
	Bytes   int64  `json:"bytes"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// repoStatuses returns every repo's state, in configuration order.
func (s *Server) repoStatuses() []RepoStatus {
	out := make([]RepoStatus, 0, len(s.cfg.Repos))
	for _, rc := range s.cfg.Repos {
		if re, ok := s.repos[rc.Name]; ok {
			out = append(out, s.repoStatus(re))
		}
	}
	return out
}

func (s *Server) repoStatus(re *repoEntry) RepoStatus {
	st := RepoStatus{
		Name:               re.name,
		URL:                upstream.Redact(re.cfg.URL),
		Mirrors:            []string{},
		MetadataTTLSeconds: re.gens.TTL().Seconds(),
		Compat:             CompatStatus{Mode: string(re.cfg.Compat.Mode), Reference: re.cfg.Compat.Reference},
		Upstream:           UpstreamStatus{MirrorErrors: map[string]int64{}},
		Roots:              []RootStatus{},
	}
	if st.Compat.Mode == "" {
		st.Compat.Mode = "off"
	}
	for _, m := range re.cfg.Mirrors {
		st.Mirrors = append(st.Mirrors, upstream.Redact(m))
	}
	var lastErrAt, lastAttempt, lastSuccess time.Time
	for _, m := range re.up.Status() {
		if m.Failures > 0 {
			st.Upstream.MirrorErrors[m.Base] = m.Failures
		}
		if m.LastErrorAt.After(lastErrAt) {
			st.Upstream.LastError, lastErrAt = m.Base+": "+m.LastError, m.LastErrorAt
		}
	}
	for _, r := range re.gens.Status() {
		rs := s.rootStatus(re, r)
		st.Roots = append(st.Roots, rs)
		if rs.LastErrorAt != nil && rs.LastErrorAt.After(lastErrAt) {
			st.Upstream.LastError, lastErrAt = rs.LastError, *rs.LastErrorAt
		}
		if rs.LastAttempt != nil && rs.LastAttempt.After(lastAttempt) {
			lastAttempt = *rs.LastAttempt
		}
		if rs.LastSuccess != nil && rs.LastSuccess.After(lastSuccess) {
			lastSuccess = *rs.LastSuccess
		}
	}
	st.Upstream.LastErrorAt = timePtr(lastErrAt)
	st.Upstream.LastAttempt = timePtr(lastAttempt)
	st.Upstream.LastSuccess = timePtr(lastSuccess)
	return st
}

// rootStatus describes a root with a generation.
func (s *Server) rootStatus(re *repoEntry, r repo.RootStatus) RootStatus {
	h, cur := r.Health, r.Cur
	rs := RootStatus{
		Path:           r.Root,
		RefreshFailing: h.Failing,
		LastAttempt:    timePtr(h.LastAttempt),
		LastSuccess:    timePtr(h.LastSuccess),
		LastError:      h.LastError,
		LastErrorAt:    timePtr(h.LastErrorAt),
		HasPrevious:    r.HasPrev,
		Stale:          r.Stale(re.gens.TTL()),
		Revision:       cur.MD().Revision,
		Created:        timePtr(cur.Created),
		Fetched:        timePtr(cur.Fetched),
		AgeSeconds:     time.Since(cur.Fetched).Seconds(),
		Files:          len(cur.MD().Records),
		Mirror:         cur.Mirror,
	}
	if rs.LastSuccess == nil {
		// A generation restored from disk: upstream confirmed it then.
		rs.LastSuccess = timePtr(cur.Fetched)
	}
	// Only an index that exists: listing repos never parses primary.xml.
	if r.Packages >= 0 {
		rs.Packages = r.Packages
	}
	for _, v := range s.views.Statuses() {
		if v.Repo == re.name && v.Root == r.Root {
			vs := ViewStatus{View: v.View, Created: timePtr(v.Created), LastError: v.LastError, LastErrorAt: timePtr(v.LastErrorAt)}
			rs.Views = append(rs.Views, vs)
			if v.LastError != "" && (rs.LastErrorAt == nil || v.LastErrorAt.After(*rs.LastErrorAt)) {
				rs.LastError, rs.LastErrorAt = v.View+" view: "+v.LastError, timePtr(v.LastErrorAt)
			}
		}
	}
	return rs
}

// rootParam turns the ?path= of an API call into a root: "" or a clean
// relative path ending in "/".
func rootParam(repo, p string) (string, error) {
	p = strings.TrimPrefix(p, "/")
	if p == "" {
		return "", nil
	}
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	if err := checkSubpath(repo, p); err != nil {
		return "", err
	}
	return p, nil
}

// apiFail answers with the status the error middleware would give err.
func apiFail(c *gin.Context, err error) {
	status := statusOf(err)
	apiError(c, status, publicMessage(status, err))
}

func (s *Server) apiRepos(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"repos": s.repoStatuses()})
}

func (s *Server) apiDivergences(c *gin.Context) {
	name := c.Param("name")
	root, err := rootParam(name, c.Query("path"))
	if err != nil {
		apiFail(c, err)
		return
	}
	rep, err := s.views.Report(c.Request.Context(), name, root, true) // 404 for an unknown repo
	if err != nil {
		apiFail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, rep)
}

// apiRefresh revalidates a root's metadata now, whatever its age, and
// answers with the new state: 200 when upstream answered (changed or
// not), the upstream error status when it failed.
func (s *Server) apiRefresh(c *gin.Context) {
	name := c.Param("name")
	re, ok := s.repos[name]
	if !ok {
		apiError(c, http.StatusNotFound, fmt.Sprintf("no repo %q", name))
		return
	}
	root, err := rootParam(name, c.Query("path"))
	if err != nil {
		apiFail(c, err)
		return
	}
	res, err := re.gens.Refresh(c.Request.Context(), root)
	out := RefreshStatus{Repo: name, Path: root}
	status := http.StatusOK
	switch {
	case err != nil:
		// The last good generation, if any, stays in service.
		out.Result, out.Error = "failed", err.Error()
		status = statusOf(err)
	case res.Changed:
		out.Result = "changed"
		// The rewritten views of the root follow before the answer.
		if err := s.views.BuildNow(c.Request.Context(), name, root); err != nil {
			out.Error = err.Error()
		}
	default:
		out.Result = "unchanged"
	}
	if r, ok := re.gens.RootStatus(root); ok {
		out.Root = s.rootStatus(re, r)
	}
	out.Root.Path = root
	c.Header("Cache-Control", "no-store")
	c.JSON(status, out)
}

func (s *Server) cacheStats() CacheStats {
	st := CacheStats{
		MaxBytes:      int64(s.cfg.Storage.MaxSize),
		Hits:          s.stats.hits.Load(),
		Misses:        s.stats.misses.Load(),
		UpstreamBytes: s.stats.upstreamBytes.Load(),
	}
	if sz, ok := s.store.(cache.Sizer); ok {
		st.Objects, st.Bytes = sz.Size()
	}
	return st
}

func (s *Server) apiCacheStats(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, s.cacheStats())
}

func (s *Server) apiPurge(c *gin.Context) {
	repo := c.Query("repo")
	if repo == "" {
		apiError(c, http.StatusBadRequest, "the repo query parameter is required: DELETE /api/v1/cache?repo=NAME[&prefix=PATH]")
		return
	}
	prefix := strings.TrimPrefix(c.Query("prefix"), "/")
	res, err := s.Purge(c.Request.Context(), repo, prefix)
	if err != nil {
		apiFail(c, err)
		return
	}
	c.JSON(http.StatusOK, PurgeStatus{Repo: repo, Prefix: prefix, Objects: res.Objects, Bytes: res.Bytes})
}

// maxWarmBody bounds the body of POST /api/v1/warm.
const maxWarmBody = 1 << 20

func (s *Server) apiWarm(c *gin.Context) {
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, maxWarmBody+1))
	if err != nil {
		apiError(c, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	if len(body) > maxWarmBody {
		apiError(c, http.StatusRequestEntityTooLarge, "body over 1 MiB")
		return
	}
	req, err := s.parseWarmRequest(body)
	if err != nil {
		apiError(c, http.StatusBadRequest, err.Error())
		return
	}
	j, err := s.startWarm(req)
	if err != nil {
		apiError(c, http.StatusTooManyRequests, err.Error())
		return
	}
	c.Header("Location", "/api/v1/jobs/"+j.id)
	c.JSON(http.StatusAccepted, j.status())
}

// parseWarmRequest decodes and checks a warm request strictly: unknown
// fields, an unknown repo or package selection are errors.
func (s *Server) parseWarmRequest(body []byte) (warmRequest, error) {
	var req warmRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("bad JSON body: %v (want {\"repo\": NAME, \"path\": SUBPATH, \"packages\": \"none|latest|all\"})", err)
	}
	if dec.More() {
		return req, errors.New("bad JSON body: more than one value")
	}
	if req.Repo == "" {
		return req, errors.New("repo is required")
	}
	if _, ok := s.repos[req.Repo]; !ok {
		return req, fmt.Errorf("repo: no repo %q", req.Repo)
	}
	root, err := rootParam(req.Repo, req.Path)
	if err != nil {
		return req, fmt.Errorf("path: %v", err)
	}
	req.Path = root
	if req.Concurrency > 64 {
		return req, fmt.Errorf("concurrency: %d is not between 1 and 64", req.Concurrency)
	}
	for _, n := range req.Names {
		if n == "" || strings.ContainsAny(n, " \t\r\n/") {
			return req, fmt.Errorf("names: %q is not a package name", n)
		}
	}
	// The same defaults and checks as `dnfproxy warm` (packages: latest,
	// or none when names are given).
	opt, err := warm.Options{Proxy: s.clientURL(), Repo: req.Repo, Path: req.Path, Packages: req.Packages,
		Names: req.Names, Concurrency: req.Concurrency}.Normalize()
	if err != nil {
		return req, errors.New(strings.TrimPrefix(err.Error(), "warm: "))
	}
	req.Packages, req.Concurrency = opt.Packages, opt.Concurrency
	return req, nil
}

func (s *Server) apiJob(c *gin.Context) {
	j := s.admin.jobs.get(c.Param("id"))
	if j == nil {
		apiError(c, http.StatusNotFound, fmt.Sprintf("no job %q", c.Param("id")))
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, j.status())
}

func (s *Server) apiJobs(c *gin.Context) {
	out := []JobStatus{}
	for _, j := range s.admin.jobs.newestFirst() {
		out = append(out, j.status())
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"jobs": out})
}

func (s *Server) apiRepofile(c *gin.Context) { s.repofile(c, c.Param("name")) }

// repofile answers with the dnf .repo stanza of a repo root (text/plain):
// ?path=SUBPATH is required; view, name, proxy (the client listener's URL as
// clients reach it; default: the proxy's own), gpgkey (repeatable) and
// gpgcheck=0 are optional, as for `dnfproxy repofile`. The root must be one
// the proxy has metadata for, so a typo is an error here, not on the client.
func (s *Server) repofile(c *gin.Context, name string) {
	re, ok := s.repos[name]
	if !ok {
		apiError(c, http.StatusNotFound, fmt.Sprintf("no repo %q", name))
		return
	}
	q := c.Request.URL.Query()
	root, err := rootParam(name, q.Get("path"))
	if err != nil {
		apiFail(c, err)
		return
	}
	if _, ok := re.gens.RootStatus(root); !ok {
		apiError(c, http.StatusNotFound, fmt.Sprintf("repo %q has no metadata of root %q yet: fetch it once through the proxy (dnfproxy warm --packages none)", name, root))
		return
	}
	opt := repofile.Options{
		Proxy: q.Get("proxy"), Repo: name, Path: root, View: q.Get("view"), Name: q.Get("name"),
		GPGKeys: q["gpgkey"], GPGCheck: q.Get("gpgcheck") != "0",
	}
	if opt.Proxy == "" {
		opt.Proxy = s.clientURL()
	}
	st, err := opt.Stanza()
	if err != nil {
		apiError(c, http.StatusBadRequest, err.Error())
		return
	}
	if opt.View == "" {
		// The proxy knows its own view: it rewrites when compat is on.
		st.Rewriting, st.Known = re.cfg.Compat.Mode == config.ModeAnnotate || re.cfg.Compat.Mode == config.ModeFilter, true
	}
	c.Header("Cache-Control", "no-store")
	c.Header("Content-Disposition", `inline; filename="`+st.ID+`.repo"`)
	c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte(st.String()))
}
