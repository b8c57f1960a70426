// Command coalmine judges a canary release against its baseline from Prometheus metrics and
// moves the release forward or takes it back.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/coalmine/coalmine/buildinfo"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `coalmine: automated canary analysis for Kubernetes

Usage:
  coalmine <command> [flags]

Commands:
  validate   check policy files
  report     judge a canary once and say what would be done (dry run: changes nothing)
  gate       drive one release on the cluster to a verdict: promote or roll back
  run        the in-cluster daemon: drive every canary the policies in a directory describe
  backtest   replay a policy over a past range: when would canaries have failed or passed?
  version    print coalmine's version, commit and build date

Run 'coalmine <command> --help' for a command's flags.

Exit codes:
  0 pass / promoted   1 fail / rolled back   2 usage error or invalid policy
  3 inconclusive      4 Prometheus or Kubernetes unreachable
  5 gate stopped: someone else changed the release
`

// run is the whole program; it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "validate":
		return runValidate(args[1:], stdout, stderr)
	case "report":
		return runReport(ctx, args[1:], stdout, stderr)
	case "gate":
		return runGate(ctx, args[1:], stdout, stderr)
	case "run":
		return runDaemon(ctx, args[1:], stderr)
	case "backtest":
		return runBacktest(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, buildinfo.Get())
		return exitPass
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitPass
	}
	fmt.Fprintf(stderr, "coalmine: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}
