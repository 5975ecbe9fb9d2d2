{{/*
Pod template of a Ray node (head or worker group). Arguments (dict):
  root: the chart context; group: the head or worker-group values; component: label value;
  container: container name; gpus: GPUs per pod; head: true for the head.
No probes: KubeRay injects liveness/readiness (and the Serve proxy check on workers) itself.
*/}}
{{- define "qwen-serve.podTemplate" -}}
{{- $root := .root }}
{{- $g := .group }}
{{- $v := $root.Values -}}
metadata:
  labels:
    {{- include "qwen-serve.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
    qwen-serve/ray-node: "true"
    {{- with $g.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with (merge (dict) ($g.annotations | default dict) $v.podAnnotations) }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with ($g.serviceAccountName | default $v.serviceAccountName) }}
  serviceAccountName: {{ . }}
  {{- end }}
  {{- with ($g.priorityClassName | default $v.priorityClassName) }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- if and (gt (int .gpus) 0) $v.runtimeClassName }}
  runtimeClassName: {{ $v.runtimeClassName }}
  {{- end }}
  {{- with ($g.nodeSelector | default $v.nodeSelector) }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with ($g.tolerations | default $v.tolerations) }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with ($g.affinity | default $v.affinity) }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with ($g.topologySpreadConstraints | default $v.topologySpreadConstraints) }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  terminationGracePeriodSeconds: {{ $g.terminationGracePeriodSeconds | default $v.terminationGracePeriodSeconds }}
  {{- with $v.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ .container }}
      image: {{ include "qwen-serve.image" $root }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      {{- if .head }}
      ports:
        - name: gcs-server
          containerPort: 6379
          protocol: TCP
        - name: dashboard
          containerPort: 8265
          protocol: TCP
        - name: client
          containerPort: 10001
          protocol: TCP
        - name: serve
          containerPort: {{ $v.serve.port }}
          protocol: TCP
        - name: metrics
          containerPort: 8080
          protocol: TCP
      {{- else }}
      ports:
        - name: serve
          containerPort: {{ $v.serve.port }}
          protocol: TCP
        - name: metrics
          containerPort: 8080
          protocol: TCP
      {{- end }}
      env:
        {{- include "qwen-serve.env" $root | nindent 8 }}
        {{- if .head }}
        {{- with $g.nodeHealthCheck }}
        {{- /* The GCS reads these at start: how fast a lost node is declared dead. */}}
        - name: RAY_health_check_period_ms
          value: {{ .periodMs | quote }}
        - name: RAY_health_check_timeout_ms
          value: {{ .timeoutMs | quote }}
        - name: RAY_health_check_failure_threshold
          value: {{ .failureThreshold | quote }}
        {{- end }}
        {{- end }}
        {{- with $g.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $v.extraEnvFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      resources:
        {{- include "qwen-serve.resources" (list $root $g.resources .gpus) | nindent 8 }}
      {{- with $v.containerSecurityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $g.lifecycle }}
      lifecycle:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        {{- include "qwen-serve.volumeMounts" $root | nindent 8 }}
  volumes:
    {{- include "qwen-serve.volumes" (list $root $g.shmSize) | nindent 4 }}
{{- end }}
