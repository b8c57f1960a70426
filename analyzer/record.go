package analyzer

import (
	"bytes"
	"compress/zlib"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/coalmine/coalmine/policies"
)

// RecordVersion is the format of the record this coalmine writes. It also obeys version 1, the
// same format without the versions, people's requests and notices.
const RecordVersion = 2

// The bounds a record must keep: what is read from the cluster is somebody else's until shown
// otherwise.
const (
	// maxRecordBytes bounds a record read back: four times what the largest valid policy writes.
	maxRecordBytes = 256 << 10
	// maxEvidenceBytes bounds the evidence once inflated, against a compression bomb.
	maxEvidenceBytes = 4 << 20
)

// ErrUntrusted marks a record coalmine did not write or cannot believe: an unknown version, a
// checksum that does not match, values that do not fit together. coalmine stops acting on its
// canary and says why.
var ErrUntrusted = errors.New("record not trusted")

func untrusted(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrUntrusted, fmt.Sprintf(format, a...))
}

// storedProgress is the record as written: the evidence compressed into one string.
type storedProgress struct {
	Progress
	EvidenceBlob string `json:"evidence,omitempty"`
}

// EncodeProgress writes the record: JSON a person can read with kubectl, the evidence as
// compressed binary-safe text, and a checksum over all of it. It fails only on values that
// cannot be encoded (non-finite numbers where the judge never makes them).
func EncodeProgress(p *Progress) (string, error) {
	s := storedProgress{Progress: *p}
	s.Version, s.Sum = RecordVersion, ""
	if p.Evidence != nil {
		blob, err := encodeEvidence(p.Evidence)
		if err != nil {
			return "", fmt.Errorf("progress record: %w", err)
		}
		s.EvidenceBlob = blob
	}
	b, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("progress record: %w", err)
	}
	s.Sum = checksum(b)
	b, err = json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("progress record: %w", err)
	}
	p.Version, p.Sum = RecordVersion, s.Sum
	return string(b), nil
}

func checksum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:12])
}

// DecodeProgress reads a record and validates it against the policy: nil, nil when raw is
// empty. An error wrapping ErrUntrusted means the record is not to be obeyed; a record for
// another canary version or policy decodes (it belongs to an earlier canary) but is checked only
// for its version and checksum.
func DecodeProgress(raw string, p *policies.Policy) (*Progress, error) {
	if raw == "" {
		return nil, nil
	}
	if len(raw) > maxRecordBytes {
		return nil, untrusted("%d bytes, more than %d", len(raw), maxRecordBytes)
	}
	var s storedProgress
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, untrusted("not a coalmine record: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, untrusted("not a coalmine record: more after the record")
	}
	if s.Version != RecordVersion && s.Version != 1 {
		return nil, untrusted("version %d; this coalmine reads version %d", s.Version, RecordVersion)
	}
	sum := s.Sum
	s.Sum = ""
	b, err := json.Marshal(s)
	if err != nil {
		return nil, untrusted("%v", err)
	}
	if checksum(b) != sum {
		return nil, untrusted("checksum does not match: edited by hand or written by something else")
	}
	prog := s.Progress
	prog.Sum = sum
	if p == nil || prog.Policy != p.Metadata.Name || prog.Canary != p.Spec.Target.Canary.Version {
		return &prog, nil
	}
	if s.EvidenceBlob != "" {
		if prog.Evidence, err = decodeEvidence(s.EvidenceBlob); err != nil {
			return nil, untrusted("evidence: %v", err)
		}
	}
	if err := prog.validate(p); err != nil {
		return nil, untrusted("%v", err)
	}
	return &prog, nil
}

// maxNoticeID bounds a notice's ID: a policy name, a version, a time and a number.
const maxNoticeID = 512

// maxDriverName bounds the name of a record's driver.
const maxDriverName = 256

