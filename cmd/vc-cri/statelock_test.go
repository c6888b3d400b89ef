package main

import (
	"strings"
	"testing"
)

func TestLockStateDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	unlock, err := lockStateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockStateDir(dir); err == nil || !strings.Contains(err.Error(), "another vc-cri") {
		t.Fatalf("a second daemon on the same state dir: %v, want refused", err)
	}
	unlock()
	again, err := lockStateDir(dir)
	if err != nil {
		t.Fatalf("the state dir once its daemon is gone: %v", err)
	}
	again()
}
