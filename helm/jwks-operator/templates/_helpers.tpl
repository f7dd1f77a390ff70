{{/* Chart name. */}}
{{- define "jwks-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, prefixed to the chart name unless it already contains it. */}}
{{- define "jwks-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "jwks-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "jwks-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jwks-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "jwks-operator.labels" -}}
helm.sh/chart: {{ include "jwks-operator.chart" . }}
{{ include "jwks-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: jwks-operator
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "jwks-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "jwks-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "jwks-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* "true" when the replicas run with Kopf peering (HA), else empty. */}}
{{- define "jwks-operator.peering" -}}
{{- if gt (int .Values.replicaCount) 1 }}true{{ end }}
{{- end }}

{{/*
The operator's permissions, shared by the ClusterRole (all namespaces) and each Role (watched
namespaces). Exactly what the operator and Kopf request; tests/e2e/test_rbac.py compares it (default
values: no gateway outputs) with the requests of a whole e2e run.
*/}}
{{- define "jwks-operator.rules" -}}
# Kopf lists, then watches, the JwtSecrets; the operator never reads one by name. Patch: only its own
# finalizer (jwks.dev/release-outputs) on JwtSecrets with gateway outputs, merge-patched with the
# resourceVersion it was seen at.
- apiGroups: [jwks.dev]
  resources: [jwtsecrets]
  verbs: [list, watch, patch]
# Status is written through the subresource only (merge patch).
- apiGroups: [jwks.dev]
  resources: [jwtsecrets/status]
  verbs: [patch]
# Published ConfigMaps: read, written, deleted after a target change; watched (server-side label
# selector app.kubernetes.io/managed-by=jwks-operator) to repair hand edits. Also Space Cloud's
# project ConfigMap (outputs.spaceCloud), read and rewritten.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, update, delete]
# Secrets: spec.static.secretRef / caBundleRef sources are read by name; HMAC outputs and the nginx and
# kong outputs' Secrets are written and, when no longer needed, deleted. Never list or watch: the
# operator cannot enumerate Secrets.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create, update, delete]
# Warnings and repairs are recorded as Events on the JwtSecret (Kopf's own event posting is off).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- /* Gateway outputs, each only when its outputs.<gateway>.enabled is set. spaceCloud (ConfigMap),
nginx and kong's credentials (Secrets) need nothing beyond the ConfigMap and Secret rules above. */}}
{{- with .Values.outputs }}
{{- if .istio.enabled }}
# outputs.istio: RequestAuthentications created when absent, rewritten, deleted (ours only) when unused.
- apiGroups: [security.istio.io]
  resources: [requestauthentications]
  verbs: [get, create, update, delete]
{{- end }}
{{- if .envoyGateway.enabled }}
# outputs.envoyGateway: the user's SecurityPolicies are read and rewritten, never created or deleted.
- apiGroups: [gateway.envoyproxy.io]
  resources: [securitypolicies]
  verbs: [get, update]
{{- end }}
{{- if .kong.enabled }}
# outputs.kong: a named KongConsumer is read and rewritten to list the credential Secrets.
- apiGroups: [configuration.konghq.com]
  resources: [kongconsumers]
  verbs: [get, update]
{{- end }}
{{- end }}
{{- end }}

{{/* Kopf peering (HA): Kopf watches the peering objects and patches its keep-alive into ours. */}}
{{- define "jwks-operator.peeringRules" -}}
- apiGroups: [kopf.dev]
  resources: [{{ .resource }}]
  verbs: [list, watch]
- apiGroups: [kopf.dev]
  resources: [{{ .resource }}]
  resourceNames: [{{ .name }}]
  verbs: [patch]
{{- end }}

{{/* Checks the schema cannot express; deployment.yaml runs them. */}}
{{- define "jwks-operator.validate" -}}
{{- with .Values.refresh }}
{{- if gt (float64 .minInterval) (float64 .maxInterval) }}
{{- fail (printf "refresh.minInterval (%v) must not be greater than refresh.maxInterval (%v)" .minInterval .maxInterval) }}
{{- end }}
{{- end }}
{{- if and .Values.metrics.enabled (eq (int .Values.metrics.port) (int .Values.livenessProbe.port)) }}
{{- fail (printf "metrics.port and livenessProbe.port must differ (both are %v)" .Values.metrics.port) }}
{{- end }}
{{- if .Values.overlapCheck }}
{{- with include "jwks-operator.overlap" . }}
{{- fail . }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Several releases share a cluster only with disjoint watchNamespaces (README.md, "Scale out"): two
operators watching one namespace would both fetch and write its JwtSecrets' objects and status. Empty,
or the first overlap with another jwks-operator Deployment in the cluster (another release, or deploy/),
read from its container args: no --namespace watches all namespaces. Empty with `helm template`, which
sees no cluster; this release's own Deployment (an upgrade) is not another. Run unless overlapCheck is
off: Helm fails the render when the installer may not list Deployments in all namespaces.
*/}}
{{- define "jwks-operator.overlap" -}}
{{- $mine := .Values.watchNamespaces }}
{{- $found := "" }}
{{- range $other := dig "items" (list) (lookup "apps/v1" "Deployment" "" "") }}
{{- $labels := dig "metadata" "labels" (dict) $other }}
{{- $where := dig "metadata" "namespace" "" $other }}
{{- $release := get $labels "app.kubernetes.io/instance" }}
{{- $self := and (eq $where $.Release.Namespace) (eq $release $.Release.Name) }}
{{- if and (not $found) (eq (get $labels "app.kubernetes.io/part-of") "jwks-operator") (not $self) }}
{{- $theirs := list }}
{{- range $container := dig "spec" "template" "spec" "containers" (list) $other }}
{{- $args := $container.args | default list }}
{{- range $i, $arg := $args }}
{{- if hasPrefix "--namespace=" $arg }}
{{- $theirs = append $theirs (trimPrefix "--namespace=" $arg) }}
{{- else if and (eq $arg "--namespace") (lt (add1 $i) (len $args)) }}
{{- $theirs = append $theirs (index $args (add1 $i)) }}
{{- end }}
{{- end }}
{{- end }}
{{- $shared := list }}
{{- range $mine }}{{ if has . $theirs }}{{ $shared = append $shared . }}{{ end }}{{ end }}
{{- if or (not $mine) (not $theirs) $shared }}
{{- $ours := ternary (printf "[%s]" (join ", " $mine)) "[] (all namespaces)" (not (empty $mine)) }}
{{- $what := ternary (printf "namespaces %s" (join ", " $theirs)) "all namespaces" (not (empty $theirs)) }}
{{- $found = printf "watchNamespaces %s overlaps release %s (Deployment %s/%s), which watches %s: two jwks-operator releases must watch disjoint namespaces (README.md, \"Scale out\")" $ours (default "?" $release) $where $other.metadata.name $what }}
{{- end }}
{{- end }}
{{- end }}
{{- $found }}
{{- end }}

{{/* The JwtSecret CRD as the cluster has it, when it was installed otherwise than by this release (by
`kubectl apply -f crds/` or deploy/, as the Quick start does, or by another release): the chart leaves
it as it is, rather than fail the install on Helm's ownership check. Empty when there is none (and with
`helm template`, which sees no cluster), or when this release installed it. */}}
{{- define "jwks-operator.foreignCrd" -}}
{{- $live := lookup "apiextensions.k8s.io/v1" "CustomResourceDefinition" "" "jwtsecrets.jwks.dev" }}
{{- $annotations := dig "metadata" "annotations" (dict) $live }}
{{- $ours := and (eq (get $annotations "meta.helm.sh/release-name") .Release.Name) (eq (get $annotations "meta.helm.sh/release-namespace") .Release.Namespace) }}
{{- if and $live (not $ours) }}true{{ end }}
{{- end }}
