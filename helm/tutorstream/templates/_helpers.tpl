{{/* Chart name, cut to the 63 characters of a DNS label. */}}
{{- define "tutorstream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name; the release name alone when it already holds the chart's. */}}
{{- define "tutorstream.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tutorstream.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "tutorstream.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "tutorstream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tutorstream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tutorstream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tutorstream.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tutorstream.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "tutorstream.gpuImage" -}}
{{- printf "%s:%s" .Values.gpu.image.repository (default (printf "%s-gpu" .Chart.AppVersion) .Values.gpu.image.tag) }}
{{- end }}

{{/* Whether the Kafka clients authenticate with SASL, and whether they speak TLS. */}}
{{- define "tutorstream.kafkaSasl" -}}
{{- if has .Values.kafkaSecurity.protocol (list "SASL_PLAINTEXT" "SASL_SSL") }}true{{ end }}
{{- end }}

{{- define "tutorstream.kafkaTls" -}}
{{- if has .Values.kafkaSecurity.protocol (list "SSL" "SASL_SSL") }}true{{ end }}
{{- end }}

{{/* Where the Secret of kafkaSecurity.tls is mounted, read-only. */}}
{{- define "tutorstream.kafkaTlsDir" -}}
/etc/tutorstream/kafka
{{- end }}

{{- define "tutorstream.secretName" -}}
{{- default (printf "%s-secrets" (include "tutorstream.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{/*
The settings every pod shares, as a map of TUTORSTREAM_* variable to value. The ConfigMap holds
them; the hook jobs, which run before the ConfigMap exists on a first install, get them inline.
*/}}
{{- define "tutorstream.settings" -}}
{{- $s := .Values.settings -}}
TUTORSTREAM_MODE: {{ $s.mode | quote }}
TUTORSTREAM_KAFKA_BOOTSTRAP: {{ $s.kafkaBootstrap | quote }}
TUTORSTREAM_APP_ID: {{ $s.appId | quote }}
TUTORSTREAM_TOPIC_PREFIX: {{ $s.topicPrefix | quote }}
TUTORSTREAM_REPLICATION_FACTOR: {{ $s.replicationFactor | quote }}
TUTORSTREAM_MODEL: {{ $s.model | quote }}
TUTORSTREAM_MODEL_THREADS: {{ $s.modelThreads | quote }}
TUTORSTREAM_MAX_BATCH: {{ $s.maxBatch | quote }}
TUTORSTREAM_SESSION_TIMEOUT_S: {{ $s.sessionTimeoutS | quote }}
TUTORSTREAM_STORE__DB_SCHEMA: {{ $s.storeSchema | quote }}
{{- with $s.storeMode }}
TUTORSTREAM_STORE__MODE: {{ . | quote }}
{{- end }}
TUTORSTREAM_PUBLIC_URL: {{ $s.publicUrl | quote }}
{{- $k := .Values.kafkaSecurity }}
TUTORSTREAM_KAFKA_SECURITY__PROTOCOL: {{ $k.protocol | quote }}
{{- if include "tutorstream.kafkaSasl" . }}
TUTORSTREAM_KAFKA_SECURITY__SASL_MECHANISM: {{ $k.saslMechanism | quote }}
{{- end }}
{{- if include "tutorstream.kafkaTls" . }}
TUTORSTREAM_KAFKA_SECURITY__SSL_CHECK_HOSTNAME: {{ $k.checkHostname | quote }}
{{- if and $k.tls.existingSecret $k.tls.caKey }}
TUTORSTREAM_KAFKA_SECURITY__SSL_CA_FILE: {{ printf "%s/%s" (include "tutorstream.kafkaTlsDir" .) $k.tls.caKey | quote }}
{{- end }}
{{- if and $k.tls.existingSecret $k.tls.certKey }}
TUTORSTREAM_KAFKA_SECURITY__SSL_CERT_FILE: {{ printf "%s/%s" (include "tutorstream.kafkaTlsDir" .) $k.tls.certKey | quote }}
TUTORSTREAM_KAFKA_SECURITY__SSL_KEY_FILE: {{ printf "%s/%s" (include "tutorstream.kafkaTlsDir" .) $k.tls.keyKey | quote }}
{{- end }}
{{- end }}
TUTORSTREAM_WEB_PORT: {{ .Values.worker.webPort | quote }}
TUTORSTREAM_API__HOST: "0.0.0.0"
TUTORSTREAM_API__PORT: {{ .Values.api.port | quote }}
TUTORSTREAM_DATA_DIR: "/var/lib/tutorstream/streams"
TUTORSTREAM_STATE_DIR: "/var/lib/tutorstream/state"
{{- range $name, $value := $s.extra }}
{{ $name }}: {{ $value | quote }}
{{- end }}
{{- end }}

{{/* The secret variables, from the chart's Secret or the existing one, and Kafka's SASL Secret. */}}
{{- define "tutorstream.secretEnv" -}}
- name: TUTORSTREAM_PSEUDONYM_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "tutorstream.secretName" . }}
      key: {{ .Values.secrets.pseudonymKeyKey }}
- name: TUTORSTREAM_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "tutorstream.secretName" . }}
      key: {{ .Values.secrets.databaseUrlKey }}
{{- if include "tutorstream.kafkaSasl" . }}
- name: TUTORSTREAM_KAFKA_SECURITY__SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafkaSecurity.existingSecret }}
      key: {{ .Values.kafkaSecurity.usernameKey }}
