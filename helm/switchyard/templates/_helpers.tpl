{{/*
Chart name, truncated to the 63 characters of a DNS label.
*/}}
{{- define "switchyard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: <release>-<chart>, or the release name when it already contains the chart name.
*/}}
{{- define "switchyard.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "switchyard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Namespace of every namespaced resource.
*/}}
{{- define "switchyard.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every resource.
*/}}
{{- define "switchyard.labels" -}}
helm.sh/chart: {{ include "switchyard.chart" . }}
{{ include "switchyard.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: switchyard
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels: stable over upgrades, so never the chart version.
*/}}
{{- define "switchyard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchyard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end }}

{{/*
Name of the ServiceAccount.
*/}}
{{- define "switchyard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "switchyard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference: repository@digest, or repository:tag (appVersion when the tag is empty).
*/}}
{{- define "switchyard.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
Name of the Secret with the keys: the user's existing one, or the one the chart creates.
*/}}
{{- define "switchyard.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else }}
{{- include "switchyard.fullname" . }}
{{- end }}
{{- end }}

{{/*
"true" when the pods mount an operator key.
*/}}
{{- define "switchyard.hasOperatorKey" -}}
{{- if .Values.secrets.bootstrapOperatorKeyKey }}
{{- if or .Values.secrets.existingSecret .Values.secrets.bootstrapOperatorKey }}true{{- end }}
{{- end }}
{{- end }}

{{/*
"true" when the pods mount a database password (external mode).
*/}}
{{- define "switchyard.hasDatabasePassword" -}}
{{- if eq .Values.mode "external" }}true{{- end }}
{{- end }}

{{/*
"true" when the dedicated plaintext health listener runs (always with TLS).
*/}}
{{- define "switchyard.dedicatedHealthListener" -}}
{{- if or .Values.tls.enabled .Values.health.dedicatedListener }}true{{- end }}
{{- end }}

{{/*
Container port the probes use: the health listener, or the gRPC port in plaintext mode.
*/}}
{{- define "switchyard.probePort" -}}
{{- if include "switchyard.dedicatedHealthListener" . }}
{{- .Values.health.port }}
{{- else }}
{{- .Values.server.grpcPort }}
{{- end }}
{{- end }}

{{/*
Termination grace period: the value given, or preStop sleep + drain deadline + 10 s. Fails when
the value given leaves no time for the drain.
*/}}
{{- define "switchyard.terminationGracePeriodSeconds" -}}
{{- $needed := add .Values.server.preStopSleepSeconds .Values.server.drainDeadlineSeconds }}
{{- if kindIs "invalid" .Values.server.terminationGracePeriodSeconds }}
{{- add $needed 10 }}
{{- else }}
{{- $given := int .Values.server.terminationGracePeriodSeconds }}
{{- if le $given (int $needed) }}
{{- fail (printf "server.terminationGracePeriodSeconds (%d) must be larger than server.preStopSleepSeconds + server.drainDeadlineSeconds (%d), or the drain is cut short by SIGKILL" $given (int $needed)) }}
{{- end }}
{{- $given }}
{{- end }}
{{- end }}

{{/*
Mount paths shared by the workload, the flag file and the test.
*/}}
{{- define "switchyard.secretsDir" -}}/etc/switchyard/secrets{{- end }}
{{- define "switchyard.tlsDir" -}}/etc/switchyard/tls{{- end }}
{{- define "switchyard.clientCADir" -}}/etc/switchyard/client-ca{{- end }}
{{- define "switchyard.configDir" -}}/etc/switchyard/config{{- end }}
{{- define "switchyard.dataDir" -}}/var/lib/switchyard{{- end }}

{{/*
Checks of combinations the schema cannot express; fails rendering with a clear message.
*/}}
{{- define "switchyard.validate" -}}
{{- $s := .Values.secrets }}
{{- if $s.existingSecret }}
{{- if or $s.masterKeyring $s.bootstrapOperatorKey $s.databasePassword }}
{{- fail "secrets.existingSecret is set: leave secrets.masterKeyring, secrets.bootstrapOperatorKey and secrets.databasePassword empty (the keys come from the existing Secret)" }}
{{- end }}
{{- else }}
{{- if not $s.masterKeyring }}
{{- fail "a master keyring is required: set secrets.existingSecret (a Secret with the key secrets.masterKeyringKey) or secrets.masterKeyring (lines ID:BASE64KEY, for example k1:$(openssl rand -base64 32))" }}
{{- end }}
{{- if and (eq .Values.mode "external") (not $s.databasePassword) }}
{{- fail "mode external needs secrets.databasePassword (or secrets.existingSecret with secrets.databasePasswordKey)" }}
{{- end }}
{{- end }}
{{- if eq .Values.mode "external" }}
{{- if not .Values.externalDatabase.url }}
{{- fail "mode external needs externalDatabase.url (a connection string without the password)" }}
{{- end }}
{{- if regexMatch "://[^/@]*:[^/@]*@" .Values.externalDatabase.url }}
{{- fail "externalDatabase.url must not contain a password: the password comes from the Secret (secrets.databasePassword or secrets.databasePasswordKey)" }}
{{- end }}
{{- if regexMatch "(?i)password=" .Values.externalDatabase.url }}
{{- fail "externalDatabase.url must not contain a password parameter: the password comes from the Secret" }}
{{- end }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) }}
{{- fail "tls.enabled needs tls.secretName (a Secret with the certificate and key)" }}
{{- end }}
{{- if and .Values.tls.clientCA.enabled (not .Values.tls.enabled) }}
{{- fail "tls.clientCA.enabled needs tls.enabled" }}
{{- end }}
{{- $ports := list (int .Values.server.grpcPort) (int .Values.server.httpPort) }}
{{- if include "switchyard.dedicatedHealthListener" . }}
{{- $ports = append $ports (int .Values.health.port) }}
{{- end }}
{{- if ne (len $ports) (len (uniq $ports)) }}
{{- fail "server.grpcPort, server.httpPort and health.port must differ" }}
{{- end }}
{{- range $key, $value := .Values.server.extraFlags }}
{{- if regexMatch "(?i)(key|password|secret|token)" $key }}
{{- if not (regexMatch "_file$" $key) }}
{{- fail (printf "server.extraFlags.%s looks like a secret: the flag file is a ConfigMap; pass secrets through the Secret" $key) }}
{{- end }}
{{- end }}
{{- if regexMatch "^(listen|http_listen|health_listen|data_dir|flagfile|master_key_file|bootstrap_operator_key_file|tls_cert_file|tls_key_file|tls_client_ca_file|drain_deadline|database_url|database_password_file|catalog_file)$" $key }}
{{- fail (printf "server.extraFlags.%s is set by the chart from its own values" $key) }}
{{- end }}
{{- /* One replica id for every pod would make them all deliver the same connections; dev mode mints an operator key; the others are for local runs. */}}
{{- if regexMatch "^(replica_id|dev_mode|port_file|plaintext_listen)$" $key }}
{{- fail (printf "server.extraFlags.%s cannot be used in a deployment" $key) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Label that lets a pod reach the gRPC port through the NetworkPolicy (<fullname>-client: "true").
*/}}
{{- define "switchyard.clientLabel" -}}
{{- printf "%s-client" (include "switchyard.fullname" . | trunc 56 | trimSuffix "-") }}
{{- end }}

{{/*
A value as a flag file writes it: whole numbers without an exponent (YAML numbers are floats).
*/}}
{{- define "switchyard.flagValue" -}}
{{- if and (kindIs "float64" .) (eq (floor .) .) }}
{{- int64 . }}
{{- else }}
{{- . }}
{{- end }}
{{- end }}
