package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runArgs(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestValidate(t *testing.T) {
	examples, err := filepath.Glob("../../policies/examples/*.yaml")
	if err != nil || len(examples) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr []string
	}{
		{"examples are valid", append([]string{"validate", "-f"}, examples...), exitPass, nil},
		{
			"unknown field", []string{"validate", "-f", "../../policies/testdata/unknown-field.bad.yaml"}, exitUsage,
			[]string{"unknown-field.bad.yaml:15: spec.analysis.treshold is not a known field"},
		},
		{
			"negative interval", []string{"validate", "-f", "../../policies/testdata/negative-interval.bad.yaml"}, exitUsage,
			[]string{"negative-interval.bad.yaml:13: spec.analysis.interval must be a positive duration"},
		},
		{
			"broken PromQL template", []string{"validate", "-f", "../../policies/testdata/broken-promql.bad.yaml"}, exitUsage,
			[]string{"broken-promql.bad.yaml:21: spec.metrics[0].errors promql:"},
		},
		{
			"one line per problem across files", []string{"validate", "-f", "../../policies/testdata/wrong-api.bad.yaml", "../../policies/testdata/zero-interval.bad.yaml"}, exitUsage,
			[]string{"wrong-api.bad.yaml:1: apiVersion", "wrong-api.bad.yaml:2: kind", "zero-interval.bad.yaml:13: spec.analysis.interval must be at least 1s"},
		},
		{"no file", []string{"validate"}, exitUsage, []string{"no policy file given"}},
		{"missing file", []string{"validate", "-f", "nope.yaml"}, exitUsage, []string{"nope.yaml: cannot read"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runArgs(tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.wantCode, stderr)
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if tt.wantCode == exitUsage && len(tt.wantStderr) > 1 {
				if lines := strings.Count(strings.TrimSpace(stderr), "\n") + 1; lines != len(tt.wantStderr) {
					t.Errorf("want %d lines on stderr, got %d:\n%s", len(tt.wantStderr), lines, stderr)
				}
			}
		})
	}
}

func TestHelpAndUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"no command", nil, exitUsage, "Commands:"},
		{"help", []string{"--help"}, exitPass, "Exit codes:"},
		{"unknown command", []string{"deploy"}, exitUsage, `unknown command "deploy"`},
		{"validate --help", []string{"validate", "--help"}, exitPass, "coalmine validate -f FILE"},
		{"report --help", []string{"report", "--help"}, exitPass, "coalmine report -f FILE"},
		{"gate --help", []string{"gate", "--help"}, exitPass, "--request-timeout"},
		{"run --help", []string{"run", "--help"}, exitPass, "--namespaces"},
		{"backtest --help", []string{"backtest", "--help"}, exitPass, "--aa-label"},
		{"help on a command", []string{"help", "gate"}, exitPass, "coalmine gate -f FILE"},
		{"unknown flag", []string{"validate", "--nope"}, exitUsage, "unknown flag: --nope"},
		{"report with an extra argument", []string{"report", "-f", "x.yaml", "y.yaml"}, exitUsage, "unknown command"},
		{"version", []string{"version"}, exitPass, "coalmine "},
		{"--version", []string{"--version"}, exitPass, "coalmine "},
		{"report without a file", []string{"report"}, exitUsage, "no policy file given"},
		{"report with a bad format", []string{"report", "-f", "x.yaml", "-o", "xml"}, exitUsage, "--output: want text, json, markdown, html"},
		{"report with a bad window", []string{"report", "-f", "x.yaml", "--window", "-1m"}, exitUsage, "--window"},
		{"report with a bad log level", []string{"report", "-f", "../../policies/examples/my-app.yaml", "--log-level", "loud"}, exitUsage, "--log-level"},
		{"report on an invalid policy", []string{"report", "-f", "../../policies/testdata/unknown-field.bad.yaml"}, exitUsage, "is not a known field"},
		{"report with a bad URL", []string{"report", "-f", "../../policies/examples/my-app.yaml", "--prometheus-url", "localhost:9090"}, exitUsage, "prometheus url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runArgs(tt.args...)
			if code != tt.wantCode || !strings.Contains(stdout+stderr, tt.want) {
				t.Errorf("exit %d, want %d with %q; output:\n%s%s", code, tt.wantCode, tt.want, stdout, stderr)
			}
		})
	}
}

// TestValidateHidesPasswords checks that validate never prints a password written into the
// Prometheus URL.
func TestValidateHidesPasswords(t *testing.T) {
	b, err := os.ReadFile("../../policies/examples/my-app.yaml")
	if err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(t.TempDir(), "p.yaml")
	doc := strings.Replace(string(b), "url: http://prometheus.monitoring.svc:9090", "url: http://admin:hunter2@prometheus.monitoring.svc:9090", 1)
	if doc == string(b) {
		t.Fatal("the example's Prometheus URL moved; update the test")
	}
	if err := os.WriteFile(policy, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runArgs("validate", "-f", policy)
	if code != exitPass || strings.Contains(stdout+stderr, "hunter2") || !strings.Contains(stdout, "http://admin:xxxxx@prometheus.monitoring.svc:9090") {
		t.Errorf("exit %d; the password shows, or the URL does not:\n%s%s", code, stdout, stderr)
	}
}
