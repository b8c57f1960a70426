package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/coalmine/coalmine/buildinfo"
)

func versionString() string { return buildinfo.Get().String() }

func newVersionCommand(s streams) *cobra.Command {
	var o outputFlags
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print coalmine's version, commit and build date",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return usageError(s, cmd, "%v", err)
			}
			info := buildinfo.Get()
			switch o.format {
			case "json":
				b, _ := json.MarshalIndent(info, "", "  ")
				fmt.Fprintln(s.out, string(b))
			case "yaml":
				b, _ := yaml.Marshal(info)
				fmt.Fprint(s.out, string(b))
			default:
				fmt.Fprintln(s.out, info)
			}
			return nil
		},
	}
	o.register(cmd, "text", "json", "yaml")
	_ = cmd.Flags().MarkHidden("output-file")
	return cmd
}

// usageError prints "coalmine CMD: problem" and returns the usage exit code.
func usageError(s streams, cmd *cobra.Command, format string, a ...any) error {
	fmt.Fprintf(s.err, "%s: "+format+"\n", append([]any{cmd.CommandPath()}, a...)...)
	return exitCode(exitUsage)
}
