package simulator

import (
	"cmp"
	"net"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// The pod annotations of the usual kubernetes-pods scrape configuration, and the pod labels that
// name an app and its version.
const (
	annotationScrape = "prometheus.io/scrape"
	annotationPort   = "prometheus.io/port"
	annotationPath   = "prometheus.io/path"
	labelApp         = "app"
	labelVersion     = "version"
	labelTemplate    = "pod-template-hash"
)

// clusterPod is what the cluster asks of one simulated pod.
type clusterPod struct {
	id           string // the pod UID
	name         string
	templateHash string
	address      string // podIP:port
	path         string
	spec         podSpec
}

// sameProcess reports whether p can go on playing cp without a restart: same listener, same
// metrics path and the same constant version label.
func (cp clusterPod) sameProcess(p *pod) bool {
	return p.address == cp.address && p.path == cp.path && p.key.app == cp.spec.key.app &&
		p.key.version == cp.spec.key.version
}

// planCluster lists the pods to play in one namespace, for the scenario apps of that namespace,
// in scenario order of apps and versions and by index within a version.
//
// A pod is played when it is Ready, has a pod IP, is annotated prometheus.io/scrape: "true" with
// a prometheus.io/port, and is labelled app and version with the names of a scenario app and one
// of its versions. Its index, the key of podOverrides, is its position among the played pods of
// its version ordered by creation time and name.
//
// A played pod gets traffic when it is not terminating and, if any Service of the namespace has
// a selector with the app's app label, when one of those Services selects it. An app's RPS is
// split evenly over the pods that get traffic of the versions without their own RPS; a version
// with its own RPS splits that over its own pods that get traffic.
func planCluster(apps []App, pods []*corev1.Pod, services []*corev1.Service) []clusterPod {
	var out []clusterPod
	for _, a := range apps {
		out = append(out, planApp(a, pods, services)...)
	}
	return out
}

func planApp(a App, pods []*corev1.Pod, services []*corev1.Service) []clusterPod {
	var selectors []map[string]string
	for _, svc := range services {
		if sel := svc.Spec.Selector; len(sel) > 0 && sel[labelApp] == a.Name {
			selectors = append(selectors, sel)
		}
	}
	// A Service selects a pod when every key of its selector is a pod label with the same value.
	routed := func(p *corev1.Pod) bool {
		if p.DeletionTimestamp != nil {
			return false // a terminating pod leaves the Service's endpoints
		}
		if len(selectors) == 0 {
			return true
		}
		return slices.ContainsFunc(selectors, func(sel map[string]string) bool {
			for k, v := range sel {
				if got, ok := p.Labels[k]; !ok || got != v {
					return false
				}
			}
			return true
		})
	}

	played := make([][]*corev1.Pod, len(a.Versions))
	routedCount := make([]int, len(a.Versions))
	shared := 0
	for _, p := range pods {
		if p.Labels[labelApp] != a.Name {
			continue
		}
		vi := slices.IndexFunc(a.Versions, func(v Version) bool { return v.Version == p.Labels[labelVersion] })
		if vi < 0 || !podReady(p) {
			continue
		}
		if _, _, ok := scrapeTarget(p); !ok {
			continue
		}
		played[vi] = append(played[vi], p)
		if routed(p) {
			routedCount[vi]++
			if a.Versions[vi].RPS == nil {
				shared++
			}
		}
	}

	var out []clusterPod
	for vi, v := range a.Versions {
		slices.SortFunc(played[vi], compareByAge)
		var perPod float64
		switch {
		case v.RPS != nil && routedCount[vi] > 0:
			perPod = *v.RPS / float64(routedCount[vi])
		case v.RPS == nil && shared > 0:
			perPod = a.RPS / float64(shared)
		}
		for i, p := range played[vi] {
			address, path, _ := scrapeTarget(p)
			spec := versionSpec(a, v, i)
			if routed(p) {
				spec.rps = perPod
			}
			out = append(out, clusterPod{
				id:           podID(p),
				name:         p.Name,
				templateHash: p.Labels[labelTemplate],
				address:      address,
				path:         path,
				spec:         spec,
			})
		}
	}
	return out
}

// versionSpec is the behaviour of pod i of version v, without its rate.
func versionSpec(a App, v Version, i int) podSpec {
	spec := podSpec{
		key:       podKey{namespace: a.Namespace, app: a.Name, version: v.Version, index: i},
		errorRate: v.ErrorRate,
		latency:   fitLogNormal(v.Latency),
	}
	if o, ok := v.PodOverrides[i]; ok {
		if o.ErrorRate != nil {
			spec.errorRate = *o.ErrorRate
		}
		if o.Latency != nil {
			spec.latency = fitLogNormal(*o.Latency)
		}
	}
	return spec
}

// podID identifies a pod incarnation: a pod deleted and created again under its name is another
// process with fresh counters. The name stands in for objects without a UID, as fakes make.
func podID(p *corev1.Pod) string {
	if p.UID != "" {
		return string(p.UID)
	}
	return "name:" + p.Namespace + "/" + p.Name
}

// compareByAge orders pods by creation time, then name, so that indexes stay put as pods are added.
func compareByAge(a, b *corev1.Pod) int {
	return cmp.Or(
		a.CreationTimestamp.Time.Compare(b.CreationTimestamp.Time),
		cmp.Compare(a.Name, b.Name),
	)
}

// podReady reports whether the pod's Ready condition is true.
func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// scrapeTarget returns the address and path Prometheus scrapes for the pod, as the usual
// kubernetes-pods relabelling makes them, or false when Prometheus would not scrape it.
func scrapeTarget(p *corev1.Pod) (address, path string, ok bool) {
	if p.Annotations[annotationScrape] != "true" || net.ParseIP(p.Status.PodIP) == nil {
		return "", "", false
	}
	port, err := strconv.Atoi(p.Annotations[annotationPort])
	if err != nil || port < 1 || port > 65535 {
		return "", "", false
	}
	path = p.Annotations[annotationPath]
	switch {
	case path == "":
		path = defaultMetricsPath
	case !strings.HasPrefix(path, "/"):
		path = "/" + path
	}
	return net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port)), path, true
}
