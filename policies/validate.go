package policies

import (
	"fmt"
	"math"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"k8s.io/apimachinery/pkg/util/validation"
)

// labelValueRule words what a Kubernetes label value may be.
const labelValueRule = "at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"

// minInterval is the shortest analysis interval and window: Prometheus and the pods are not
// read more often than this.
const minInterval = model.Duration(time.Second)

var (
	labelNameRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	dns1123RE    = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	metricNameRE = regexp.MustCompile(`^[a-zA-Z0-9]([-_.a-zA-Z0-9]*[a-zA-Z0-9])?$`)
)

// validator gathers problems, each placed at the line its field was written on.
type validator struct {
	src  Origin
	errs Errors
}

func (v *validator) errorf(field, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{File: v.src.File, Line: v.src.Line(field), Field: field, Msg: fmt.Sprintf(format, args...)})
}

// Validate checks a policy whose defaults are filled and returns every problem found.
func (p *Policy) Validate() Errors {
	v := &validator{src: p.Origin}
	if p.APIVersion != APIVersion {
		v.errorf("apiVersion", "must be %q, got %q", APIVersion, p.APIVersion)
	}
	if p.Kind != Kind {
		v.errorf("kind", "must be %q, got %q", Kind, p.Kind)
	}
	if p.Metadata.Name == "" {
		v.errorf("metadata.name", "is required")
	} else if !dns1123RE.MatchString(p.Metadata.Name) || len(p.Metadata.Name) > 253 {
		v.errorf("metadata.name", "must be a DNS-1123 name (lowercase letters, digits and '-'), got %q", p.Metadata.Name)
	}
	if ns := p.Metadata.Namespace; ns != "" && len(validation.IsDNS1123Label(ns)) > 0 {
		v.errorf("metadata.namespace", "must be a namespace name (at most 63 lowercase letters, digits and '-'), got %q", ns)
	}
	p.validateTarget(v)
	p.validateAnalysis(v)
	p.validatePrometheus(v)
	p.validateSource(v)
	p.validateMetrics(v)
	p.validateStrategy(v)
	p.validateNotifications(v)
	if p.Spec.Health.ReadyTimeout <= 0 {
		v.errorf("spec.health.readyTimeout", "must be > 0")
	}
	if p.Spec.Health.MaxRestarts < 0 {
		v.errorf("spec.health.maxRestarts", "must be >= 0, got %d", p.Spec.Health.MaxRestarts)
	}
	return v.errs
}

func (p *Policy) validateTarget(v *validator) {
	t := p.Spec.Target
	switch {
	case t.Namespace == "":
		v.errorf("spec.target.namespace", "is required")
	case len(validation.IsDNS1123Label(t.Namespace)) > 0:
		v.errorf("spec.target.namespace", "must be a namespace name (at most 63 lowercase letters, digits and '-'), got %q", t.Namespace)
	case p.Metadata.Namespace != "" && t.Namespace != p.Metadata.Namespace:
		// Kubernetes RBAC decides who may write a CanaryPolicy where: a policy that could name
		// another namespace would steer a release its author may not touch.
		v.errorf("spec.target.namespace", "must be the policy's own namespace %q (metadata.namespace) or unset: a policy acts only in its own namespace, got %q", p.Metadata.Namespace, t.Namespace)
	}
	if t.App == "" {
		v.errorf("spec.target.app", "is required")
	} else if len(validation.IsValidLabelValue(t.App)) > 0 {
		v.errorf("spec.target.app", "must be a label value (%s), got %q", labelValueRule, t.App)
	}
	for _, arm := range []struct {
		name string
		arm  Arm
	}{{"baseline", t.Baseline}, {"canary", t.Canary}} {
		f := "spec.target." + arm.name
		if arm.arm.Deployment == "" && arm.arm.Version == "" {
			v.errorf(f, "needs a deployment or a version")
		}
		if d := arm.arm.Deployment; d != "" && len(validation.IsDNS1123Subdomain(d)) > 0 {
			v.errorf(f+".deployment", "must be a DNS-1123 name, got %q", d)
		}
		if ver := arm.arm.Version; ver != "" {
			if len(validation.IsValidLabelValue(ver)) > 0 {
				v.errorf(f+".version", "must be a label value (%s), got %q", labelValueRule, ver)
			}
		}
	}
	if t.Baseline.Version != "" && t.Baseline.Version == t.Canary.Version {
		v.errorf("spec.target.canary.version", "must differ from spec.target.baseline.version (both %q)", t.Canary.Version)
	}
	for _, l := range []struct{ field, name string }{
		{"spec.target.labels.namespace", t.Labels.Namespace},
		{"spec.target.labels.app", t.Labels.App},
		{"spec.target.labels.version", t.Labels.Version},
	} {
		if !labelNameRE.MatchString(l.name) {
			v.errorf(l.field, "must be a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*), got %q", l.name)
		}
	}
	// One label for two roles would make a version selector select the app, or a blue/green
	// switch re-point the app's label.
	if l := t.Labels; l.Version == l.App || l.Version == l.Namespace || l.App == l.Namespace {
		v.errorf("spec.target.labels", "namespace, app and version must be three different labels, got %q, %q and %q", l.Namespace, l.App, l.Version)
	}
}

