//go:build tools

// Package tools pins the packages critest's test binary needs, so that
// `go mod tidy` keeps their go.sum entries: critest is built with
// `go test -c sigs.k8s.io/cri-tools/cmd/critest`, and tests of a
// dependency are not part of the module graph's "all".
package tools

import (
	_ "github.com/onsi/ginkgo/v2"
	_ "github.com/onsi/gomega"
	_ "sigs.k8s.io/cri-tools/pkg/benchmark"
	_ "sigs.k8s.io/cri-tools/pkg/framework"
	_ "sigs.k8s.io/cri-tools/pkg/validate"
)
