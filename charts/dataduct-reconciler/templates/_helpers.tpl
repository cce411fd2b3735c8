{{/* Names and labels shared by the chart's objects. */}}

{{- define "reconciler.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "reconciler.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "reconciler.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "reconciler.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "reconciler.selectorLabels" -}}
app.kubernetes.io/name: {{ include "reconciler.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "reconciler.labels" -}}
{{ include "reconciler.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "reconciler.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "reconciler.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "reconciler.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The --overrides file: the installation's values over reconciler.yaml. */}}
{{- define "reconciler.overrides" -}}
{{- $out := dict -}}
{{- with .Values.installation }}{{ $_ := set $out "installation" . }}{{ end -}}
{{- $envs := dict -}}
{{- range $name, $env := .Values.environments -}}
{{- $one := dict -}}
{{- if hasKey $env "region" }}{{ $_ := set $one "region" $env.region }}{{ end -}}
{{- if hasKey $env "roleArn" }}{{ $_ := set $one "role_arn" $env.roleArn }}{{ end -}}
{{- if hasKey $env "endpointUrl" }}{{ $_ := set $one "endpoint_url" $env.endpointUrl }}{{ end -}}
{{- with $env.policy }}{{ $_ := set $one "policy" . }}{{ end -}}
{{- with $env.target }}{{ $_ := set $one "target" . }}{{ end -}}
{{- with $env.airflow -}}
{{- $af := dict -}}
{{- with .dags }}{{ $_ := set $af "dags" . }}{{ end -}}
{{- with .parseTimeout }}{{ $_ := set $af "parse_timeout" . }}{{ end -}}
{{- with .awsConnId }}{{ $_ := set $af "aws_conn_id" . }}{{ end -}}
{{- with .connections }}{{ $_ := set $af "connections" . }}{{ end -}}
{{- $api := dict -}}
{{- with .mwaa }}{{ $_ := set $api "mwaa" . }}{{ end -}}
{{- with .apiUrl }}{{ $_ := set $api "url" . }}{{ end -}}
{{- with .tokenEnv }}{{ $_ := set $api "token_env" . }}{{ end -}}
{{- if $api }}{{ $_ := set $af "api" $api }}{{ end -}}
{{- $_ := set $one "airflow" $af -}}
{{- end -}}
{{- $_ := set $envs $name $one -}}
{{- end -}}
{{- if $envs }}{{ $_ := set $out "environments" $envs }}{{ end -}}
{{- toYaml $out -}}
{{- end -}}
