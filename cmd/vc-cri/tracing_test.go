package main

import (
	"context"
	"encoding/json"
	"testing"
)

// TestOTLPEndpointSetting: off by default; the file's key and the flag
// set it, the flag over the file.
func TestOTLPEndpointSetting(t *testing.T) {
	path, _ := envFixture(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, ""},
		{[]string{"--otlp-endpoint", "http://127.0.0.1:4317"}, "http://127.0.0.1:4317"},
	} {
		doc := map[string]any{}
		if err := json.Unmarshal(runEnv(t, append([]string{"--config", path, "-o", "json"}, tc.args...)...), &doc); err != nil {
			t.Fatal(err)
		}
		if v, _ := lookup(doc, "config.tracing.otlp_endpoint"); v != tc.want {
			t.Errorf("%v: config.tracing.otlp_endpoint = %v, want %q", tc.args, v, tc.want)
		}
	}
	cfg, err := loadConfig(path, true)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Tracing.OTLPEndpoint = "collector:4317" // no scheme
	if _, err := startTracing(context.Background(), cfg); err == nil {
		t.Error("startTracing with an endpoint that is no URL: no error")
	}
}
