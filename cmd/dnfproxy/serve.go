package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/dnfproxy/dnfproxy/cache"
	"github.com/dnfproxy/dnfproxy/internal/config"
	"github.com/dnfproxy/dnfproxy/proxy"
)

func runServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "configuration file (default: built-in defaults)")
	logJSON := fs.Bool("log-json", false, "log as JSON lines instead of text")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, nil)
	if *logJSON {
		h = slog.NewJSONHandler(os.Stderr, nil)
	}
	log := slog.New(h)

	bopt := cache.DefaultBadgerOptions()
	bopt.Logger = log // badger's warnings and errors
	store, err := cache.OpenBadger(filepath.Join(cfg.Storage.Dir, "cache"), bopt)
	if err != nil {
		return fmt.Errorf("storage.dir %s: %w", cfg.Storage.Dir, err)
	}
	defer store.Close()
	srv, err := proxy.New(cfg, store, log)
	if err != nil {
		return err
	}
	defer srv.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// SIGHUP re-reads the rule files; requests go on meanwhile and see the
	// new views once they are built.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			if err := srv.LoadRules(); err != nil {
				log.Error("reloading rules failed; keeping the previous rules", "err", err)
			} else {
				log.Info("rules reloaded")
			}
		}
	}()
	servers := []*http.Server{srv.HTTPServer(cfg.Listen), srv.AdminServer(cfg.Admin.Listen)}
	g, gctx := errgroup.WithContext(ctx)
	for _, hs := range servers {
		ln, err := net.Listen("tcp", hs.Addr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", hs.Addr, err)
		}
		log.Info("listening", "addr", ln.Addr().String())
		if hs == servers[0] {
			srv.SetClientURL(ln.Addr().String()) // warm jobs of the admin API fetch through it
		}
		g.Go(func() error {
			if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, hs := range servers {
			hs.Shutdown(sctx)
		}
		return nil
	})
	return g.Wait()
}
