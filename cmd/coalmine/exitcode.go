package main

import (
	"errors"

	"github.com/coalmine/coalmine/analyzer"
	"github.com/coalmine/coalmine/metrics"
)

// Exit codes shared by report and gate.
const (
	exitPass         = 0
	exitFail         = 1
	exitUsage        = 2
	exitInconclusive = 3
	exitUnavailable  = 4
	// exitStopped: gate stopped acting because someone else changed the release.
	exitStopped = 5
	// exitBusy: another driver (the daemon, another gate) holds the canary; nothing was done.
	exitBusy = 6
	// exitInterrupted: gate was interrupted (SIGINT, SIGTERM); running it again resumes.
	exitInterrupted = 130
)

func exitForVerdict(v analyzer.Verdict) int {
	switch v {
	case analyzer.Pass:
		return exitPass
	case analyzer.Fail:
		return exitFail
	}
	return exitInconclusive
}

// exitForError maps an evaluation error: an unreachable Prometheus is 4, a policy whose queries
// are wrong is 2.
func exitForError(err error) int {
	if errors.Is(err, metrics.ErrUnavailable) {
		return exitUnavailable
	}
	return exitUsage
}
