package analyzer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Verb is what a person asks of a running canary.
type Verb string

// The verbs.
const (
	// VerbPromote promotes once the current analysis passes, skipping the steps, their durations
	// and any approval still ahead; with SkipAnalysis, at once.
	VerbPromote Verb = "promote"
	// VerbAbort rolls the canary back at once.
	VerbAbort Verb = "abort"
	// VerbPause stops the canary from moving forward; a failing verdict still rolls it back.
	VerbPause Verb = "pause"
	// VerbResume undoes a pause.
	VerbResume Verb = "resume"
	// VerbRetry starts an ended canary again, from its first step, with a new record.
	VerbRetry Verb = "retry"
	// VerbApprove lets a canary waiting for approval go on.
	VerbApprove Verb = "approve"
)

// Verbs are the verbs, in the order help lists them.
var Verbs = []Verb{VerbPromote, VerbAbort, VerbPause, VerbResume, VerbRetry, VerbApprove}

// Command is one request from a person, kept on the cluster beside the canary's record (a list
// of the newest few) until the canary's driver has taken it: the gate and the daemon alike take
// it at their next tick. Anyone who may change the Deployment may write one, so it is validated
// like any input and names its author as the author gave it.
type Command struct {
	// ID tells commands apart; a command is taken once.
	ID   string `json:"id"`
	Verb Verb   `json:"command"`
	// Canary and Attempt name the canary it is for: its version and the start of its record.
	// A command for another canary, or an earlier attempt at this one, is not taken.
	Canary  string    `json:"canary"`
	Attempt time.Time `json:"attempt"`
	// Step is, for approve, the step (1-based; the number of steps plus one is the promotion)
	// approved up to; 0 approves the one waiting.
	Step int `json:"step,omitempty"`
	// SkipAnalysis, for promote, promotes without waiting for a passing verdict.
	SkipAnalysis bool `json:"skipAnalysis,omitempty"`
	// By is who asked, Reason why: shown in Events, status and notifications.
	By     string    `json:"by"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// The bounds of the commands read back.
const (
	maxCommands     = 8
	maxCommandBytes = 16 << 10
	maxCommandText  = 256
)

var commandIDRE = regexp.MustCompile(`^[A-Za-z0-9][-A-Za-z0-9_.]{0,63}$`)

// DecodeCommands reads the commands kept for a canary: none when raw is empty. A list that is
// not one coalmine would write is an error, and none of it is taken.
func DecodeCommands(raw string) ([]Command, error) {
	if raw == "" {
		return nil, nil
	}
	if len(raw) > maxCommandBytes {
		return nil, fmt.Errorf("commands: %d bytes, more than %d", len(raw), maxCommandBytes)
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	var cmds []Command
	if err := dec.Decode(&cmds); err != nil {
		return nil, fmt.Errorf("commands: %w", err)
	}
	if len(cmds) > maxCommands {
		return nil, fmt.Errorf("commands: %d, more than %d", len(cmds), maxCommands)
	}
	for i, c := range cmds {
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("commands[%d]: %w", i, err)
		}
	}
	return cmds, nil
}

// Validate checks a command's fields.
func (c Command) Validate() error {
	known := false
	for _, v := range Verbs {
		known = known || c.Verb == v
	}
	switch {
	case !known:
		return fmt.Errorf("unknown command %q", c.Verb)
	case !commandIDRE.MatchString(c.ID):
		return fmt.Errorf("id %q is not a command id", c.ID)
	case c.Canary == "" || len(c.Canary) > 63 || c.Attempt.IsZero():
		return errors.New("a command names its canary's version and attempt")
	case len(c.By) > maxCommandText || len(c.Reason) > maxCommandText:
		return fmt.Errorf("by and reason are at most %d bytes", maxCommandText)
	case c.Step < 0 || c.Step > 1000:
		return fmt.Errorf("step %d out of range", c.Step)
	case c.SkipAnalysis && c.Verb != VerbPromote:
		return errors.New("skipAnalysis is for promote only")
	}
	return nil
}

// AppendCommand adds c to the commands kept in raw, keeping the newest few. Commands that do not
// decode are dropped: a newer command replaces a list nobody can take.
func AppendCommand(raw string, c Command) (string, error) {
	if err := c.Validate(); err != nil {
		return "", err
	}
	cmds, err := DecodeCommands(raw)
	if err != nil {
		cmds = nil
	}
	cmds = append(cmds, c)
	if len(cmds) > maxCommands {
		cmds = cmds[len(cmds)-maxCommands:]
	}
	b, err := json.Marshal(cmds)
	if err != nil {
		return "", fmt.Errorf("commands: %w", err)
	}
	return string(b), nil
}

// Request is a person's standing request on a canary, kept in its record once taken.
type Request struct {
	By     string `json:"by"`
	Reason string `json:"reason,omitempty"`
	// SkipAnalysis is set on a promotion asked for without analysis.
	SkipAnalysis bool `json:"skipAnalysis,omitempty"`
	// At is when it was taken.
	At time.Time `json:"at"`
}

func (r *Request) who() string {
	s := r.By
	if s == "" {
		s = "someone"
	}
	if r.Reason != "" {
		s += " (" + r.Reason + ")"
	}
	return s
}

// maxHandled is how many taken commands a record remembers: more than are ever kept beside it.
const maxHandled = 2 * maxCommands

// handled reports whether the command with id has been taken.
func (p *Progress) handled(id string) bool {
	for _, h := range p.Handled {
		if h == id {
			return true
		}
	}
	return false
}

func (p *Progress) markHandled(id string) {
	p.Handled = append(p.Handled, id)
	if len(p.Handled) > maxHandled {
		p.Handled = p.Handled[len(p.Handled)-maxHandled:]
	}
}

// Taken is a command taken into a record, with what became of it.
type Taken struct {
	Command Command
	// Ignored says why the command changed nothing; "" when it was taken.
	Ignored string
}

// Take takes the commands for this canary that it has not taken yet into the record, in order:
// pause, resume, approve, promote and abort become standing requests that Decide reads. It
// reports each command taken or ignored; the record changed when any was.
func (p *Progress) Take(cmds []Command, approvals []int, now time.Time) []Taken {
	var out []Taken
	for _, c := range cmds {
		if c.Canary != p.Canary || !c.Attempt.Equal(p.Started) || p.handled(c.ID) {
			continue
		}
		p.markHandled(c.ID)
		t := Taken{Command: c}
		req := &Request{By: clipText(c.By), Reason: clipText(c.Reason), SkipAnalysis: c.SkipAnalysis, At: now}
		switch {
		case p.Phase.Final() && c.Verb != VerbRetry:
			t.Ignored = "the canary has already ended (" + string(p.Phase) + ")"
		case p.InFlight != nil && p.InFlight.Action != Advance && c.Verb != VerbRetry:
			t.Ignored = "the canary is already " + string(p.Phase)
		case c.Verb == VerbPause:
			if p.Paused != nil {
				t.Ignored = "the canary is already paused"
				break
			}
			p.Paused = req
		case c.Verb == VerbResume:
			if p.Paused == nil {
				t.Ignored = "the canary is not paused"
				break
			}
			// The time paused is given back to the canary's deadline.
			if d := now.Sub(p.Paused.At); d > 0 {
				p.PausedFor += d
			}
			p.Paused = nil
		case c.Verb == VerbApprove:
			step := c.Step
			if step == 0 {
				step = p.waitingFor(approvals)
			}
			if step <= p.Approved {
				t.Ignored = "nothing is waiting for approval"
				break
			}
			p.Approved = step
		case c.Verb == VerbPromote:
			p.Promote = req
		case c.Verb == VerbAbort:
			p.Abort = req
		case c.Verb == VerbRetry:
			// Taken when a new record starts: see Canary.load.
			t.Ignored = "the canary has not ended; retry starts an ended canary again"
		}
		out = append(out, t)
	}
	return out
}

// waitingFor is the approval the canary waits for or will wait for next: the first gate (a
// 1-based step, the number of steps plus one for the promotion) after its current step that
// is not yet approved; 0 when none is left.
func (p *Progress) waitingFor(approvals []int) int {
	best := 0
	for _, g := range approvals {
		if g > p.Step+1 && g > p.Approved && (best == 0 || g < best) {
			best = g
		}
	}
	return best
}

func clipText(s string) string {
	if len(s) > maxCommandText {
		return s[:maxCommandText]
	}
	return s
}

// RetryAsked reports whether raw holds a retry, not yet taken, of the ended canary rec.
func RetryAsked(rec *Progress, raw string) bool { return retryOf(rec, raw) != nil }

// retryOf is the retry, not yet taken, of the ended canary rec among the commands in raw; nil
// when there is none.
func retryOf(rec *Progress, raw string) *Command {
	cmds, err := DecodeCommands(raw)
	if err != nil || rec == nil || !rec.Phase.Final() {
		return nil
	}
	for _, c := range cmds {
		if c.Verb == VerbRetry && c.Canary == rec.Canary && c.Attempt.Equal(rec.Started) && !rec.handled(c.ID) {
			return &c
		}
	}
	return nil
}
