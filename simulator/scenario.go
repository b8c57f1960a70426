package simulator

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/prometheus/common/model"
)

// maxPods bounds the pods of one version, to catch typos before they open thousands of listeners.
const maxPods = 1000

// Scenario describes the simulated apps, their versions and pods, and how each pod behaves.
type Scenario struct {
	// Seed seeds every random draw: the same scenario and seed give the same pod names and counters.
	Seed uint64 `yaml:"seed" json:"seed"`
	// Tick is how often, in real time, the counters advance.
	Tick model.Duration `yaml:"tick" json:"tick"`
	// Apps are the simulated apps.
	Apps []App `yaml:"apps" json:"apps"`
}

// App is one application, like a Deployment per version behind a single Service.
type App struct {
	Namespace string `yaml:"namespace" json:"namespace"`
	// Name is the app label value, as in the app=my-app pod label.
	Name string `yaml:"app" json:"app"`
	// RPS is the app's total requests per second, split evenly over the pods of all versions
	// that do not set their own RPS, like a Service spreading load over its endpoints.
	RPS float64 `yaml:"rps" json:"rps"`
	// Versions are the app's versions, each with its pods.
	Versions []Version `yaml:"versions" json:"versions"`
}

// Version is one version of an app and the behaviour of its pods.
type Version struct {
	// Version is the version label value, such as v1.0.0.
	Version string `yaml:"version" json:"version"`
	// Pods is the number of pods running this version.
	Pods int `yaml:"pods" json:"pods"`
	// ErrorRate is the share of requests answered with code 500; the others get 200.
	ErrorRate float64 `yaml:"errorRate" json:"errorRate"`
	// Latency is the request latency distribution.
	Latency Latency `yaml:"latency" json:"latency"`
	// RPS, when set, is the fixed total requests per second of this version's pods, taking them
	// out of the app-level split. Zero means no traffic at all; nil means a share of the app's RPS.
	RPS *float64 `yaml:"rps,omitempty" json:"rps,omitempty"`
	// PodOverrides changes the behaviour of single pods, by pod index.
	PodOverrides map[int]PodOverride `yaml:"podOverrides,omitempty" json:"podOverrides,omitempty"`
}

// Latency describes a log-normal latency distribution by its median and 99th percentile, in seconds.
type Latency struct {
	Median float64 `yaml:"median" json:"median"`
	P99    float64 `yaml:"p99" json:"p99"`
}

// PodOverride replaces the error rate or latency of a single pod; unset fields keep the version's.
type PodOverride struct {
	ErrorRate *float64 `yaml:"errorRate,omitempty" json:"errorRate,omitempty"`
	Latency   *Latency `yaml:"latency,omitempty" json:"latency,omitempty"`
}

// defaultScenario is the value a scenario file is decoded onto.
func defaultScenario() Scenario {
	return Scenario{Tick: model.Duration(100 * time.Millisecond)}
}

// fieldError is a validation error about one field, named by its path such as apps[0].rps.
type fieldError struct {
	field string
	msg   string
}

func (e *fieldError) Error() string { return e.field + " " + e.msg }

func errorf(field, format string, args ...any) error {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

// Validate reports the first invalid field of the scenario.
func (s Scenario) Validate() error {
	if s.Tick <= 0 {
		return errorf("tick", "must be > 0")
	}
	type appID struct{ namespace, app string }
	seen := make(map[appID]int, len(s.Apps))
	for i, a := range s.Apps {
		field := fmt.Sprintf("apps[%d]", i)
		if a.Namespace == "" {
			return errorf(field+".namespace", "must not be empty")
		}
		if a.Name == "" {
			return errorf(field+".app", "must not be empty")
		}
		id := appID{a.Namespace, a.Name}
		if j, ok := seen[id]; ok {
			return errorf(field+".app", "%q in namespace %q duplicates apps[%d]", a.Name, a.Namespace, j)
		}
		seen[id] = i
		if !validRate(a.RPS) {
			return errorf(field+".rps", "must be >= 0")
		}
		if err := a.validateVersions(field); err != nil {
			return err
		}
	}
	return nil
}

func (a App) validateVersions(appField string) error {
	seen := make(map[string]int, len(a.Versions))
	for i, v := range a.Versions {
		field := fmt.Sprintf("%s.versions[%d]", appField, i)
		if v.Version == "" {
			return errorf(field+".version", "must not be empty")
		}
		if j, ok := seen[v.Version]; ok {
			return errorf(field+".version", "%q duplicates versions[%d]", v.Version, j)
		}
		seen[v.Version] = i
		if v.Pods < 0 || v.Pods > maxPods {
			return errorf(field+".pods", "must be between 0 and %d", maxPods)
		}
		if !validShare(v.ErrorRate) {
			return errorf(field+".errorRate", "must be between 0 and 1")
		}
		if err := v.Latency.validate(field + ".latency"); err != nil {
			return err
		}
		if v.RPS != nil && !validRate(*v.RPS) {
			return errorf(field+".rps", "must be >= 0")
		}
		for _, idx := range slices.Sorted(maps.Keys(v.PodOverrides)) {
			o := v.PodOverrides[idx]
			oField := fmt.Sprintf("%s.podOverrides[%d]", field, idx)
			if idx < 0 || idx >= v.Pods {
				return errorf(oField, "pod index out of range [0, %d)", v.Pods)
			}
			if o.ErrorRate != nil && !validShare(*o.ErrorRate) {
				return errorf(oField+".errorRate", "must be between 0 and 1")
			}
			if o.Latency != nil {
				if err := o.Latency.validate(oField + ".latency"); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (l Latency) validate(field string) error {
	if !(l.Median > 0) || math.IsInf(l.Median, 0) {
		return errorf(field+".median", "must be > 0")
	}
	if !(l.P99 >= l.Median) || math.IsInf(l.P99, 0) {
		return errorf(field+".p99", "must be >= median")
	}
	return nil
}

// validRate rejects negative, NaN and infinite rates; the negated comparison catches NaN.
func validRate(r float64) bool { return r >= 0 && !math.IsInf(r, 0) }

func validShare(p float64) bool { return p >= 0 && p <= 1 }

// clone returns a deep copy, so that a running simulator never shares memory with its caller.
func (s Scenario) clone() Scenario {
	out := s
	out.Apps = make([]App, len(s.Apps))
	for i, a := range s.Apps {
		out.Apps[i] = a
		out.Apps[i].Versions = make([]Version, len(a.Versions))
		for j, v := range a.Versions {
			if v.RPS != nil {
				v.RPS = ptr(*v.RPS)
			}
			if v.PodOverrides != nil {
				overrides := make(map[int]PodOverride, len(v.PodOverrides))
				for idx, o := range v.PodOverrides {
					if o.ErrorRate != nil {
						o.ErrorRate = ptr(*o.ErrorRate)
					}
					if o.Latency != nil {
						o.Latency = ptr(*o.Latency)
					}
					overrides[idx] = o
				}
				v.PodOverrides = overrides
			}
			out.Apps[i].Versions[j] = v
		}
	}
	return out
}

func ptr[T any](v T) *T { return &v }