func (p *Policy) validateAnalysis(v *validator) {
	a := p.Spec.Analysis
	if a.Interval < minInterval {
		v.errorf("spec.analysis.interval", "must be at least %s, got %s", minInterval, a.Interval)
	}
	if a.Window < minInterval {
		v.errorf("spec.analysis.window", "must be at least %s, got %s", minInterval, a.Window)
	}
	if a.MaxDuration <= 0 {
		v.errorf("spec.analysis.maxDuration", "must be > 0")
	} else if a.Interval > 0 && a.MaxDuration < a.Interval {
		v.errorf("spec.analysis.maxDuration", "must be at least spec.analysis.interval (%s)", a.Interval)
	}
	if a.MinRequests < 0 {
		v.errorf("spec.analysis.minRequests", "must be >= 0, got %d", a.MinRequests)
	}
	if !slices.Contains(Judges(), a.Judge) {
		v.errorf("spec.analysis.judge", "must be one of %v, got %q", Judges(), a.Judge)
	} else if a.Judge.Streams() && p.Spec.Strategy.Type == StrategyBlueGreen {
		v.errorf("spec.analysis.judge", "%s compares versions serving at the same time; a bluegreen switch serves one at a time: use threshold", a.Judge)
	}
	if !(a.Alpha > 0 && a.Alpha <= 0.5) {
		v.errorf("spec.analysis.alpha", "must be in (0, 0.5], got %g", a.Alpha)
	}
	if a.Tolerance == 1 && a.Judge != JudgeSequential {
		v.errorf("spec.analysis.tolerance", "can be 1 (margins alone) only under the sequential judge")
	} else if !(a.Tolerance >= 1 && a.Tolerance <= 10) {
		v.errorf("spec.analysis.tolerance", "must be in [1, 10] (1: only the metrics' margins), got %g", a.Tolerance)
	}
	if !(a.Tempering > 0 && a.Tempering <= 1) {
		v.errorf("spec.analysis.tempering", "must be in (0, 1], got %g", a.Tempering)
	}
	// A negative duration is refused as it is read.
	if w, s := a.Warmup, p.Spec.Strategy.StepDuration; w != nil && s > 0 && *w >= s {
		v.errorf("spec.analysis.warmup", "must be shorter than spec.strategy.stepDuration (%s): a step would have nothing left to judge", s)
	}
	switch a.OnInconclusive {
	case InconclusiveHold, InconclusiveRollback:
	default:
		v.errorf("spec.analysis.onInconclusive", "must be one of [hold rollback], got %q", a.OnInconclusive)
	}
}

