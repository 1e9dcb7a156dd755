#!/usr/bin/env bash
# Copies the generated CRDs into the Helm chart's templates, behind the
# crds.enabled switch and with helm.sh/resource-policy: keep (crds.keep), so
# that uninstalling the chart never deletes the CRDs and with them every
# user's triads and pairs. Helm's crds/ folder is not used because Helm never
# upgrades CRDs placed there.
set -euo pipefail
src=$1 dst=$2
mkdir -p "$dst"
rm -f "$dst"/*.yaml
for f in "$src"/*.yaml; do
  out="$dst/$(basename "$f")"
  {
    echo "{{- if .Values.crds.enabled }}"
    awk '
      /^  annotations:$/ && !done {
        print
        print "    {{- if .Values.crds.keep }}"
        print "    helm.sh/resource-policy: keep"
        print "    {{- end }}"
        done = 1
        next
      }
      { print }
    ' "$f"
    echo "{{- end }}"
  } > "$out"
done
