// Package policies holds coalmine's policy format: the CanaryPolicy types, their defaults, strict
// loading from YAML with file and line positions, validation, and the rendering of PromQL templates.
//
// It is plain data and imports no other coalmine package.
package policies

import (
	"time"

	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/sigv4"
)

// APIVersion and Kind identify a coalmine policy document.
const (
	APIVersion = "coalmine.dev/v1alpha1"
	Kind       = "CanaryPolicy"
)

// Policy is one CanaryPolicy document.
type Policy struct {
	APIVersion string   `yaml:"apiVersion" json:"apiVersion"`
	Kind       string   `yaml:"kind" json:"kind"`
	Metadata   Metadata `yaml:"metadata" json:"metadata"`
	Spec       Spec     `yaml:"spec" json:"spec"`

	// Origin is where the policy was read from; it is not part of the format.
	Origin Origin `yaml:"-" json:"-"`
}

// Origin locates a policy: its file and, per field path, the line it was written on.
type Origin struct {
	File  string
	lines map[string]int
}

// Line returns the line of the field at path (for example "spec.metrics[1].thresholds.max"),
// or of its nearest ancestor written in the file; 0 when nothing is known.
func (s Origin) Line(path string) int {
	for p := path; ; {
		if l, ok := s.lines[p]; ok {
			return l
		}
		parent, ok := parentPath(p)
		if !ok {
			return s.lines[""]
		}
		p = parent
	}
}

// written reports whether the field at path is written in the file, rather than defaulted.
func (s Origin) written(path string) bool {
	_, ok := s.lines[path]
	return ok
}

// Metadata names a policy.
type Metadata struct {
	Name   string            `yaml:"name" json:"name"`
	Labels map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
}

// Spec is what a policy asks for.
type Spec struct {
	Target Target `yaml:"target" json:"target"`
	// Source is where metrics come from: prometheus (the default) or pods, scraped directly.
	Source Source `yaml:"source" json:"source"`
	// Pods says how the pods source scrapes.
	Pods       PodsSource `yaml:"pods" json:"pods"`
	Analysis   Analysis   `yaml:"analysis" json:"analysis"`
	Prometheus Prometheus `yaml:"prometheus" json:"prometheus"`
	Metrics    []Metric   `yaml:"metrics" json:"metrics"`
	Strategy   Strategy   `yaml:"strategy" json:"strategy"`
	Health     Health     `yaml:"health" json:"health"`
}

// Health bounds the canary's pods: a canary that breaks them fails whatever its metrics say.
type Health struct {
	// ReadyTimeout is how long the canary's pods of a step may take to become Ready.
	ReadyTimeout model.Duration `yaml:"readyTimeout" json:"readyTimeout"`
	// MaxRestarts is how many container restarts the canary's pods may add up to.
	MaxRestarts int `yaml:"maxRestarts" json:"maxRestarts"`
}

// Target is the release under analysis: where it runs and how its two versions are told apart.
type Target struct {
	Namespace string     `yaml:"namespace" json:"namespace"`
	App       string     `yaml:"app" json:"app"`
	Baseline  Arm        `yaml:"baseline" json:"baseline"`
	Canary    Arm        `yaml:"canary" json:"canary"`
	Labels    LabelNames `yaml:"labels" json:"labels"`
}

// Arm is one side of the comparison: a Deployment and/or the value of the version label its
// pods and series carry.
type Arm struct {
	Deployment string `yaml:"deployment,omitempty" json:"deployment,omitempty"`
	Version    string `yaml:"version,omitempty" json:"version,omitempty"`
}

// LabelNames are the names of the labels that the series carry.
type LabelNames struct {
	Namespace string `yaml:"namespace" json:"namespace"`
	App       string `yaml:"app" json:"app"`
	Version   string `yaml:"version" json:"version"`
}

// Source names where metrics are read from.
type Source string

// The sources.
const (
	// SourcePrometheus queries a Prometheus server.
	SourcePrometheus Source = "prometheus"
	// SourcePods scrapes the baseline's and canary's Ready pods directly, found through the
	// API server by their app and version labels, at their prometheus.io/port annotation.
	SourcePods Source = "pods"
)

// PodsSource is how the pods source scrapes.
type PodsSource struct {
	// Timeout bounds one pod's scrape.
	Timeout model.Duration `yaml:"timeout" json:"timeout"`
	// Concurrency bounds the scrapes in flight at once.
	Concurrency int `yaml:"concurrency" json:"concurrency"`
}

// Judge names an algorithm that turns observations into verdicts.
type Judge string

