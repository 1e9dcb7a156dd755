//go:build tools

// Package helm pins the Helm command built by `make helm`.
package helm

import (
	_ "helm.sh/helm/v4/cmd/helm"
)
