package policies

import (
	"time"

	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
)

// DefaultQuantile is the latency quantile judged when a latency metric does not name one.
const DefaultQuantile = 0.99

// Default returns a policy holding every default; loading decodes a document on top of it.
func Default() Policy {
	return Policy{
		Spec: Spec{
			Target: Target{
				Labels: LabelNames{Namespace: "namespace", App: "app", Version: "version"},
			},
			Analysis: Analysis{
				Interval:       model.Duration(30 * time.Second),
				Window:         model.Duration(5 * time.Minute),
				MinRequests:    50,
				MaxDuration:    model.Duration(30 * time.Minute),
				Alpha:          0.05,
				Tolerance:      1.5,
				Tempering:      1,
				OnInconclusive: InconclusiveHold,
			},
			Source: SourcePrometheus,
			Pods:   PodsSource{Timeout: model.Duration(2 * time.Second), Concurrency: 8},
			Prometheus: Prometheus{
				Timeout: model.Duration(10 * time.Second),
				HTTP:    config.DefaultHTTPClientConfig,
			},
			Health: Health{ReadyTimeout: model.Duration(5 * time.Minute), MaxRestarts: 3},
			Strategy: Strategy{
				Type:         StrategyScale,
				StepDuration: model.Duration(5 * time.Minute),
			},
		},
	}
}

// defaultSteps returns the steps of a strategy that sets none. A bluegreen switch moves all
// traffic at once, so it has one step: any later step would read a baseline that no longer serves.
func defaultSteps(t StrategyType) []string {
	if t == StrategyBlueGreen {
		return []string{"100%"}
	}
	return []string{"10%", "50%", "100%"}
}

// applyElementDefaults fills defaults that live inside lists, which decoding cannot prefill, and
// those that depend on other fields.
func (p *Policy) applyElementDefaults() {
	if p.Spec.Target.Namespace == "" {
		// A CanaryPolicy object's release is in its own namespace.
		p.Spec.Target.Namespace = p.Metadata.Namespace
	}
	for i := range p.Spec.Metrics {
		m := &p.Spec.Metrics[i]
		if m.Kind == KindLatency && m.Quantile == 0 {
			m.Quantile = DefaultQuantile
		}
	}
	if p.Spec.Analysis.Judge == "" {
		p.Spec.Analysis.Judge = JudgeSequential
		if p.Spec.Strategy.Type == StrategyBlueGreen {
			p.Spec.Analysis.Judge = JudgeThreshold
		}
	}
	if len(p.Spec.Strategy.Steps) == 0 {
		p.Spec.Strategy.Steps = defaultSteps(p.Spec.Strategy.Type)
	}
	p.applyNotificationDefaults()
}