func (p *Policy) validatePrometheus(v *validator) {
	pr := p.Spec.Prometheus
	if pr.URL != "" {
		if err := CheckPrometheusURL(pr.URL); err != nil {
			v.errorf("spec.prometheus.url", "%v", err)
		}
	}
	if pr.Timeout <= 0 {
		v.errorf("spec.prometheus.timeout", "must be > 0")
	}
	if err := pr.HTTP.Validate(); err != nil {
		v.errorf("spec.prometheus.http", "%v", err)
	}
	if s := pr.SigV4; s != nil {
		if err := s.Validate(); err != nil {
			v.errorf("spec.prometheus.sigv4", "%v", err)
		}
		// Both set the Authorization header; Prometheus's remote_write refuses them together too.
		if h := pr.HTTP; h.BasicAuth != nil || h.Authorization != nil || h.OAuth2 != nil {
			v.errorf("spec.prometheus.sigv4", "cannot be used with basic_auth, authorization or oauth2 in spec.prometheus.http: each sets the Authorization header")
		}
	}
	// Prometheus reads *_ref settings from a secret manager it is given; coalmine has none.
	pr.walk(func(path, field string, val reflect.Value) {
		if strings.HasSuffix(field, "_ref") && val.Kind() == reflect.String && val.String() != "" {
			v.errorf(path, "needs a secret manager, which coalmine does not have: use %s_file", strings.TrimSuffix(field, "_ref"))
		}
	})
}

func (p *Policy) validateSource(v *validator) {
	switch p.Spec.Source {
	case SourcePrometheus:
		return
	case SourcePods:
	default:
		v.errorf("spec.source", "must be one of [prometheus pods], got %q", p.Spec.Source)
		return
	}
	if p.Spec.Pods.Timeout <= 0 {
		v.errorf("spec.pods.timeout", "must be > 0")
	}
	if p.Spec.Pods.Concurrency < 1 {
		v.errorf("spec.pods.concurrency", "must be >= 1, got %d", p.Spec.Pods.Concurrency)
	}
	if !p.Spec.Analysis.Judge.Streams() {
		v.errorf("spec.analysis.judge", "the pods source reads counters interval by interval, which the %s judge does not: use sequential or mannwhitney", p.Spec.Analysis.Judge)
	}
	for i, m := range p.Spec.Metrics {
		if m.Kind == KindValue {
			v.errorf(fmt.Sprintf("spec.metrics[%d].kind", i), "value metrics are PromQL, which the pods source cannot run: use source prometheus")
		}
	}
}

// RedactedURL is a URL as it may be shown: a password in it replaced by "xxxxx".
func RedactedURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}

// CheckPrometheusURL reports whether s can be the base URL of a Prometheus server.
func CheckPrometheusURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("must be a URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("must be an http or https URL with a host, got %q", s)
	}
	return nil
}

