package main

import (
	"testing"
	"time"
)

// TestNRIConfig: on by default at containerd's paths; the timeouts are
// durations.
func TestNRIConfig(t *testing.T) {
	cfg, err := loadConfig("/nonexistent/config.toml", false)
	if err != nil {
		t.Fatal(err)
	}
	got, err := cfg.NRI.config()
	if err != nil {
		t.Fatal(err)
	}
	if !got.Enable || got.SocketPath != "/var/run/nri/nri.sock" || got.PluginPath != "/opt/nri/plugins" || got.PluginConfigPath != "/etc/nri/conf.d" {
		t.Errorf("default NRI config: %+v", got)
	}
	if got.RegistrationTimeout != 5*time.Second || got.RequestTimeout != 2*time.Second {
		t.Errorf("default NRI timeouts: %v, %v", got.RegistrationTimeout, got.RequestTimeout)
	}
	cfg.NRI.PluginRegistrationTimeout, cfg.NRI.PluginRequestTimeout = "", "10s"
	if got, err = cfg.NRI.config(); err != nil || got.RegistrationTimeout != 0 || got.RequestTimeout != 10*time.Second {
		t.Errorf("NRI timeouts \"\" and 10s: %v, %v, %v", got.RegistrationTimeout, got.RequestTimeout, err)
	}
	for _, bad := range []string{"10", "-1s", "soon"} {
		cfg.NRI.PluginRequestTimeout = bad
		if _, err := cfg.NRI.config(); err == nil {
			t.Errorf("plugin_request_timeout %q: no error", bad)
		}
	}
}
