{{/*
The authproxy container and its volumes, shared by the gateway Deployment and by pods of other
charts (sidecar mode). The context needs only .Values (this chart's values) and .Release:

  containers:
    - name: my-app
      ...
    {{- include "authproxy.sidecarContainer" (dict "Values" .Values.authproxy "Release" .Release) | nindent 4 }}
  volumes:
    {{- include "authproxy.sidecarVolumes" (dict "Values" .Values.authproxy "Release" .Release) | nindent 4 }}

Port and volume names carry an "authproxy-" prefix so they cannot clash with the app's own.
*/}}
{{- define "authproxy.sidecarContainer" -}}
{{- include "authproxy.validate" . -}}
- name: authproxy
  image: {{ printf "%s:%s" .Values.image.repository .Values.image.tag | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["serve", "-c", "/etc/authproxy/config.yaml"]
  env:
    # Read by config.yaml through ${VAR}: in the pod spec, so a change rolls the pods.
    - name: AUTHPROXY_LISTEN
      value: {{ printf "0.0.0.0:%v" .Values.ports.http | quote }}
    - name: AUTHPROXY_ADMIN_LISTEN
      value: {{ printf "0.0.0.0:%v" .Values.ports.admin | quote }}
    {{- if eq .Values.mode "authz" }}
    - name: AUTHPROXY_AUTHZ_LISTEN
      value: {{ printf "0.0.0.0:%v" .Values.ports.authz | quote }}
    {{- end }}
    - name: AUTHPROXY_UPSTREAM_URL
      value: {{ .Values.upstream.url | quote }}
    - name: AUTHPROXY_UPSTREAM_CONNECT_TIMEOUT
      value: {{ .Values.upstream.connectTimeout | quote }}
    - name: AUTHPROXY_UPSTREAM_READ_TIMEOUT
      value: {{ .Values.upstream.readTimeout | quote }}
    - name: AUTHPROXY_SHUTDOWN_GRACE
      value: {{ .Values.shutdownGraceSeconds | quote }}
    # Worker processes: set explicitly, since the node's CPU count is not this pod's share of it.
    - name: AUTHPROXY_WORKERS
      value: {{ .Values.workers | quote }}
    {{- with .Values.rateLimits }}
    {{- if .redisUrlSecret.name }}
    - name: AUTHPROXY_RATE_LIMIT_BACKEND
      valueFrom:
        secretKeyRef:
          name: {{ .redisUrlSecret.name | quote }}
          key: {{ .redisUrlSecret.key | quote }}
    {{- else if .redisUrl }}
    - name: AUTHPROXY_RATE_LIMIT_BACKEND
      value: {{ .redisUrl | quote }}
    {{- end }}
    {{- end }}
    {{- with .Values.tracing }}
    {{- if .otlpEndpoint }}
    # Tracing is on because an OTLP endpoint is set; the SDK reads the rest of OTEL_* itself.
    - name: OTEL_EXPORTER_OTLP_ENDPOINT
      value: {{ .otlpEndpoint | quote }}
    - name: OTEL_SERVICE_NAME
      value: {{ .serviceName | default (include "authproxy.fullname" $) | quote }}
    {{- if .sampler }}
    - name: OTEL_TRACES_SAMPLER
      value: {{ .sampler | quote }}
    {{- end }}
    {{- if .samplerArg }}
    - name: OTEL_TRACES_SAMPLER_ARG
      value: {{ .samplerArg | quote }}
    {{- end }}
    {{- end }}
    {{- end }}
    {{- with .Values.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: authproxy-http
      containerPort: {{ .Values.ports.http }}
      protocol: TCP
    - name: authproxy-admin
      containerPort: {{ .Values.ports.admin }}
      protocol: TCP
    {{- if eq .Values.mode "authz" }}
    - name: authproxy-authz
      containerPort: {{ .Values.ports.authz }}
      protocol: TCP
    {{- end }}
  startupProbe:
    httpGet:
      path: /healthz
      port: authproxy-admin
    {{- toYaml .Values.probes.startup | nindent 4 }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: authproxy-admin
    {{- toYaml .Values.probes.liveness | nindent 4 }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: authproxy-admin
    {{- toYaml .Values.probes.readiness | nindent 4 }}
  {{- if gt (int .Values.preStopSleepSeconds) 0 }}
  lifecycle:
    preStop:
      exec:
        command: ["sleep", {{ .Values.preStopSleepSeconds | quote }}]
  {{- end }}
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 10001
    runAsGroup: 10001
    readOnlyRootFilesystem: true
    allowPrivilegeEscalation: false
    privileged: false
    capabilities:
      drop: ["ALL"]
    seccompProfile:
      type: RuntimeDefault
  volumeMounts:
    - name: authproxy-config
      mountPath: /etc/authproxy
      readOnly: true
    - name: authproxy-tmp
      mountPath: /tmp
{{- end }}

{{/*
One projected volume holds config.yaml and keys/<name>: both update in place (no subPath), so
a ConfigMap edit reaches the running process, and the keys sit at /etc/authproxy/keys.
*/}}
{{- define "authproxy.sidecarVolumes" -}}
{{- /* Validated here too: a parent chart may include the volumes without the container. */}}
{{- include "authproxy.validate" . -}}
- name: authproxy-config
  projected:
    sources:
      - configMap:
          name: {{ include "authproxy.fullname" . }}
          items:
            - key: config.yaml
              path: config.yaml
              mode: 292 # 0444: config.yaml holds no secrets
      {{- $names := include "authproxy.keyNames" . | fromJsonArray }}
      {{- if $names }}
      - secret:
          name: {{ include "authproxy.keysSecretName" . }}
          items:
            {{- range $names }}
            - key: {{ . }}
              path: {{ printf "keys/%s" . }}
              mode: {{ $.Values.keys.fileMode }}
            {{- end }}
      {{- end }}
      {{- /* Certificates in the same projected volume: no subPath, so a renewed Secret reaches the
             process and is used from the next handshake. */}}
      {{- with .Values.tls }}
      {{- if .secretName }}
      - secret:
          name: {{ .secretName }}
          items:
            - {key: tls.crt, path: tls/tls.crt, mode: {{ $.Values.keys.fileMode }}}
            - {key: tls.key, path: tls/tls.key, mode: {{ $.Values.keys.fileMode }}}
            {{- if .clientAuth }}
            - {key: ca.crt, path: tls/ca.crt, mode: {{ $.Values.keys.fileMode }}}
            {{- end }}
      {{- end }}
      {{- end }}
      {{- with .Values.upstreamTls }}
      {{- if .secretName }}
      - secret:
          name: {{ .secretName }}
          items:
            - {key: ca.crt, path: upstream-tls/ca.crt, mode: {{ $.Values.keys.fileMode }}}
            {{- if .clientCertificate }}
            - {key: tls.crt, path: upstream-tls/tls.crt, mode: {{ $.Values.keys.fileMode }}}
            - {key: tls.key, path: upstream-tls/tls.key, mode: {{ $.Values.keys.fileMode }}}
            {{- end }}
      {{- end }}
      {{- end }}
- name: authproxy-tmp
  emptyDir:
    medium: Memory
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end }}

{{/* Pod annotations a sidecar's pod should carry: restart on inline key changes. */}}
{{- define "authproxy.sidecarPodAnnotations" -}}
{{- include "authproxy.podAnnotations" . }}
{{- end }}
