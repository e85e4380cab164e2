{{/* rng's environment and grace period, shared by its Deployment and its DaemonSet. */}}
{{- define "dockercoins.rng.env" -}}
- name: PORT
  value: "8080"
- name: RNG_CONCURRENCY
  value: {{ .Values.rng.concurrency | quote }}
- name: GUNICORN_THREADS
  value: {{ .Values.rng.threads | quote }}
- name: SHUTDOWN_DELAY_SECONDS
  value: {{ .Values.rng.shutdownDelaySeconds | quote }}
{{- include "dockercoins.faultsEnv" .Values.rng.faults }}
{{- end -}}

{{/* The healthchecks chapter's faults of rng or hasher, only when switched on. */}}
{{- define "dockercoins.faultsEnv" -}}
{{- if .extraLatencySeconds }}
- name: EXTRA_LATENCY_SECONDS
  value: {{ .extraLatencySeconds | quote }}
{{- end }}
{{- if .failureRate }}
- name: FAILURE_RATE
  value: {{ .failureRate | quote }}
{{- end }}
{{- end -}}
