package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

// TestMeasureSmall runs the benchmark on a small repo: both modes fetch
// every file from upstream exactly once (measure checks it).
func TestMeasureSmall(t *testing.T) {
	p := params{n: 40, minSize: 100, maxSize: 3000, latency: time.Millisecond, concurrency: 4, reps: 1}
	rep, err := measure(t.Context(), p, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if rep.files != 42 || rep.seqMedian.requests != 44 || rep.concMedian.requests != 44 {
		t.Fatalf("files %d, requests %d and %d; want 42 (44 with repomd.xml.asc and repomd.xml.key, which a refresh asks for beside repomd.xml)", rep.files, rep.seqMedian.requests, rep.concMedian.requests)
	}
	if md := rep.markdown(); !strings.Contains(md, "Speed-up") {
		t.Fatalf("report:\n%s", md)
	}
}
