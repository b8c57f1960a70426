package charts_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// promtool returns Prometheus's promtool: $COALMINE_PROMTOOL, else the one beside Debian's
// prometheus (scripts/install-prometheus.sh installs it; make test runs that first).
func promtool(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("COALMINE_PROMTOOL"); p != "" {
		return p
	}
	for _, p := range []string{"promtool", "/usr/bin/promtool"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatal("promtool not found; run scripts/install-prometheus.sh (Debian's prometheus package) or make test")
	return ""
}

// TestAlertsFire runs the chart's alerts, as rendered with testdata/monitoring.yaml, through
// `promtool test rules` (Prometheus's own rule evaluation) on series shaped like coalmine's:
// each alert fires when it should, with the labels a receiver routes on, and stays quiet
// otherwise, including for another namespace's coalmine. Annotations are left out here (promtool
// compares them whole); TestPrometheusRule checks them.
func TestAlertsFire(t *testing.T) {
	objs := parseManifest(t, newHelm(t, "").template(t, "coalmine", "-f", "testdata/monitoring.yaml"))
	u := objs.get("PrometheusRule", "coalmine")
	if u == nil {
		t.Fatalf("no PrometheusRule in %v", objs.ids())
	}
	groups, _, _ := unstructuredSlice(u.Object, "spec", "groups")
	for _, g := range groups {
		rules, _ := g.(map[string]any)["rules"].([]any)
		for _, r := range rules {
			delete(r.(map[string]any), "annotations")
		}
	}
	dir := t.TempDir()
	// JSON is YAML: promtool reads the groups as written.
	rulesJSON, err := json.Marshal(map[string]any{"groups": groups})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), rulesJSON, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tests.yaml"), []byte(alertTests), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool(t), "test", "rules", "tests.yaml")
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out.String())
	}
	t.Logf("promtool test rules:\n%s", out.String())
}

// unstructuredSlice returns obj[fields...] as a slice.
func unstructuredSlice(obj map[string]any, fields ...string) ([]any, bool, error) {
	var cur any = obj
	for _, f := range fields {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false, nil
		}
		cur = m[f]
	}
	s, ok := cur.([]any)
	return s, ok, nil
}

