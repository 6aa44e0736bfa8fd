package fill

import "testing"

func TestCanonicalDate(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Sun, 06 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 GMT"},
		{"Sunday, 06-Nov-94 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 GMT"},
		{"Sun Nov  6 08:49:37 1994", "Sun, 06 Nov 1994 08:49:37 GMT"},
		{"", ""},
		{"yesterday", ""},
	} {
		if got := canonicalDate(tc.in); got != tc.want {
			t.Errorf("canonicalDate(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
