package main

import (
	"context"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/coalmine/coalmine/actuator"
	"github.com/coalmine/coalmine/analyzer"
	"github.com/coalmine/coalmine/policies"
)

// withVersions is p with the versions it does not pin read from its Deployments on the cluster
// kf reaches: a report judges the release as it stands.
func withVersions(ctx context.Context, kf *kubeFlags, p *policies.Policy, logger zerolog.Logger) (*policies.Policy, error) {
	if p.Pinned() {
		return p, nil
	}
	client, err := kf.client()
	if err != nil {
		return nil, fmt.Errorf("the policy does not pin its versions, and the cluster to read them from: %w", err)
	}
	rel, err := actuator.NewRelease(client, p, logger)
	if err != nil {
		return nil, err
	}
	v, err := rel.Versions(ctx, true)
	if err != nil {
		return nil, fmt.Errorf("read the versions from the Deployments: %w", err)
	}
	if !v.Releasing() {
		return nil, fmt.Errorf("%w: the Deployments run baseline %q and canary %q (the policy does not pin spec.target.*.version)", analyzer.ErrNoCanary, v.Baseline, v.Canary)
	}
	return p.WithVersions(v.Baseline, v.Canary), nil
}
