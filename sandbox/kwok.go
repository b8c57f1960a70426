package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// UnreadyLabel is a pod label: kwok runs a pod labelled
// coalmine.dev/sandbox-unready: "true" (phase Running, a pod IP) but never
// makes it Ready, as if its readiness probe failed. Put it in a Deployment's
// pod template to stall a rollout. Removing the label from a running pod
// makes it Ready.
const UnreadyLabel = "coalmine.dev/sandbox-unready"

// Kwok's fake node, on which every pod of the cluster runs.
const (
	NodeName = "kwok-node-0"
	// kwokNodeAnnotation is what kwok's --manage-nodes-with-annotation-selector matches.
	kwokNodeAnnotation = "kwok.x-k8s.io/node"
)

// kwokStageFiles are the stages of kwok's kustomize/stage that
// scripts/install-kube.sh copies next to the kwok binary.
var kwokStageFiles = []string{
	"node-initialize.yaml", "node-heartbeat.yaml",
	"pod-ready.yaml", "pod-complete.yaml", "pod-delete.yaml",
}

// unreadyStage moves a pending pod with UnreadyLabel to Running with an IP
// but with Ready and ContainersReady False. Being Running, it no longer
// matches pod-ready, which only takes Pending pods.
const unreadyStage = `apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: coalmine-pod-unready
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.metadata.labels["` + UnreadyLabel + `"]'
      operator: 'In'
      values:
      - 'true'
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Pending'
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        type: Ready
        reason: ContainersNotReady
        message: "readiness probe failed (` + UnreadyLabel + `)"
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        type: ContainersReady
        reason: ContainersNotReady
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        started: true
        restartCount: 0
        state:
          running:
            startedAt: {{ $now | Quote }}
      {{ end }}
      {{ $hostIPs := NodeIPsWith .spec.nodeName }}
      {{ with $hostIPs }}
      hostIP: {{ index . 0 | Quote }}
      hostIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
      {{ $podIPs := PodIPsWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) }}
      {{ with $podIPs }}
      podIP: {{ index . 0 | Quote }}
      podIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
      phase: Running
      startTime: {{ $now | Quote }}
`

// recoverStage makes a running, unready pod Ready once it loses
// UnreadyLabel. It keeps the pod's IPs: kwok would hand out new ones.
const recoverStage = `apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: coalmine-pod-recover
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.metadata.labels["` + UnreadyLabel + `"]'
      operator: 'NotIn'
      values:
      - 'true'
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Running'
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: 'NotIn'
      values:
      - 'True'
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: ContainersReady
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: true
        started: true
        restartCount: 0
        state:
          running:
            startedAt: {{ $now | Quote }}
      {{ end }}
`

// kwokConfig returns kwok's --config: the stages from dir, with pod-ready
// changed to leave pods with UnreadyLabel alone, plus unreadyStage and
// recoverStage.
func kwokConfig(dir string) ([]byte, error) {
	var docs [][]byte
	for _, f := range kwokStageFiles {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return nil, fmt.Errorf("kwok stage: %w", err)
		}
		if f == "pod-ready.yaml" {
			var err error
			if b, err = podReadyStage(b); err != nil {
				return nil, fmt.Errorf("kwok stage %s: %w", f, err)
			}
		}
		docs = append(docs, b)
	}
	docs = append(docs, []byte(unreadyStage), []byte(recoverStage))
	for i, d := range docs {
		docs[i] = bytes.TrimSpace(d)
	}
	return append(bytes.Join(docs, []byte("\n---\n")), '\n'), nil
}

// podReadyStage adds to kwok's pod-ready stage a selector that leaves pods
// with UnreadyLabel "true" to unreadyStage. It is NotIn rather than
// DoesNotExist so that a label "false" still means Ready.
func podReadyStage(b []byte) ([]byte, error) {
	var stage map[string]any
	if err := yaml.Unmarshal(b, &stage); err != nil {
		return nil, err
	}
	spec, _ := stage["spec"].(map[string]any)
	sel, _ := spec["selector"].(map[string]any)
	exprs, _ := sel["matchExpressions"].([]any)
	if exprs == nil {
		return nil, fmt.Errorf("no spec.selector.matchExpressions")
	}
	sel["matchExpressions"] = append(slices.Clone(exprs), map[string]any{
		"key":      `.metadata.labels["` + UnreadyLabel + `"]`,
		"operator": "NotIn",
		"values":   []any{"true"},
	})
	return yaml.Marshal(stage)
}

// createKwokNode creates the Node kwok manages, with room for any test, and
// makes sure nothing keeps pods off it: kube-apiserver's
// TaintNodesByCondition admission adds node.kubernetes.io/not-ready, which
// only the node-lifecycle controller (not run here) would remove.
func createKwokNode(ctx context.Context, client kubernetes.Interface) error {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("1000"),
		corev1.ResourceMemory: resource.MustParse("1Ti"),
		corev1.ResourcePods:   resource.MustParse("1000"),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        NodeName,
			Annotations: map[string]string{kwokNodeAnnotation: "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels: map[string]string{
				"type":                   "kwok",
				"kubernetes.io/hostname": NodeName,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
			},
		},
		Status: corev1.NodeStatus{Capacity: capacity, Allocatable: capacity},
	}
	if _, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create node %s: %w", NodeName, err)
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		taints := slices.DeleteFunc(slices.Clone(n.Spec.Taints), func(t corev1.Taint) bool {
			return t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable
		})
		if len(taints) == len(n.Spec.Taints) && !n.Spec.Unschedulable {
			return nil
		}
		n = n.DeepCopy()
		n.Spec.Taints, n.Spec.Unschedulable = taints, false
		_, err = client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("untaint node %s: %w", NodeName, err)
	}
	return nil
}

// nodeReady reports whether the kwok node has condition Ready True.
func nodeReady(ctx context.Context, client kubernetes.Interface) (bool, error) {
	n, err := client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue, nil
		}
	}
	return false, nil
}
