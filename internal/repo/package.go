package repo

import (
	"context"
	"errors"
	"fmt"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/fill"
	"github.com/dnfproxy/dnfproxy/internal/upstream"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// ErrPackageChanged is returned by OpenPackage when primary.xml no longer
// lists the package with the checksum the caller expects.
var ErrPackageChanged = errors.New("package is not the one expected")

// OpenPackage opens a package file (rel: path below the repo's base) that
// a generation's primary.xml lists, from the store or, when it is not
// there, through the filler: fetched once, verified by size and checksum,
// shared with clients asking for it meanwhile. want, when not zero, is the
// checksum the caller read in primary.xml; a package listed with other
// bytes now is an error wrapping ErrPackageChanged. A package no
// generation lists is an error wrapping cache.ErrNotFound.
func (r *Repo) OpenPackage(ctx context.Context, rel string, want metadata.Checksum) (cache.Object, error) {
	ref, ok := r.LookupPackage(ctx, rel)
	if !ok {
		return nil, fmt.Errorf("%w: %s/%s is not in primary.xml", cache.ErrNotFound, r.opt.Name, rel)
	}
	if !want.IsZero() && ref.Sum != want {
		return nil, fmt.Errorf("%w: %s/%s is listed as %s, not %s", ErrPackageChanged, r.opt.Name, rel, ref.Sum, want)
	}
	req := r.Request(rel, fill.Expect{Size: ref.Size, Sum: ref.Sum})
	for range 3 {
		obj, err := r.opt.Store.Get(ctx, req.Key)
		switch {
		case err == nil:
			if obj.Info().Meta.Checksum == ref.Sum.String() {
				return obj, nil
			}
			obj.Close() // same path, other bytes: primary changed; refetch
			req.RequireFresh = true
		case !errors.Is(err, cache.ErrNotFound):
			return nil, err
		}
		if err := r.opt.Filler.Ensure(ctx, req); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%w: %s/%s keeps changing", upstream.ErrUnavailable, r.opt.Name, rel)
}

// StoredPackage opens a package file only when the store already holds it
// with the checksum want (no upstream request): ok=false otherwise.
func (r *Repo) StoredPackage(ctx context.Context, rel string, want metadata.Checksum) (cache.Object, bool) {
	obj, err := r.opt.Store.Get(ctx, r.Request(rel, fill.Expect{}).Key)
	if err != nil {
		return nil, false
	}
	if obj.Info().Meta.Checksum != want.String() {
		obj.Close()
		return nil, false
	}
	return obj, true
}
