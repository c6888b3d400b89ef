// Package crilog writes container output in the CRI log format that
// kubelet and crictl read:
//
//	<RFC 3339 nano timestamp> <stdout|stderr> <P|F> <content>
//
// where P marks a partial line (cut at MaxLineSize) and F a full one.
package crilog

import (
	"bufio"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// MaxLineSize is where long lines are cut into partial entries, as
// kubelet's default of 16 KiB.
const MaxLineSize = 16 * 1024

// Stream names as the log format spells them.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// File is a container log file that can be reopened in place after
// kubelet rotated it (ReopenContainerLog). Writes of whole entries are
// atomic with respect to each other.
type File struct {
	path string

	// mu guards f; a closed File has f nil.
	mu sync.Mutex
	f  *os.File
}

// Open opens (creating) the log file at path for appending.
func Open(path string) (*File, error) {
	f := &File{path: path}
	if err := f.Reopen(); err != nil {
		return nil, err
	}
	return f, nil
}

// Reopen closes the current file and opens path again.
func (l *File) Reopen() error {
	if err := os.MkdirAll(filepath.Dir(l.path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Close()
	}
	l.f = f
	return nil
}

// Write appends p, one whole entry.
func (l *File) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return 0, os.ErrClosed
	}
	return l.f.Write(p)
}

// Close closes the file; later writes fail.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// Copy reads r until EOF and writes each line to w as one entry of
// stream. Lines longer than MaxLineSize become partial entries; the
// last piece of a line, even one cut short by EOF, is a full entry.
func Copy(w io.Writer, r io.Reader, stream string) error {
	br := bufio.NewReaderSize(r, MaxLineSize)
	var entry []byte
	for {
		line, isPrefix, err := br.ReadLine()
		if len(line) > 0 || (err == nil && !isPrefix) {
			tag := "F"
			if isPrefix {
				tag = "P"
			}
			entry = appendEntry(entry[:0], time.Now(), stream, tag, line)
			if _, werr := w.Write(entry); werr != nil {
				return werr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func appendEntry(b []byte, t time.Time, stream, tag string, line []byte) []byte {
	b = t.AppendFormat(b, time.RFC3339Nano)
	b = append(b, ' ')
	b = append(b, stream...)
	b = append(b, ' ')
	b = append(b, tag...)
	b = append(b, ' ')
	b = append(b, line...)
	return append(b, '\n')
}
