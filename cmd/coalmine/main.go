// Command coalmine judges a canary release against its baseline from Prometheus metrics and
// moves the release forward or takes it back.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/coalmine/coalmine/analyzer"
)

func main() {
	os.Exit(runStreams(os.Args[1:], streams{in: os.Stdin, out: os.Stdout, err: os.Stderr}, filepath.Base(os.Args[0])))
}

// streams are a command's standard input, output and error.
type streams struct {
	in       io.Reader
	out, err io.Writer
}

const rootLong = `coalmine: automated canary analysis for Kubernetes.

Judges a canary (v2 beside v1) from Prometheus metrics, or from the pods themselves, and moves
the release forward or takes it back: as a one-shot CI gate, as an in-cluster daemon, or as a
dry-run report that changes nothing.`

const exitCodes = `Exit codes:
  0 pass / promoted   1 fail / rolled back   2 usage error or invalid policy
  3 inconclusive      4 Prometheus or Kubernetes unreachable
  5 gate stopped: someone else changed the release
  6 another driver (the daemon, another gate) holds the canary: nothing was done
  130 interrupted (gate: running it again resumes)`

// exitCode is a command's result carried out of cobra as an error.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit code %d", int(c)) }

// exit turns a command's exit code into what RunE returns.
func exit(code int) error {
	if code == exitPass {
		return nil
	}
	return exitCode(code)
}

// run is the whole program as the tests call it; it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	return runStreams(args, streams{out: stdout, err: stderr}, "coalmine")
}

// runStreams runs the program; invokedAs is the binary's name: as kubectl-coalmine, kubectl runs
// it as the plugin "kubectl coalmine".
func runStreams(args []string, s streams, invokedAs string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCommand(s, invokedAs)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	var code exitCode
	switch {
	case err == nil:
		return exitPass
	case errors.As(err, &code):
		return int(code)
	}
	// cobra's own errors: an unknown command or flag, a missing argument.
	name := root.Name()
	if c, _, ferr := root.Find(args); ferr == nil && c != nil {
		name = c.CommandPath()
	}
	fmt.Fprintf(s.err, "%s: %v\nRun '%s --help' for usage.\n", name, err, name)
	return exitUsage
}

func newRootCommand(s streams, invokedAs string) *cobra.Command {
	root := &cobra.Command{
		Use:           "coalmine",
		Short:         "Automated canary analysis for Kubernetes",
		Long:          rootLong + "\n\n" + exitCodes,
		SilenceErrors: true,
		SilenceUsage:  true,
		Version:       versionString(),
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// No command: the usage, and a usage error.
			cmd.SetOut(s.err)
			_ = cmd.Usage()
			return exitCode(exitUsage)
		},
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: false},
	}
	if strings.HasPrefix(invokedAs, "kubectl-") {
		// Run by kubectl as a plugin: help and completion name it as it was typed.
		root.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl coalmine"}
	}
	root.SetIn(s.in)
	root.SetOut(s.out)
	root.SetErr(s.err)
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return err })
	root.AddCommand(
		newValidateCommand(s),
		newReportCommand(s),
		newGateCommand(s),
		newRunCommand(s),
		newBacktestCommand(s),
		newVersionCommand(s),
		newStatusCommand(s),
	)
	for _, v := range analyzer.Verbs {
		root.AddCommand(newControlCommand(s, v))
	}
	return root
}