// The judges.
const (
	// JudgeSequential is the anytime-valid test on counts interval by interval: it fails a
	// canary as soon as the evidence that it is worse crosses alpha, and passes it once the
	// evidence that it is no worse than the tolerance does. The default.
	JudgeSequential Judge = "sequential"
	// JudgeThreshold bounds each window's values, like Flagger's checks but with a baseline.
	JudgeThreshold Judge = "threshold"
	// JudgeMannWhitney compares the per-interval values of the window with a Mann-Whitney test,
	// like Kayenta.
	JudgeMannWhitney Judge = "mannwhitney"
)

// Judges lists the judges a policy may name.
func Judges() []Judge { return []Judge{JudgeSequential, JudgeThreshold, JudgeMannWhitney} }

// Streams reports whether the judge reads counters interval by interval (and so needs both
// versions serving at the same time) rather than one window.
func (j Judge) Streams() bool { return j == JudgeSequential || j == JudgeMannWhitney }

// InconclusiveAction is what happens to a canary still inconclusive at its maximum duration.
type InconclusiveAction string

// The actions on an inconclusive canary.
const (
	InconclusiveHold     InconclusiveAction = "hold"
	InconclusiveRollback InconclusiveAction = "rollback"
)

// Analysis says how often and over what window metrics are judged.
type Analysis struct {
	// Interval is the time between two evaluations.
	Interval model.Duration `yaml:"interval" json:"interval"`
	// Window is the range each query looks back over.
	Window model.Duration `yaml:"window" json:"window"`
	// MinRequests is the number of requests each arm needs in the window before a metric with a
	// request count is judged; fewer make it inconclusive.
	MinRequests int `yaml:"minRequests" json:"minRequests"`
	// MaxDuration bounds the whole analysis.
	MaxDuration model.Duration `yaml:"maxDuration" json:"maxDuration"`
	// Judge picks the algorithm: sequential (the default), threshold or mannwhitney. A
	// bluegreen policy defaults to threshold: its versions never serve at the same time.
	Judge Judge `yaml:"judge" json:"judge"`
	// Alpha is the sequential judge's chance of failing a healthy canary, over the whole
	// analysis however often it looks, shared by the critical metrics; and its chance of
	// passing one that is worse by Tolerance.
	Alpha float64 `yaml:"alpha" json:"alpha"`
	// Tolerance is the canary/baseline ratio (of error rates, of the shares of requests slower
	// than a bucket edge) the sequential judge tolerates: it passes a canary once it shows the
	// ratio is below it.
	Tolerance float64 `yaml:"tolerance" json:"tolerance"`
	// Tempering (0 < t <= 1) raises the sequential judge's likelihood ratios to this power, for
	// errors that come in bursts (one bad pod, retries): 1 trusts the binomial model fully.
	Tempering float64 `yaml:"tempering" json:"tempering"`
	// OnInconclusive is what to do when MaxDuration passes without a decisive verdict.
	OnInconclusive InconclusiveAction `yaml:"onInconclusive" json:"onInconclusive"`
	// Warmup is how long after each step is in place its evidence is left out: new pods
	// warming up (JIT, caches, connection pools) are slow or fail for reasons that pass.
	// Unset, it is one interval; 0 leaves nothing out. Use WarmUp for the value in force.
	Warmup *model.Duration `yaml:"warmup,omitempty" json:"warmup,omitempty"`
}

// WarmUp is the warm-up in force: Warmup, or one interval when it is unset.
func (a Analysis) WarmUp() time.Duration {
	if a.Warmup == nil {
		return time.Duration(a.Interval)
	}
	return time.Duration(*a.Warmup)
}

// Prometheus is how to reach the Prometheus server that holds the metrics.
type Prometheus struct {
	URL     string         `yaml:"url" json:"url"`
	Timeout model.Duration `yaml:"timeout" json:"timeout"`
	// HTTP holds authentication, TLS, proxy and header settings, as Prometheus's own
	// http_config.
	HTTP config.HTTPClientConfig `yaml:"http,omitempty" json:"-"`
	// SigV4 signs each request with AWS Signature Version 4, for Amazon Managed Service for
	// Prometheus, as the sigv4 block of Prometheus's remote_read and remote_write. Unset, no
	// request is signed.
	SigV4 *sigv4.SigV4Config `yaml:"sigv4,omitempty" json:"-"`
}

// MetricKind says what a metric's query returns and how it is judged.
type MetricKind string

// The metric kinds.
const (
	// KindErrors is a pair of counters: requests and errors. The judged value is errors/requests.
	KindErrors MetricKind = "errors"
	// KindLatency is a Prometheus histogram. The judged value is a quantile of it.
	KindLatency MetricKind = "latency"
	// KindValue is any PromQL that yields one number per version.
	KindValue MetricKind = "value"
)