// validate checks that the record's values fit together and fit the policy.
func (p *Progress) validate(pol *policies.Policy) error {
	steps := len(pol.Spec.Strategy.Steps)
	switch {
	case !p.Phase.known():
		return fmt.Errorf("unknown phase %q", p.Phase)
	case p.Steps != steps:
		return fmt.Errorf("%d steps recorded, the policy has %d", p.Steps, steps)
	case p.Step < 0 || p.Step >= steps:
		return fmt.Errorf("step %d out of range", p.Step)
	case p.Started.IsZero() || p.StepStarted.Before(p.Started):
		return errors.New("start times out of order")
	case len(p.Verdicts) > steps:
		return fmt.Errorf("%d step verdicts for %d steps", len(p.Verdicts), steps)
	case len(p.Driver) > maxDriverName:
		return fmt.Errorf("a driver name of %d bytes", len(p.Driver))
	case p.PausedFor < 0:
		return errors.New("a negative time paused")
	case p.Approved < 0 || p.Approved > steps+1 || p.Asked < 0 || p.Asked > steps+1:
		return fmt.Errorf("approval of step %d out of range", p.Approved)
	case len(p.Handled) > maxHandled || len(p.Notices) > maxNotices || p.Seq < 0:
		return errors.New("more commands or notices than a record keeps")
	}
	for _, r := range []*Request{p.Paused, p.Promote, p.Abort} {
		if r != nil && (len(r.By) > maxCommandText || len(r.Reason) > maxCommandText) {
			return errors.New("a request's text is too long")
		}
	}
	for _, n := range p.Notices {
		if n.ID == "" || len(n.ID) > maxNoticeID || n.Seq < 1 || len(n.Canary) > 63 || len(n.Baseline) > 63 || len(n.By) > maxCommandText {
			return errors.New("a notice out of bounds")
		}
	}
	for _, v := range p.Verdicts {
		if v.Step < 0 || v.Step >= steps || !v.Verdict.known() {
			return fmt.Errorf("verdict %q at step %d", v.Verdict, v.Step)
		}
	}
	if a := p.InFlight; a != nil {
		switch {
		case a.Action == Advance && (a.Step < 0 || a.Step >= steps || (a.Step != p.Step && a.Step != p.Step+1)):
			return fmt.Errorf("advance to step %d from step %d", a.Step, p.Step)
		case a.Action == Advance && p.Phase != PhaseProgressing,
			a.Action == Promote && p.Phase != PhasePromoting,
			a.Action == Rollback && p.Phase != PhaseRollingBack:
			return fmt.Errorf("%s in flight in phase %s", a.Action, p.Phase)
		case a.Action != Advance && a.Action != Promote && a.Action != Rollback:
			return fmt.Errorf("unknown action in flight %q", a.Action)
		}
	}
	if (p.Phase == PhasePromoting || p.Phase == PhaseRollingBack) && p.InFlight == nil {
		return fmt.Errorf("phase %s with nothing in flight", p.Phase)
	}
	if (p.Phase == PhasePromoting || p.Phase == PhasePromoted) && p.Promote == nil {
		// A promotion is the outcome of analysis, unless a person asked for it: the last step
		// must have passed, and the evidence the record carries must say so too.
		if p.Step != steps-1 || p.lastVerdict() != Pass {
			return fmt.Errorf("phase %s without a passing verdict at the last step", p.Phase)
		}
		if pol.Spec.Analysis.Judge.Streams() {
			if p.Evidence == nil {
				return fmt.Errorf("phase %s without evidence", p.Phase)
			}
			if v, _ := Overall(JudgeStream(pol, p.Evidence, StreamJudgeFor(pol))); v != Pass {
				return fmt.Errorf("phase %s but the recorded evidence says %s", p.Phase, v)
			}
		}
	}
	if p.Evidence != nil {
		return p.Evidence.validate(pol)
	}
	return nil
}

func (v Verdict) known() bool { return v == Pass || v == Fail || v == Inconclusive }

// validate checks evidence read back from a record against the policy's metrics.
func (e *Evidence) validate(pol *policies.Policy) error {
	if e.Intervals < 0 || e.End.Before(e.Start) || e.KeepHistory < 0 || e.KeepHistory > maxKeepHistory {
		return errors.New("evidence: intervals out of order")
	}
	for name, me := range e.Metrics {
		var m *policies.Metric
		for i := range pol.Spec.Metrics {
			if pol.Spec.Metrics[i].Name == name {
				m = &pol.Spec.Metrics[i]
			}
		}
		if m == nil || m.Kind != me.Kind || !streams(pol, *m) {
			return fmt.Errorf("evidence of metric %q, which the policy does not stream", name)
		}
		if err := me.validate(pol.Spec.Analysis.Judge); err != nil {
			return fmt.Errorf("evidence of metric %q: %w", name, err)
		}
	}
	return nil
}