// alertTests are promtool's unit tests of the alerts. A pod label tells the replicas apart; the
// team label comes from testdata/monitoring.yaml's additionalLabels. Series of the namespace
// "other" are another coalmine's, which this release's alerts must ignore.
const alertTests = `
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  # The first rollback of a policy creates its counter at 1: still an alert.
  - name: first rollback
    interval: 1m
    input_series:
      - series: 'coalmine_canary_outcomes_total{namespace="coalmine",pod="coalmine-a",policy="default/my-app",outcome="rolledBack"}'
        values: '_x5 1x40'
      - series: 'coalmine_canary_outcomes_total{namespace="coalmine",pod="coalmine-a",policy="default/other",outcome="promoted"}'
        values: '_x5 1x40'
      - series: 'coalmine_canary_outcomes_total{namespace="other",pod="x",policy="default/my-app",outcome="rolledBack"}'
        values: '_x5 1x40'
    alert_rule_test:
      - eval_time: 4m
        alertname: CoalmineCanaryRolledBack
      - eval_time: 7m
        alertname: CoalmineCanaryRolledBack
        exp_alerts:
          - exp_labels: {severity: warning, team: platform, namespace: coalmine, policy: default/my-app}
      - eval_time: 30m
        alertname: CoalmineCanaryRolledBack

  # A later rollback of the same policy: the counter goes from 1 to 2.
  - name: second rollback
    interval: 1m
    input_series:
      - series: 'coalmine_canary_outcomes_total{namespace="coalmine",pod="coalmine-a",policy="default/my-app",outcome="rolledBack"}'
        values: '1x30 2x30'
    alert_rule_test:
      - eval_time: 25m
        alertname: CoalmineCanaryRolledBack
      - eval_time: 33m
        alertname: CoalmineCanaryRolledBack
        exp_alerts:
          - exp_labels: {severity: warning, team: platform, namespace: coalmine, policy: default/my-app}

  # A canary judged every minute for hours and never ended is stuck; one that ended (and the
  # next began) is not, until the next one has been going for stuckFor (2h) in turn.
  - name: stuck canary
    interval: 1m
    input_series:
      - series: 'coalmine_verdicts_total{namespace="coalmine",pod="coalmine-a",policy="default/stuck",verdict="pass"}'
        values: '0+1x300'
      - series: 'coalmine_verdicts_total{namespace="coalmine",pod="coalmine-a",policy="default/moving",verdict="pass"}'
        values: '0+1x300'
      - series: 'coalmine_canary_outcomes_total{namespace="coalmine",pod="coalmine-a",policy="default/moving",outcome="promoted"}'
        values: '_x90 1x210'
    alert_rule_test:
      - eval_time: 100m
        alertname: CoalmineCanaryStuck
      - eval_time: 140m
        alertname: CoalmineCanaryStuck
        exp_alerts:
          - exp_labels: {severity: warning, team: platform, namespace: coalmine, policy: default/stuck}
      - eval_time: 200m
        alertname: CoalmineCanaryStuck
        exp_alerts:
          - exp_labels: {severity: warning, team: platform, namespace: coalmine, policy: default/stuck}
      - eval_time: 240m
        alertname: CoalmineCanaryStuck
        exp_alerts:
          - exp_labels: {severity: warning, team: platform, namespace: coalmine, policy: default/stuck}
          - exp_labels: {severity: warning, team: platform, namespace: coalmine, policy: default/moving}

  # Only inconclusive verdicts for over an hour; a policy that also passes is deciding.
  - name: inconclusive verdicts
    interval: 1m
    input_series:
      - series: 'coalmine_verdicts_total{namespace="coalmine",pod="coalmine-a",policy="default/undecided",verdict="inconclusive"}'
        values: '0+1x120'
      - series: 'coalmine_verdicts_total{namespace="coalmine",pod="coalmine-a",policy="default/deciding",verdict="inconclusive"}'
        values: '0+1x120'
      - series: 'coalmine_verdicts_total{namespace="coalmine",pod="coalmine-a",policy="default/deciding",verdict="pass"}'
        values: '0+1x120'
    alert_rule_test:
      - eval_time: 50m
        alertname: CoalmineCanaryVerdictStuck
      - eval_time: 90m
        alertname: CoalmineCanaryVerdictStuck
        exp_alerts:
          - exp_labels: {severity: info, team: platform, namespace: coalmine, policy: default/undecided}

  # Queries fail and none succeeds: Prometheus is out of reach. Failures beside successes are not.
  - name: prometheus unreachable
    interval: 1m
    input_series:
      - series: 'coalmine_errors_total{namespace="coalmine",pod="coalmine-a",kind="prometheus"}'
        values: '0x10 1+1x40'
      - series: 'coalmine_prometheus_query_duration_seconds_count{namespace="coalmine",pod="coalmine-a",result="success"}'
        values: '0+5x10 50x40'
      - series: 'coalmine_errors_total{namespace="other",pod="x",kind="prometheus"}'
        values: '0+1x50'
    alert_rule_test:
      - eval_time: 12m
        alertname: CoalminePrometheusUnreachable
      - eval_time: 30m
        alertname: CoalminePrometheusUnreachable
        exp_alerts:
          - exp_labels: {severity: critical, team: platform, namespace: coalmine}

  - name: kubernetes api errors
    interval: 1m
    input_series:
      - series: 'coalmine_errors_total{namespace="coalmine",pod="coalmine-a",kind="kubernetes"}'
        values: '0+2x40'
    alert_rule_test:
      - eval_time: 8m
        alertname: CoalmineKubernetesAPIErrors
      - eval_time: 20m
        alertname: CoalmineKubernetesAPIErrors
        exp_alerts:
          - exp_labels: {severity: critical, team: platform, namespace: coalmine}

  # Two replicas, neither leading for a while; then one leads.
  - name: no leader
    interval: 1m
    input_series:
      - series: 'coalmine_leader{namespace="coalmine",pod="coalmine-a"}'
        values: '1x5 0x20 1x20'
      - series: 'coalmine_leader{namespace="coalmine",pod="coalmine-b"}'
        values: '0x45'
    alert_rule_test:
      - eval_time: 5m
        alertname: CoalmineNoLeader
      - eval_time: 15m
        alertname: CoalmineNoLeader
        exp_alerts:
          - exp_labels: {severity: critical, team: platform, namespace: coalmine}
      - eval_time: 35m
        alertname: CoalmineNoLeader

  # No coalmine of this release is scraped at all (only another namespace's).
  - name: no replica scraped
    interval: 1m
    input_series:
      - series: 'coalmine_leader{namespace="other",pod="x"}'
        values: '1x20'
    alert_rule_test:
      - eval_time: 10m
        alertname: CoalmineNoLeader
        exp_alerts:
          - exp_labels: {severity: critical, team: platform, namespace: coalmine}

  - name: invalid policy
    interval: 1m
    input_series:
      - series: 'coalmine_policy_reloads_total{namespace="coalmine",pod="coalmine-a",result="success"}'
        values: '0+12x60'
      - series: 'coalmine_policy_reloads_total{namespace="coalmine",pod="coalmine-a",result="failure"}'
        values: '_x20 1+12x20 241x20'
    alert_rule_test:
      - eval_time: 15m
        alertname: CoalminePolicyReloadFailing
      - eval_time: 22m
        alertname: CoalminePolicyReloadFailing
        exp_alerts:
          - exp_labels: {severity: warning, team: platform, namespace: coalmine}
      - eval_time: 38m
        alertname: CoalminePolicyReloadFailing
        exp_alerts:
          - exp_labels: {severity: warning, team: platform, namespace: coalmine}
      - eval_time: 55m
        alertname: CoalminePolicyReloadFailing
`
