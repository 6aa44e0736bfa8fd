package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
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
	"github.com/dnfproxy/dnfproxy/internal/memlimit"
	"github.com/dnfproxy/dnfproxy/proxy"
)

// runServe is `dnfproxy serve`: it runs until SIGINT or SIGTERM.
func runServe(args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logw := newLogWriter(os.Stderr) // one write(2) for many access-log lines under load
	defer logw.Close()
	return serve(ctx, args, logw, nil)
}

// serve runs the proxy until ctx ends. Logs go to logw. Once both
// listeners accept connections and the proxy has loaded its generations
// (proxy.New has returned), it tells the service manager READY=1 and calls
// ready, when not nil, with the bound client and admin addresses.
func serve(ctx context.Context, args []string, logw io.Writer, ready func(client, admin net.Addr)) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(logw)
	cfgPath := fs.String("config", "", "configuration file (default: built-in defaults)")
	logJSON := fs.Bool("log-json", false, "log as JSON lines instead of text")
	logLevel := fs.String("log-level", "", "debug | info | warn | error (default: log.level of the configuration)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var flagLevel *slog.Level
	if *logLevel != "" {
		l, err := config.ParseLogLevel(*logLevel)
		if err != nil {
			return fmt.Errorf("--log-level: %w", err)
		}
		flagLevel = &l
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	level := cfg.Log.Level.Slog()
	if flagLevel != nil {
		level = *flagLevel // the flag wins over log.level
	}
	hopt := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(logw, hopt)
	if *logJSON {
		h = slog.NewJSONHandler(logw, hopt)
	}
	log := slog.New(h)

	// The heap's slack over the live data is kept near a floor unless the
	// operator set GOMEMLIMIT (see internal/memlimit).
	if g := memlimit.Start(memlimit.DefaultFloor); g != nil {
		defer g.Stop()
		log.Debug("soft memory limit", "floor_bytes", memlimit.DefaultFloor)
	}

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
	var listeners []net.Listener
	defer func() {
		for _, ln := range listeners {
			ln.Close() // after Serve returned this is a no-op
		}
	}()
	for _, hs := range servers {
		ln, err := net.Listen("tcp", hs.Addr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", hs.Addr, err)
		}
		log.Info("listening", "addr", ln.Addr().String())
		listeners = append(listeners, ln)
	}
	srv.SetClientURL(listeners[0].Addr().String()) // warm jobs of the admin API fetch through it

	g, gctx := errgroup.WithContext(ctx)
	for i, hs := range servers {
		g.Go(func() error {
			if err := hs.Serve(listeners[i]); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	// The listeners are bound, so connections queue in the kernel until
	// Serve accepts them: ready now means a client can connect now.
	if err := sdNotify("READY=1\nSTATUS=serving on " + listeners[0].Addr().String()); err != nil {
		log.Warn("telling the service manager we are ready failed", "err", err)
	}
	if ready != nil {
		ready(listeners[0].Addr(), listeners[1].Addr())
	}
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down")
		sdNotify("STOPPING=1")
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, hs := range servers {
			hs.Shutdown(sctx)
		}
		return nil
	})
	return g.Wait()
}
