// Command evict measures an eviction round and the value-log GC after it
// on a badger store over its bound: it fills a store with -total bytes of
// objects, runs one round with storage.max_size = -max, and prints the time
// of the round and of the GC, and the disk space (as du counts it) before
// and after.
//
//	go run ./bench/evict -total 512 -max 128 -object 4
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/proxy"
)

func main() {
	total := flag.Int64("total", 512, "MiB of objects to store")
	maxSize := flag.Int64("max", 128, "storage.max_size in MiB")
	object := flag.Int64("object", 4, "object size in MiB")
	vlog := flag.Int64("vlog", 0, "value-log file size in MiB (0: the default)")
	dir := flag.String("dir", "", "directory for the store (default: a temporary one)")
	flag.Parse()
	if err := run(*dir, *total<<20, *maxSize<<20, *object<<20, *vlog<<20); err != nil {
		fmt.Fprintln(os.Stderr, "evict:", err)
		os.Exit(1)
	}
}

func run(dir string, total, maxSize, object, vlog int64) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "dnfproxy-evict-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	opt := cache.DefaultBadgerOptions()
	if vlog > 0 {
		opt.ValueLogFileSize = vlog
	}
	opt.AccessedGranularity = time.Millisecond
	store, err := cache.OpenBadger(filepath.Join(dir, "cache"), opt)
	if err != nil {
		return err
	}
	defer store.Close()

	ctx := context.Background()
	buf := make([]byte, object)
	start := time.Now()
	n := int(total / object)
	for i := range n {
		rand.Read(buf) // incompressible, like packages
		w, err := store.Create(ctx, fmt.Sprintf("obj/bench/Packages/p%05d.rpm", i), cache.Meta{})
		if err != nil {
			return err
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
		if err := w.Commit(ctx); err != nil {
			return err
		}
	}
	fill := time.Since(start)
	// Read every other object so that the LRU order is not the write
	// order: eviction then leaves holes in every value-log file.
	time.Sleep(10 * time.Millisecond)
	for i := 0; i < n; i += 2 {
		o, err := store.Get(ctx, fmt.Sprintf("obj/bench/Packages/p%05d.rpm", i))
		if err != nil {
			return err
		}
		o.Close()
	}

	cfg := config.Default()
	cfg.Storage.Dir = dir
	cfg.Storage.MaxSize = config.ByteSize(maxSize)
	cfg.Repos = nil
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := proxy.New(cfg, store, log)
	if err != nil {
		return err
	}
	defer srv.Close()
	res, err := srv.Evict(ctx)
	if err != nil {
		return err
	}
	objs, bytes := store.Size()
	fmt.Printf("store: %d objects of %d MiB = %d MiB written in %v; max_size %d MiB; value-log files of %d MiB\n",
		n, object>>20, int64(n)*object>>20, fill.Round(time.Millisecond), maxSize>>20, opt.ValueLogFileSize>>20)
	fmt.Printf("eviction round: %d objects, %d MiB in %v; store now %d objects, %d MiB\n",
		res.Objects, res.Bytes>>20, res.Duration.Round(time.Microsecond), objs, bytes>>20)
	fmt.Printf("GC: %v; disk (du) %d MiB -> %d MiB, %d MiB reclaimed\n",
		res.GC.Round(time.Millisecond), res.DiskBefore>>20, res.DiskAfter>>20, (res.DiskBefore-res.DiskAfter)>>20)
	return nil
}
