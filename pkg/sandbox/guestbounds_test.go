package sandbox

import (
	"fmt"
	"strings"
	"testing"
)

func TestAcceptInterface(t *testing.T) {
	var kept []InterfaceStats
	for _, name := range []string{"eth0", "eth0", "", "bad name", "a/b", "x\n", strings.Repeat("l", 16), "..", "veth@if3", "é"} {
		if acceptInterface(name, kept) {
			kept = append(kept, InterfaceStats{Name: name})
		}
	}
	if len(kept) != 2 || kept[0].Name != "eth0" || kept[1].Name != "veth@if3" {
		t.Fatalf("kept %v", kept)
	}
	for i := 0; i < 100; i++ {
		if name := fmt.Sprintf("if%d", i); acceptInterface(name, kept) {
			kept = append(kept, InterfaceStats{Name: name})
		}
	}
	if len(kept) != maxGuestInterfaces {
		t.Fatalf("kept %d interfaces, want %d", len(kept), maxGuestInterfaces)
	}
}
