{{/*
Names. Only .Values and .Release are read, never .Chart, so every template a parent chart
includes (the sidecar ones) computes the same names as this chart does when rendering its
ConfigMap and Secret.
*/}}
{{- define "authproxy.name" -}}
{{- default "authproxy" .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "authproxy.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "authproxy.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "authproxy.keysSecretName" -}}
{{- if .Values.keys.existingSecret }}
{{- .Values.keys.existingSecret }}
{{- else }}
{{- printf "%s-keys" (include "authproxy.fullname" . | trunc 58 | trimSuffix "-") }}
{{- end }}
{{- end }}

{{/* The key files mounted under /etc/authproxy/keys, as a JSON list. */}}
{{- define "authproxy.keyNames" -}}
{{- if .Values.keys.existingSecret }}
{{- .Values.keys.existingSecretKeys | toJson }}
{{- else }}
{{- keys .Values.keys.inline | sortAlpha | toJson }}
{{- end }}
{{- end }}

{{- define "authproxy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "authproxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels for the objects this chart renders itself (these may read .Chart). */}}
{{- define "authproxy.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "authproxy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ .Values.mode }}
{{- end }}

{{/*
Refuses values that would render a valid-looking but broken deployment.
*/}}
{{- define "authproxy.validate" -}}
{{- $drain := add .Values.shutdownGraceSeconds .Values.preStopSleepSeconds }}
{{- if le (int .Values.terminationGracePeriodSeconds) (int $drain) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed preStopSleepSeconds + shutdownGraceSeconds (%v), or the kubelet kills authproxy mid-drain" .Values.terminationGracePeriodSeconds $drain) }}
{{- end }}
{{- if and .Values.keys.existingSecret .Values.keys.inline }}
{{- fail "set keys.existingSecret or keys.inline, not both" }}
{{- end }}
{{- $names := include "authproxy.keyNames" . | fromJsonArray }}
{{- if $names }}
{{- range .Values.jwt.keys }}
{{- range $field, $path := . }}
{{- if and (kindIs "string" $path) (hasPrefix "/etc/authproxy/keys/" $path) }}
{{- if not (has (trimPrefix "/etc/authproxy/keys/" $path) $names) }}
{{- fail (printf "jwt.keys %s %s: no such entry in the key Secret (mounted: %s)" $field $path (join ", " $names)) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- if and .Values.tls.clientAuth (not .Values.tls.secretName) }}
{{- fail "tls.clientAuth needs tls.secretName (its ca.crt verifies the client certificates)" }}
{{- end }}
{{- with .Values.upstreamTls }}
{{- if and (or .secretName .serverName) (not (hasPrefix "https://" $.Values.upstream.url)) }}
{{- fail "upstreamTls needs an https:// upstream.url" }}
{{- end }}
{{- if and .clientCertificate (not .secretName) }}
{{- fail "upstreamTls.clientCertificate needs upstreamTls.secretName (its tls.crt and tls.key)" }}
{{- end }}
{{- end }}
{{- with .Values.rateLimits }}
{{- if and .redisUrl .redisUrlSecret.name }}
{{- fail "set rateLimits.redisUrl or rateLimits.redisUrlSecret.name, not both" }}
{{- end }}
{{- if and (or .redisUrl .redisUrlSecret.name) (not .config) }}
{{- fail "rateLimits: a Redis URL without rateLimits.config limits nothing" }}
{{- end }}
{{- end }}
{{- if and (include "authproxy.deployed" .) .Values.autoscaling.enabled }}
{{- if gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- if not (dig "requests" "cpu" "" .Values.resources) }}
{{- fail "autoscaling on CPU needs resources.requests.cpu" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The restart-worthy inputs that are not already in the pod spec: only the inline key material
(authproxy reads keys at start-up). The ConfigMap is deliberately absent: authproxy reloads
config.yaml live, so a policy edit must not roll the pods.
*/}}
{{- define "authproxy.podAnnotations" -}}
{{- if .Values.keys.inline }}
checksum/keys: {{ .Values.keys.inline | toJson | sha256sum }}
{{- end }}
{{- end }}

{{/* Non-empty when this chart renders the Deployment itself: gateway and authz modes. */}}
{{- define "authproxy.deployed" -}}
{{- if has .Values.mode (list "gateway" "authz") }}true{{ end }}
{{- end }}