- name: TUTORSTREAM_KAFKA_SECURITY__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.kafkaSecurity.existingSecret }}
      key: {{ .Values.kafkaSecurity.passwordKey }}
{{- end }}
{{- end }}

{{/* Volumes every tutorstream container needs on a read-only root filesystem. */}}
{{- define "tutorstream.volumeMounts" -}}
- name: data
  mountPath: /var/lib/tutorstream
- name: tmp
  mountPath: /tmp
{{- if and (include "tutorstream.kafkaTls" .) .Values.kafkaSecurity.tls.existingSecret }}
- name: kafka-tls
  mountPath: {{ include "tutorstream.kafkaTlsDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "tutorstream.volumes" -}}
- name: data
  emptyDir:
    sizeLimit: {{ .Values.worker.dataVolume.sizeLimit }}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- if and (include "tutorstream.kafkaTls" .) .Values.kafkaSecurity.tls.existingSecret }}
- name: kafka-tls
  secret:
    secretName: {{ .Values.kafkaSecurity.tls.existingSecret }}
    # owner and group (fsGroup) may read; the client key is in here
    defaultMode: 0440
{{- end }}
{{- end }}

{{/* Refusals no schema can express. */}}
{{- define "tutorstream.validate" -}}
{{- if and .Values.autoscaling.keda.enabled .Values.autoscaling.hpa.enabled }}
{{- fail "autoscaling: enable autoscaling.keda or autoscaling.hpa, not both" }}
{{- end }}
{{- $k := .Values.kafkaSecurity }}
{{- if and (include "tutorstream.kafkaSasl" .) (not $k.existingSecret) }}
{{- fail (printf "kafkaSecurity.existingSecret: name the Secret with the SASL username and password (%s)" $k.protocol) }}
{{- end }}
{{- if and $k.tls.existingSecret (not (include "tutorstream.kafkaTls" .)) }}
{{- fail (printf "kafkaSecurity.tls.existingSecret: only the TLS protocols (SSL, SASL_SSL) use it, not %s" $k.protocol) }}
{{- end }}
{{- if ne (empty $k.tls.certKey) (empty $k.tls.keyKey) }}
{{- fail "kafkaSecurity.tls.certKey and kafkaSecurity.tls.keyKey go together (mutual TLS): set both or neither" }}
{{- end }}
{{- if and $k.tls.certKey (not $k.tls.existingSecret) }}
{{- fail "kafkaSecurity.tls.certKey: name the Secret that holds the client certificate in kafkaSecurity.tls.existingSecret" }}
{{- end }}
{{- if not .Values.secrets.existingSecret }}
{{- if lt (len .Values.secrets.pseudonymKey) 32 }}
{{- fail "secrets.pseudonymKey: set a key of at least 32 characters, or secrets.existingSecret" }}
{{- end }}
{{- if not .Values.secrets.databaseUrl }}
{{- fail "secrets.databaseUrl: set the store's URL, or secrets.existingSecret" }}
{{- end }}
{{- end }}
{{- end }}
