package upstream

import (
	"context"
	"fmt"
	"net/http"
)

// StatusError turns an upstream answer the caller cannot use (any status
// Get returns besides the one it asked for) into an error of this
// package's kinds.
func StatusError(resp *http.Response) error {
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone {
		return fmt.Errorf("%w: upstream says %s", ErrNotFound, resp.Status)
	}
	return fmt.Errorf("%w: upstream says %s", ErrUnavailable, resp.Status)
}

// GetAt fetches rel from one base only: a file that must come from the
// mirror another one came from (repomd.xml.asc beside its repomd.xml). A
// base the client no longer lists falls back to Get.
func (c *Client) GetAt(ctx context.Context, base, rel string, hdr http.Header) (*Response, error) {
	if err := checkRel(rel); err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrBadRequest, rel, err)
	}
	cands, _, err := c.candidates(ctx, rel)
	if err != nil {
		return nil, err
	}
	for _, cd := range cands {
		if cd.base == base {
			return c.try(ctx, cd, hdr)
		}
	}
	return c.Get(ctx, rel, hdr)
}
