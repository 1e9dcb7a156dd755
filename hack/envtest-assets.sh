#!/usr/bin/env bash
# Builds the real control-plane binaries used by envtest and the local cluster
# (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl) from
# the Go module proxy into a cache outside the checkout, when they are missing.
# The last line printed is the directory holding them. Arguments name other
# binaries of the same module to build instead, e.g. "kubelet kube-proxy" for
# the real-node cluster (make node-assets).
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-1.36.3}
here=$(cd "$(dirname "$0")" && pwd)
cache_root=${LICENSEHA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/licenseha}
dir="$cache_root/k8s-$K8S_VERSION"
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl)
[ $# -gt 0 ] && binaries=("$@")

missing=()
for b in "${binaries[@]}"; do
  [ -x "$dir/$b" ] || missing+=("$b")
done

if [ ${#missing[@]} -gt 0 ]; then
  mkdir -p "$dir"
  echo "Building ${missing[*]} (Kubernetes v$K8S_VERSION) into $dir; the first build takes about 10 minutes on 2 cores" >&2
  cd "$here/tools/controlplane"
  # Stamp the version the way Kubernetes' own build does, so clients and
  # skew checks see v$K8S_VERSION rather than v0.0.0.
  v=k8s.io/component-base/version
  ldversion="-X $v.gitVersion=v$K8S_VERSION -X $v.gitMajor=${K8S_VERSION%%.*} -X $v.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) -X $v.gitTreeState=clean"
  for b in "${missing[@]}"; do
    start=$(date +%s)
    case "$b" in
      etcd) pkg=./etcd ;;
      *) pkg=k8s.io/kubernetes/cmd/$b ;;
    esac
    # Build to a temporary name and rename, so an interrupted build never
    # leaves a half-written binary that later runs would trust.
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldversion" -o "$dir/.$b.tmp" "$pkg"
    mv "$dir/.$b.tmp" "$dir/$b"
    echo "Built $b in $(( $(date +%s) - start ))s" >&2
  done
fi
echo "$dir"
