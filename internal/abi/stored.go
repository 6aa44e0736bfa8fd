package abi

import (
	"fmt"

	"github.com/dnfproxy/dnfproxy/metadata"
)

// Stored returns the stored result of a pair without analysing it and
// without waiting for running analyses: ok=false when this analyser
// version has not compared the pair yet. The views use it to build an
// analysis at once from what is known and leave the rest to a background
// ComparePair.
func (a *Analyzer) Stored(old, nw PackageRef) (findings []metadata.Finding, ok bool, err error) {
	if old.Checksum.Value == "" || nw.Checksum.Value == "" {
		return nil, false, fmt.Errorf("%w: %s or %s", ErrNoChecksum, old.NEVRA(), nw.NEVRA())
	}
	if old.Checksum == nw.Checksum {
		return nil, true, nil
	}
	return a.load(a.resultKey(old, nw))
}

// ResultKey is the KV key under which ComparePair keeps a pair's result
// (for callers that pin what they use).
func (a *Analyzer) ResultKey(old, nw PackageRef) string { return string(a.resultKey(old, nw)) }

// StoredDeep is Stored for DeepComparePair's results of a pair compared
// without debuginfo packages (the key DeepComparePair writes then).
func (a *Analyzer) StoredDeep(old, nw PackageRef) (findings []metadata.Finding, ok bool, err error) {
	if old.Checksum.Value == "" || nw.Checksum.Value == "" {
		return nil, false, fmt.Errorf("%w: %s or %s", ErrNoChecksum, old.NEVRA(), nw.NEVRA())
	}
	return a.load([]byte(a.DeepResultKey(old, nw)))
}

// DeepResultKey is the KV key of DeepComparePair's result for a pair
// compared without debuginfo packages.
func (a *Analyzer) DeepResultKey(old, nw PackageRef) string {
	return "abipkgdiff/" + a.opts.Version + "/" + old.Checksum.String() + "/" + nw.Checksum.String()
}
