package sandbox

import (
	"fmt"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// JobName is the scrape job of the targets from PrometheusOptions.FileSDFiles.
const JobName = "pods"

// KubernetesJobName is the scrape job of the pods discovered through
// PrometheusOptions.KubernetesSDKubeconfig.
const KubernetesJobName = "kubernetes-pods"

// maxScrapeTimeout caps the scrape timeout for long intervals, as
// Prometheus' own default (10s) does.
const maxScrapeTimeout = 10 * time.Second

// The types below are the subset of Prometheus' configuration file that the
// sandbox writes; importing prometheus/config would pull in every discovery.
type promConfig struct {
	Global        globalConfig   `yaml:"global"`
	ScrapeConfigs []scrapeConfig `yaml:"scrape_configs,omitempty"`
}

type globalConfig struct {
	ScrapeInterval     model.Duration `yaml:"scrape_interval"`
	ScrapeTimeout      model.Duration `yaml:"scrape_timeout"`
	EvaluationInterval model.Duration `yaml:"evaluation_interval"`
}

type scrapeConfig struct {
	JobName             string               `yaml:"job_name"`
	HonorLabels         bool                 `yaml:"honor_labels"`
	FileSDConfigs       []fileSDConfig       `yaml:"file_sd_configs,omitempty"`
	KubernetesSDConfigs []kubernetesSDConfig `yaml:"kubernetes_sd_configs,omitempty"`
	RelabelConfigs      []relabelConfig      `yaml:"relabel_configs,omitempty"`
}

type kubernetesSDConfig struct {
	Role           string `yaml:"role"`
	KubeconfigFile string `yaml:"kubeconfig_file"`
}

type relabelConfig struct {
	SourceLabels []string `yaml:"source_labels,flow,omitempty"`
	Regex        string   `yaml:"regex,omitempty"`
	TargetLabel  string   `yaml:"target_label,omitempty"`
	Replacement  string   `yaml:"replacement,omitempty"`
	Action       string   `yaml:"action,omitempty"`
}

// kubernetesPodsRelabel is the usual kubernetes-pods relabelling, as in
// Prometheus' own example configuration for Kubernetes.
var kubernetesPodsRelabel = []relabelConfig{
	{SourceLabels: []string{"__meta_kubernetes_pod_annotation_prometheus_io_scrape"}, Regex: "true", Action: "keep"},
	// Finished and not yet started pods have nothing to scrape.
	{SourceLabels: []string{"__meta_kubernetes_pod_phase"}, Regex: "Pending|Succeeded|Failed", Action: "drop"},
	{SourceLabels: []string{"__meta_kubernetes_pod_annotation_prometheus_io_path"}, Regex: "(.+)", TargetLabel: "__metrics_path__"},
	{
		SourceLabels: []string{"__meta_kubernetes_pod_ip", "__meta_kubernetes_pod_annotation_prometheus_io_port"},
		Regex:        `(.+);(\d+)`, Replacement: "$1:$2", TargetLabel: "__address__",
	},
	{Regex: "__meta_kubernetes_pod_label_(.+)", Action: "labelmap"},
	{SourceLabels: []string{"__meta_kubernetes_namespace"}, TargetLabel: "namespace"},
	{SourceLabels: []string{"__meta_kubernetes_pod_name"}, TargetLabel: "pod"},
}

type fileSDConfig struct {
	Files           []string       `yaml:"files"`
	RefreshInterval model.Duration `yaml:"refresh_interval"`
}

// renderConfig returns prometheus.yml for o, whose defaults are filled in.
func renderConfig(o PrometheusOptions) ([]byte, error) {
	timeout := min(o.ScrapeInterval, maxScrapeTimeout)
	c := promConfig{
		Global: globalConfig{
			ScrapeInterval:     model.Duration(o.ScrapeInterval),
			ScrapeTimeout:      model.Duration(timeout),
			EvaluationInterval: model.Duration(o.ScrapeInterval),
		},
	}
	if len(o.FileSDFiles) > 0 {
		c.ScrapeConfigs = []scrapeConfig{{
			JobName: JobName,
			// Target labels (namespace, app, version, pod) must win over the
			// app's own, as with the usual kubernetes-pods job.
			HonorLabels: false,
			FileSDConfigs: []fileSDConfig{{
				Files: o.FileSDFiles,
				// Prometheus also watches the files with inotify; the refresh
				// is the fallback that bounds how stale targets can get.
				RefreshInterval: model.Duration(time.Second),
			}},
		}}
	}
	if o.KubernetesSDKubeconfig != "" {
		c.ScrapeConfigs = append(c.ScrapeConfigs, scrapeConfig{
			JobName: KubernetesJobName,
			KubernetesSDConfigs: []kubernetesSDConfig{{
				Role:           "pod",
				KubeconfigFile: o.KubernetesSDKubeconfig,
			}},
			RelabelConfigs: kubernetesPodsRelabel,
		})
	}
	b, err := yaml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("render prometheus.yml: %w", err)
	}
	return b, nil
}
