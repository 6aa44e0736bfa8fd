package proxy

import (
	"context"
	"fmt"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/keys"
)

// PurgeResult says what a purge removed.
type PurgeResult struct {
	Objects int   `json:"objects"`
	Bytes   int64 `json:"bytes"`
}

// Purge removes at once every cached object of a repo whose path starts
// with prefix ("" for the whole repo): packages, repodata files, views and
// the metadata generations of roots under prefix. The next request fetches
// from upstream again. Each owner forgets its own state first, so nothing
// serves a file the purge is about to delete as part of a current record;
// a view or generation whose root stays (a purge of <root>repodata/)
// fetches its listed files again when they are asked for.
func (s *Server) Purge(ctx context.Context, repo, prefix string) (PurgeResult, error) {
	re, ok := s.repos[repo]
	if !ok {
		return PurgeResult{}, fmt.Errorf("%w: no repo %q", ErrNotFound, repo)
	}
	if err := checkSubpath(repo, prefix); err != nil {
		return PurgeResult{}, err
	}
	re.gens.Forget(prefix)
	s.views.Forget(repo, prefix)
	prefixes := keys.RepoPrefixes(repo, prefix)
	if err := s.filler.Discard(ctx, prefixes); err != nil {
		return PurgeResult{}, err
	}
	var res PurgeResult
	for _, p := range prefixes {
		var infos []cache.Info
		if err := s.store.List(ctx, p, func(i cache.Info) error {
			infos = append(infos, i)
			return nil
		}); err != nil {
			return res, err
		}
		for _, i := range infos {
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
