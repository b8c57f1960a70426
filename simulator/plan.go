package simulator

// podSpec is what a scenario asks of one pod.
type podSpec struct {
	key       podKey
	rps       float64
	errorRate float64
	latency   logNormal
}

// plan lists the pods a scenario asks for, in scenario order. An app's RPS is split evenly over
// the pods of the versions without their own RPS; a version with its own RPS splits that over its
// pods.
func plan(s Scenario) []podSpec {
	var specs []podSpec
	for _, a := range s.Apps {
		shared := 0
		for _, v := range a.Versions {
			if v.RPS == nil {
				shared += v.Pods
			}
		}
		for _, v := range a.Versions {
			var perPod float64
			switch {
			case v.RPS != nil && v.Pods > 0:
				perPod = *v.RPS / float64(v.Pods)
			case v.RPS == nil && shared > 0:
				perPod = a.RPS / float64(shared)
			}
			for i := range v.Pods {
				spec := podSpec{
					key:       podKey{namespace: a.Namespace, app: a.Name, version: v.Version, index: i},
					rps:       perPod,
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
				specs = append(specs, spec)
			}
		}
	}
	return specs
}