func (p *Policy) validateMetrics(v *validator) {
	ms := p.Spec.Metrics
	if len(ms) == 0 {
		v.errorf("spec.metrics", "needs at least one metric")
		return
	}
	seen := map[string]int{}
	critical := 0
	vars := p.placeholderVars()
	l := p.Spec.Target.Labels
	// Invalid label names are reported once, under spec.target.labels, not again per template.
	checkTemplates := labelNameRE.MatchString(l.Namespace) && labelNameRE.MatchString(l.App) && labelNameRE.MatchString(l.Version)
	for i, m := range ms {
		f := fmt.Sprintf("spec.metrics[%d]", i)
		if m.IsCritical() {
			critical++
		}
		switch {
		case m.Name == "":
			v.errorf(f+".name", "is required")
		case !metricNameRE.MatchString(m.Name):
			v.errorf(f+".name", "must be letters, digits, '-', '_' or '.', got %q", m.Name)
		default:
			if j, dup := seen[m.Name]; dup {
				v.errorf(f+".name", "%q is already the name of spec.metrics[%d]", m.Name, j)
			}
			seen[m.Name] = i
		}
		want := map[MetricKind][]string{
			KindErrors:  {"requests", "errors"},
			KindLatency: {"buckets"},
			KindValue:   {"query"},
		}[m.Kind]
		if want == nil {
			v.errorf(f+".kind", "must be one of [errors latency value], got %q", m.Kind)
			continue
		}
		have := map[string]bool{}
		for _, nt := range m.Templates() {
			have[nt.Field] = true
			if !slices.Contains(want, nt.Field) {
				v.errorf(f+"."+nt.Field, "is not used by %s metrics (they take %s)", m.Kind, strings.Join(want, " and "))
				continue
			}
			if !checkTemplates {
				continue
			}
			q, err := Render(nt.Template, vars)
			if err == nil && p.Spec.Source != SourcePods {
				err = CheckPromQL(q)
			}
			if err == nil && m.Kind != KindValue && p.Spec.Source == SourcePods {
				_, err = PodSelector(q)
			} else if err == nil && m.Kind != KindValue && p.Spec.Analysis.Judge.Streams() {
				_, err = CounterSelector(q)
			}
			if err != nil {
				v.errorf(f+"."+nt.Field, "%v", err)
			}
		}
		for _, w := range want {
			if !have[w] {
				v.errorf(f+"."+w, "is required for %s metrics", m.Kind)
			}
		}
		if m.Kind == KindLatency && !(m.Quantile > 0 && m.Quantile < 1) {
			v.errorf(f+".quantile", "must be between 0 and 1 (exclusive), got %g", m.Quantile)
		}
		if mg := m.Margin; mg != nil {
			switch {
			case m.Kind == KindValue || p.Spec.Analysis.Judge != JudgeSequential:
				v.errorf(f+".margin", "is only used by errors and latency metrics under the sequential judge (a rate, or seconds at the judged quantile)")
			case m.Kind == KindErrors && !(*mg > 0 && *mg < 1):
				v.errorf(f+".margin", "must be an error rate between 0 and 1 (0.002 for 0.2 points), got %g", *mg)
			case !(*mg > 0) || math.IsInf(*mg, 0):
				v.errorf(f+".margin", "must be a finite number of seconds > 0, got %g", *mg)
			}
		} else if p.Spec.Analysis.Tolerance == 1 && p.Spec.Analysis.Judge == JudgeSequential && m.Kind != KindValue && m.IsCritical() {
			v.errorf(f+".margin", "is required with tolerance 1: without it the metric could never pass")
		}
		if m.Kind != KindLatency && m.Quantile != 0 {
			v.errorf(f+".quantile", "is only used by latency metrics")
		}
		p.validateMetricThresholds(v, f+".thresholds", m)
	}
	if critical == 0 {
		v.errorf("spec.metrics", "needs at least one critical metric (all are critical: false)")
	}
}

// validateMetricThresholds checks the thresholds a metric's judge uses and rejects those it
// would ignore: a bound that silently does nothing is a misconfiguration.
func (p *Policy) validateMetricThresholds(v *validator, f string, m Metric) {
	t := m.Thresholds
	if m.Kind == KindValue {
		validateThresholds(v, f, t) // value metrics are always judged by their thresholds
		return
	}
	switch p.Spec.Analysis.Judge {
	case JudgeSequential:
		if !t.Empty() {
			v.errorf(f, "is not used by the sequential judge, which compares the canary with the baseline by spec.analysis.alpha and tolerance: remove it, or set spec.analysis.judge: threshold")
		}
		return
	case JudgeMannWhitney:
		if t.Min != nil || t.Max != nil || t.MaxDifference != nil {
			v.errorf(f, "the mannwhitney judge uses only maxRatio (the allowed increase of the mean)")
		}
		finiteThresholds(v, f, t)
		return
	}
	validateThresholds(v, f, t)
}

func validateThresholds(v *validator, f string, t Thresholds) {
	if t.Empty() {
		v.errorf(f, "needs at least one of min, max, maxRatio, maxDifference")
		return
	}
	if t.Min != nil && t.Max != nil && *t.Min > *t.Max {
		v.errorf(f+".min", "must be <= max (%g), got %g", *t.Max, *t.Min)
	}
	finiteThresholds(v, f, t)
}

