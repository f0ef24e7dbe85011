//go:build tools

// Package helm names the command testbed/build.sh builds, so that `go mod tidy` keeps its
// dependencies.
package helm

import (
	_ "helm.sh/helm/v4/cmd/helm"
)
