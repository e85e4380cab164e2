{{/*
The pod template shared by the four app components (rng, hasher, worker, webui). They differ only
in their environment and grace period, so one template keeps their security settings, probes
and ports identical. The port (8080, named http) and the probe paths are the service interfaces of
docs/services.md.

Usage:
  template: {{ include "dockercoins.appPodTemplate" (dict "root" $ "component" "rng" "env" $env "grace" 30) | nindent 4 }}
where $env is a YAML list of env entries (text) and grace the terminationGracePeriodSeconds.
Optional "apiReader" true: the pod reads the Kubernetes API with webui's own ServiceAccount.
*/}}
{{- define "dockercoins.appPodTemplate" -}}
{{- $root := .root -}}
{{- $component := .component -}}
{{- $values := index $root.Values $component -}}
metadata:
  labels:
    {{- include "dockercoins.labels" (list $root $component) | nindent 4 }}
    {{- include "dockercoins.podLabels" (list $root $component $values.podLabels) | nindent 4 }}
  {{- $annotations := dict }}
  {{- if $root.Values.metrics.podAnnotations }}
  {{- $annotations = dict "prometheus.io/scrape" "true" "prometheus.io/port" "8080" "prometheus.io/path" "/metrics" }}
  {{- end }}
  {{- $annotations = merge (dict) ($values.podAnnotations | default dict) $annotations }}
  {{- with $annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- include "dockercoins.podSpecCommon" (dict "root" $root "values" $values "apiReader" .apiReader) | nindent 2 }}
  terminationGracePeriodSeconds: {{ .grace }}
  containers:
    - name: {{ $component }}
      image: {{ include "dockercoins.image" (list $root $values.image) | quote }}
      imagePullPolicy: {{ include "dockercoins.imagePullPolicy" (list $root $values.image) }}
      ports:
        - name: http
          containerPort: 8080
          protocol: TCP
      env:
        {{- .env | nindent 8 }}
        - name: LOG_LEVEL
          value: {{ $root.Values.logLevel | quote }}
        {{- if ne $component "worker" }}
        - name: ACCESS_LOG
          value: {{ $root.Values.accessLog | quote }}
        {{- end }}
        {{- with $values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $values.livenessProbe }}
      {{- if .enabled }}
      # Liveness: is the process alive? /healthz never calls a dependency and never waits
      # behind rng's /<n> queue, so a saturated rng is not restarted.
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        initialDelaySeconds: {{ .initialDelaySeconds }}
        periodSeconds: {{ .periodSeconds }}
        timeoutSeconds: {{ .timeoutSeconds }}
        failureThreshold: {{ .failureThreshold }}
        successThreshold: 1
      {{- end }}
      {{- end }}
      {{- with $values.readinessProbe }}
      {{- if .enabled }}
      # Readiness: may check what the service needs; answers 503 during the shutdown delay.
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        initialDelaySeconds: {{ .initialDelaySeconds }}
        periodSeconds: {{ .periodSeconds }}
        timeoutSeconds: {{ .timeoutSeconds }}
        failureThreshold: {{ .failureThreshold }}
        successThreshold: 1
      {{- end }}
      {{- end }}
      resources:
        {{- toYaml $values.resources | nindent 8 }}
      securityContext:
        {{- include "dockercoins.containerSecurityContext" (dict "root" $root "values" $values) | nindent 8 }}
      volumeMounts:
        # The root filesystem is read-only; a small /tmp keeps libraries that want one working.
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: tmp
      emptyDir:
        medium: Memory
        sizeLimit: 16Mi
  {{- include "dockercoins.scheduling" (dict "root" $root "component" $component) | trim | nindent 2 }}
{{- end -}}

{{/*
Pod-level settings shared by every pod of the chart, test pods included.
Usage: include "dockercoins.podSpecCommon" (dict "root" $ "values" .Values.rng)
("values" is the component's block; the test pods pass none; "apiReader" true mounts webui's
token, see appPodTemplate).
*/}}
{{- define "dockercoins.podSpecCommon" -}}
{{- $root := .root -}}
{{- if .apiReader }}
# webui's cluster view reads its release's Deployments and DaemonSets (templates/webui/rbac.yaml).
serviceAccountName: {{ include "dockercoins.webui.serviceAccountName" $root }}
automountServiceAccountToken: true
{{- else }}
serviceAccountName: {{ include "dockercoins.serviceAccountName" $root }}
# No other pod of DockerCoins talks to the Kubernetes API.
automountServiceAccountToken: false
{{- end }}
# Service links would add RNG_PORT, REDIS_PORT... to every container; discovery is by DNS.
enableServiceLinks: false
securityContext:
  {{- $own := (.values | default dict).podSecurityContext | default dict }}
  {{- toYaml (merge (deepCopy $own) (deepCopy $root.Values.podSecurityContext)) | nindent 2 }}
{{- with $root.Values.global.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* A container's securityContext: the component's fields merged over the global ones. */}}
{{- define "dockercoins.containerSecurityContext" -}}
{{- $own := (.values | default dict).containerSecurityContext | default dict -}}
{{- toYaml (merge (deepCopy $own) (deepCopy .root.Values.containerSecurityContext)) -}}
{{- end -}}

{{/*
nodeSelector, tolerations, affinity and topologySpreadConstraints of a component, when set.
A spread constraint without a labelSelector gets the component's own selector labels, so
`worker.topologySpreadConstraints: [{maxSkew: 1, topologyKey: kubernetes.io/hostname,
whenUnsatisfiable: ScheduleAnyway}]` spreads the workers and nothing else.
Usage: include "dockercoins.scheduling" (dict "root" $ "component" "worker")
*/}}
{{- define "dockercoins.scheduling" -}}
{{- $values := index .root.Values .component -}}
{{- with $values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- range . }}
  {{- $constraint := deepCopy . }}
  {{- if not $constraint.labelSelector }}
  {{- $_ := set $constraint "labelSelector" (dict "matchLabels" (include "dockercoins.selectorLabels" (list $.root $.component) | fromYaml)) }}
  {{- end }}
  - {{ toYaml $constraint | nindent 4 | trim }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* REDIS_PASSWORD from the existing Secret, when redis.auth.existingSecret is set. */}}
{{- define "dockercoins.redisPasswordEnv" -}}
{{- with .Values.redis.auth.existingSecret }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.redis.auth.existingSecretPasswordKey }}
{{- end }}
{{- end -}}
