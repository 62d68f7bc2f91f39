{{/*
Names and labels shared by every template. Object names are
"<fullname>-<component>"; labels follow app.kubernetes.io conventions.
*/}}

{{- define "moderation.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* "<release>-<chart>", or the release name alone when it already holds the chart name. */}}
{{- define "moderation.fullname" -}}
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

{{- define "moderation.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "moderation.labels" -}}
helm.sh/chart: {{ include "moderation.chart" . }}
app.kubernetes.io/name: {{ include "moderation.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: moderation-platform
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component: pass (dict "root" $ "component" "gateway"). */}}
{{- define "moderation.selectorLabels" -}}
app.kubernetes.io/name: {{ include "moderation.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* All labels of one component's objects and pods. */}}
{{- define "moderation.componentLabels" -}}
{{ include "moderation.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* "repository:tag", the tag defaulting to appVersion; `latest` is refused. */}}
{{- define "moderation.image" -}}
{{- $tag := default .root.Chart.AppVersion .image.tag | toString }}
{{- if eq $tag "latest" }}
{{- fail (printf "image %s: the tag `latest` is not allowed; pin a version" .image.repository) }}
{{- end }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}

{{- define "moderation.gateway.fullname" -}}
{{- printf "%s-gateway" (include "moderation.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "moderation.triton.fullname" -}}
{{- printf "%s-triton" (include "moderation.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The traffic ConfigMap: a stable name (no content hash), so an edit reloads and never restarts. */}}
{{- define "moderation.traffic.configMapName" -}}
{{- printf "%s-traffic" (include "moderation.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "moderation.canaryState.claimName" -}}
{{- default (printf "%s-canary-state" (include "moderation.fullname" .)) .Values.canaryState.existingClaim }}
{{- end }}

{{/* Pod security context shared by the platform's pods (Pod Security "restricted"). */}}
{{- define "moderation.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .runAsUser }}
runAsGroup: {{ .runAsGroup }}
fsGroup: {{ .runAsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Container security context: no privilege, no capabilities, read-only root. */}}
{{- define "moderation.containerSecurityContext" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end }}

{{/* Where files live inside the gateway container. */}}
{{- define "moderation.gateway.paths" -}}
config: /etc/moderation-gateway/config
traffic: /etc/moderation-gateway/traffic
keys: /etc/moderation-gateway/keys
auditKey: /var/run/secrets/moderation/audit-key
audit: /var/lib/moderation/audit
canary: /var/lib/moderation/canary
{{- end }}

{{/*
Argo CD sync wave (namespace -3, configuration -2, Triton -1, gateway 0,
custom resources 1). Custom resources also skip the dry run, so the first sync
succeeds even when their CRDs arrive in the same sync.
Pass (dict "wave" "-2") or (dict "wave" "1" "customResource" true).
*/}}
{{- define "moderation.argocd" -}}
argocd.argoproj.io/sync-wave: {{ .wave | quote }}
{{- if .customResource }}
argocd.argoproj.io/sync-options: SkipDryRunOnMissingResource=true
{{- end }}
{{- end }}
