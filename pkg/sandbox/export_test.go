package sandbox

// NewTestRuntime is testRuntime for the external tests.
var NewTestRuntime = testRuntime
