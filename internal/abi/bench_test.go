package abi

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cavaliergopher/rpm"

	"github.com/dnfproxy/dnfproxy/internal/testenv"
	"github.com/dnfproxy/dnfproxy/metadata"
)

// benchRPMs are corpus packages of each payload compressor: glibc (zstd,
// 29 MB of payload, 270 shared objects), nss (xz, 2.6 MB, libraries),
// qemu-img (xz, 4.2 MB, executables only) and GtkAda-devel (xz, 14.5 MB,
// no ELF: rpm's file classes let ScanRPM skip the payload).
var benchRPMs = []struct{ name, file string }{
	{"zstd-glibc", "glibc-2.32-3.fc33.aarch64.rpm"},
	{"xz-nss", "nss-3.24.0-1.0.fc23.x86_64.rpm"},
	{"xz-qemu-img", "qemu-img-rhev-2.3.0-20.el7.ppc64.rpm"},
	{"xz-GtkAda-devel-noELF", "GtkAda-devel-2.24.2-30.fc30.x86_64.rpm"},
}

// BenchmarkScanRPM measures ScanRPM in MB of uncompressed payload per
// second on one goroutine (one core); BenchmarkDecompressOnly is its
// baseline: the same payload only decompressed.
func BenchmarkScanRPM(b *testing.B) {
	dir := libabigailDir(b)
	for _, c := range benchRPMs {
		data, err := os.ReadFile(filepath.Join(dir, c.file))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				p, err := ScanRPM(context.Background(), bytes.NewReader(data), Limits{})
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(p.PayloadBytes)
			}
		})
	}
}

func BenchmarkDecompressOnly(b *testing.B) {
	dir := libabigailDir(b)
	for _, c := range benchRPMs {
		data, err := os.ReadFile(filepath.Join(dir, c.file))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				br := bufio.NewReaderSize(bytes.NewReader(data), 64<<10)
				pkg, err := rpm.Read(fullReader{br})
				if err != nil {
					b.Fatal(err)
				}
				dec, err := decompressor(pkg.PayloadCompression(), br)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, dec)
				dec.Close()
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(n)
			}
		})
	}
}

// BenchmarkLibabigailCold is the wall time of a cold analysis (no stored
// results) of every binary pair of the libabigail corpus at the default
// concurrency of 2; BenchmarkLibabigailAbipkgdiff is its baseline: the same
// pairs through abipkgdiff --dso-only, two at a time.
func BenchmarkLibabigailCold(b *testing.B) {
	dir := libabigailDir(b)
	pairs := corpusPairs(b, dir)
	var ps []Pair
	for _, p := range pairs {
		ps = append(ps, Pair{sideRef("old", p.old), sideRef("new", p.new)})
	}
	var payload int64
	for b.Loop() {
		a := NewAnalyzer(Options{Concurrency: 2})
		if err := a.CompareAll(context.Background(), ps, openFile, func(p Pair, _ []metadata.Finding, err error) {
			if err != nil {
				b.Error(err)
			}
		}); err != nil {
			b.Fatal(err)
		}
		payload = a.Stats().PayloadBytes
	}
	b.ReportMetric(float64(len(ps)), "pairs")
	b.ReportMetric(float64(payload)/1e6, "payload-MB")
}

func BenchmarkLibabigailAbipkgdiff(b *testing.B) {
	dir := libabigailDir(b)
	bin := testenv.RequireTool(b, "abipkgdiff")
	pairs := corpusPairs(b, dir)
	for b.Loop() {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 2)
		for _, p := range pairs {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if st, _ := runAbipkgdiff(bin, p.old, p.new); st < 0 || st&(abiError|abiUsageError) != 0 {
					b.Errorf("%s: abipkgdiff exit %d", p.id, st)
				}
			}()
		}
		wg.Wait()
	}
	b.ReportMetric(float64(len(pairs)), "pairs")
}
