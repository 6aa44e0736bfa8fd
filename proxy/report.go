package proxy

import (
	"context"
	"fmt"

	"github.com/dnfproxy/dnfproxy/metadata"
)

// DivergenceReport is GET /api/v1/repos/<name>/divergences: the packages of
// one repo root that diverge from the RHEL ABI reference, and what the
// repo's compat mode does with them.
type DivergenceReport struct {
	Repo      string             `json:"repo"`
	Path      string             `json:"path"`
	Reference string             `json:"reference"`
	Packages  []DivergentPackage `json:"packages"` // never null
	// Affected lists, in filter mode, the kept packages whose requirements
	// only filtered packages satisfied (beyond DESIGN.md's fields).
	Affected []affectedPackage `json:"affected,omitempty"`
}

// DivergentPackage is one package of a DivergenceReport.
type DivergentPackage struct {
	NEVRA   string          `json:"nevra"`
	Name    string          `json:"name"`
	Epoch   string          `json:"epoch"`
	Version string          `json:"version"`
	Release string          `json:"release"`
	Arch    string          `json:"arch"`
	Classes []string        `json:"classes"`
	Reasons []string        `json:"reasons"`
	Action  metadata.Action `json:"action"` // annotate | filter | none
}

// divergenceReport returns the divergence report of a repo root (path is
// "" or ends in "/"), with each package's action in the repo's compat mode.
// With revalidate, metadata older than its TTL is revalidated first;
// without, the report uses what is there (pages that must not go
// upstream). Unknown repo: ErrNotFound.
func (s *Server) divergenceReport(ctx context.Context, repo, path string, revalidate bool) (DivergenceReport, error) {
	rp, ok := s.repos[repo]
	if !ok {
		return DivergenceReport{}, fmt.Errorf("%w: no repo %q", ErrNotFound, repo)
	}
	maxAge, refMaxAge := rp.ttl, s.refTTL(rp)
	if !revalidate {
		maxAge, refMaxAge = noRevalidate, noRevalidate
	}
	g, _, err := s.generationFor(ctx, rp, path, maxAge)
	if err != nil {
		return DivergenceReport{}, err
	}
	an, err := s.analysisFor(ctx, rp, path, g, refMaxAge)
	if err != nil {
		return DivergenceReport{}, err
	}
	pkgs, affected, err := s.viewReport(ctx, rp, path, g, an, effectiveView(rp, ViewDefault))
	if err != nil {
		return DivergenceReport{}, err
	}
	return DivergenceReport{
		Repo:      repo,
		Path:      path,
		Reference: rp.cfg.Compat.Reference,
		Packages:  pkgs,
		Affected:  affected,
	}, nil
}
