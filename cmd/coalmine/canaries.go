package main

import (
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/coalmine/coalmine/actuator"
	"github.com/coalmine/coalmine/analyzer"
	"github.com/coalmine/coalmine/policies"
)

// canaryFlags pick the canaries a status or control command acts on: CanaryPolicy objects by
// name (or every one in the namespace, or with -A in every namespace), or policy files (-f).
type canaryFlags struct {
	kube          kubeFlags
	policy        policyFlags
	allNamespaces bool
}

func (f *canaryFlags) register(cmd *cobra.Command, all bool) {
	fs := cmd.Flags()
	f.kube.register(fs, true)
	fs.Lookup("namespace").Usage = "namespace of the CanaryPolicy objects (default: the kubeconfig's)"
	f.policy.register(fs)
	fs.Lookup("filename").Usage = "policy file or directory, instead of CanaryPolicy objects (repeatable)"
	if all {
		fs.BoolVarP(&f.allNamespaces, "all-namespaces", "A", false, "every namespace")
	}
}

var policyGVR = schema.GroupVersionResource{Group: policies.Group, Version: policies.Version, Resource: policies.Resource}

// canary is one policy's release on the cluster: the policy, its actuator and its record.
type canary struct {
	policy *policies.Policy
	rel    *actuator.Release
	// object is the CanaryPolicy object, nil for a file.
	object *unstructured.Unstructured
}

// canaries resolves the command's arguments to policies and their releases.
func (f *canaryFlags) canaries(ctx context.Context, stdin io.Reader, names []string, logger zerolog.Logger) ([]canary, kubernetes.Interface, error) {
	client, err := f.kube.client()
	if err != nil {
		return nil, nil, err
	}
	var out []canary
	if len(f.policy.files) > 0 {
		ps, err := f.policy.load(stdin, nil)
		if err != nil {
			return nil, nil, err
		}
		for _, p := range ps {
			if ns := f.kube.namespace(); ns != "" {
				p.Spec.Target.Namespace = ns
			}
			if len(names) > 0 && !slices.Contains(names, p.Metadata.Name) {
				continue
			}
			rel, err := actuator.NewRelease(client, p, logger)
			if err != nil {
				return nil, nil, err
			}
			out = append(out, canary{policy: p, rel: rel})
		}
		return out, client, nil
	}
	cfg, err := f.kube.config()
	if err != nil {
		return nil, nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes client: %w", err)
	}
	ns := ""
	if !f.allNamespaces {
		if ns, _, err = f.kube.cf.ToRawKubeConfigLoader().Namespace(); err != nil {
			return nil, nil, fmt.Errorf("kubeconfig: %w", err)
		}
	}
	var objs []unstructured.Unstructured
	if len(names) == 0 {
		list, err := dyn.Resource(policyGVR).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, nil, fmt.Errorf("list canarypolicies: %w", err)
		}
		objs = list.Items
	}
	for _, name := range names {
		o, err := dyn.Resource(policyGVR).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, nil, fmt.Errorf("canarypolicy %s/%s: %w", ns, name, err)
		}
		objs = append(objs, *o)
	}
	for i := range objs {
		o := &objs[i]
		p, err := policies.LoadObject(o.Object)
		if err != nil {
			out = append(out, canary{object: o}) // refused: its status says why
			continue
		}
		rel, err := actuator.NewRelease(client, p, logger)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, canary{policy: p, rel: rel, object: o})
	}
	return out, client, nil
}

// record reads the canary's record from the cluster: nil when no canary of it ever started.
func (c canary) record(ctx context.Context) (*analyzer.Progress, error) {
	if c.rel == nil {
		return nil, nil
	}
	raw, err := c.rel.Progress(ctx)
	if err != nil {
		return nil, err
	}
	return analyzer.DecodeProgress(raw, nil)
}
