{{/*
Names. Kubernetes names are limited to 63 characters; KubeRay appends suffixes (e.g. "-serve-svc",
"-raycluster-xxxxx") to the RayService name, so the base name is kept to 40 characters.
*/}}
{{- define "qwen-serve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" }}
{{- end }}

{{- define "qwen-serve.fullname" -}}
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

{{- define "qwen-serve.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: stable across upgrades, used by PDBs and monitors. */}}
{{- define "qwen-serve.selectorLabels" -}}
app.kubernetes.io/name: {{ include "qwen-serve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "qwen-serve.labels" -}}
helm.sh/chart: {{ include "qwen-serve.chart" . }}
{{ include "qwen-serve.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: qwen-serve
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The Serve service (RayService.spec.serveService): the OpenAI endpoint. */}}
{{- define "qwen-serve.serveServiceName" -}}
{{- printf "%s-serve" (include "qwen-serve.fullname" .) }}
{{- end }}

{{- define "qwen-serve.modelCacheClaim" -}}
{{- if .Values.modelCache.existingClaim }}
{{- .Values.modelCache.existingClaim }}
{{- else }}
{{- printf "%s-model-cache" (include "qwen-serve.fullname" .) }}
{{- end }}
{{- end }}

{{/* Image reference; the tag defaults to <appVersion>-<flavor> (pinned, never "latest"). */}}
{{- define "qwen-serve.image" -}}
{{- $tag := .Values.image.tag | default (printf "%s-%s" .Chart.AppVersion .Values.image.flavor) }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* Environment shared by head and worker containers. Secrets are only referenced, never inlined. */}}
{{- define "qwen-serve.env" -}}
- name: HF_HOME
  value: {{ .Values.modelCache.mountPath | quote }}
{{- with .Values.monitoring.grafanaHost }}
- name: RAY_GRAFANA_HOST
  value: {{ . | quote }}
{{- end }}
{{- with .Values.monitoring.prometheusHost }}
- name: RAY_PROMETHEUS_HOST
  value: {{ . | quote }}
{{- end }}
{{- with .Values.hfToken.existingSecret }}
- name: HF_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.hfToken.key }}
- name: HUGGING_FACE_HUB_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.hfToken.key }}
{{- end }}
{{- with .Values.apiKeys.existingSecret }}
- name: {{ dig "security" "api_keys_env" "" $.Values.fleet | default "QWEN_SERVE_API_KEYS" }}
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.apiKeys.key }}
{{- end }}
{{- with .Values.engineSecret.existingSecret }}
- name: QWEN_SERVE_ENGINE_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.engineSecret.key }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Volumes shared by head and worker pods; $shm is the /dev/shm size of this pod. */}}
{{- define "qwen-serve.volumes" -}}
{{- $root := index . 0 }}
{{- $shm := index . 1 -}}
- name: dshm
  emptyDir:
    medium: Memory
    sizeLimit: {{ $shm }}
- name: ray-tmp
  emptyDir: {}
- name: model-cache
{{- if $root.Values.modelCache.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "qwen-serve.modelCacheClaim" $root }}
{{- else }}
  emptyDir: {}
{{- end }}
{{- with $root.Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "qwen-serve.volumeMounts" -}}
- name: dshm
  mountPath: /dev/shm
- name: ray-tmp
  mountPath: /tmp/ray
- name: model-cache
  mountPath: {{ .Values.modelCache.mountPath }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Resources of a Ray container; GPUs go into requests AND limits (device plugins require equality). */}}
{{- define "qwen-serve.resources" -}}
{{- $root := index . 0 }}
{{- $res := deepCopy (index . 1) }}
{{- $gpus := int (index . 2) }}
{{- if gt $gpus 0 }}
{{- $req := get $res "requests" | default dict }}
{{- $lim := get $res "limits" | default dict }}
{{- $_ := set $req $root.Values.gpuResourceName (toString $gpus) }}
{{- $_ := set $lim $root.Values.gpuResourceName (toString $gpus) }}
{{- $_ := set $res "requests" $req }}
{{- $_ := set $res "limits" $lim }}
{{- end }}
{{- toYaml $res }}
{{- end }}
