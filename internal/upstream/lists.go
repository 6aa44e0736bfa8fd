package upstream

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/dnfproxy/dnfproxy/metadata"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// ErrChecksum is VerifyRepomd's error: the body matches none of the hashes.
var ErrChecksum = errors.New("repomd.xml does not match the metalink")

const (
	// listTTL is how long a fetched mirror list is used for file requests.
	listTTL = 6 * time.Hour
	// hashTTL is how old a metalink may be when RepomdHashes answers: a new
	// repomd.xml is checked against a metalink fetched with it, as dnf
	// fetches the metalink with every metadata refresh.
	hashTTL = time.Minute
	// listRetry is the least time between two fetches of one root's list
	// after a failure (of the list, or of every mirror it names).
	listRetry = 30 * time.Second
	// maxRoots bounds the roots whose lists are kept.
	maxRoots = 256
	// maxListBytes bounds a metalink or mirrorlist document.
	maxListBytes = 8 << 20
	// maxProbe bounds the parent directories tried as roots for a path
	// whose root is not known yet.
	maxProbe = 8
)

// mirrorList is one root's list as last fetched.
type mirrorList struct {
	bases    []string
	hashes   []Hash
	metalink bool
	source   string
	fetched  time.Time
}

type listEntry struct {
	ml        *mirrorList // last good list; nil before the first
	err       error       // last fetch error
	attempted time.Time   // last fetch started
	stale     bool        // every mirror failed since it was fetched
	used      time.Time
}

// lists owns the mirror lists of one repo, per root.
type lists struct {
	c        *Client
	tmpl     string
	metalink bool // configured as metalink (else mirrorlist)
	perRoot  bool // tmpl contains $root
	ttl      time.Duration
	hashTTL  time.Duration
	retry    time.Duration
	now      func() time.Time
	sf       singleflight.Group

	mu     sync.Mutex
	m      map[string]*listEntry
	hostOf map[string]bool // origins of every listed mirror
}

func newLists(c *Client, tmpl string, metalink bool) *lists {
	return &lists{
		c: c, tmpl: tmpl, metalink: metalink, perRoot: strings.Contains(tmpl, "$root"),
		ttl: listTTL, hashTTL: hashTTL, retry: listRetry, now: time.Now,
		m: map[string]*listEntry{}, hostOf: map[string]bool{},
	}
}

func (l *lists) source() string {
	if l.metalink {
		return "metalink"
	}
	return "mirrorlist"
}

// hosts returns the origins of the listed mirrors, for the redirect policy.
func (l *lists) hosts() map[string]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.hostOf
}

// repodataRoot returns the root of a path inside a repodata/ directory.
func repodataRoot(rel string) (string, bool) {
	segs := strings.Split(rel, "/")
	for i := len(segs) - 2; i >= 0; i-- {
		if segs[i] == "repodata" {
			return strings.Join(segs[:i], "/") + slashIf(i > 0), true
		}
	}
	return "", false
}

func slashIf(b bool) string {
	if b {
		return "/"
	}
	return ""
}

// forRel finds rel's root and that root's list. Without $root in the
// template the one list describes the root "". Otherwise the root is the
// directory holding repodata/ when rel is inside it, else the longest root
// whose list is known, else the directory above a Packages/ directory,
// else the first parent directory whose list fetch succeeds.
func (l *lists) forRel(ctx context.Context, rel string) (string, *mirrorList, error) {
	if !l.perRoot {
		ml, err := l.get(ctx, "", l.ttl)
		return "", ml, err
	}
	if root, ok := repodataRoot(rel); ok {
		ml, err := l.get(ctx, root, l.ttl)
		return root, ml, err
	}
	l.mu.Lock()
	best, found := "", false
	for root, e := range l.m {
		if e.ml != nil && strings.HasPrefix(rel, root) && (!found || len(root) > len(best)) {
			best, found = root, true
		}
	}
	l.mu.Unlock()
	if found {
		ml, err := l.get(ctx, best, l.ttl)
		return best, ml, err
	}
	segs := strings.Split(rel, "/")
	for i := len(segs) - 2; i >= 0; i-- {
		if segs[i] == "Packages" {
			root := strings.Join(segs[:i], "/") + slashIf(i > 0)
			ml, err := l.get(ctx, root, l.ttl)
			return root, ml, err
		}
	}
	var errs []error
	for i, n := len(segs)-1, 0; i >= 0 && n < maxProbe; i, n = i-1, n+1 {
		root := strings.Join(segs[:i], "/") + slashIf(i > 0)
		ml, err := l.get(ctx, root, l.ttl)
		if err == nil {
			return root, ml, nil
		}
		if ctx.Err() != nil {
			return "", nil, context.Cause(ctx)
		}
		errs = append(errs, err)
	}
	err := errors.Join(errs...)
	if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrTimeout) {
		return "", nil, fmt.Errorf("%w: no mirror list for %s: %v", ErrUnavailable, rel, err)
	}
	return "", nil, fmt.Errorf("%w: no mirror list for %s: %v", ErrNotFound, rel, err)
}

