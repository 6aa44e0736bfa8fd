package proxy

import (
	"context"
	"fmt"
	"strings"

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
	if prefix != "" {
		if _, err := parseTarget("/"+repo+"/"+prefix, "/"+repo+"/"+prefix); err != nil {
			return PurgeResult{}, err
		}
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
	var res PurgeResult
	for _, p := range []string{genKey(repo, prefix), "md/" + repo + "/" + prefix, objKey(repo, prefix)} {
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
