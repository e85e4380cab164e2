{{/*
A `helm test` pod: one check each, run with Python from the worker image (already on the nodes,
pinned to the release's tag, and no other registry needed on an offline cluster). The pod has
the same hardened settings as the app, and the "test" component label, which the rng and hasher
NetworkPolicies admit.
Usage: include "dockercoins.testPod" (dict "root" $ "name" "rng" "script" $script)
*/}}
{{- define "dockercoins.testPod" -}}
{{- $root := .root -}}
apiVersion: v1
kind: Pod
metadata:
  {{- include "dockercoins.metadata" (dict "root" $root "component" "test" "name" (include "dockercoins.fullname" (list $root (printf "dockercoins-test-%s" .name))) "annotations" (dict "helm.sh/hook" "test" "helm.sh/hook-delete-policy" "before-hook-creation,hook-succeeded")) | nindent 2 }}
spec:
  {{- include "dockercoins.podSpecCommon" (dict "root" $root) | nindent 2 }}
  restartPolicy: Never
  containers:
    - name: test
      image: {{ include "dockercoins.image" (list $root $root.Values.tests.image) | quote }}
      imagePullPolicy: {{ include "dockercoins.imagePullPolicy" (list $root $root.Values.tests.image) }}
      command:
        - python
        - -c
        - |
          {{- /* no trailing spaces on the script's blank lines */}}
          {{- regexReplaceAll "(?m)^[ ]+$" (.script | trim | nindent 10) "" }}
      resources:
        {{- toYaml $root.Values.tests.resources | nindent 8 }}
      securityContext:
        {{- include "dockercoins.containerSecurityContext" (dict "root" $root) | nindent 8 }}
{{- end -}}
