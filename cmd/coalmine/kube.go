package main

import (
	"fmt"

	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// kubeFlags are kubectl's own connection flags (cli-runtime's): --kubeconfig, --context,
// -n/--namespace, --server, --token, --as, --request-timeout and the rest, loaded the way kubectl
// loads them, falling back to in-cluster.
type kubeFlags struct {
	cf *genericclioptions.ConfigFlags
	// qps and burst bound the client's requests to the API server; 0 keeps client-go's.
	qps   float64
	burst int
}

// register adds the flags to fs. namespaced is false for a command that takes no -n (the
// daemon, which has --namespaces).
func (k *kubeFlags) register(fs *pflag.FlagSet, namespaced bool) {
	k.cf = genericclioptions.NewConfigFlags(false)
	if !namespaced {
		k.cf.Namespace = nil
	}
	k.cf.AddFlags(fs)
	if namespaced {
		fs.Lookup("namespace").Usage = "namespace of the release (default: the policy's spec.target.namespace)"
	}
}

// namespace is -n's value: "" when not given (the kubeconfig's namespace does not override the
// policy's).
func (k *kubeFlags) namespace() string {
	if k.cf == nil || k.cf.Namespace == nil {
		return ""
	}
	return *k.cf.Namespace
}

// given reports whether any flag naming a cluster was set: report reads the cluster only then.
func (k *kubeFlags) given(fs *pflag.FlagSet) bool {
	for _, name := range []string{"kubeconfig", "context", "cluster", "user", "server", "token"} {
		if f := fs.Lookup(name); f != nil && f.Changed {
			return true
		}
	}
	return false
}

// config loads a client configuration the way kubectl does, falling back to in-cluster.
func (k *kubeFlags) config() (*rest.Config, error) {
	if k.cf == nil {
		return nil, fmt.Errorf("kubeconfig: no connection flags")
	}
	cfg, err := k.cf.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "coalmine"
	if k.qps > 0 {
		cfg.QPS = float32(k.qps)
	}
	if k.burst > 0 {
		cfg.Burst = k.burst
	}
	return cfg, nil
}

func (k *kubeFlags) client() (kubernetes.Interface, error) {
	cfg, err := k.config()
	if err != nil {
		return nil, err
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return c, nil
}
