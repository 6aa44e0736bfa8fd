package repo

import (
	"testing"

	"github.com/dnfproxy/dnfproxy/metadata"
)

// TestOlder: a lagging mirror's repomd.xml (lower numeric revision, or
// older record timestamps when revisions are not numbers) must be seen as
// older, so a refresh never moves a root back.
func TestOlder(t *testing.T) {
	md := func(rev string, ts ...int64) *metadata.Repomd {
		m := &metadata.Repomd{Revision: rev}
		for _, x := range ts {
			m.Records = append(m.Records, metadata.Record{Timestamp: x})
		}
		return m
	}
	for _, tc := range []struct {
		name string
		a, b *metadata.Repomd
		want bool
	}{
		{"lower revision", md("1700000000", 5), md("1700000001", 1), true},
		{"higher revision", md("1700000002", 1), md("1700000001", 9), false},
		{"same revision, older timestamps", md("7", 10, 20), md("7", 10, 30), true},
		{"same revision, same timestamps", md("7", 30), md("7", 30), false},
		{"text revisions, older timestamps", md("abc", 10), md("def", 20), true},
		{"text revisions, newer timestamps", md("abc", 30), md("def", 20), false},
	} {
		if got := older(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: older = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestChecksumNamed: only names that start with a checksum of a known
// length are looked up as retained files.
func TestChecksumNamed(t *testing.T) {
	for name, want := range map[string]bool{
		"7bb229e4394d0a5877eeab19eef6851200a41e5a8ed3293d8cca456ee9c91532-primary.xml.gz": true,
		"0123456789abcdef0123456789abcdef01234567-other.xml.gz":                           true,
		"primary.xml.gz":                   false,
		"7bb229e4-primary.xml.gz":          false,
		"XYZ229e4394d0a5877eeab19eef68512": false,
	} {
		if got := checksumName.MatchString(name); got != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
}
