{{/*
Names and labels. The chart deploys up to three Deployments (components ingest, processor,
sweep; or one component "combined"), all labelled app.kubernetes.io/name=hookd and
app.kubernetes.io/instance=<release>, told apart by app.kubernetes.io/component.
*/}}

{{- define "hookd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "hookd.fullname" -}}
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

{{- define "hookd.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "hookd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hookd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "hookd.labels" -}}
helm.sh/chart: {{ include "hookd.chart" . }}
{{ include "hookd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hookd
{{- end -}}

{{- define "hookd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "hookd.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "hookd.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
The components to deploy, as a list of dicts {name, roles, values}: the roles go into
HOOKD_ROLES, values is the component's section of values.yaml. The ingest component (or
combined) is the one behind the Service.
*/}}
{{- define "hookd.components" -}}
{{- if eq .Values.mode "combined" -}}
- name: combined
  roles: ingest,process,sweep
  ingest: true
{{- else if eq .Values.mode "split" -}}
- name: ingest
  roles: ingest
  ingest: true
- name: processor
  roles: process
  ingest: false
- name: sweep
  roles: sweep
  ingest: false
{{- else -}}
{{- fail (printf "mode: %q is not a mode; use split (one Deployment per role) or combined (every role in one Deployment)" .Values.mode) -}}
{{- end -}}
{{- end -}}

{{/* The component whose pods serve the webhook: ingest, or combined. */}}
{{- define "hookd.webhookComponent" -}}
{{- if eq .Values.mode "combined" -}}combined{{- else -}}ingest{{- end -}}
{{- end -}}

{{/*
HOOKD_NATS_URL: the NATS dependency's client Service when nats.enabled, else nats.url. The
dependency's Service is named like its fullname (nats chart 1.x: service.name).
*/}}
{{- define "hookd.natsURL" -}}
{{- if .Values.nats.enabled -}}
{{- $name := default "nats" .Values.nats.nameOverride -}}
{{- $svc := "" -}}
{{- if .Values.nats.fullnameOverride -}}
{{- $svc = .Values.nats.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains $name .Release.Name -}}
{{- $svc = .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $svc = printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- printf "nats://%s.%s.svc:4222" $svc .Release.Namespace -}}
{{- else -}}
{{- required "nats.url: set the URL of your NATS (nats://host:4222, comma-separated for a cluster) or set nats.enabled=true to install one with this chart" .Values.nats.url -}}
{{- end -}}
{{- end -}}

{{/* Fails with what to set when the GitHub App settings are missing. */}}
{{- define "hookd.validate" -}}
{{- $_ := required "github.appId: set the GitHub App's ID (the number on the app's settings page)" .Values.github.appId -}}
{{- $_ := required "github.existingSecret: create a Secret with keys privateKey and webhookSecret (kubectl create secret generic hookd-github --from-file=privateKey=app.pem --from-literal=webhookSecret=...) and set github.existingSecret to its name" .Values.github.existingSecret -}}
{{- if and .Values.nats.enabled .Values.nats.url -}}
{{- fail "nats.url: is set while nats.enabled is true; set nats.enabled=false to use your own NATS, or leave nats.url empty to use the one this chart installs" -}}
{{- end -}}
{{- end -}}
