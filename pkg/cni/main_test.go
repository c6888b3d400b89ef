package cni

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMain removes the chains that portmap shares between all pods
// (CNI-HOSTPORT-*) after the integration tests, if these created them.
func TestMain(m *testing.M) {
	created := os.Geteuid() == 0 && !hasPortmapChains()
	code := m.Run()
	if created && hasPortmapChains() {
		removePortmapChains()
	}
	os.Exit(code)
}

func hasPortmapChains() bool {
	return exec.Command("iptables", "-t", "nat", "-S", "CNI-HOSTPORT-DNAT").Run() == nil
}

func removePortmapChains() {
	out, err := exec.Command("iptables-save", "-t", "nat").Output()
	if err != nil {
		return
	}
	var chains []string
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, ":CNI-HOSTPORT-"):
			chains = append(chains, strings.Fields(line[1:])[0])
		case strings.HasPrefix(line, "-A ") && strings.Contains(line, "-j CNI-HOSTPORT-"):
			// The rule as iptables-save quotes it, deleted through sh.
			exec.Command("sh", "-c", "iptables -t nat -D "+line[len("-A "):]).Run()
		}
	}
	for _, chain := range chains {
		exec.Command("iptables", "-t", "nat", "-F", chain).Run()
	}
	for _, chain := range chains {
		exec.Command("iptables", "-t", "nat", "-X", chain).Run()
	}
}
