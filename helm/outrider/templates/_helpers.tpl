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

{{- /* Where Redis is, without credentials (NetworkPolicies take its port from here). */ -}}
{{- define "outrider.redisUrl" -}}
{{- if .Values.redis.enabled -}}
{{ if .Values.redis.tls.enabled }}rediss{{ else }}redis{{ end }}://{{ include "outrider.fullname" . }}-redis:6379/0
{{- else -}}
{{- required "redis.externalUrl is required when redis.enabled is false" .Values.redis.externalUrl -}}
{{- end -}}
{{- end -}}

{{- /* The Secret holding the Redis password; empty: Redis has none (auth off, or an external
Redis without redis.auth.existingSecret). */ -}}
{{- define "outrider.redisSecret" -}}
{{- $auth := .Values.redis.auth -}}
{{- if $auth.enabled -}}
{{- if $auth.existingSecret -}}
{{- $auth.existingSecret -}}
{{- else if .Values.redis.enabled -}}
{{- printf "%s-redis-auth" (include "outrider.fullname" .) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "outrider.redisSecretKey" -}}
{{- if .Values.redis.auth.existingSecret }}{{ .Values.redis.auth.existingSecretKey }}{{ else }}password{{ end -}}
{{- end -}}

{{- define "outrider.redisTlsDir" -}}/var/run/outrider/redis-tls{{- end -}}

{{- /* The URL the pods connect with: the password as a reference to OUTRIDER_REDIS_PASSWORD
(expanded when the config loads, outrider.config.common.SecretUrl), so that the ConfigMap never
holds it; with TLS, the CA of redis.tls.existingSecret and certificate checks. */ -}}
{{- define "outrider.redisClientUrl" -}}
{{- $u := urlParse (include "outrider.redisUrl" .) -}}
{{- if contains ":" $u.userinfo -}}
{{- fail "redis.externalUrl carries a password, which would land in the ConfigMap: put it in a Secret named by redis.auth.existingSecret" -}}
{{- end -}}
{{- $tls := .Values.redis.tls -}}
{{- if and $tls.enabled (ne $u.scheme "rediss") -}}
{{- fail "redis.tls.enabled needs a rediss:// redis.externalUrl" -}}
{{- end -}}
{{- if and $tls.enabled .Values.redis.enabled (not $tls.existingSecret) -}}
{{- fail "redis.tls.enabled needs redis.tls.existingSecret (a kubernetes.io/tls Secret for the Redis server)" -}}
{{- end -}}
{{- $credentials := "" -}}
{{- if include "outrider.redisSecret" . -}}
{{- $credentials = printf "%s:${OUTRIDER_REDIS_PASSWORD}@" $u.userinfo -}}
{{- else if $u.userinfo -}}
{{- $credentials = printf "%s@" $u.userinfo -}}
{{- end -}}
{{- $query := list -}}
{{- with $u.query }}{{ $query = append $query . }}{{ end -}}
{{- if and (eq $u.scheme "rediss") $tls.existingSecret -}}
{{- $query = append $query (printf "ssl_ca_certs=%s/ca.crt" (include "outrider.redisTlsDir" .)) -}}
{{- end -}}
{{- if and (eq $u.scheme "rediss") (not (contains "ssl_cert_reqs=" $u.query)) -}}
{{- $query = append $query "ssl_cert_reqs=required" -}}
{{- end -}}
{{- printf "%s://%s%s%s" $u.scheme $credentials $u.host $u.path -}}
{{- with $query }}?{{ join "&" . }}{{ end -}}
{{- end -}}

{{- /* The Redis password and TLS material of a pod that uses Redis. */ -}}
{{- define "outrider.redisEnvItems" -}}
{{- with include "outrider.redisSecret" . }}
- name: OUTRIDER_REDIS_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ . }}, key: {{ include "outrider.redisSecretKey" $ }}}}
{{- end }}
{{- end -}}

{{- define "outrider.redisTlsMount" -}}
{{- if and .Values.redis.tls.enabled .Values.redis.tls.existingSecret }}
- {name: redis-tls, mountPath: {{ include "outrider.redisTlsDir" . }}, readOnly: true}
{{- end }}
{{- end -}}

{{- define "outrider.redisTlsVolume" -}}
{{- if and .Values.redis.tls.enabled .Values.redis.tls.existingSecret }}
- name: redis-tls
  secret:
    secretName: {{ .Values.redis.tls.existingSecret }}
    defaultMode: 0440  # readable by the pods' fsGroup
{{- end }}
{{- end -}}

{{- define "outrider.claimName" -}}
{{- .Values.sharedStorage.existingClaim | default (printf "%s-shared" (include "outrider.fullname" .)) -}}
{{- end -}}

{{- /* The ConfigMap key of envSpecs entry NAME, a file under /etc/outrider in the pods. */ -}}
{{- define "outrider.envSpecFile" -}}
{{- printf "env-spec-%s.yaml" . -}}
{{- end -}}

