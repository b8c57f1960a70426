package policies

import (
	"strings"
	"testing"
)

// strategyPolicy is a valid policy with room for one analysis field (line 14) and a strategy
// block (from line 23).
const strategyPolicy = `apiVersion: coalmine.dev/v1alpha1
kind: CanaryPolicy
metadata:
  name: shop
spec:
  target:
    namespace: shop
    app: cart
    baseline: {deployment: cart-v1, version: "1.4.0"}
    canary: {deployment: cart-v2, version: "1.5.0"}
  analysis:
    judge: threshold
    interval: 30s
ANALYSIS
  prometheus:
    url: http://prometheus:9090
  metrics:
    - name: errors
      kind: errors
      requests: sum by ({{.VersionLabel}}) (increase(http_requests_total{ {{.Selector}} }[{{.Window}}]))
      errors: sum by ({{.VersionLabel}}) (increase(http_requests_total{ {{.Selector}}, code=~"5.." }[{{.Window}}]))
      thresholds: {maxRatio: 2}
STRATEGY
`

// TestStrategyCanFinish checks that a policy is refused when its strategy could never promote
// the canary, or sets an option its strategy does not use, and that the defaults pass.
func TestStrategyCanFinish(t *testing.T) {
	tests := []struct {
		name, analysis, strategy string
		oneDeployment            bool   // baseline and canary are one Deployment, as rollout needs
		want                     string // the errors, "" when the policy is valid
	}{
		{name: "defaults: 3 steps x 5m within 30m"},
		{name: "steps exactly fill maxDuration",
			analysis: "    maxDuration: 30m",
			strategy: "  strategy: {steps: [\"1\", \"2\", \"3\"], stepDuration: 10m}"},
		{name: "steps outlast maxDuration",
			analysis: "    maxDuration: 15m",
			strategy: "  strategy:\n    steps: [\"1\", \"2\", \"3\"]\n    stepDuration: 10m",
			want:     "x.yaml:25: spec.strategy.stepDuration 3 steps x 10m = 30m is longer than spec.analysis.maxDuration 15m: the canary could never be promoted"},
		{name: "only maxDuration set, shorter than the default steps",
			analysis: "    maxDuration: 10m",
			want:     "x.yaml:14: spec.analysis.maxDuration 10m is shorter than 3 steps x spec.strategy.stepDuration 5m = 15m: the canary could never be promoted"},
		{name: "only steps set, more than the default maxDuration holds",
			strategy: "  strategy:\n    steps: [\"1\", \"2\", \"3\", \"4\", \"5\", \"6\", \"7\"]",
			want:     "x.yaml:24: spec.strategy.steps 7 steps x spec.strategy.stepDuration 5m = 35m is longer than spec.analysis.maxDuration 30m: the canary could never be promoted"},
		{name: "a duration too long to add up",
			strategy: "  strategy:\n    steps: [\"1\", \"2\"]\n    stepDuration: 200y",
			want:     "x.yaml:25: spec.strategy.stepDuration 2 steps x 200y is longer than spec.analysis.maxDuration 30m: the canary could never be promoted"},
		{name: "bad steps are reported alone",
			analysis: "    maxDuration: 1m",
			strategy: "  strategy:\n    steps: [\"1\", \"x\"]\n    stepDuration: 1m",
			want:     "x.yaml:24: spec.strategy.steps[1] must be a replica count like 3 or a percentage like 25%, got \"x\""},
		{name: "bluegreen defaults to one step",
			analysis: "    maxDuration: 5m",
			strategy: "  strategy: {type: bluegreen, service: cart}"},
		{name: "bluegreen with its one step written",
			strategy: "  strategy: {type: bluegreen, service: cart, steps: [\"100%\"], stepDuration: 10m}"},
		{name: "bluegreen with one partial step",
			strategy: "  strategy:\n    type: bluegreen\n    service: cart\n    steps: [\"50%\"]",
			want:     "x.yaml:26: spec.strategy.steps bluegreen is one switch of the Service: give one step (\"100%\") or none, got \"50%\""},
		{name: "bluegreen with several steps",
			strategy: "  strategy:\n    type: bluegreen\n    service: cart\n    steps: [\"x\", \"100%\"]",
			want:     "x.yaml:26: spec.strategy.steps bluegreen is one switch of the Service: give one step (\"100%\") or none, got 2"},
		{name: "bluegreen one step outlasts maxDuration",
			analysis: "    maxDuration: 5m",
			strategy: "  strategy:\n    type: bluegreen\n    service: cart\n    stepDuration: 10m",
			want:     "x.yaml:26: spec.strategy.stepDuration 1 step x 10m = 10m is longer than spec.analysis.maxDuration 5m: the canary could never be promoted"},
		{name: "rollout deletes no baseline", oneDeployment: true,
			strategy: "  strategy:\n    type: rollout\n    baselineAfterPromotion: delete",
			want:     "x.yaml:25: spec.strategy.baselineAfterPromotion delete is not used by rollout, which updates one Deployment in place: there is no baseline Deployment to delete"},
		{name: "rollout scales no baseline to zero by default", oneDeployment: true,
			strategy: "  strategy: {type: rollout}"},
		{name: "scale deletes its baseline",
			strategy: "  strategy: {type: scale, baselineAfterPromotion: delete}"},
		{name: "shift deletes its baseline",
			strategy: "  strategy: {type: shift, baselineAfterPromotion: delete}"},
		{name: "a warm-up within the step",
			analysis: "    warmup: 2m"},
		{name: "no warm-up",
			analysis: "    warmup: 0s"},
		{name: "a warm-up as long as the step",
			analysis: "    warmup: 5m",
			want:     "x.yaml:14: spec.analysis.warmup must be shorter than spec.strategy.stepDuration (5m): a step would have nothing left to judge"},
		{name: "a negative warm-up",
			analysis: "    warmup: -1s",
			want:     "x.yaml:14: spec.analysis.warmup must be a positive duration, got \"-1s\""},
		{name: "bluegreen with a Service that is no Service name",
			strategy: "  strategy: {type: bluegreen, service: Cart.Svc}",
			want:     "x.yaml:23: spec.strategy.service must be a Service name (at most 63 lowercase letters, digits and '-'), got \"Cart.Svc\""},
		{name: "a service for scale",
			strategy: "  strategy:\n    type: scale\n    service: cart",
			want:     "x.yaml:25: spec.strategy.service is only used by bluegreen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			analysis := tt.analysis
			if analysis == "" {
				analysis = "    window: 2m"
			}
			doc := strings.NewReplacer("ANALYSIS", analysis, "STRATEGY\n", lines(tt.strategy)).Replace(strategyPolicy)
			if tt.oneDeployment {
				doc = strings.Replace(doc, "deployment: cart-v1", "deployment: cart-v2", 1)
			}
			_, err := Load("x.yaml", []byte(doc))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("errors:\n%s\nwant:\n%s\npolicy:\n%s", got, tt.want, doc)
			}
		})
	}
}

// lines is s as whole lines, or nothing.
func lines(s string) string {
	if s == "" {
		return ""
	}
	return s + "\n"
}