// finiteThresholds reports whether every bound set is a finite number in its range: a NaN
// compares false with everything, so a canary checked against it would pass whatever it does.
func finiteThresholds(v *validator, f string, t Thresholds) bool {
	ok := true
	for _, b := range []struct {
		field    string
		x        *float64
		positive bool // > 0, or else >= 0 (maxDifference) or any finite number (min, max)
		nonNeg   bool
	}{{"min", t.Min, false, false}, {"max", t.Max, false, false}, {"maxRatio", t.MaxRatio, true, false}, {"maxDifference", t.MaxDifference, false, true}} {
		switch x := b.x; {
		case x == nil:
		case math.IsNaN(*x) || math.IsInf(*x, 0):
			v.errorf(f+"."+b.field, "must be a finite number, got %g", *x)
			ok = false
		case b.positive && *x <= 0:
			v.errorf(f+"."+b.field, "must be > 0, got %g", *x)
			ok = false
		case b.nonNeg && *x < 0:
			v.errorf(f+"."+b.field, "must be >= 0, got %g", *x)
			ok = false
		}
	}
	return ok
}

// placeholderVars are the template variables used to check templates at load time; a target
// that names only Deployments gets stand-in version values.
func (p *Policy) placeholderVars() QueryVars {
	q := *p
	if q.Spec.Target.Baseline.Version == "" {
		q.Spec.Target.Baseline.Version = "baseline"
	}
	if q.Spec.Target.Canary.Version == "" {
		q.Spec.Target.Canary.Version = "canary"
	}
	window := time.Duration(q.Spec.Analysis.Window)
	if window <= 0 {
		window = time.Minute
	}
	return q.Vars(window)
}

func (p *Policy) validateStrategy(v *validator) {
	s := p.Spec.Strategy
	t := p.Spec.Target
	switch s.Type {
	case StrategyScale, StrategyShift:
		if t.Baseline.Deployment == "" || t.Canary.Deployment == "" {
			v.errorf("spec.strategy.type", "%s needs spec.target.baseline.deployment and spec.target.canary.deployment", s.Type)
		} else if t.Baseline.Deployment == t.Canary.Deployment {
			v.errorf("spec.target.canary.deployment", "%s needs two Deployments, both are %q", s.Type, t.Canary.Deployment)
		}
	case StrategyRollout:
		d := t.Canary.Deployment
		if d == "" {
			d = t.Baseline.Deployment
		}
		if d == "" {
			v.errorf("spec.strategy.type", "rollout needs spec.target.canary.deployment")
		} else if t.Baseline.Deployment != "" && t.Baseline.Deployment != d {
			v.errorf("spec.target.baseline.deployment", "rollout updates one Deployment in place: must be %q or unset", d)
		}
	case StrategyBlueGreen:
		if t.Baseline.Deployment == "" || t.Canary.Deployment == "" {
			v.errorf("spec.strategy.type", "bluegreen needs spec.target.baseline.deployment and spec.target.canary.deployment")
		}
		if s.Service == "" {
			v.errorf("spec.strategy.service", "is required for bluegreen")
		} else if len(validation.IsDNS1123Label(s.Service)) > 0 {
			v.errorf("spec.strategy.service", "must be a Service name (at most 63 lowercase letters, digits and '-'), got %q", s.Service)
		}
	default:
		v.errorf("spec.strategy.type", "must be one of [scale rollout shift bluegreen], got %q", s.Type)
	}
	if s.Type != StrategyBlueGreen && s.Service != "" {
		v.errorf("spec.strategy.service", "is only used by bluegreen")
	}
	stepsOK := p.validateSteps(v)
	if s.StepDuration <= 0 {
		v.errorf("spec.strategy.stepDuration", "must be > 0")
	} else if stepsOK && p.Spec.Analysis.MaxDuration > 0 {
		p.validateCanFinish(v)
	}
	n := len(s.Steps)
	for i, g := range s.ApproveBefore {
		if g < 2 || g > n+1 {
			v.errorf(fmt.Sprintf("spec.strategy.approveBefore[%d]", i), "must be a step from 2 to %d (the number of steps plus one is the promotion), got %d", n+1, g)
		}
	}
	switch s.BaselineAfterPromotion {
	case "", AfterPromotionScaleToZero:
	case AfterPromotionDelete, AfterPromotionUpdate:
		if s.Type == StrategyRollout {
			v.errorf("spec.strategy.baselineAfterPromotion", "%s is not used by rollout, which updates one Deployment in place: there is no baseline Deployment to %s", s.BaselineAfterPromotion, s.BaselineAfterPromotion)
		}
	default:
		v.errorf("spec.strategy.baselineAfterPromotion", "must be one of [update scaleToZero delete], got %q", s.BaselineAfterPromotion)
	}
}

