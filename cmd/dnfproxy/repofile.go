package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/dnfproxy/dnfproxy/internal/repofile"
)

const repofileUsage = `usage: dnfproxy repofile --proxy URL --repo NAME --path SUBPATH
                         [--view raw|annotate|filter] [--name ID]
                         [--gpgkey URL]... [--gpgcheck=false] [--offline]

Prints a dnf .repo stanza that points a client at one repo root through a
running dnfproxy. Save it as /etc/yum.repos.d/ID.repo on the client.

  --proxy URL      the proxy's client listener as clients reach it,
                   e.g. http://dnfproxy.example:8080
  --repo NAME      the repo's name in the proxy's configuration (its URL prefix)
  --path SUBPATH   the repo root below the prefix, e.g. 9/BaseOS/x86_64/os
  --view VIEW      raw, annotate or filter: put the view in the baseurl
                   (/NAME@VIEW/...). Default: the repo's own view (compat.mode).
  --name ID        the repo id (default: derived from repo, path and view)
  --gpgkey URL     another key that signs the packages (repeatable); the
                   distribution's key is added when the repo is recognised
                   (AlmaLinux, Rocky Linux, CentOS Stream, RHEL, EPEL)
  --gpgcheck=false do not check package signatures (unsigned packages)
  --offline        do not ask the proxy; without --view the stanza then
                   assumes the repo's own view does not rewrite metadata

Unless --offline, the proxy is asked for the root's repodata/repomd.xml, so a
wrong --repo or --path is reported here rather than on the client. In views
that rewrite metadata (annotate, filter) repomd.xml is signed by the proxy: the
stanza sets repo_gpgcheck=1 and lists the proxy's key
(repodata/repomd.xml.key) in gpgkey next to the package keys.
`

// repofileOptions are the flags of `dnfproxy repofile`.
type repofileOptions struct {
	repofile.Options
	Offline bool
}

// runRepofile is `dnfproxy repofile`; it returns the exit status.
func runRepofile(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return repofileCommand(ctx, args, os.Stdout, os.Stderr, http.DefaultClient)
}

func repofileCommand(ctx context.Context, args []string, stdout, stderr io.Writer, client *http.Client) int {
	fs := flag.NewFlagSet("repofile", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, repofileUsage) }
	opt := repofileOptions{}
	fs.StringVar(&opt.Proxy, "proxy", "", "proxy base URL")
	fs.StringVar(&opt.Repo, "repo", "", "repo name")
	fs.StringVar(&opt.Path, "path", "", "repo root below the prefix")
	fs.StringVar(&opt.View, "view", "", "raw | annotate | filter")
	fs.StringVar(&opt.Name, "name", "", "repo id")
	fs.Func("gpgkey", "package signing key URL (repeatable)", func(s string) error {
		opt.GPGKeys = append(opt.GPGKeys, s)
		return nil
	})
	fs.BoolVar(&opt.GPGCheck, "gpgcheck", true, "check package signatures")
	fs.BoolVar(&opt.Offline, "offline", false, "do not contact the proxy")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "dnfproxy repofile: unexpected argument %q\n\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if opt.Path == "" {
		fmt.Fprint(stderr, "dnfproxy repofile: --path is required (the repo root below the prefix, e.g. 9/BaseOS/x86_64/os)\n\n")
		fs.Usage()
		return 2
	}
	st, err := opt.Stanza()
	if err != nil {
		// The stanza's errors begin with the option's name.
		fmt.Fprintf(stderr, "dnfproxy repofile: --%v\n\n", err)
		fs.Usage()
		return 2
	}
	if !opt.Offline {
		if err := probe(ctx, client, st); err != nil {
			fmt.Fprintf(stderr, "dnfproxy repofile: %v\n", err)
			return 1
		}
	}
	io.WriteString(stdout, st.String())
	return 0
}

// probe fetches the root's repomd.xml through the proxy: it must be there,
// and without --view its content tells whether the repo's own view
// rewrites (a rewritten repomd.xml carries the abi-divergence record).
func probe(ctx context.Context, client *http.Client, st *repofile.Stanza) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	u := st.BaseURL + "repodata/repomd.xml"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("asking the proxy: %w (use --offline to print the stanza anyway)", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("GET %s: 404 Not Found: is %q a repo of this proxy and %q a repo root (the directory holding repodata/)?", u, st.Opt.Repo, st.Opt.Path)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, firstLine(body))
	case !bytes.Contains(body, []byte("<repomd")):
		return fmt.Errorf("GET %s: the answer is not a repomd.xml", u)
	}
	if st.Opt.View == "" {
		st.Rewriting = bytes.Contains(body, []byte(`type="abi-divergence"`))
		st.Known = true
	}
	return nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
