package proxy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/dnfproxy/dnfproxy/cache"
)

// PurgeResult says what a purge removed.
type PurgeResult struct {
	Objects int   `json:"objects"`
	Bytes   int64 `json:"bytes"`
}

// Purge removes at once every cached object of a repo whose path starts
// with prefix ("" for the whole repo): packages, repodata files and the
// metadata generations of roots under prefix. The next request fetches
// from upstream again.
func (s *Server) Purge(ctx context.Context, repo, prefix string) (PurgeResult, error) {
	rp, ok := s.repos[repo]
	if !ok {
		return PurgeResult{}, fmt.Errorf("%w: no repo %q", ErrNotFound, repo)
	}
	if err := checkSubpath(repo, prefix); err != nil {
		return PurgeResult{}, err
	}
	// Forget the generations first, so no request serves a file the purge
	// is about to delete as part of a current generation.
	rp.mu.Lock()
	for root := range rp.roots {
		if strings.HasPrefix(root, prefix) {
			delete(rp.roots, root)
		}
	}
	rp.mu.Unlock()
	// And the views and analyses built from them.
	for _, m := range []*sync.Map{&s.views, &s.analyses} {
		m.Range(func(k, _ any) bool {
			if r, rest, _ := strings.Cut(k.(string), "\x00"); r == repo && strings.HasPrefix(rest, prefix) {
				m.Delete(k)
			}
			return true
		})
	}
	var prefixes []string
	for _, ns := range []string{nsGen, nsMD, nsObj, nsView, nsViewRec} {
		prefixes = append(prefixes, ns+repo+"/"+prefix)
	}
	// Running fills under the prefix: one whose bytes are verified is about
	// to commit, so wait for it and delete what it stored; one still
	// downloading finishes for its clients but stores nothing.
	var settling []*fill
	s.fillMu.Lock()
	for key, f := range s.fills {
		if !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(key, p) }) {
			continue
		}
		f.mu.Lock()
		if f.finished && f.err == nil {
			settling = append(settling, f)
		} else {
			f.discard = true
			delete(s.fills, key)
		}
		f.mu.Unlock()
	}
	s.fillMu.Unlock()
	for _, f := range settling {
		select {
		case <-f.done:
		case <-ctx.Done():
			return PurgeResult{}, ctx.Err()
		}
	}
	var res PurgeResult
	for _, p := range prefixes {
		var keys []cache.Info
		if err := s.store.List(ctx, p, func(i cache.Info) error {
			keys = append(keys, i)
			return nil
		}); err != nil {
			return res, err
		}
		for _, i := range keys {
			if err := s.store.Delete(ctx, i.Key); err != nil {
				return res, err
			}
			res.Objects++
			res.Bytes += i.Size
		}
	}
	s.log.Info("cache purged", "repo", repo, "prefix", prefix, "objects", res.Objects, "bytes", res.Bytes)
	return res, nil
}
