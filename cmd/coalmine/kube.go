package main

import (
	"flag"
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// kubeFlags are kubectl's: --kubeconfig, --context, and -n/--namespace.
type kubeFlags struct {
	kubeconfig, context, namespace string
	// qps and burst bound the client's requests to the API server; 0 keeps client-go's.
	qps   float64
	burst int
}

func (k *kubeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
	fs.StringVar(&k.context, "context", "", "kubeconfig context to use")
	fs.StringVar(&k.namespace, "n", "", "namespace of the release (default: the policy's spec.target.namespace)")
	fs.StringVar(&k.namespace, "namespace", "", "same as -n")
}

// config loads a client configuration the way kubectl does, falling back to in-cluster.
func (k *kubeFlags) config() (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if k.kubeconfig != "" {
		rules.ExplicitPath = k.kubeconfig
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: k.context}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
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