{{- /* An envSpecs entry as its spec file: the key is the environment's name. */ -}}
{{- define "outrider.envSpec" -}}
{{- if and (hasKey .spec "name") (ne (toString .spec.name) .name) -}}
{{- fail (printf "envSpecs.%s.name is %q: it must be the key (%s) or left out" .name (toString .spec.name) .name) -}}
{{- end -}}
{{- toYaml (merge (dict "name" .name) (deepCopy .spec)) -}}
{{- end -}}

{{- /* What the pods read from the ConfigMap; a change rolls them (checksum/config). */ -}}
{{- define "outrider.configChecksum" -}}
{{- printf "%s\n%s" (include "outrider.runConfig" .) (toYaml .Values.envSpecs) | sha256sum -}}
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
{{- $redisUrl := include "outrider.redisClientUrl" . -}}
{{- $_ := set $cfg "redis" (mergeOverwrite (get $cfg "redis" | default dict) (dict "url" $redisUrl)) -}}
{{- range $services -}}
{{- $section := get $cfg . | default dict -}}
{{- $auth := dict "insecure" true -}}
{{- if $.Values.auth.enabled -}}
{{- $auth = dict "token_files" (dict "client" "/var/run/outrider/auth/client.token" "admin" "/var/run/outrider/auth/admin.token") -}}
{{- end -}}
{{- $server := mergeOverwrite (get $section "server" | default dict) (dict "host" "0.0.0.0" "port" (int $.Values.ports.grpc) "metrics_port" (int $.Values.ports.metrics) "auth" $auth) -}}
{{- $_ := set $section "server" $server -}}
{{- $_ := set $cfg . $section -}}
{{- end -}}
{{- /* The OpenAI API listens where the Service and the container port say it does. */ -}}
{{- $policy := get $cfg "policy" -}}
{{- $_ := set $policy "http_port" (int $.Values.ports.http) -}}
{{- /* Captured agent sessions live in the run's Redis (as `outrider up` sets them), and the
env service's agent gateway is the policy Service's HTTP port: the one address besides DNS
that the env pods' NetworkPolicy lets out. Either stays as set in `config` if given. */ -}}
{{- $capture := get $policy "capture" | default dict -}}
{{- if not (get $capture "redis_url") -}}
{{- $_ := set $capture "redis_url" $redisUrl -}}
{{- end -}}
{{- $_ := set $policy "capture" $capture -}}
{{- $envSection := get $cfg "env" -}}
{{- /* envSpecs: files of the ConfigMap, registered by every env replica at start. */ -}}
{{- $specFiles := get $envSection "spec_files" | default list -}}
{{- range $name, $_ := .Values.envSpecs -}}
{{- $specFiles = append $specFiles (printf "/etc/outrider/%s" (include "outrider.envSpecFile" $name)) -}}
{{- end -}}
{{- if $specFiles -}}
{{- $_ := set $envSection "spec_files" $specFiles -}}
{{- end -}}
{{- if not (get $envSection "agent_gateway") -}}
{{- $_ := set $envSection "agent_gateway" (printf "%s-policy:%d" $name (int $.Values.ports.http)) -}}
{{- end -}}
{{- /* env.sandbox=bwrap: the pod is made for bwrap, so the service names it and refuses to
start where it cannot run (with "auto" it would start and refuse code sessions instead). */ -}}
{{- if eq ($.Values.env.sandbox | default "bwrap") "bwrap" -}}
{{- $sandbox := get $envSection "sandbox" | default dict -}}
{{- if not (get $sandbox "backend") -}}
{{- $_ := set $sandbox "backend" "bwrap" -}}
{{- end -}}
{{- $_ := set $envSection "sandbox" $sandbox -}}
{{- end -}}
{{- $curriculum := get $cfg "curriculum" -}}
{{- $_ := set $curriculum "redis" (mergeOverwrite (get $curriculum "redis" | default dict) (dict "url" $redisUrl)) -}}
{{- toYaml $cfg -}}
{{- end -}}