// Metric is one thing to compare between baseline and canary.
type Metric struct {
	Name string     `yaml:"name" json:"name"`
	Kind MetricKind `yaml:"kind" json:"kind"`
	// Requests and Errors are PromQL templates for an errors metric: each yields, per version,
	// the number of requests (errors) in the window.
	Requests string `yaml:"requests,omitempty" json:"requests,omitempty"`
	Errors   string `yaml:"errors,omitempty" json:"errors,omitempty"`
	// Buckets is a PromQL template for a latency metric: per version and le, the increase of the
	// histogram's buckets over the window.
	Buckets string `yaml:"buckets,omitempty" json:"buckets,omitempty"`
	// Quantile is the quantile of a latency metric that is judged (0.99 when unset).
	Quantile float64 `yaml:"quantile,omitempty" json:"quantile,omitempty"`
	// Margin is, under the sequential judge, the worsening accepted in absolute terms, beside
	// the relative tolerance. For an errors metric it is a rate (0.002: 0.2 percentage points):
	// the canary passes once shown that its error rate is at most tolerance times the
	// baseline's plus Margin, which rare errors can show where a ratio cannot. For a latency
	// metric it is seconds: the canary passes once shown that its requests slower than the
	// baseline's judged quantile plus Margin are fewer than tolerance times the baseline's
	// slower than that quantile. Unset accepts none beyond the tolerance. A margin never
	// changes what fails a canary: that is still any evidence that it is worse.
	Margin *float64 `yaml:"margin,omitempty" json:"margin,omitempty"`
	// Query is a PromQL template for a value metric: one number per version.
	Query string `yaml:"query,omitempty" json:"query,omitempty"`
	// Thresholds bound the canary, absolutely and relative to the baseline.
	Thresholds Thresholds `yaml:"thresholds" json:"thresholds"`
	// Critical metrics decide the verdict; a non-critical one is reported but never fails or holds
	// a canary. Metrics are critical unless they say otherwise.
	Critical *bool `yaml:"critical,omitempty" json:"critical,omitempty"`
}

// IsCritical reports whether the metric's verdict counts towards the overall verdict.
func (m Metric) IsCritical() bool { return m.Critical == nil || *m.Critical }

// Thresholds bound a metric's canary value. Unset bounds are not checked.
type Thresholds struct {
	// Min and Max bound the canary's value.
	Min *float64 `yaml:"min,omitempty" json:"min,omitempty"`
	Max *float64 `yaml:"max,omitempty" json:"max,omitempty"`
	// MaxRatio bounds canary/baseline.
	MaxRatio *float64 `yaml:"maxRatio,omitempty" json:"maxRatio,omitempty"`
	// MaxDifference bounds canary-baseline.
	MaxDifference *float64 `yaml:"maxDifference,omitempty" json:"maxDifference,omitempty"`
}

// Relative reports whether any bound needs the baseline.
func (t Thresholds) Relative() bool { return t.MaxRatio != nil || t.MaxDifference != nil }

// Empty reports whether no bound is set.
func (t Thresholds) Empty() bool { return t.Min == nil && t.Max == nil && !t.Relative() }

// StrategyType names how a release is moved forward and back.
type StrategyType string

// The strategies, one per seed workflow.
const (
	// StrategyScale runs v2 as its own Deployment beside v1 behind one Service.
	StrategyScale StrategyType = "scale"
	// StrategyRollout updates one Deployment in place and pauses it after the first new pods.
	StrategyRollout StrategyType = "rollout"
	// StrategyShift moves replicas from v1 to v2 step by step, keeping the total constant.
	StrategyShift StrategyType = "shift"
	// StrategyBlueGreen switches a Service selector from v1 to v2.
	StrategyBlueGreen StrategyType = "bluegreen"
)

// Strategy says how the release moves forward. It is validated now and acted on by the actuator.
type Strategy struct {
	Type StrategyType `yaml:"type" json:"type"`
	// Steps are canary sizes: replica counts ("3") or shares of the baseline's replicas ("25%").
	Steps []string `yaml:"steps,omitempty" json:"steps,omitempty"`
	// StepDuration is how long each step is analysed before it advances.
	StepDuration model.Duration `yaml:"stepDuration" json:"stepDuration"`
	// Service is the Service whose selector a bluegreen strategy switches.
	Service string `yaml:"service,omitempty" json:"service,omitempty"`
	// BaselineAfterPromotion says what happens to the baseline once the canary is promoted:
	// "scaleToZero" keeps the Deployment at 0 replicas, "delete" removes it.
	BaselineAfterPromotion string `yaml:"baselineAfterPromotion,omitempty" json:"baselineAfterPromotion,omitempty"`
}
