#!/usr/bin/env bash
# Installs the Debian packages licenseha's local cluster, demo and tests need,
# when missing: iptables and iproute2 (pod networks and faults), util-linux
# (nsenter, mount namespaces), procps, git, make, curl. Needs root to install.
# The real-node cluster (hack/realcluster) adds the container runtime and what
# goes with it: containerd, runc, the CNI plugins (bridge, host-local, portmap),
# conntrack and socat (kube-proxy and kubectl port-forward); ca-certificates
# gives `make image` the CA bundle of an image without a base. Arguments are
# more packages a target needs (make bench-load: stress-ng).
set -euo pipefail
packages=(git make iptables iproute2 procps util-linux curl
  containerd runc containernetworking-plugins conntrack socat ca-certificates
  "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "Missing Debian packages: ${missing[*]}; install them as root (apt-get install ${missing[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