{{- define "outrider.scheduling" -}}
{{- with .priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
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


{{- /* The Secret holding the services' tokens. */ -}}
{{- define "outrider.authSecret" -}}
{{- .Values.auth.existingSecret | default (printf "%s-auth" (include "outrider.fullname" .)) -}}
{{- end -}}

{{- /* Env and mount that give a pod the tokens; `role`: the role its clients present. */ -}}
{{- define "outrider.authEnv" -}}
{{- if .root.Values.auth.enabled }}
env:
  {{- include "outrider.authEnvItems" . | nindent 2 }}
{{- end }}
{{- end -}}

{{- /* The same variables as list items, for a container that has other env too. */ -}}
{{- define "outrider.authEnvItems" -}}
{{- if .root.Values.auth.enabled }}
- {name: OUTRIDER_AUTH_DIR, value: /var/run/outrider/auth}
- {name: OUTRIDER_AUTH_ROLE, value: {{ .role }}}
{{- end }}
{{- end -}}

{{- define "outrider.authMount" -}}
{{- if .Values.auth.enabled }}
- {name: auth, mountPath: /var/run/outrider/auth, readOnly: true}
{{- end }}
{{- end -}}

{{- define "outrider.authVolume" -}}
{{- if .Values.auth.enabled }}
- name: auth
  secret:
    secretName: {{ include "outrider.authSecret" . }}
    defaultMode: 0440  # readable by the pods' fsGroup (they run as non-root)
{{- end }}
{{- end -}}


{{- /* Hardening (docs/deploy.md, "Security of the chart").

Every Outrider container runs as podSecurity.runAsUser, non-root, without
capabilities or privilege escalation, on a read-only root filesystem; what a
process writes goes to the emptyDirs below (/tmp, and one cache volume holding
HOME, the HF, torch-extension, Triton and vLLM caches and the model cache
$OUTRIDER_CACHE). */ -}}
{{- define "outrider.podSecurityContext" -}}
{{- $ps := .Values.podSecurity -}}
securityContext:
  runAsNonRoot: true
  runAsUser: {{ $ps.runAsUser }}
  runAsGroup: {{ $ps.runAsGroup }}
  fsGroup: {{ $ps.fsGroup }}
  fsGroupChangePolicy: OnRootMismatch
  seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- /* `seccomp`, `appArmor` (dicts, optional) and `procMount` (string, optional): the env
pods' bwrap exception; everything else is the same for every container. */ -}}
{{- define "outrider.containerSecurityContext" -}}
securityContext:
  runAsNonRoot: true
  allowPrivilegeEscalation: false
  privileged: false
  readOnlyRootFilesystem: true
  capabilities: {drop: [ALL]}
  seccompProfile:
    {{- toYaml (.seccomp | default (dict "type" "RuntimeDefault")) | nindent 4 }}
  {{- with .appArmor }}
  appArmorProfile:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .procMount }}
  procMount: {{ . }}
  {{- end }}
{{- end -}}

{{- define "outrider.cacheDir" -}}/var/cache/outrider{{- end -}}

{{- /* Where the processes write, all in the cache emptyDir (HOME is its root: libraries that
write ~/.cache or ~/.config find a writable folder that exists). */ -}}
{{- define "outrider.runtimeEnvItems" -}}
{{- $cache := include "outrider.cacheDir" . -}}
- {name: HOME, value: {{ $cache }}}
- {name: XDG_CACHE_HOME, value: {{ $cache }}/xdg}
- {name: HF_HOME, value: {{ $cache }}/huggingface}
- {name: TORCH_EXTENSIONS_DIR, value: {{ $cache }}/torch_extensions}
- {name: TRITON_CACHE_DIR, value: {{ $cache }}/triton}
- {name: OUTRIDER_CACHE, value: {{ $cache }}/outrider}
- {name: TMPDIR, value: /tmp}
- {name: PYTHONDONTWRITEBYTECODE, value: "1"}
{{- end -}}

{{- /* env: the runtime variables, the auth variables (`role`), the Redis password (`redis`:
true in the pods that use Redis) and `extra` (list). */ -}}
{{- define "outrider.containerEnv" -}}
env:
  {{- include "outrider.runtimeEnvItems" .root | nindent 2 }}
  {{- include "outrider.authEnvItems" . | nindent 2 }}
  {{- if .redis }}
  {{- include "outrider.redisEnvItems" .root | nindent 2 }}
  {{- end }}
  {{- with .extra }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{- define "outrider.runtimeMounts" -}}
- {name: tmp, mountPath: /tmp}
- {name: cache, mountPath: {{ include "outrider.cacheDir" . }}}
{{- end -}}

{{- define "outrider.runtimeVolumes" -}}
- name: tmp
  emptyDir: {sizeLimit: {{ .Values.podSecurity.tmpSizeLimit }}}
- name: cache
  emptyDir: {sizeLimit: {{ .Values.podSecurity.cacheSizeLimit }}}
{{- end -}}

{{- /* Pod-level fields every release pod shares: no service-account token (model-written
code must not reach the Kubernetes API), the image pull secrets. */ -}}
{{- define "outrider.podCommon" -}}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}


{{- /* Which autoscaler the rollout workers have: keda, hpa or "" (docs/deploy.md, "Autoscaling"). */ -}}
{{- define "outrider.workerAutoscaler" -}}
{{- $a := .Values.rolloutWorkers.autoscaling -}}
{{- if $a.keda.enabled }}keda{{ else if $a.hpa.enabled }}hpa{{ end -}}
{{- end -}}

{{- /* The Redis list where Celery queues the rollouts: kombu's key is the transport's
global_keyprefix (`<run name>:celery:`) and the queue name (outrider/rollout/worker.py, QUEUE
and make_app; tests/integration/deploy/test_chart_autoscaling.py checks the two agree). */ -}}
{{- define "outrider.rolloutQueueKey" -}}
{{- printf "%s:celery:outrider-rollouts" (.Values.config.name | default "outrider") -}}
{{- end -}}
