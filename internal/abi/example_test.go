package abi_test

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/dnfproxy/dnfproxy/internal/abi"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// The views' side of the wiring: pairs from the two package lists, analysed
// in the background, findings merged with the metadata comparison's.
func Example() {
	var refPkgs, pkgs []metadata.PackageDeps // from metadata.ScanPrimaryDeps of each repo
	open := func(ctx context.Context, ref abi.PackageRef) (io.ReadCloser, error) {
		return os.Open(ref.Href) // the proxy opens it through the cache instead
	}
	a := abi.NewAnalyzer(abi.Options{Concurrency: 2 /* Results: a badger-backed KV */})
	pairs := abi.Pairs(refPkgs, pkgs, nil)
	err := a.CompareAll(context.Background(), pairs, open, func(p abi.Pair, fs []metadata.Finding, err error) {
		// record fs for p.New (by checksum) and rebuild the view when all are in
	})
	fmt.Println(len(pairs), err, a.Stats().Analysed)
	// Output: 0 <nil> 0
}
