{{- /* Labels of every object (metadata at 4 spaces) and of the pod (8 spaces). Builtins only: see values.yaml. */ -}}
{{- define "flatwall.labels" }}
    app.kubernetes.io/name: flatwall
    app.kubernetes.io/instance: {{ printf "%q" .Release.Name }}
    app.kubernetes.io/managed-by: {{ printf "%q" .Release.Service }}
    helm.sh/chart: {{ printf "%q" (printf "%s-%s" .Chart.Name .Chart.Version) }}
{{- end }}
{{- define "flatwall.selector" }}
      app.kubernetes.io/name: flatwall
      app.kubernetes.io/instance: {{ printf "%q" .Release.Name }}
{{- end }}
{{- define "flatwall.podLabels" }}
        app.kubernetes.io/name: flatwall
        app.kubernetes.io/instance: {{ printf "%q" .Release.Name }}
        app.kubernetes.io/component: firewall
{{- end }}
{{- define "flatwall.secretName" -}}
{{- if .Values.api.token.existingSecret }}{{ .Values.api.token.existingSecret }}{{ else }}{{ .Release.Name }}-api-token{{ end -}}
{{- end }}
