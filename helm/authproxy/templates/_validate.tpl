{{/*
Refuses values that would render a valid-looking but broken deployment: first values that contradict
each other, then every essential that is missing, named together in one message.
*/}}
{{- define "authproxy.validate" -}}
{{- $drain := add .Values.shutdownGraceSeconds .Values.preStopSleepSeconds }}
{{- if le (int .Values.terminationGracePeriodSeconds) (int $drain) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed preStopSleepSeconds + shutdownGraceSeconds (%v), or the kubelet kills authproxy mid-drain" .Values.terminationGracePeriodSeconds $drain) }}
{{- end }}
{{- if and .Values.keys.existingSecret .Values.keys.inline }}
{{- fail "set keys.existingSecret or keys.inline, not both" }}
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
{{- include "authproxy.validateEssentials" . }}
{{- end }}

{{/*
What authproxy cannot start (or cannot refuse the right requests) without: where to forward, a policy
that names routes, and keys that can verify a token. The chart has no default for any of them, since a
guessed one would render a pod that crash-loops or lets the wrong requests through. Every missing value
is named in one message, so a first install needs one round trip, not one per value.
*/}}
{{- define "authproxy.validateEssentials" -}}
{{- $missing := list }}
{{- if not .Values.upstream.url }}
{{- $missing = append $missing "upstream.url: where authproxy forwards, e.g. http://agentos.agents.svc:7777 (gateway) or http://127.0.0.1:7777 (sidecar); authz mode needs one too, though it carries no traffic" }}
{{- end }}
{{- if not (or .Values.policy.preset .Values.policy.routes) }}
{{- $missing = append $missing "policy.preset or policy.routes: a policy that names no route denies every request; e.g. policy.preset: agentos, or policy.routes: {\"GET /agents\": [agents:read]}" }}
{{- end }}
{{- $missing = concat $missing (include "authproxy.keyProblems" . | fromJsonArray) (include "authproxy.envProblems" . | fromJsonArray) }}
{{- if $missing }}
{{- fail (printf "missing or unusable values (values.yaml lists the required ones; examples/minimal-values.yaml is the least that works):\n  - %s" (join "\n  - " $missing)) }}
{{- end }}
{{- end }}

{{/*
jwt.keys against what the pod can read: at least one source; every key file mounted from the key Secret
(nothing else in the chart mounts files for jwt.keys); and algorithms that fit the sources, because the
default [HS256] left in place beside a public key makes authproxy refuse to start. As a JSON list.
*/}}
{{- define "authproxy.keyProblems" -}}
{{- $problems := list }}
{{- $names := include "authproxy.keyNames" . | fromJsonArray }}
{{- $mounted := join ", " $names | default "none, as keys.existingSecret and keys.inline are empty" }}
{{- if not .Values.jwt.keys }}
{{- $problems = append $problems "jwt.keys: no key source, so no token can verify; give a secret_file (with keys.existingSecret or keys.inline), a public_key_file, a jwks_url or an oidc_issuer" }}
{{- end }}
{{- $public := list }}
{{- range $index, $key := .Values.jwt.keys }}
{{- range $field := list "secret_file" "public_key_file" "jwks_file" }}
{{- $path := get $key $field | toString }}
{{- /* A ${VAR} path is the operator's to mount; relative paths are read from /etc/authproxy. */}}
{{- if and (hasKey $key $field) (not (contains "${" $path)) }}
{{- $absolute := ternary $path (printf "/etc/authproxy/%s" $path) (hasPrefix "/" $path) }}
{{- $name := trimPrefix "/etc/authproxy/keys/" $absolute }}
{{- if or (eq $name $absolute) (not (has $name $names)) }}
{{- $problems = append $problems (printf "jwt.keys[%d].%s %s: no such entry in the key Secret (mounted: %s); put the file in keys.existingSecret (listed in keys.existingSecretKeys) or keys.inline, and name it /etc/authproxy/keys/<entry>" $index $field $path $mounted) }}
{{- end }}
{{- end }}
{{- end }}
{{- range $field := list "public_key_file" "jwks_file" "jwks_url" "oidc_issuer" }}
{{- if hasKey $key $field }}
{{- $public = append $public (printf "jwt.keys[%d].%s" $index $field) }}
{{- end }}
{{- end }}
{{- end }}
{{- $hmac := list }}
{{- $asymmetric := list }}
{{- range .Values.jwt.algorithms }}
{{- if hasPrefix "HS" . }}
{{- $hmac = append $hmac . }}
{{- else }}
{{- $asymmetric = append $asymmetric . }}
{{- end }}
{{- end }}
{{- if and $hmac $public }}
{{- $problems = append $problems (printf "jwt.algorithms: %s cannot verify beside a public key source (%s); set jwt.algorithms to the IdP's, e.g. [RS256]" (join ", " $hmac) (first $public)) }}
{{- else if and .Values.jwt.keys $asymmetric (not $public) }}
{{- $problems = append $problems (printf "jwt.algorithms: %s need a public_key_file, jwks_file, jwks_url or oidc_issuer in jwt.keys; only HMAC secrets are configured" (join ", " $asymmetric)) }}
{{- end }}
{{- $problems | toJson }}
{{- end }}

{{/*
${VAR} references in the config sections against the container env: an unset one stops authproxy at
start-up. ${VAR:-default} and the literal $${ are fine. As a JSON list.
*/}}
{{- define "authproxy.envProblems" -}}
{{- $provided := list "AUTHPROXY_LISTEN" "AUTHPROXY_ADMIN_LISTEN" "AUTHPROXY_UPSTREAM_URL" "AUTHPROXY_UPSTREAM_CONNECT_TIMEOUT" "AUTHPROXY_UPSTREAM_READ_TIMEOUT" }}
{{- range .Values.env }}
{{- $provided = append $provided .name }}
{{- end }}
{{- $problems := list }}
{{- $sections := dict "jwt" .Values.jwt "policy" .Values.policy "forward" .Values.forward "logging" .Values.logging "rateLimits.config" .Values.rateLimits.config "authz" .Values.authz }}
{{- range $section, $content := $sections }}
{{- range regexFindAll "\\$?\\$\\{[A-Za-z_][A-Za-z0-9_]*\\}" (toJson $content) -1 | uniq }}
{{- $name := trimSuffix "}" (trimPrefix "${" .) }}
{{- if and (not (hasPrefix "$$" .)) (not (has $name $provided)) }}
{{- $problems = append $problems (printf "%s uses %s, but the container has no env %s; add it under env (e.g. a secretKeyRef) or write ${%s:-default}" $section . $name $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- $problems | toJson }}
{{- end }}
