{{/*
Pod template of the gateway, shared by the StatefulSet (embedded) and the Deployment (external).
*/}}
{{- define "switchyard.probe" -}}
{{- $probe := index . 0 }}
{{- $port := index . 1 -}}
grpc:
  port: {{ $port }}
  service: {{ $probe.service | quote }}
initialDelaySeconds: {{ $probe.initialDelaySeconds }}
periodSeconds: {{ $probe.periodSeconds }}
timeoutSeconds: {{ $probe.timeoutSeconds }}
failureThreshold: {{ $probe.failureThreshold }}
{{- end }}

{{- define "switchyard.podTemplate" -}}
{{- $probePort := int (include "switchyard.probePort" .) -}}
metadata:
  labels:
    {{- include "switchyard.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- if not .Values.secrets.existingSecret }}
    checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "switchyard.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
  enableServiceLinks: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ include "switchyard.terminationGracePeriodSeconds" . }}
  {{- with .Values.initContainers }}
  initContainers:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: gateway
      image: {{ include "switchyard.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - --flagfile={{ include "switchyard.configDir" . }}/server.flags
      ports:
        - name: grpc
          containerPort: {{ int .Values.server.grpcPort }}
          protocol: TCP
        - name: http
          containerPort: {{ int .Values.server.httpPort }}
          protocol: TCP
        {{- if include "switchyard.dedicatedHealthListener" . }}
        - name: health
          containerPort: {{ int .Values.health.port }}
          protocol: TCP
        {{- end }}
      {{- $dbCA := and (eq .Values.mode "external") .Values.externalDatabase.caSecret }}
      {{- if or .Values.extraEnv $dbCA }}
      env:
        {{- if $dbCA }}
        # The CA that verifies the database server (libpq reads it for sslmode=verify-*).
        - name: PGSSLROOTCERT
          value: /etc/switchyard/db-ca/ca.crt
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      {{- if .Values.startupProbe.enabled }}
      startupProbe:
        {{- include "switchyard.probe" (list .Values.startupProbe $probePort) | nindent 8 }}
      {{- end }}
      {{- if .Values.livenessProbe.enabled }}
      livenessProbe:
        {{- include "switchyard.probe" (list .Values.livenessProbe $probePort) | nindent 8 }}
      {{- end }}
      {{- if .Values.readinessProbe.enabled }}
      readinessProbe:
        {{- include "switchyard.probe" (list .Values.readinessProbe $probePort) | nindent 8 }}
      {{- end }}
      {{- if gt (int .Values.server.preStopSleepSeconds) 0 }}
      lifecycle:
        preStop:
          exec:
            command: ["sleep", "{{ int .Values.server.preStopSleepSeconds }}"]
      {{- end }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: data
          mountPath: {{ include "switchyard.dataDir" . }}
        - name: tmp
          mountPath: /tmp
        - name: config
          mountPath: {{ include "switchyard.configDir" . }}
          readOnly: true
        - name: secrets
          mountPath: {{ include "switchyard.secretsDir" . }}
          readOnly: true
        {{- if .Values.tls.enabled }}
        - name: tls
          mountPath: {{ include "switchyard.tlsDir" . }}
          readOnly: true
        {{- if .Values.tls.clientCA.enabled }}
        - name: client-ca
          mountPath: {{ include "switchyard.clientCADir" . }}
          readOnly: true
        {{- end }}
        {{- end }}
        {{- if and (eq .Values.mode "external") .Values.externalDatabase.caSecret }}
        - name: db-ca
          mountPath: /etc/switchyard/db-ca
          readOnly: true
        {{- end }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    {{- with .Values.extraContainers }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  volumes:
    {{- if or (eq .Values.mode "external") (not .Values.persistence.enabled) }}
    # The embedded store is not used (external) or not kept (persistence disabled).
    - name: data
      emptyDir: {}
    {{- end }}
    - name: tmp
      emptyDir: {}
    - name: config
      configMap:
        name: {{ include "switchyard.fullname" . }}
    - name: secrets
      secret:
        secretName: {{ include "switchyard.secretName" . }}
        # Owner root, group fsGroup: readable by the gateway only.
        defaultMode: 0440
        items:
          - key: {{ .Values.secrets.masterKeyringKey }}
            path: master-keyring
          {{- if include "switchyard.hasOperatorKey" . }}
          - key: {{ .Values.secrets.bootstrapOperatorKeyKey }}
            path: operator-key
          {{- end }}
          {{- if include "switchyard.hasDatabasePassword" . }}
          - key: {{ .Values.secrets.databasePasswordKey }}
            path: database-password
          {{- end }}
    {{- if .Values.tls.enabled }}
    - name: tls
      secret:
        secretName: {{ .Values.tls.secretName }}
        defaultMode: 0440
        items:
          - key: {{ .Values.tls.certKey }}
            path: tls.crt
          - key: {{ .Values.tls.keyKey }}
            path: tls.key
    {{- if .Values.tls.clientCA.enabled }}
    - name: client-ca
      secret:
        secretName: {{ .Values.tls.clientCA.secretName | default .Values.tls.secretName }}
        defaultMode: 0440
        items:
          - key: {{ .Values.tls.clientCA.key }}
            path: ca.crt
    {{- end }}
    {{- end }}
    {{- if and (eq .Values.mode "external") .Values.externalDatabase.caSecret }}
    - name: db-ca
      secret:
        secretName: {{ .Values.externalDatabase.caSecret }}
        defaultMode: 0440
        items:
          - key: {{ .Values.externalDatabase.caKey }}
            path: ca.crt
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml .Values.topologySpreadConstraints | nindent 4 }}
  {{- else if eq .Values.mode "external" }}
  # Replicas on different nodes (a node lost or drained takes one), and
  # spread over zones where the cluster has them. Preferred, not required:
  # a hard rule would leave the surge pod of a rollout pending on a cluster
  # with as many nodes as replicas.
  topologySpreadConstraints:
    - maxSkew: 1
      topologyKey: kubernetes.io/hostname
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "switchyard.selectorLabels" . | nindent 10 }}
    - maxSkew: 1
      topologyKey: topology.kubernetes.io/zone
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "switchyard.selectorLabels" . | nindent 10 }}
  {{- end }}
{{- end }}
