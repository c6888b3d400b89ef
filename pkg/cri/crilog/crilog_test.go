package crilog

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func parse(t *testing.T, out string) (streams, tags, contents []string) {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		f := strings.SplitN(l, " ", 4)
		if len(f) != 4 {
			t.Fatalf("malformed entry %q", l)
		}
		if _, err := time.Parse(time.RFC3339Nano, f[0]); err != nil {
			t.Fatalf("entry %q: timestamp: %v", l, err)
		}
		streams, tags, contents = append(streams, f[1]), append(tags, f[2]), append(contents, f[3])
	}
	return streams, tags, contents
}

func TestCopyLines(t *testing.T) {
	var out bytes.Buffer
	if err := Copy(&out, strings.NewReader("hello\n\nworld\nno newline"), Stderr); err != nil {
		t.Fatal(err)
	}
	streams, tags, contents := parse(t, out.String())
	wantContents := []string{"hello", "", "world", "no newline"}
	if strings.Join(contents, "|") != strings.Join(wantContents, "|") {
		t.Fatalf("contents %q, want %q", contents, wantContents)
	}
	for i := range tags {
		if tags[i] != "F" || streams[i] != Stderr {
			t.Fatalf("entry %d: %s %s, want stderr F", i, streams[i], tags[i])
		}
	}
}

func TestCopySplitsLongLines(t *testing.T) {
	long := strings.Repeat("x", MaxLineSize*2+10)
	var out bytes.Buffer
	if err := Copy(&out, strings.NewReader(long+"\n"), Stdout); err != nil {
		t.Fatal(err)
	}
	_, tags, contents := parse(t, out.String())
	if strings.Join(tags, "") != "PPF" {
		t.Fatalf("tags %v, want P P F", tags)
	}
	if strings.Join(contents, "") != long {
		t.Fatalf("partial entries do not join back to the line")
	}
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c", "0.log")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("one\n")); err != nil {
		t.Fatal(err)
	}
	// kubelet rotates: it renames the file and asks for a reopen.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := f.Reopen(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("two\n")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "two\n" {
		t.Fatalf("new file holds %q, want the entry after the reopen", b)
	}
	f.Close()
	if _, err := f.Write([]byte("x")); err == nil {
		t.Fatal("write after Close succeeded")
	}
}
