{{- define "waygate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "waygate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "waygate.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "waygate.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "waygate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "waygate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "waygate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "waygate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "waygate.secretName" -}}
{{- default (include "waygate.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "waygate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "waygate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* A value from the values file, else the one already in the release's Secret (so an
upgrade keeps generated keys), else a fresh random one. */}}
{{- define "waygate.keep" -}}
{{- $ctx := index . 0 -}}{{- $key := index . 1 -}}{{- $given := index . 2 -}}{{- $fresh := index . 3 -}}
{{- $old := lookup "v1" "Secret" $ctx.Release.Namespace (include "waygate.fullname" $ctx) -}}
{{- if $given -}}
{{- $given -}}
{{- else if and $old $old.data (hasKey $old.data $key) -}}
{{- index $old.data $key | b64dec -}}
{{- else -}}
{{- $fresh -}}
{{- end -}}
{{- end -}}
