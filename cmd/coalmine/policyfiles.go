package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/coalmine/coalmine/policies"
)

// maxStdinPolicy bounds a policy read from stdin: a policy is a page of YAML.
const maxStdinPolicy = 4 << 20

// policyFlags are -f/--filename, as kubectl reads them: a file, a directory of *.yaml and *.yml
// files, or - for stdin; repeatable, and further files may follow as arguments.
type policyFlags struct {
	files []string
}

func (p *policyFlags) register(fs *pflag.FlagSet) {
	fs.StringArrayVarP(&p.files, "filename", "f", nil, "policy file, directory of policy files (*.yaml, *.yml), or - for stdin (repeatable)")
	fs.StringArrayVar(&p.files, "file", nil, "same as --filename")
	_ = fs.MarkHidden("file")
	_ = fs.SetAnnotation("filename", "cobra_annotation_bash_completion_filename_extensions", []string{"yaml", "yml"})
}

// load reads and validates every policy the names hold, gathering every problem.
func (p *policyFlags) load(stdin io.Reader, args []string) ([]*policies.Policy, error) {
	names := append(append([]string(nil), p.files...), args...)
	if len(names) == 0 {
		return nil, errors.New("no policy file given (-f FILE)")
	}
	var (
		all  []*policies.Policy
		errs policies.Errors
	)
	gather := func(ps []*policies.Policy, err error) error {
		all = append(all, ps...)
		var fe policies.Errors
		if errors.As(err, &fe) {
			errs = append(errs, fe...)
			return nil
		}
		return err
	}
	for _, name := range names {
		var err error
		switch fi, statErr := os.Stat(name); {
		case name == "-":
			err = gather(loadStdin(stdin))
		case statErr == nil && fi.IsDir():
			files, lerr := policies.Files(name)
			if lerr == nil && len(files) == 0 {
				lerr = fmt.Errorf("%s: no policy files (*.yaml, *.yml) in the directory", name)
			}
			if lerr != nil {
				return nil, lerr
			}
			err = gather(policies.LoadFiles(files...))
		default:
			err = gather(policies.LoadFile(name))
		}
		if err != nil {
			return nil, err
		}
	}
	if len(errs) > 0 {
		return all, errs
	}
	return all, nil
}

// loadOne loads exactly one policy: what report, gate and backtest act on.
func (p *policyFlags) loadOne(stdin io.Reader, args []string) (*policies.Policy, error) {
	ps, err := p.load(stdin, args)
	if err != nil {
		return nil, err
	}
	if len(ps) != 1 {
		return nil, fmt.Errorf("%d policies given; this command takes one (-f FILE holding one policy)", len(ps))
	}
	return ps[0], nil
}

func loadStdin(stdin io.Reader) ([]*policies.Policy, error) {
	if stdin == nil {
		return nil, errors.New("-: no standard input")
	}
	data, err := io.ReadAll(io.LimitReader(stdin, maxStdinPolicy+1))
	if err != nil {
		return nil, fmt.Errorf("read standard input: %w", err)
	}
	if len(data) > maxStdinPolicy {
		return nil, fmt.Errorf("standard input: more than %d bytes; a policy is a page of YAML", maxStdinPolicy)
	}
	return policies.Load("<stdin>", data)
}
