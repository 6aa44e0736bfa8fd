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
// "" or ends in "/"). Unknown repo: ErrNotFound.
//
// The metadata rewriter fills Packages; until it is wired in, the report
// names the repo, the path and the reference and lists no package.
func (s *Server) divergenceReport(ctx context.Context, repo, path string) (DivergenceReport, error) {
	rp, ok := s.repos[repo]
	if !ok {
		return DivergenceReport{}, fmt.Errorf("%w: no repo %q", ErrNotFound, repo)
	}
	if err := ctx.Err(); err != nil {
		return DivergenceReport{}, err
	}
	return DivergenceReport{
		Repo:      repo,
		Path:      path,
		Reference: rp.cfg.Compat.Reference,
		Packages:  []DivergentPackage{},
	}, nil
}
