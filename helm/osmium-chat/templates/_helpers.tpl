{{/*
Names, labels and shared snippets.
*/}}

{{- define "osmium-chat.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The release's full name, at most 54 characters so that "-headless" (and
"-migrate") still fit Kubernetes' 63-character name limit.
*/}}
{{- define "osmium-chat.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 54 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 54 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 54 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "osmium-chat.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "osmium-chat.selectorLabels" -}}
app.kubernetes.io/name: {{ include "osmium-chat.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "osmium-chat.labels" -}}
helm.sh/chart: {{ include "osmium-chat.chart" . }}
{{ include "osmium-chat.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: osmium
{{- end -}}

{{- define "osmium-chat.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "osmium-chat.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "osmium-chat.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/*
Env entries read from existing Secrets, one per variable whose ref has a name.
Usage: include "osmium-chat.secretEnv" (dict "DATABASE_URL" .Values.secrets.databaseUrl)
*/}}
{{- define "osmium-chat.secretEnv" -}}
{{- range $var, $ref := . }}
{{- if $ref.name }}
- name: {{ $var }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.name }}
      key: {{ $ref.key }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
TLS to Postgres and Redis (backendTls): env entries, volume mounts and
volumes for the CA files. The Job includes the Postgres half only.
*/}}
{{- define "osmium-chat.postgresTlsEnv" -}}
{{- $pg := .Values.backendTls.postgres -}}
{{- if or $pg.ca.secret $pg.ca.configMap }}
- name: PGSSLROOTCERT
  value: {{ printf "/etc/osmium/postgres-ca/%s" $pg.ca.key | quote }}
{{- end }}
{{- with $pg.sslmode }}
- name: PGSSLMODE
  value: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* Usage: include "osmium-chat.caMount" (dict "name" "postgres-ca" "ca" .Values.backendTls.postgres.ca) */}}
{{- define "osmium-chat.caMount" -}}
{{- if or .ca.secret .ca.configMap }}
- name: {{ .name }}
  mountPath: /etc/osmium/{{ .name }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* Usage: as osmium-chat.caMount. Only the CA's key is projected. */}}
{{- define "osmium-chat.caVolume" -}}
{{- if .ca.secret }}
- name: {{ .name }}
  secret:
    secretName: {{ .ca.secret }}
    items:
      - key: {{ .ca.key }}
        path: {{ .ca.key }}
{{- else if .ca.configMap }}
- name: {{ .name }}
  configMap:
    name: {{ .ca.configMap }}
    items:
      - key: {{ .ca.key }}
        path: {{ .ca.key }}
{{- end }}
{{- end -}}

{{/*
Settings that cannot work are refused at render time rather than discovered
as a crash-looping or silently split deployment.
*/}}
{{/* The port the kubelet probes: the plaintext health port under TLS. */}}
{{- define "osmium-chat.probePort" -}}
{{- if .Values.tls.enabled }}{{ .Values.tls.healthPort }}{{ else }}{{ .Values.ports.grpc }}{{ end -}}
{{- end -}}

{{- define "osmium-chat.validate" -}}
{{- $several := or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1) -}}
{{- if and $several (not .Values.secrets.databaseUrl.name) -}}
{{- fail "several replicas need Postgres: set secrets.databaseUrl.name (the in-memory engine keeps a separate copy per pod)" -}}
{{- end -}}
{{- if and $several (not .Values.secrets.redisUrl.name) -}}
{{- fail "several replicas need Redis: set secrets.redisUrl.name (the in-process bus reaches only the streams of its own pod)" -}}
{{- end -}}
{{- range $name, $side := .Values.backendTls -}}
{{- if and $side.ca.secret $side.ca.configMap -}}
{{- fail (printf "backendTls.%s.ca: name a secret or a configMap, not both" $name) -}}
{{- end -}}
{{- end -}}
{{- $redisCa := .Values.backendTls.redis.ca -}}
{{- if and (or $redisCa.secret $redisCa.configMap) (not .Values.secrets.redisUrl.name) -}}
{{- fail "backendTls.redis.ca needs secrets.redisUrl (a rediss:// REDIS_URL)" -}}
{{- end -}}
{{- $_ := required "a token key is required: set secrets.jwtSecret.name (an HS256 secret of 32 bytes or more), jwtPublicKeys.configMap or jwks.url; the pods listen on all interfaces, where the service refuses the public development secret" (or .Values.secrets.jwtSecret.name .Values.jwtPublicKeys.configMap .Values.jwks.url) -}}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) -}}
{{- fail "tls.enabled needs tls.secretName (a kubernetes.io/tls Secret)" -}}
{{- end -}}
{{- $drain := add (int .Values.config.shutdownTimeoutSeconds) (int .Values.preStopSleepSeconds) -}}
{{- if le (int .Values.terminationGracePeriodSeconds) (int $drain) -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds + config.shutdownTimeoutSeconds (%d)" (int .Values.terminationGracePeriodSeconds) (int $drain)) -}}
{{- end -}}
{{- $maxConnections := int .Values.database.maxConnections -}}
{{- if and .Values.secrets.databaseUrl.name (gt $maxConnections 0) -}}
{{- $pods := ternary (int .Values.autoscaling.maxReplicas) (int .Values.replicaCount) .Values.autoscaling.enabled -}}
{{- $needed := add (mul (add $pods 1) (int .Values.config.dbPoolSize)) 1 -}}
{{- if gt (int $needed) $maxConnections -}}
{{- fail (printf "Postgres connections: (%d pods + 1 surging during a rollout) x config.dbPoolSize %d + 1 for the migration Job = %d, above database.maxConnections %d: lower config.dbPoolSize or the replica count, or raise max_connections on the server and database.maxConnections with it (see README.md, Sizing)" $pods (int .Values.config.dbPoolSize) (int $needed) $maxConnections) -}}
{{- end -}}
{{- end -}}
{{- $pdb := .Values.podDisruptionBudget -}}
{{- if and $pdb.enabled (ne (toString $pdb.minAvailable) "") (ne (toString $pdb.maxUnavailable) "") -}}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both" -}}
{{- end -}}
{{- if and $pdb.enabled (eq (toString $pdb.minAvailable) "") (eq (toString $pdb.maxUnavailable) "") -}}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable" -}}
{{- end -}}
{{- end -}}
