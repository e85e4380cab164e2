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
{{- end -}}
