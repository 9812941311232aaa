{{/*
Names and labels shared by every template.
*/}}

{{/* The chart's name, or nameOverride. */}}
{{- define "hwmatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every resource name: fullnameOverride, else release-chart (only the release
name when it already contains the chart name). 63 characters at most (DNS label).
*/}}
{{- define "hwmatch.fullname" -}}
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

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "hwmatch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "hwmatch.labels" -}}
helm.sh/chart: {{ include "hwmatch.chart" . }}
{{ include "hwmatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hwmatch
{{- end }}

{{/* Labels that select the operator pod (immutable in a Deployment: never add to them). */}}
{{- define "hwmatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hwmatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The operator's ServiceAccount name. */}}
{{- define "hwmatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "hwmatch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator image: repository@digest when a digest is given, else repository:tag (tag defaults to the appVersion). */}}
{{- define "hwmatch.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* Whether to render the ServiceMonitor: "true", or "auto" and the cluster serves the kind. */}}
{{- define "hwmatch.serviceMonitorEnabled" -}}
{{- $mode := toString .Values.metrics.serviceMonitor.enabled }}
{{- if or (eq $mode "true") (and (eq $mode "auto") (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor")) }}true{{ end }}
{{- end }}

{{/* The cluster's own namespaces: the operator never runs trials there (SYSTEM_NAMESPACES in controller/config.py). */}}
{{- define "hwmatch.systemNamespaces" -}}
kube-system,kube-public,kube-node-lease
{{- end }}

{{/*
Refuse at install what the operator would refuse at start: watching a namespace where no trial may run.
*/}}
{{- define "hwmatch.checkNamespaces" -}}
{{- $denied := concat (splitList "," (include "hwmatch.systemNamespaces" .)) .Values.operator.deniedNamespaces }}
{{- range .Values.operator.watchNamespaces }}
{{- if has . $denied }}
{{- fail (printf "operator.watchNamespaces: %s is denied (trials never run in %s); watch the namespaces where your sweeps are instead" . (join ", " $denied)) }}
{{- end }}
{{- end }}
{{- end }}
