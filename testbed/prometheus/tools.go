//go:build tools

// Package prometheus names the commands scripts/prometheus.sh builds (Prometheus and promtool),
// so that `go mod tidy` keeps their dependencies.
package prometheus

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
