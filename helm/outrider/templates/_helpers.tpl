{{- define "outrider.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "outrider.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "outrider.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "outrider.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "outrider.redisUrl" -}}
{{- if .Values.redis.enabled -}}
redis://{{ include "outrider.fullname" . }}-redis:6379/0
{{- else -}}
{{- required "redis.externalUrl is required when redis.enabled is false" .Values.redis.externalUrl -}}
{{- end -}}
{{- end -}}

{{- define "outrider.claimName" -}}
{{- .Values.sharedStorage.existingClaim | default (printf "%s-shared" (include "outrider.fullname" .)) -}}
{{- end -}}

{{/* The run config with cluster addresses, Redis URL and server ports filled in. */}}
{{- define "outrider.runConfig" -}}
{{- $name := include "outrider.fullname" . -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $services := splitList " " (include "outrider.services" .) -}}
{{- $addresses := dict -}}
{{- range $services -}}
{{- $_ := set $addresses . (printf "%s-%s:%d" $name . (int $.Values.ports.grpc)) -}}
{{- end -}}
{{- $_ := set $cfg "stack" (dict "mode" "cluster" "services" $services "addresses" $addresses) -}}
{{- $redisUrl := include "outrider.redisUrl" . -}}
{{- $_ := set $cfg "redis" (mergeOverwrite (get $cfg "redis" | default dict) (dict "url" $redisUrl)) -}}
{{- range $services -}}
{{- $section := get $cfg . | default dict -}}
{{- $server := mergeOverwrite (get $section "server" | default dict) (dict "host" "0.0.0.0" "port" (int $.Values.ports.grpc) "metrics_port" (int $.Values.ports.metrics)) -}}
{{- $_ := set $section "server" $server -}}
{{- $_ := set $cfg . $section -}}
{{- end -}}
{{- $curriculum := get $cfg "curriculum" -}}
{{- $_ := set $curriculum "redis" (mergeOverwrite (get $curriculum "redis" | default dict) (dict "url" $redisUrl)) -}}
{{- toYaml $cfg -}}
{{- end -}}

{{- define "outrider.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
