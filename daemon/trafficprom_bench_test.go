package daemon

import (
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// trafficPrometheus is a stub Prometheus serving a healthy release in every namespace a query
// selects (one, or a batch of them), whose counters grow with the query's evaluation time: the
// baseline serves 10,000 requests a second, the canary 1,000, both with 1% errors and the same
// latencies. A counter-reading judge sees traffic and, in time, passes the canary.
type trafficPrometheus struct {
	srv     *httptest.Server
	queries atomic.Int64
	// busy is the time spent answering, to tell the stub's share of the process's CPU.
	busy atomic.Int64
}

// trafficArm is one version's traffic, per second.
type trafficArm struct {
	version          string
	requests, errors float64
}

var (
	trafficArms = []trafficArm{{"v1.0.0", 10000, 100}, {"v2.0.0", 1000, 10}}
	// trafficLatency is the share of requests at or below each bucket's bound.
	trafficLatency = []struct {
		le    string
		share float64
	}{{"0.25", 0.5}, {"0.5", 0.8}, {"1", 0.95}, {"2.5", 0.99}, {"5", 0.999}, {"10", 1}, {"+Inf", 1}}
	namespaceMatcher = regexp.MustCompile(`namespace=~?"([^"]*)"`)
)

func startTrafficPrometheus(b *testing.B) *trafficPrometheus {
	// The release has been serving for an hour: counters are well above zero.
	born := time.Now().Add(-time.Hour)
	p := &trafficPrometheus{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		defer func() { p.busy.Add(int64(time.Since(start))) }()
		p.queries.Add(1)
		_ = r.ParseForm()
		q := r.Form.Get("query")
		m := namespaceMatcher.FindStringSubmatch(q)
		if m == nil {
			http.Error(w, "no namespace", http.StatusBadRequest)
			return
		}
		at := time.Now()
		if t, err := strconv.ParseFloat(r.Form.Get("time"), 64); err == nil {
			at = time.Unix(0, int64(t*1e9))
		}
		secs := at.Sub(born).Seconds()
		ts := float64(at.UnixMilli()) / 1000
		var body strings.Builder
		body.WriteString(`{"status":"success","data":{"resultType":"vector","result":[`)
		first := true
		add := func(labels string, v float64) {
			if !first {
				body.WriteByte(',')
			}
			first = false
			fmt.Fprintf(&body, `{"metric":{%s},"value":[%.3f,"%.0f"]}`, labels, ts, math.Floor(v))
		}
		for _, ns := range strings.Split(m[1], "|") {
			for _, arm := range trafficArms {
				if strings.Contains(q, "coalmine_part") {
					add(fmt.Sprintf(`"namespace":%q,"version":%q,"coalmine_part":"requests"`, ns, arm.version), arm.requests*secs)
					add(fmt.Sprintf(`"namespace":%q,"version":%q,"coalmine_part":"errors"`, ns, arm.version), arm.errors*secs)
					continue
				}
				for _, bk := range trafficLatency {
					add(fmt.Sprintf(`"namespace":%q,"version":%q,"le":%q`, ns, arm.version, bk.le), bk.share*arm.requests*secs)
				}
			}
		}
		body.WriteString(`]}}`)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body.String()))
	}))
	b.Cleanup(p.srv.Close)
	return p
}
