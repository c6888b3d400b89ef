package cri

import "go.opentelemetry.io/otel"

// tracer traces the calls that start pods, containers and execs, each a
// tracing.Call whose steps are its phases: CNI, the pod record, the
// container's root, its output... (pkg/sandbox traces the VM's).
var tracer = otel.Tracer("github.com/vc-cri/vc-cri/pkg/cri")
