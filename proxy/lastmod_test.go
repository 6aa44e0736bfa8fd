package proxy

import (
	"testing"
	"time"

	"github.com/dnfproxy/dnfproxy/cache"
)

// A hit's Last-Modified is always a valid HTTP date in canonical form:
// the canonical date fills store is sent as it is, a date an older
// version stored in upstream's own form is made canonical, and one that
// does not parse gives way to the store time (it used to be sent raw).
func TestLastModifiedOfStoredObjects(t *testing.T) {
	stored := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, meta string
		stored     time.Time
		want       string
	}{
		{"canonical, as fills store it", "Sun, 06 Nov 1994 08:49:37 GMT", stored, "Sun, 06 Nov 1994 08:49:37 GMT"},
		{"asctime, stored verbatim by older versions", "Sun Nov  6 08:49:37 1994", stored, "Sun, 06 Nov 1994 08:49:37 GMT"},
		{"RFC 850", "Sunday, 06-Nov-94 08:49:37 GMT", stored, "Sun, 06 Nov 1994 08:49:37 GMT"},
		{"garbage", "last tuesday", stored, "Mon, 30 Nov 2026 12:00:00 GMT"},
		{"none", "", stored, "Mon, 30 Nov 2026 12:00:00 GMT"},
		{"none, no store time", "", time.Time{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info := cache.Info{Meta: cache.Meta{LastModified: tc.meta}, Stored: tc.stored}
			if got := lastModified(info); got != tc.want {
				t.Errorf("lastModified(%q) = %q, want %q", tc.meta, got, tc.want)
			}
		})
	}
}
