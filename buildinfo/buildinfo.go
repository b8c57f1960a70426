// Package buildinfo says which coalmine this is: the version, commit and date stamped into the
// binary at link time (make build, make image), or what the Go toolchain recorded when they
// were not.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Stamped at link time: go build -ldflags "-X github.com/coalmine/coalmine/buildinfo.version=v0.3.0 ...".
var (
	version string
	commit  string
	date    string
)

// Info is one binary's identity.
type Info struct {
	Version   string `json:"version" yaml:"version"`
	Commit    string `json:"commit" yaml:"commit"`
	Date      string `json:"date" yaml:"date"`
	GoVersion string `json:"goVersion" yaml:"goVersion"`
	Platform  string `json:"platform" yaml:"platform"`
}

// Get returns the binary's identity: what was stamped, else the module version and VCS
// settings the toolchain recorded, else "unknown".
func Get() Info {
	info := Info{Version: version, Commit: commit, Date: date, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && info.Commit == "":
				info.Commit = s.Value
			case s.Key == "vcs.time" && info.Date == "":
				info.Date = s.Value
			}
		}
	}
	for _, s := range []*string{&info.Version, &info.Commit, &info.Date} {
		if *s == "" {
			*s = "unknown"
		}
	}
	return info
}

// String words the identity on one line, as `coalmine version` prints it.
func (i Info) String() string {
	return fmt.Sprintf("coalmine %s (commit %s, built %s, %s, %s)", i.Version, i.Commit, i.Date, i.GoVersion, i.Platform)
}

// Collector is coalmine_build_info: 1, labelled with the identity.
func Collector() prometheus.Collector {
	i := Get()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "coalmine_build_info",
		Help: "A metric with a constant '1' value labelled by the version, commit and date coalmine was built from, and its Go version.",
		ConstLabels: prometheus.Labels{
			"version": i.Version, "revision": i.Commit, "date": i.Date, "goversion": i.GoVersion,
		},
	})
	g.Set(1)
	return g
}