func (me *MetricEvidence) validate(judge policies.Judge) error {
	if !counts(me.Baseline.Requests, me.Baseline.Errors, me.Canary.Requests, me.Canary.Errors) || !prob(me.PFail, me.PPromote) || me.CanaryDropped < 0 {
		return errors.New("totals or p-values out of range")
	}
	for _, b := range append(append([]bucketCount(nil), toBuckets(me.Baseline)...), toBuckets(me.Canary)...) {
		if math.IsNaN(b.le) || !counts(b.n) {
			return errors.New("bucket out of range")
		}
	}
	if len(me.EdgeTests) != len(me.Edges) {
		return fmt.Errorf("%d edge tests for %d edges", len(me.EdgeTests), len(me.Edges))
	}
	for _, le := range me.Edges {
		if math.IsNaN(le) || math.IsInf(le, 0) {
			return errors.New("edge out of range")
		}
	}
	if me.PromoteEdge != nil && (*me.PromoteEdge < 0 || *me.PromoteEdge >= len(me.Edges)) {
		return fmt.Errorf("promote edge %d of %d", *me.PromoteEdge, len(me.Edges))
	}
	if len(me.MarginEdges) != len(me.MarginTests) || (len(me.MarginEdges) > 0 && len(me.MarginEdges) != len(me.Edges)) {
		return fmt.Errorf("%d margin edges and %d margin tests for %d edges", len(me.MarginEdges), len(me.MarginTests), len(me.Edges))
	}
	for i, j := range me.MarginEdges {
		if j < -1 || j >= len(me.Edges) || (j >= 0 && j < i) || (j < 0) != (me.MarginTests[i] == nil) {
			return fmt.Errorf("margin edge %d for edge %d", j, i)
		}
	}
	sequential := judge == policies.JudgeSequential
	switch {
	case sequential && me.Kind == policies.KindErrors && me.Test == nil && me.Baseline.Requests+me.Canary.Requests > 0:
		return errors.New("errors metric without its test")
	case me.Edges != nil && len(me.Edges) == 0:
		return errors.New("latency metric with no edges")
	case !sequential && (me.Test != nil || len(me.Edges) > 0):
		return fmt.Errorf("count tests in the evidence of the %s judge", judge)
	}
	if me.MarginTest != nil {
		if me.Kind != policies.KindErrors || !sequential {
			return errors.New("margin test on a metric that has none")
		}
		if err := me.MarginTest.validate(); err != nil {
			return err
		}
	}
	tests := slices.Clone(me.EdgeTests)
	if me.Test != nil {
		tests = append([]*countTest{me.Test}, tests...)
	}
	for _, t := range me.MarginTests {
		if t != nil {
			tests = append(tests, t)
		}
	}
	for _, t := range tests {
		if err := t.validate(); err != nil {
			return err
		}
	}
	for _, pt := range me.History {
		if !counts(pt.BaselineN, pt.CanaryN) {
			return errors.New("history out of range")
		}
	}
	return nil
}

type bucketCount struct{ le, n float64 }

func toBuckets(t Totals) []bucketCount {
	out := make([]bucketCount, len(t.Buckets))
	for i, b := range t.Buckets {
		out[i] = bucketCount{b.UpperBound, b.Count}
	}
	return out
}

func (t *countTest) validate() error {
	if t == nil {
		return errors.New("missing test")
	}
	switch {
	case len(t.L) != gridLen || len(t.T) != 1+len(failSteps):
		return errors.New("test of the wrong size")
	case !finite(t.L...) || !finite(t.T...) || !finite(t.Tol, t.BaselineS, t.CanaryS, t.Power) || t.Tol <= 0:
		return errors.New("test with non-finite values")
	case !counts(t.BaselineN, t.CanaryN, t.BaselineY, t.CanaryY) || t.BaselineK < 0 || t.CanaryK < 0:
		return errors.New("test totals out of range")
	case !prob(t.PFail, t.PPromote):
		return errors.New("test p-values out of range")
	case !counts(t.RecentN[:]...) || !counts(t.RecentY[:]...):
		return errors.New("test recent counts out of range")
	}
	return nil
}

func finite(xs ...float64) bool {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

func counts(xs ...float64) bool {
	for _, x := range xs {
		if !finite(x) || x < 0 {
			return false
		}
	}
	return true
}

func prob(xs ...float64) bool {
	for _, x := range xs {
		if !(x >= 0 && x <= 1) {
			return false
		}
	}
	return true
}

// The evidence is stored as JSON, deflated and base64-encoded, with each count test packed in
// binary (testcodec.go): what the decisions read, exactly or rounded in the cautious direction,
// and the totals; the rest of the likelihood grid, which only the interval and estimate a report
// shows read, is rebuilt from the totals on reading.

func encodeEvidence(e *Evidence) (string, error) {
	raw, err := json.Marshal(e.forRecord())
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	w, _ := zlib.NewWriterLevel(&buf, zlib.BestCompression)
	if _, err := w.Write(raw); err != nil {
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

func decodeEvidence(s string) (*Evidence, error) {
	z, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	r, err := zlib.NewReader(bytes.NewReader(z))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	raw, err := io.ReadAll(io.LimitReader(r, maxEvidenceBytes+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxEvidenceBytes {
		return nil, fmt.Errorf("more than %d bytes inflated", maxEvidenceBytes)
	}
	e := NewEvidence()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(e); err != nil {
		return nil, err
	}
	for _, me := range e.Metrics {
		if me == nil {
			return nil, errors.New("empty metric")
		}
	}
	return e, nil
}

// maxKeepHistory bounds the history a record keeps per metric (a Mann-Whitney window).
const maxKeepHistory = historyCap

// checkpointEvery is the longest the engine goes without writing the record while evidence
// accumulates on quiet ticks: what a restart can lose of the evidence, never of its error
// budget (a resumed test continues from an earlier point, which keeps its alpha).
const checkpointEvery = 5 * time.Minute
