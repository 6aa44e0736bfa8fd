package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/dnfproxy/dnfproxy/internal/warm"
)

const warmUsage = `usage: dnfproxy warm --proxy URL --repo NAME [--path SUBPATH]
                     [--packages none|latest|all] [--from-file LIST] [--concurrency N]

Fetches a repo's metadata and packages through a running dnfproxy so that
they are cached before clients ask for them.

  --proxy URL        the proxy's client listener, e.g. http://127.0.0.1:8080
  --repo NAME        the repo's name in the proxy's configuration (its URL prefix)
  --path SUBPATH     the repo root below the prefix, e.g. 9/BaseOS/x86_64/os
  --packages WHICH   none: metadata only; latest: newest build per name.arch
                     (the default without --from-file); all: every package
  --from-file LIST   package names, one a line ("-": stdin), blank lines and
                     #comments ignored; warms them and their dependencies in
                     the repo. Alone it warms only those; with --packages the
                     two selections add up. For a host's set:
                       rpm -qa --qf '%%{name}\n' > LIST
  --concurrency N    parallel downloads (default %d)

A progress bar is drawn on a terminal; the summary line goes to stdout:
  warm: repo=R path=P files=N bytes=B failed=F duration=D
Exit status: 0 when every file asked for arrived, 1 when any failed (each is
listed on stderr), 2 for bad flags.
`

// runWarm is `dnfproxy warm`; it returns the exit status.
func runWarm(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return warmCommand(ctx, args, os.Stdin, os.Stdout, os.Stderr, term.IsTerminal(int(os.Stderr.Fd())))
}

// warmCommand runs the command with the given streams; tty says whether to
// draw a progress bar on stderr.
func warmCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, tty bool) int {
	fs := flag.NewFlagSet("warm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintf(stderr, warmUsage, warm.DefaultConcurrency) }
	var opt warm.Options
	fs.StringVar(&opt.Proxy, "proxy", "", "proxy base URL")
	fs.StringVar(&opt.Repo, "repo", "", "repo name")
	fs.StringVar(&opt.Path, "path", "", "repo root below the prefix")
	fs.StringVar(&opt.Packages, "packages", "", "none | latest | all")
	fromFile := fs.String("from-file", "", "package names, one a line")
	fs.IntVar(&opt.Concurrency, "concurrency", warm.DefaultConcurrency, "parallel downloads")
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "dnfproxy warm: "+format+"\n\n", a...)
		fs.Usage()
		return 2
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2 // flag has printed the error and the usage
	}
	switch {
	case fs.NArg() > 0:
		return usageErr("unexpected argument %q", fs.Arg(0))
	case opt.Proxy == "":
		return usageErr("--proxy is required")
	case opt.Repo == "":
		return usageErr("--repo is required")
	case opt.Concurrency < 1:
		return usageErr("--concurrency must be at least 1")
	}
	if *fromFile != "" {
		names, err := readNames(*fromFile, stdin)
		if err != nil {
			fmt.Fprintf(stderr, "dnfproxy warm: --from-file: %v\n", err)
			return 2
		}
		if len(names) == 0 {
			fmt.Fprintf(stderr, "dnfproxy warm: --from-file %s names no package\n", *fromFile)
			if opt.Packages == "" {
				opt.Packages = warm.PackagesNone
			}
		}
		opt.Names = names
	}
	norm, err := opt.Normalize()
	if err != nil {
		return usageErr("%s", strings.TrimPrefix(err.Error(), "warm: "))
	}

	var bar *progressbar.ProgressBar
	progress := func(warm.Progress) {}
	if tty {
		progress = func(p warm.Progress) {
			if bar == nil {
				bar = progressbar.NewOptions(p.Total,
					progressbar.OptionSetWriter(stderr),
					progressbar.OptionSetDescription("warm "+norm.Repo+"/"+norm.Path),
					progressbar.OptionShowCount(),
					progressbar.OptionSetPredictTime(true),
					progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionClearOnFinish(),
					progressbar.OptionFullWidth())
			}
			if bar.GetMax() != p.Total {
				bar.ChangeMax(p.Total)
			}
			bar.Set(p.Done)
		}
	}

	start := time.Now()
	res, err := warm.Run(ctx, opt, progress)
	if bar != nil {
		bar.Finish()
		bar.Exit()
	}
	fmt.Fprintf(stdout, "warm: repo=%s path=%s files=%d bytes=%d failed=%d duration=%s\n",
		norm.Repo, norm.Path, res.Files, res.Bytes, len(res.Failed), time.Since(start).Round(time.Millisecond))
	if len(opt.Names) > 0 {
		if n := len(res.NotFound); n > 0 {
			fmt.Fprintf(stderr, "warm: %d of the names are not in this repo: %s\n", n, abbreviate(res.NotFound, 10))
		}
		if res.Unresolved > 0 {
			fmt.Fprintf(stderr, "warm: %d requirements are not provided by this repo (other repos may provide them)\n", res.Unresolved)
		}
	}
	for _, f := range res.Failed {
		fmt.Fprintf(stderr, "warm: failed: %s: %s\n", f.Path, f.Err)
	}
	if err != nil {
		fmt.Fprintf(stderr, "dnfproxy warm: %v\n", err)
		return 1
	}
	return 0
}

// readNames reads package names, one a line, from a file or, for "-", from
// stdin. Blank lines and lines starting with '#' are skipped; duplicates
// are dropped.
func readNames(name string, stdin io.Reader) ([]string, error) {
	r := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	var names []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		if strings.ContainsAny(s, " \t") {
			return nil, fmt.Errorf("%s:%d: %q is not one package name", name, line, s)
		}
		if !seen[s] {
			seen[s] = true
			names = append(names, s)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return names, nil
}

func abbreviate(s []string, n int) string {
	if len(s) <= n {
		return strings.Join(s, " ")
	}
	return strings.Join(s[:n], " ") + fmt.Sprintf(" … (%d more)", len(s)-n)
}
