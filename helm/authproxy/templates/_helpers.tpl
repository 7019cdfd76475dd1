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

{{/* The Service `helm test` creates to reach the admin port. */}}
{{- define "authproxy.testAdminService" -}}
{{- printf "%s-test-admin" (include "authproxy.fullname" . | trunc 52 | trimSuffix "-") }}
{{- end }}

{{/* Where `helm test` sends its request: the release's Service, as a client or a front end would. */}}
{{- define "authproxy.testBaseUrl" -}}
{{- if eq .Values.mode "authz" }}
{{- printf "http://%s:%v%s" (include "authproxy.fullname" .) .Values.ports.authz (dig "path_prefix" "/envoy" .Values.authz) }}
{{- else }}
{{- printf "%s://%s:%v" (ternary "https" "http" (not (empty .Values.tls.secretName))) (include "authproxy.fullname" .) .Values.service.port }}
{{- end }}
{{- end }}

{{/*
What `helm test` expects of that request: 401, or, where the proxied port requires client certificates
(which the test pod has none of), a refused TLS handshake.
*/}}
{{- define "authproxy.testExpect" -}}
{{- ternary "tls-refused" "401" (and (eq .Values.mode "gateway") (eq .Values.tls.clientAuth "required")) }}
{{- end }}

{{/*
The request `helm test` sends without a token, as {"method", "path"}: helmTest.request, else the first
route of the policy (sorted, so the choice is stable), else GET /agents of the agentos preset. A path
parameter or wildcard becomes "x"; a method list or "*" becomes its first method or GET.
*/}}
{{- define "authproxy.testRequest" -}}
{{- $request := .Values.helmTest.request }}
{{- if not $request }}
{{- $request = ternary (keys (.Values.policy.routes | default dict) | sortAlpha | first) "GET /agents" (not (empty .Values.policy.routes)) }}
{{- end }}
{{- $parts := regexSplit "\\s+" (trim $request) -1 }}
{{- $method := ternary (first $parts) "GET" (gt (len $parts) 1) | splitList "," | first }}
{{- dict "method" (ternary "GET" $method (eq $method "*")) "path" (regexReplaceAll "\\{[^}]*\\}|\\*\\*|\\*" (last $parts) "x") | toJson }}
{{- end }}
