package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/go-logr/zerologr"
	"github.com/mattn/go-isatty"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/klog/v2"
)

// logFlags are the logging flags every command has.
type logFlags struct {
	format string
	level  string
}

func (l *logFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&l.format, "log-format", "auto", "log format: auto (console on a terminal, else json), console or json")
	fs.StringVar(&l.level, "log-level", "info", "log level: debug, info, warn or error")
}

// logger builds the command's logger: readable on a terminal, JSON otherwise. client-go's own
// lines (leader election, reflectors, warnings) are routed into it, so that --log-format json is
// JSON throughout.
func (l *logFlags) logger(stderr io.Writer) (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(l.level)
	if err != nil || l.level == "" {
		return zerolog.Nop(), fmt.Errorf("--log-level: unknown level %q", l.level)
	}
	var w io.Writer
	switch l.format {
	case "json":
		w = stderr
	case "console":
		w = zerolog.ConsoleWriter{Out: stderr, TimeFormat: "15:04:05"}
	case "auto":
		w = stderr
		if f, ok := stderr.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			w = zerolog.ConsoleWriter{Out: stderr, TimeFormat: "15:04:05"}
		}
	default:
		return zerolog.Nop(), fmt.Errorf("--log-format: want auto, console or json, got %q", l.format)
	}
	logger := zerolog.New(w).Level(level).With().Timestamp().Logger()
	// klog's verbosity 0 is info; client-go logs its chatter at 2 and above, kept for debug.
	kl := logger.With().Str("component", "client-go").Logger()
	klog.SetLogger(zerologr.New(&kl))
	return logger, nil
}

// outputFlags are a command's -o/--output (the format, as kubectl reads -o) and --output-file.
type outputFlags struct {
	format, file string
	formats      []string
}

func (o *outputFlags) register(cmd *cobra.Command, formats ...string) {
	fs := cmd.Flags()
	o.formats = formats
	fs.StringVarP(&o.format, "output", "o", formats[0], "output format: "+strings.Join(formats, ", "))
	fs.StringVar(&o.format, "format", formats[0], "same as --output")
	_ = fs.MarkHidden("format")
	fs.StringVar(&o.file, "output-file", "", "write the output to this file (whole or not at all) instead of stdout")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(formats, cobra.ShellCompDirectiveNoFileComp))
}

// check refuses an unknown format; "md" is markdown.
func (o *outputFlags) check() error {
	if o.format == "md" {
		o.format = "markdown"
	}
	if !slices.Contains(o.formats, o.format) {
		return fmt.Errorf("--output: want %s, got %q", strings.Join(o.formats, ", "), o.format)
	}
	return nil
}

// durationValue is a Prometheus duration (5m, 1h30m, 2d) as a flag.
type durationValue struct{ d *model.Duration }

func (v durationValue) String() string {
	if v.d == nil || *v.d == 0 {
		return ""
	}
	return v.d.String()
}
func (v durationValue) Set(s string) error { return v.d.Set(s) }
func (durationValue) Type() string         { return "duration" }
