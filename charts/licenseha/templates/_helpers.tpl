{{/*
Name prefix of every object: the release name when it contains the chart
name, otherwise <release>-<chart>. The kustomize manifests in config/ use the
prefix "licenseha" (test/manifests compares both).
*/}}
{{- define "licenseha.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of the operator's Deployment, ServiceAccount, PDB and ServiceMonitor. */}}
{{- define "licenseha.operatorName" -}}
{{ include "licenseha.fullname" . }}-operator
{{- end }}

{{/* Name of the operator's ServiceAccount, created by the chart or not. */}}
{{- define "licenseha.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "licenseha.operatorName" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "licenseha.selectorLabels" -}}
app.kubernetes.io/name: {{ default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "licenseha.labels" -}}
{{ include "licenseha.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "licenseha.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* Name of the ConfigMap with the trusted keys; empty when there is none. */}}
{{- define "licenseha.trustedKeysConfigMap" -}}
{{- if .Values.trustedKeys.existingConfigMap }}
{{- .Values.trustedKeys.existingConfigMap }}
{{- else if .Values.trustedKeys.pem }}
{{- include "licenseha.fullname" . }}-trusted-keys
{{- end }}
{{- end }}
