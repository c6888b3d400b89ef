package sandbox

// NewTestRuntime is testRuntime for the external tests.
var NewTestRuntime = testRuntime

// WaitTemplates waits for the VM templates being built.
func (r *Runtime) WaitTemplates() { r.waitTemplates() }