// validateSteps checks the canary sizes and reports whether they are valid.
func (p *Policy) validateSteps(v *validator) bool {
	s := p.Spec.Strategy
	if s.Type == StrategyBlueGreen {
		// Every step after the switch would judge v2 against a v1 that serves nothing, so a
		// bluegreen policy with more steps could never be promoted.
		if len(s.Steps) == 1 && s.Steps[0] == "100%" {
			return true
		}
		got := fmt.Sprint(len(s.Steps))
		if len(s.Steps) == 1 {
			got = fmt.Sprintf("%q", s.Steps[0])
		}
		v.errorf("spec.strategy.steps", "bluegreen is one switch of the Service: give one step (\"100%%\") or none, got %s", got)
		return false
	}
	ok := true
	prev := Step{}
	for i, raw := range s.Steps {
		f := fmt.Sprintf("spec.strategy.steps[%d]", i)
		st, err := ParseStep(raw)
		if err != nil {
			v.errorf(f, "%v", err)
			ok = false
			continue
		}
		if i > 0 && st.Percent == prev.Percent && st.Value <= prev.Value {
			v.errorf(f, "must be larger than the step before it (%s)", s.Steps[i-1])
			ok = false
		}
		prev = st
	}
	return ok
}

// validateCanFinish refuses steps that together outlast the analysis: each step is analysed for
// stepDuration before the next, so the last could not end before maxDuration ends the canary.
// The error is placed on the field the file sets, since that is the one to change.
func (p *Policy) validateCanFinish(v *validator) {
	n := len(p.Spec.Strategy.Steps)
	step, limit := p.Spec.Strategy.StepDuration, p.Spec.Analysis.MaxDuration
	if n == 0 || step <= limit/model.Duration(n) {
		return // n*step <= limit, without overflowing
	}
	steps := fmt.Sprintf("%d steps", n)
	if n == 1 {
		steps = "1 step"
	}
	total := "" // a sum that overflows is left out
	if step <= model.Duration(math.MaxInt64)/model.Duration(n) {
		total = " = " + (step * model.Duration(n)).String()
	}
	src := p.Origin
	switch {
	case !src.written("spec.strategy.stepDuration") && !src.written("spec.strategy.steps") && src.written("spec.analysis.maxDuration"):
		v.errorf("spec.analysis.maxDuration", "%s is shorter than %s x spec.strategy.stepDuration %s%s: the canary could never be promoted", limit, steps, step, total)
	case !src.written("spec.strategy.stepDuration") && src.written("spec.strategy.steps"):
		v.errorf("spec.strategy.steps", "%s x spec.strategy.stepDuration %s%s is longer than spec.analysis.maxDuration %s: the canary could never be promoted", steps, step, total, limit)
	default:
		v.errorf("spec.strategy.stepDuration", "%s x %s%s is longer than spec.analysis.maxDuration %s: the canary could never be promoted", steps, step, total, limit)
	}
}

// Step is one canary size: a replica count, or a percentage of the baseline's replicas.
type Step struct {
	Value   int
	Percent bool
}

// ParseStep reads "3" or "25%".
func ParseStep(s string) (Step, error) {
	pct := strings.HasSuffix(s, "%")
	n, err := strconv.Atoi(strings.TrimSuffix(s, "%"))
	if err != nil {
		return Step{}, fmt.Errorf("must be a replica count like 3 or a percentage like 25%%, got %q", s)
	}
	if n <= 0 || (pct && n > 100) || n > math.MaxInt32 {
		return Step{}, fmt.Errorf("must be a replica count in 1..%d or a percentage in 1%%..100%%, got %q", math.MaxInt32, s)
	}
	return Step{Value: n, Percent: pct}, nil
}
