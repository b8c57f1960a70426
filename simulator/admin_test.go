package simulator

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

func TestAdminHandler(t *testing.T) {
	initial := testScenario(2, canaryVersion(1, 0.01))
	initial.Apps[0].Versions[0].PodOverrides = map[int]PodOverride{1: {ErrorRate: ptr(0.5)}}
	sim, err := newSimulator(initial, Options{})
	if err != nil {
		t.Fatalf("newSimulator: %v", err)
	}
	t.Cleanup(func() { _ = sim.Stop() })
	srv := httptest.NewServer(sim.AdminHandler())
	t.Cleanup(srv.Close)

	do := func(method, path, contentType, accept, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatalf("request: %v", err)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("read %s %s: %v", method, path, err)
		}
		return resp.StatusCode, string(data)
	}

	tests := []struct {
		name        string
		method      string
		contentType string
		accept      string
		body        string
		wantStatus  int
		wantBody    string // substring
		wantPods    int
	}{
		{
			name:       "replace with yaml",
			method:     http.MethodPut,
			body:       "apps:\n- {namespace: default, app: my-app, rps: 10, versions: [{version: v1.0.0, pods: 3, latency: {median: 0.1, p99: 0.4}}]}\n",
			wantStatus: http.StatusNoContent,
			wantPods:   3,
		},
		{
			name:        "replace with json",
			method:      http.MethodPut,
			contentType: "application/json; charset=utf-8",
			body:        `{"tick":"50ms","apps":[{"namespace":"default","app":"my-app","rps":10,"versions":[{"version":"v2.0.0","pods":1,"rps":0,"latency":{"median":0.1,"p99":0.4},"podOverrides":{"0":{"errorRate":1}}}]}]}`,
			wantStatus:  http.StatusNoContent,
			wantPods:    1,
		},
		{
			name:       "unknown yaml field",
			method:     http.MethodPut,
			body:       "seed: 1\nbogus: true\n",
			wantStatus: http.StatusBadRequest,
			wantBody:   "field bogus not found",
			wantPods:   1,
		},
		{
			name:        "unknown json field",
			method:      http.MethodPut,
			contentType: "application/json",
			body:        `{"bogus":true}`,
			wantStatus:  http.StatusBadRequest,
			wantBody:    `unknown field "bogus"`,
			wantPods:    1,
		},
		{
			name:       "invalid scenario names the line",
			method:     http.MethodPut,
			body:       "tick: 1s\napps:\n- namespace: default\n  app: my-app\n  rps: -1\n",
			wantStatus: http.StatusBadRequest,
			wantBody:   "request:5: apps[0].rps must be >= 0",
			wantPods:   1,
		},
		{
			name:       "wrong method",
			method:     http.MethodDelete,
			wantStatus: http.StatusMethodNotAllowed,
			wantPods:   1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := do(tt.method, "/scenario", tt.contentType, tt.accept, tt.body)
			if status != tt.wantStatus || !strings.Contains(body, tt.wantBody) {
				t.Errorf("%s /scenario = %d %q, want %d with %q", tt.method, status, body, tt.wantStatus, tt.wantBody)
			}
			if got := len(sim.Targets()); got != tt.wantPods {
				t.Errorf("%d pods, want %d", got, tt.wantPods)
			}
		})
	}

	t.Run("get yaml and json round trip", func(t *testing.T) {
		want := sim.Scenario()
		status, body := do(http.MethodGet, "/scenario", "", "", "")
		if status != http.StatusOK {
			t.Fatalf("GET /scenario = %d %q", status, body)
		}
		got, err := Parse("response", []byte(body))
		if err != nil {
			t.Fatalf("parse yaml response: %v\n%s", err, body)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("yaml scenario = %+v, want %+v", got, want)
		}
		status, body = do(http.MethodGet, "/scenario", "", "application/json", "")
		if status != http.StatusOK {
			t.Fatalf("GET /scenario as json = %d %q", status, body)
		}
		if got, err = parseJSON([]byte(body)); err != nil {
			t.Fatalf("parse json response: %v\n%s", err, body)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("json scenario = %+v, want %+v", got, want)
		}
	})

	t.Run("get targets", func(t *testing.T) {
		status, body := do(http.MethodGet, "/targets", "", "", "")
		var got []Target
		if err := json.Unmarshal([]byte(body), &got); status != http.StatusOK || err != nil {
			t.Fatalf("GET /targets = %d %q (%v)", status, body, err)
		}
		if want := sim.Targets(); !reflect.DeepEqual(got, want) {
			t.Errorf("targets = %+v, want %+v", got, want)
		}
	})
}
