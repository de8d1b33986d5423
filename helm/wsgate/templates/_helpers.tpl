{{- define "wsgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "wsgate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "wsgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wsgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "wsgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "wsgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "wsgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "wsgate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "wsgate.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "wsgate.redisSecretName" -}}
{{- if .Values.redis.existingSecret -}}{{ .Values.redis.existingSecret }}{{- else -}}{{ include "wsgate.fullname" . }}-redis{{- end -}}
{{- end -}}

{{- define "wsgate.redisEnabled" -}}
{{- if or .Values.redis.url .Values.redis.existingSecret -}}true{{- end -}}
{{- end -}}

{{- define "wsgate.tokensSecretName" -}}
{{- if .Values.adminTokens.existingSecret -}}{{ .Values.adminTokens.existingSecret }}{{- else -}}{{ include "wsgate.fullname" . }}-admin-tokens{{- end -}}
{{- end -}}

{{- define "wsgate.tokensEnabled" -}}
{{- if or .Values.adminTokens.tokens .Values.adminTokens.existingSecret -}}true{{- end -}}
{{- end -}}

{{/* adminTokens.tokens as the binary's token file; a value that is not "admin:..." or
"viewer:..." fails the render, naming the entry. */}}
{{- define "wsgate.tokenFile" -}}
{{- range $name, $value := .Values.adminTokens.tokens -}}
{{- if not (regexMatch "^(admin|viewer):[^\\s]{16,}$" $value) -}}
{{- fail (printf "adminTokens.tokens.%s: must be \"admin:TOKEN\" or \"viewer:TOKEN\" (TOKEN: 16 or more characters, no spaces)" $name) -}}
{{- end -}}
{{ regexReplaceAll "^(admin|viewer):" $value "${1} " }}
{{ end -}}
{{- end -}}

{{/* The admin port's scheme: it serves TLS with the control-plane certificate when tls.enabled. */}}
{{- define "wsgate.adminScheme" -}}
{{- if .Values.tls.enabled -}}HTTPS{{- else -}}HTTP{{- end -}}
{{- end -}}

{{- define "wsgate.tlsSecretName" -}}
{{- if .Values.tls.existingSecret -}}{{ .Values.tls.existingSecret }}{{- else -}}{{ include "wsgate.fullname" . }}-tls{{- end -}}
{{- end -}}

{{/* The pod template of one Deployment; dict: root, role (one|controlplane|dataplane). */}}
{{- define "wsgate.podTemplate" -}}
{{- $root := .root -}}
{{- $role := .role -}}
{{- $v := $root.Values -}}
metadata:
  labels:
    {{- include "wsgate.selectorLabels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ $role }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    {{- with $v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "wsgate.serviceAccountName" $root }}
  automountServiceAccountToken: false
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  # preStop sleep + the drain grace period + a margin for the 1001 closes and exit
  terminationGracePeriodSeconds: {{ add $v.preStopSleepSecs $v.shutdownGracePeriodSecs 5 }}
  securityContext:
    {{- toYaml $v.podSecurityContext | nindent 4 }}
  containers:
    - name: wsgate
      image: {{ include "wsgate.image" $root }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      command: ["wsgate"]
      args:
        - --config=/etc/wsgate/wsgate.yaml
        - --listen=0.0.0.0
        - --grpc-listen=0.0.0.0
        - --port={{ $v.ports.data }}
        - --admin-port={{ $v.ports.admin }}
        - --grpc-port={{ $v.ports.grpc }}
        - --log-format={{ $v.logFormat }}
        - --log-level={{ $v.logLevel }}
        {{- if gt (int $v.workers) 0 }}
        - --workers={{ $v.workers }}
        {{- end }}
        {{- if eq $role "controlplane" }}
        - --role=controlplane
        {{- else if eq $role "dataplane" }}
        - --role=dataplane
        - --control-plane={{ include "wsgate.fullname" $root }}-controlplane:{{ $v.ports.grpc }}
        {{- if $v.tls.enabled }}
        - --control-plane-ca=/etc/wsgate-secrets/tls/ca.crt
        {{- end }}
        {{- if include "wsgate.tokensEnabled" $root }}
        - --dataplane-token-file=/etc/wsgate-secrets/admin-tokens/dataplane-token
        {{- end }}
        {{- end }}
        {{- if include "wsgate.tokensEnabled" $root }}
        - --admin-token-file=/etc/wsgate-secrets/admin-tokens/{{ $v.adminTokens.existingSecretKey }}
        {{- end }}
        {{- if $v.tls.enabled }}
        - --control-tls-cert=/etc/wsgate-secrets/tls/tls.crt
        - --control-tls-key=/etc/wsgate-secrets/tls/tls.key
        {{- end }}
        {{- range $v.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      env:
        - name: SHUTDOWN_GRACE_PERIOD_SECS
          value: {{ $v.shutdownGracePeriodSecs | quote }}
        {{- if include "wsgate.redisEnabled" $root }}
        - name: REDIS_URL
          valueFrom:
            secretKeyRef:
              name: {{ include "wsgate.redisSecretName" $root }}
              key: {{ $v.redis.existingSecretKey }}
        {{- end }}
        {{- with $v.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        {{- if ne $role "controlplane" }}
        - name: data
          containerPort: {{ $v.ports.data }}
          protocol: TCP
        {{- end }}
        - name: admin
          containerPort: {{ $v.ports.admin }}
          protocol: TCP
        {{- if ne $role "dataplane" }}
        - name: grpc
          containerPort: {{ $v.ports.grpc }}
          protocol: TCP
        {{- end }}
      # /health: the process and its loops are alive. /ready: it can serve (not draining, config
      # applied, the bus up where a route needs it). Both on the admin port, which keeps
      # answering while the data port has stopped accepting during a drain.
      startupProbe:
        httpGet: {path: /health, port: admin, scheme: {{ include "wsgate.adminScheme" $root }}}
        {{- toYaml $v.probes.startup | nindent 8 }}
      livenessProbe:
        httpGet: {path: /health, port: admin, scheme: {{ include "wsgate.adminScheme" $root }}}
        {{- toYaml $v.probes.liveness | nindent 8 }}
      readinessProbe:
        httpGet: {path: /ready, port: admin, scheme: {{ include "wsgate.adminScheme" $root }}}
        {{- toYaml $v.probes.readiness | nindent 8 }}
      lifecycle:
        preStop:
          exec:
            command: ["sleep", "{{ $v.preStopSleepSecs }}"]
      resources:
        {{- if eq $role "controlplane" }}
        {{- toYaml (default $v.resources $v.controlPlane.resources) | nindent 8 }}
        {{- else }}
        {{- toYaml $v.resources | nindent 8 }}
        {{- end }}
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/wsgate
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- if include "wsgate.tokensEnabled" $root }}
        - name: admin-tokens
          mountPath: /etc/wsgate-secrets/admin-tokens
          readOnly: true
        {{- end }}
        {{- if $v.tls.enabled }}
        - name: tls
          mountPath: /etc/wsgate-secrets/tls
          readOnly: true
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "wsgate.fullname" $root }}
    - name: tmp
      emptyDir: {}
    {{- if include "wsgate.tokensEnabled" $root }}
    - name: admin-tokens
      secret:
        secretName: {{ include "wsgate.tokensSecretName" $root }}
    {{- end }}
    {{- if $v.tls.enabled }}
    - name: tls
      secret:
        secretName: {{ include "wsgate.tlsSecretName" $root }}
    {{- end }}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
