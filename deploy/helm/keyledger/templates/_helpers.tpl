{{- define "keyledger.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "keyledger.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "keyledger.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "keyledger.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "keyledger.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Variables that carry a secret must come from a Secret (secretEnv), never from the
ConfigMap: a ConfigMap is readable by anyone who may read the namespace's config.
*/}}
{{- define "keyledger.secretVariables" -}}
KEYLEDGER_MASTER_KEY KEYLEDGER_MASTER_KEY_FILE KEYLEDGER_DATABASE_URL KEYLEDGER_WEBHOOK_URL KEYLEDGER_SMTP_URL KEYLEDGER_OIDC_CLIENT_SECRET KEYLEDGER_METRICS_TOKEN KEYLEDGER_TOKEN
{{- end -}}
