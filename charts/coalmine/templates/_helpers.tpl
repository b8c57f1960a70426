{{/* The chart's name, overridable. */}}
{{- define "coalmine.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The objects' name: the release's name when it contains the chart's (`helm install coalmine`
gives plain "coalmine", the names deploy/ uses), else <release>-<chart>.
*/}}
{{- define "coalmine.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "coalmine.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The pods' selector: set once, never changed (a Deployment's selector is immutable). */}}
{{- define "coalmine.selectorLabels" -}}
app.kubernetes.io/name: {{ include "coalmine.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "coalmine.labels" -}}
{{ include "coalmine.selectorLabels" . }}
app.kubernetes.io/version: {{ include "coalmine.imageTag" . | trunc 63 | quote }}
app.kubernetes.io/part-of: coalmine
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "coalmine.chart" . }}
{{- end -}}

{{- define "coalmine.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "coalmine.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image tag: image.tag, else the chart's appVersion. latest is refused. */}}
{{- define "coalmine.imageTag" -}}
{{- $tag := toString (default .Chart.AppVersion .Values.image.tag) -}}
{{- if eq $tag "latest" -}}
{{- fail "image.tag: latest is not allowed; name a coalmine version (or set image.digest)" -}}
{{- end -}}
{{- $tag -}}
{{- end -}}

{{- define "coalmine.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (include "coalmine.imageTag" .) -}}
{{- end -}}
{{- end -}}

{{/* Whether the daemon reads policy files from a ConfigMap (else CanaryPolicy objects). */}}
{{- define "coalmine.policyFiles" -}}
{{- if eq .Values.policies.source "files" -}}
true
{{- else if ne .Values.policies.source "crd" -}}
{{- fail (printf "policies.source: %q: want crd or files" (toString .Values.policies.source)) -}}
{{- end -}}
{{- end -}}

{{- define "coalmine.policiesConfigMap" -}}
{{- default (printf "%s-policies" (include "coalmine.fullname" .)) .Values.policies.existingConfigMap -}}
{{- end -}}

{{/*
The namespaces coalmine is confined to, validated: DNS labels, no duplicates. Empty means every
namespace.
*/}}
{{- define "coalmine.namespaces" -}}
{{- $seen := dict -}}
{{- range .Values.rbac.namespaces -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" (toString .)) -}}
{{- fail (printf "rbac.namespaces: %q is not a namespace name" (toString .)) -}}
{{- end -}}
{{- if hasKey $seen (toString .) -}}
{{- fail (printf "rbac.namespaces: %q is listed twice" (toString .)) -}}
{{- end -}}
{{- $_ := set $seen (toString .) true -}}
{{- end -}}
{{- join "," .Values.rbac.namespaces -}}
{{- end -}}

{{/*
The rules of the API calls `coalmine run` makes on the releases it drives: the same as
deploy/rbac.yaml's ClusterRole (see the reasons there), and the CanaryPolicy objects it watches
(get, list, watch) and reports progress on (update of the status subresource; never their spec).
Granted whatever policies.source is, so that switching it needs no other change. In a
ClusterRole, or in a Role per namespace of rbac.namespaces.
*/}}
{{- define "coalmine.rules" -}}
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
- apiGroups: ["coalmine.dev"]
  resources: ["canarypolicies"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["coalmine.dev"]
  resources: ["canarypolicies/status"]
  verbs: ["update"]
{{- end -}}

{{/* The PromQL label matchers of this release's coalmine series, for the alerts. */}}
{{- define "coalmine.metricSelector" -}}
{{- tpl .Values.monitoring.prometheusRule.selector . -}}
{{- end -}}
