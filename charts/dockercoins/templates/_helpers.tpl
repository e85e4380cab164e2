{{/*
Names, labels and images. Every object of the chart gets its name, labels and image here, so the
rules live in one place:
- names are the workshop's plain names (rng, hasher, worker, webui, redis), optionally prefixed
  by `namePrefix` for several releases in one namespace;
- labels are the app.kubernetes.io set plus helm.sh/chart; selectors use only name, instance and
  component, which never change during the life of a release.
*/}}

{{/* The app's name, the value of app.kubernetes.io/name and part-of. */}}
{{- define "dockercoins.name" -}}
{{- .Chart.Name -}}
{{- end -}}

{{/* "blue-" for namePrefix=blue, "" by default. */}}
{{- define "dockercoins.prefix" -}}
{{- with .Values.namePrefix -}}{{ . }}-{{- end -}}
{{- end -}}

{{/* The name of a component's objects. Usage: include "dockercoins.fullname" (list $ "rng") */}}
{{- define "dockercoins.fullname" -}}
{{- $root := index . 0 -}}
{{- printf "%s%s" (include "dockercoins.prefix" $root) (index . 1) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* helm.sh/chart: name-version, as Helm's own starter chart writes it. */}}
{{- define "dockercoins.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* A value safe for a label: image tags may hold characters labels do not allow. */}}
{{- define "dockercoins.labelValue" -}}
{{- regexReplaceAll "[^A-Za-z0-9._-]" (toString .) "_" | trunc 63 | trimAll "_.-" -}}
{{- end -}}

{{/*
The labels that select a component's pods. Never add a label here that changes between
releases (version, chart): a Deployment's selector is immutable.
Usage: include "dockercoins.selectorLabels" (list $ "rng")
*/}}
{{- define "dockercoins.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "dockercoins.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/*
A pod's own labels: the component's podLabels over the workshop's `app: <name>`, where the name is
its workload's (`rng`, or `blue-rng` with namePrefix=blue), so `kubectl get pods -l app=rng` and
`kubectl logs -l app=worker` work as typed, and each release's pods keep apart. Pods only, and
in no selector but the rng Service's (see below): selectors of workloads are immutable, and this
keeps upgrades from older releases working.
Usage: include "dockercoins.podLabels" (list $ "rng" .Values.rng.podLabels)
*/}}
{{- define "dockercoins.podLabels" -}}
{{- $app := include "dockercoins.fullname" (list (index . 0) (index . 1)) -}}
{{- toYaml (merge (dict) (index . 2 | default dict) (dict "app" $app)) -}}
{{- end -}}

{{/*
The rng Service's selector: `app: rng` (`app: blue-rng` with namePrefix=blue), which the chart's rng
pods carry. The course's DaemonSet chapter writes its own rng DaemonSet from a bare Deployment's
YAML, whose pods carry only `app: rng`: so they join the Service and lift the plateau. The price:
this one selector is not tied to the release (see the chart README).
*/}}
{{- define "dockercoins.rngServiceSelector" -}}
{{- /* The pods' own app label, as dockercoins.podLabels makes it (rng.podLabels may override it). */}}
app: {{ index (.Values.rng.podLabels | default dict) "app" | default (include "dockercoins.fullname" (list . "rng")) }}
{{- end -}}

{{/* The labels every pod of the release has, whatever its component (for policies). */}}
{{- define "dockercoins.releaseSelectorLabels" -}}
app.kubernetes.io/name: {{ include "dockercoins.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
All labels of an object of a component: the selector labels, version, part-of, managed-by,
helm.sh/chart and commonLabels. The version is the component's image tag.
Usage: include "dockercoins.labels" (list $ "rng")
*/}}
{{- define "dockercoins.labels" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{ include "dockercoins.selectorLabels" . }}
app.kubernetes.io/version: {{ include "dockercoins.labelValue" (include "dockercoins.version" .) | quote }}
app.kubernetes.io/part-of: {{ include "dockercoins.name" $root }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
helm.sh/chart: {{ include "dockercoins.chart" $root }}
{{- with $root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
An object's metadata: name, namespace, labels and annotations (commonAnnotations plus the given
ones, left out when empty). The namespace is written so that rendered manifests (k8s/) say
where they go.
Usage: metadata: {{ include "dockercoins.metadata" (dict "root" $ "component" "rng") | nindent 2 }}
Optional keys: "name" (default: the component's name), "labels" and "annotations" (dicts).
*/}}
{{- define "dockercoins.metadata" -}}
{{- $root := .root -}}
name: {{ .name | default (include "dockercoins.fullname" (list $root .component)) }}
namespace: {{ $root.Release.Namespace }}
labels:
  {{- include "dockercoins.labels" (list $root .component) | nindent 2 }}
  {{- with .labels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- $annotations := merge (dict) (.annotations | default dict) ($root.Values.commonAnnotations | default dict) }}
{{- with $annotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
The version a component's objects carry: redis its own image tag, the app components theirs
(component tag, else global.image.tag, else the chart's appVersion); objects shared by the whole
release ("common", "test") carry the global app version.
*/}}
{{- define "dockercoins.version" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- if eq $component "redis" -}}
{{- $root.Values.redis.image.tag -}}
{{- else if has $component (list "rng" "hasher" "worker" "webui") -}}
{{- (index $root.Values $component).image.tag | default $root.Values.global.image.tag | default $root.Chart.AppVersion -}}
{{- else -}}
{{- $root.Values.global.image.tag | default $root.Chart.AppVersion -}}
{{- end -}}
{{- end -}}

{{/*
An app image, `<registry>/<repository>:<tag>` or `...@<digest>`. The registry and tag fall back
to global.image, and the tag to the chart's appVersion, so `--set global.image.tag=X` moves
the four app images (and the test image) at once.
Usage: include "dockercoins.image" (list $ .Values.rng.image)
*/}}
{{- define "dockercoins.image" -}}
{{- $root := index . 0 -}}
{{- $image := index . 1 -}}
{{- $registry := $image.registry | default $root.Values.global.image.registry -}}
{{- $ref := printf "%s/%s" (trimSuffix "/" $registry) $image.repository -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $ref $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $ref (toString ($image.tag | default $root.Values.global.image.tag | default $root.Chart.AppVersion)) -}}
{{- end -}}
{{- end -}}

{{- define "dockercoins.imagePullPolicy" -}}
{{- $root := index . 0 -}}
{{- (index . 1).pullPolicy | default $root.Values.global.image.pullPolicy -}}
{{- end -}}

{{/* The ServiceAccount every pod uses. */}}
{{- define "dockercoins.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "dockercoins.fullname" (list . "dockercoins")) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* A Service URL: the port is left out when it is 80, as the seed's "http://rng/32". */}}
{{- define "dockercoins.httpURL" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- $port := int (index $root.Values $component).service.port -}}
{{- $host := include "dockercoins.fullname" (list $root $component) -}}
{{- if eq $port 80 -}}
http://{{ $host }}
{{- else -}}
http://{{ $host }}:{{ $port }}
{{- end -}}
{{- end -}}

{{- define "dockercoins.redisURL" -}}
redis://{{ include "dockercoins.fullname" (list . "redis") }}:{{ int .Values.redis.service.port }}/0
{{- end -}}

{{/*
The rng replica count when no HPA owns it. rng.replicaCount defaults to null, so the chart can
tell "not set" from "set to 1": setting it while the HPA is on is an error (see "dockercoins.validate").
*/}}
{{- define "dockercoins.rngReplicas" -}}
{{- if kindIs "invalid" .Values.rng.replicaCount -}}1{{- else -}}{{ int .Values.rng.replicaCount }}{{- end -}}
{{- end -}}

{{/* A number as a Kubernetes quantity: 8 -> "8", 0.25 -> "250m" (milli-units, no floats). */}}
{{- define "dockercoins.quantity" -}}
{{- $milli := int (round (mulf . 1000) 0) -}}
{{- if eq (mod $milli 1000) 0 -}}{{ div $milli 1000 }}{{- else -}}{{ $milli }}m{{- end -}}
{{- end -}}

{{/* The HPA's minimum: rng.autoscaling.minReplicas, else the replica count's default. */}}
{{- define "dockercoins.rngMinReplicas" -}}
{{- if kindIs "invalid" .Values.rng.autoscaling.minReplicas -}}
{{- include "dockercoins.rngReplicas" . -}}
{{- else -}}
{{- int .Values.rng.autoscaling.minReplicas -}}
{{- end -}}
{{- end -}}

{{/*
Refuses value combinations the schema cannot express, with a message that says what to do.
Called once, from validate.yaml.
*/}}
{{- define "dockercoins.validate" -}}
{{- $rng := .Values.rng -}}
{{- if and $rng.autoscaling.enabled (not (kindIs "invalid" $rng.replicaCount)) -}}
{{- fail (printf "rng.replicaCount is set (%v) while rng.autoscaling.enabled is true: the HPA owns rng's replica count. Unset rng.replicaCount (remove it, or --set rng.replicaCount=null) and use rng.autoscaling.minReplicas / maxReplicas instead." $rng.replicaCount) -}}
{{- end -}}
{{- if and $rng.autoscaling.enabled (eq $rng.kind "DaemonSet") -}}
{{- fail "rng.autoscaling.enabled needs rng.kind=Deployment: a DaemonSet runs one rng per node and cannot be scaled by an HPA." -}}
{{- end -}}
{{- if and (eq $rng.kind "DaemonSet") (not (kindIs "invalid" $rng.replicaCount)) -}}
{{- fail (printf "rng.replicaCount is set (%v) but rng.kind is DaemonSet, which runs one pod per node and has no replica count. Unset rng.replicaCount." $rng.replicaCount) -}}
{{- end -}}
{{- if and $rng.autoscaling.enabled (lt (int $rng.autoscaling.maxReplicas) (int (include "dockercoins.rngMinReplicas" .))) -}}
{{- fail (printf "rng.autoscaling.maxReplicas (%v) is below the minimum (%s)." $rng.autoscaling.maxReplicas (include "dockercoins.rngMinReplicas" .)) -}}
{{- end -}}
{{- if and $rng.autoscaling.enabled (eq $rng.autoscaling.provider "keda") (not (.Capabilities.APIVersions.Has "keda.sh/v1alpha1/ScaledObject")) -}}
{{- fail "rng.autoscaling.provider=keda renders a KEDA ScaledObject (keda.sh/v1alpha1), and this cluster does not serve it: install KEDA first (helm install keda kedacore/keda --namespace keda --create-namespace), or use rng.autoscaling.provider=prometheus-adapter. With helm template, pass --api-versions keda.sh/v1alpha1/ScaledObject." -}}
{{- end -}}
{{- with .Values.webui.httpRoute -}}
{{- if and .enabled (not .parentRefs) -}}
{{- fail "webui.httpRoute.enabled needs webui.httpRoute.parentRefs: name the Gateway the route attaches to (for example --set webui.httpRoute.parentRefs[0].name=my-gateway)." -}}
{{- end -}}
{{- if and .enabled (not ($.Capabilities.APIVersions.Has "gateway.networking.k8s.io/v1/HTTPRoute")) -}}
{{- fail "webui.httpRoute.enabled renders a Gateway API HTTPRoute (gateway.networking.k8s.io/v1), and this cluster does not serve it: install the Gateway API CRDs (standard channel) and a Gateway controller first, or use webui.ingress. With helm template, pass --api-versions gateway.networking.k8s.io/v1/HTTPRoute." -}}
{{- end -}}
{{- end -}}
{{- $rngService := lookup "v1" "Service" .Release.Namespace (include "dockercoins.fullname" (list . "rng")) -}}
{{- with $rngService -}}
{{- $owner := index (.metadata.annotations | default dict) "meta.helm.sh/release-name" | default "" -}}
{{- if ne $owner $.Release.Name -}}
{{- fail (printf "namespace %s already has a Service named %s (%s): another DockerCoins release with the same namePrefix (%q) is installed there, and the two would fight over every object name. Give this release its own prefix (--set namePrefix=blue gives blue-rng, blue-worker...), or install it in another namespace." $.Release.Namespace .metadata.name (ternary (printf "from release %s" $owner) "not made by Helm" (ne $owner "")) $.Values.namePrefix) -}}
{{- end -}}
{{- end -}}
{{- if eq (toString .Values.redis.image.tag) "latest" -}}
{{- fail "redis.image.tag must be an exact release (for example 7.4.8-alpine), never latest." -}}
{{- end -}}
{{- end -}}

{{/* webui's own ServiceAccount, for the cluster view: `<prefix>webui`. */}}
{{- define "dockercoins.webui.serviceAccountName" -}}
{{- include "dockercoins.fullname" (list . "webui") -}}
{{- end -}}
