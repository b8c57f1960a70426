package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coalmine/coalmine/analyzer"
)

func sampleGate() analyzer.Report {
	start := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	pass := sampleReport().Result
	pass.Metrics = append([]analyzer.MetricResult(nil), pass.Metrics...)
	pass.Metrics[0].Verdict, pass.Metrics[0].Reason, pass.Metrics[0].Canary = analyzer.Pass, "error rate 1.00% vs baseline 1.00% (ratio 1.00)", 0.01
	pass.Metrics[1].Verdict, pass.Metrics[1].Reason, pass.Metrics[1].Canary = analyzer.Pass, "latency 0.48s vs baseline 0.48s (ratio 1.00)", 0.48
	pass.Verdict, pass.Reason = analyzer.Overall(pass.Metrics)
	fail := sampleReport().Result
	return analyzer.Report{
		Outcome: analyzer.OutcomeRolledBack,
		Reason:  fail.Reason,
		Ticks: []analyzer.Tick{
			{Time: start, Step: 0, Steps: 3, Action: "wait", Reason: "waiting for the canary pods to be Ready"},
			{Time: start.Add(30 * time.Second), Step: 0, Steps: 3, Elapsed: 30 * time.Second, Ready: true, Result: &pass, Action: "advance", Reason: "step 1 passed; now step 2/3 (50%)"},
			{Time: start.Add(time.Minute), Step: 1, Steps: 3, Elapsed: time.Minute, Ready: true, Err: errors.New("down"), Action: "hold", Reason: "metrics unavailable"},
			{Time: start.Add(90 * time.Second), Step: 1, Steps: 3, Elapsed: 90 * time.Second, Ready: true, Result: &fail, Action: "rollback", Reason: fail.Reason},
		},
	}
}

func TestGateGolden(t *testing.T) {
	rep := sampleGate()
	var lines bytes.Buffer
	for _, tick := range rep.Ticks {
		lines.WriteString(ProgressLine(tick) + "\n")
	}
	var junit, md bytes.Buffer
	if err := WriteJUnit(&junit, "my-app", rep); err != nil {
		t.Fatal(err)
	}
	if err := WriteGateMarkdown(&md, "my-app", rep); err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][]byte{"gate.progress": lines.Bytes(), "gate.junit.xml": junit.Bytes(), "gate.md": md.Bytes()} {
		golden := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(golden, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run go test ./report -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs:\n%s", golden, got)
		}
	}
}

func TestJUnitCounts(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJUnit(&buf, "my-app", sampleGate()); err != nil {
		t.Fatal(err)
	}
	var got junitSuites
	if err := xml.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("not XML: %v", err)
	}
	s := got.Suites[0]
	// step 1: three metrics passed; step 2: error-rate failed, latency no data, cpu passed.
	if s.Tests != 6 || s.Failures != 1 || s.Skipped != 1 {
		t.Errorf("tests=%d failures=%d skipped=%d, want 6 1 1", s.Tests, s.Failures, s.Skipped)
	}
	if !strings.HasPrefix(s.Cases[3].Name, "step 2/3: error-rate") || s.Cases[3].Failure == nil {
		t.Errorf("case 3: %+v", s.Cases[3])
	}
}

// TestMarkdownShowsHostileTextAsText checks that what others wrote (a metric's name, a reason
// quoting Prometheus or a series) cannot add HTML, links or images to a CI summary.
func TestMarkdownShowsHostileTextAsText(t *testing.T) {
	rep := sampleGate()
	hostile := `<img src=https://evil.example/p.png> ![x](https://evil.example/i.png) [click](https://evil.example) ` + "`code`" + ` a|b <details><summary>x</summary>`
	rep.Reason = hostile
	var md bytes.Buffer
	if err := WriteGateMarkdown(&md, "my-app", rep); err != nil {
		t.Fatal(err)
	}
	out := md.String()
	for _, bad := range []string{"<img", "![x](", "[click](", "<details><summary>x", "`code`"} {
		if strings.Contains(out, bad) {
			t.Errorf("the summary carries %q as markup:\n%s", bad, out)
		}
	}
	if !strings.Contains(out, "&lt;img src=https://evil.example/p.png&gt;") {
		t.Errorf("the hostile text is not shown as text:\n%s", out)
	}
}