// get returns root's list, fetching it when it is older than maxAge, or
// stale, and no fetch failed within retry. A failed refresh keeps the last
// good list in use.
func (l *lists) get(ctx context.Context, root string, maxAge time.Duration) (*mirrorList, error) {
	l.mu.Lock()
	now := l.now()
	e := l.m[root]
	if e == nil {
		if len(l.m) >= maxRoots {
			l.dropOldestLocked()
		}
		e = &listEntry{}
		l.m[root] = e
	}
	e.used = now
	ml, lastErr, stale := e.ml, e.err, e.stale
	fresh := ml != nil && !stale && now.Sub(ml.fetched) < maxAge
	recent := !e.attempted.IsZero() && now.Sub(e.attempted) < l.retry
	l.mu.Unlock()
	switch {
	case fresh:
		return ml, nil
	case recent && lastErr != nil && ml == nil:
		return nil, lastErr // negative cache: no fetch more often than retry
	case recent && ml != nil && (lastErr != nil || stale):
		return ml, nil // just tried: keep the last good list for now
	}
	ch := l.sf.DoChan(root, func() (any, error) {
		l.mu.Lock()
		if e := l.m[root]; e != nil {
			e.attempted = l.now()
		}
		l.mu.Unlock()
		// Detached: one client hanging up does not fail the others' fetch;
		// the fetch ends by itself through the body guard and timeouts.
		ml, err := l.fetch(context.WithoutCancel(ctx), root)
		l.store(root, ml, err)
		return ml, err
	})
	select {
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	case r := <-ch:
		if r.Err == nil {
			return r.Val.(*mirrorList), nil
		}
		if ml != nil {
			l.c.log.Warn("mirror list refresh failed, keeping the last one", "repo", l.c.opt.Repo, "root", root, "err", r.Err)
			return ml, nil
		}
		return nil, r.Err
	}
}

func (l *lists) store(root string, ml *mirrorList, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.m[root]
	if e == nil {
		e = &listEntry{used: l.now()}
		l.m[root] = e
	}
	if err != nil {
		e.err = err
		return
	}
	e.ml, e.err, e.stale = ml, nil, false
	hosts := map[string]bool{}
	for _, e := range l.m {
		if e.ml == nil {
			continue
		}
		for _, b := range e.ml.bases {
			if u, err := url.Parse(b); err == nil {
				hosts[origin(u)] = true
			}
		}
	}
	l.hostOf = hosts
}

func (l *lists) dropOldestLocked() {
	var oldest string
	var at time.Time
	first := true
	for k, e := range l.m {
		if first || e.used.Before(at) {
			oldest, at, first = k, e.used, false
		}
	}
	delete(l.m, oldest)
}

// failed marks root's list for a refresh: every mirror it names failed.
func (l *lists) failed(root string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.m[root]; e != nil && e.ml != nil {
		e.stale = true
	}
}

// candidates lists every known root's mirrors, for Status.
func (l *lists) candidates() [][]candidate {
	l.mu.Lock()
	defer l.mu.Unlock()
	roots := make([]string, 0, len(l.m))
	for r, e := range l.m {
		if e.ml != nil {
			roots = append(roots, r)
		}
	}
	sort.Strings(roots)
	var out [][]candidate
	for _, r := range roots {
		ml := l.m[r].ml
		group := make([]candidate, 0, len(ml.bases))
		for _, b := range ml.bases {
			group = append(group, candidate{base: b, source: ml.source, root: r})
		}
		out = append(out, group)
	}
	return out
}

