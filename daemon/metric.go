package daemon

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/coalmine/coalmine/analyzer"
)

// selfMetrics is what the daemon exports about itself on /metrics.
type selfMetrics struct {
	inProgress   prometheus.Gauge
	verdicts     *prometheus.CounterVec
	outcomes     *prometheus.CounterVec
	value        *prometheus.GaugeVec
	threshold    *prometheus.GaugeVec
	stat         *prometheus.GaugeVec
	tickDuration prometheus.Histogram
	queries      *prometheus.HistogramVec
	tickErrors   *prometheus.CounterVec
	reloads      *prometheus.CounterVec
	leader       prometheus.Gauge
}

func newSelfMetrics(reg prometheus.Registerer) *selfMetrics {
	f := promauto.With(reg)
	return &selfMetrics{
		inProgress: f.NewGauge(prometheus.GaugeOpts{
			Name: "coalmine_canaries_in_progress", Help: "Canaries being driven by this replica.",
		}),
		verdicts: f.NewCounterVec(prometheus.CounterOpts{
			Name: "coalmine_verdicts_total", Help: "Evaluations of canaries, by policy and overall verdict.",
		}, []string{"policy", "verdict"}),
		outcomes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "coalmine_canary_outcomes_total", Help: "Canaries ended, by policy and outcome (promoted, rolledBack, inconclusive, unavailable, stopped).",
		}, []string{"policy", "outcome"}),
		value: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "coalmine_metric_value", Help: "The last judged value of a metric, by policy, metric and arm (baseline, canary).",
		}, []string{"policy", "metric", "arm"}),
		threshold: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "coalmine_metric_threshold", Help: "A metric's thresholds, by policy, metric and bound (min, max, maxRatio, maxDifference).",
		}, []string{"policy", "metric", "bound"}),
		stat: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "coalmine_metric_statistic", Help: "The counter-reading judges' numbers for a metric, by policy, metric and statistic (estimate, low, high, p_value, promote_p, alpha).",
		}, []string{"policy", "metric", "statistic"}),
		tickDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name: "coalmine_tick_duration_seconds", Help: "Time to observe, judge and act on one canary once (the Prometheus queries are most of it).",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		queries: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "coalmine_prometheus_query_duration_seconds", Help: "Prometheus queries (batched across canaries), by result (success, error).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"result"}),
		tickErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "coalmine_errors_total", Help: "Failures by kind: prometheus (metrics unavailable), kubernetes (API errors).",
		}, []string{"kind"}),
		reloads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "coalmine_policy_reloads_total", Help: "Reloads of the policy directory, by result (success, failure).",
		}, []string{"result"}),
		leader: f.NewGauge(prometheus.GaugeOpts{
			Name: "coalmine_leader", Help: "1 when this replica holds the leader Lease and drives canaries.",
		}),
	}
}

// query records one Prometheus query.
func (m *selfMetrics) query(took time.Duration, err error) {
	result := "success"
	if err != nil {
		result = "error"
	}
	m.queries.WithLabelValues(result).Observe(took.Seconds())
}

// observe records one tick of a canary.
func (m *selfMetrics) observe(policy string, t analyzer.Tick) {
	m.tickDuration.Observe(t.Duration.Seconds())
	if t.Err != nil {
		m.tickErrors.WithLabelValues("prometheus").Inc()
	}
	if t.Result == nil {
		return
	}
	m.verdicts.WithLabelValues(policy, string(t.Result.Verdict)).Inc()
	for _, r := range t.Result.Metrics {
		m.value.WithLabelValues(policy, r.Name, "baseline").Set(float64(r.Baseline))
		m.value.WithLabelValues(policy, r.Name, "canary").Set(float64(r.Canary))
		if st := r.Stats; st != nil {
			for name, v := range map[string]analyzer.Number{"estimate": st.Estimate, "low": st.Low, "high": st.High, "p_value": st.PValue, "promote_p": st.PromoteP, "alpha": st.Alpha} {
				m.stat.WithLabelValues(policy, r.Name, name).Set(float64(v))
			}
		}
		th := r.Thresholds
		for bound, v := range map[string]*float64{"min": th.Min, "max": th.Max, "maxRatio": th.MaxRatio, "maxDifference": th.MaxDifference} {
			if v != nil {
				m.threshold.WithLabelValues(policy, r.Name, bound).Set(*v)
			}
		}
	}
}
