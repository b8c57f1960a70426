package main

import (
	"fmt"
	"io"

	"github.com/coalmine/coalmine/policies"
)

const validateSynopsis = `Usage: coalmine validate -f FILE [FILE...]

Checks policy files: YAML syntax, unknown fields, values, and that every PromQL template renders
and parses. Exits 0 when every policy is valid; otherwise prints one line per problem on stderr,
as FILE:LINE: FIELD PROBLEM, and exits 2.`

func runValidate(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("validate", validateSynopsis, stderr)
	var files stringList
	fs.Var(&files, "f", "policy file (repeatable; further files may follow as arguments)")
	fs.Var(&files, "file", "same as -f")
	quiet := fs.Bool("q", false, "print nothing when every policy is valid")
	if code, stop := parse(fs, args); stop {
		return code
	}
	files = append(files, fs.Args()...)
	if len(files) == 0 {
		fmt.Fprintln(stderr, "coalmine validate: no policy file given (-f FILE)")
		return exitUsage
	}
	ps, err := policies.LoadFiles(files...)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	if !*quiet {
		for _, p := range ps {
			fmt.Fprintf(stdout, "%s: %s is valid\n", p.Source.File, p.Metadata.Name)
		}
	}
	return exitPass
}