// fetch downloads and parses root's list.
func (l *lists) fetch(ctx context.Context, root string) (*mirrorList, error) {
	// The documented form is the sub-path without slashes at either end
	// ("9/BaseOS/x86_64/os"), whatever form the root is kept in here.
	target := strings.ReplaceAll(l.tmpl, "$root", strings.Trim(root, "/"))
	red := redact(target)
	u, err := parseHTTPURL(target)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s: %v", ErrBadRequest, l.source(), red, err)
	}
	if l.c.scope.deny.deniedHostPort(hostPort(u)) {
		return nil, fmt.Errorf("%w: %s: %w", ErrUnavailable, red, errDenied)
	}
	rctx, cancel := context.WithCancelCause(ctx)
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, target, nil)
	if err != nil {
		cancel(nil)
		return nil, fmt.Errorf("%w: %s: %v", ErrBadRequest, red, err)
	}
	req.Header.Set("User-Agent", "dnfproxy")
	l.c.setCredentials(req)
	resp, err := l.c.client.Do(req)
	if err != nil {
		cancel(nil)
		return nil, classify(red, err)
	}
	body := newGuardedBody(rctx, ctx, cancel, resp.Body, l.c.opt.Timeout, l.c.opt.MinRate, red, nil)
	defer body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return nil, fmt.Errorf("%w: %s: %s", ErrNotFound, red, resp.Status)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%w: %s: %s", ErrUnavailable, red, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(body, maxListBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxListBytes {
		return nil, fmt.Errorf("%w: %s: more than %d bytes", ErrUnavailable, red, maxListBytes)
	}
	var pl parsedList
	if l.metalink {
		pl, err = parseMetalink(data)
	} else {
		pl, err = parseMirrorlist(data)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, red, err)
	}
	if len(pl.bases) == 0 && len(l.c.bases) == 0 {
		return nil, fmt.Errorf("%w: %s lists no http or https mirror", ErrUnavailable, red)
	}
	l.c.log.Info("mirror list fetched", "repo", l.c.opt.Repo, "root", root, "url", red, "mirrors", len(pl.bases), "hashes", len(pl.hashes))
	return &mirrorList{bases: pl.bases, hashes: pl.hashes, metalink: pl.metalink, source: l.source(), fetched: l.now()}, nil
}

// RepomdHashes returns, for metalink upstreams, the hashes the metalink
// gives for <root>repodata/repomd.xml (its own and its alternates'), so
// the caller can verify a repomd.xml body. The metalink is refetched when
// it is more than a minute old, so a new repomd.xml meets a current one.
// ok=false when the repo (or that root) has no metalink.
func (c *Client) RepomdHashes(ctx context.Context, root string) (hashes []Hash, ok bool, err error) {
	if c.lists == nil {
		return nil, false, nil
	}
	if !c.lists.perRoot {
		if root != "" {
			return nil, false, nil
		}
	}
	ml, err := c.lists.get(ctx, root, c.lists.hashTTL)
	if err != nil {
		return nil, false, err
	}
	if !ml.metalink {
		return nil, false, nil
	}
	return append([]Hash(nil), ml.hashes...), true, nil
}

// VerifyRepomd checks body against the hashes of RepomdHashes: it must
// match one of them (the metalink's own or an alternate's, as librepo
// accepts). No hashes: nothing to check.
func VerifyRepomd(body []byte, hashes []Hash) error {
	if len(hashes) == 0 {
		return nil
	}
	sums := map[string]string{}
	checked := 0
	for _, h := range hashes {
		sum, ok := sums[h.Type]
		if !ok {
			hf, err := metadata.NewHash(h.Type)
			if err != nil {
				continue
			}
			hf.Write(body)
			sum = hex.EncodeToString(hf.Sum(nil))
			sums[h.Type] = sum
		}
		checked++
		if strings.EqualFold(sum, h.Value) {
			return nil
		}
	}
	if checked == 0 {
		return nil
	}
	var have []string
	for t, s := range sums {
		have = append(have, t+":"+s)
	}
	sort.Strings(have)
	return fmt.Errorf("%w: %d bytes (%s) match none of its %d hashes", ErrChecksum, len(body), strings.Join(have, ", "), len(hashes))
}
