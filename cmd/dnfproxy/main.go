// Command dnfproxy is a caching proxy for DNF (rpm-md) repositories. This
// file only dispatches subcommands; each lives in its own file.
package main

import (
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: dnfproxy <command> [flags]

commands:
  serve [--config FILE] [--log-level debug|info|warn|error] [--log-json]
                          run the proxy (built-in defaults without --config)
  warm --proxy URL --repo NAME [--path P] [--packages none|latest|all] [--from-file LIST] [--concurrency N]
                          fetch a repo through a running proxy (dnfproxy warm -h)
  repofile --proxy URL --repo NAME --path P [--view raw|annotate|filter] [--name ID]
                          print a dnf .repo stanza for clients (dnfproxy repofile -h)
  version                 print the version
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "serve":
		err = runServe(args)
	case "warm":
		os.Exit(runWarm(args))
	case "repofile":
		os.Exit(runRepofile(args))
	case "version", "--version":
		fmt.Println("dnfproxy", version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "dnfproxy: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "dnfproxy %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
