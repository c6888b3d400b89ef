package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// FsUsage is the space the store takes on its filesystem.
type FsUsage struct {
	// Mountpoint is the store's root directory.
	Mountpoint string
	// UsedBytes is the space its files take (allocated blocks, hard links
	// counted once).
	UsedBytes uint64
	// InodesUsed counts its inodes.
	InodesUsed uint64
	Timestamp  time.Time
}

// Bounds of the accounting. The store holds the writable layers of
// containers, which their (untrusted) guests fill as they like: a
// measurement is reused for usageMaxAge unless the store's own
// directories changed, at most one walk runs at a time, and a walk keeps
// a bounded table of hard links and stops after usageMaxEntries entries
// (reporting what it counted) or usageWalkTimeout.
var (
	usageMaxAge      = 10 * time.Second
	usageMaxEntries  = 4 << 20
	usageMaxLinks    = 64 << 10
	usageWalkTimeout = time.Minute
)

// usageCache is the last measurement of one store and the walk under way.
type usageCache struct {
	mu      sync.Mutex
	last    FsUsage
	lastErr error
	stamp   string        // the store directories' state at that walk
	walking chan struct{} // closed when the walk under way ends; nil if none
}

var usageCaches = struct {
	sync.Mutex
	m map[string]*usageCache // by store root
}{m: map[string]*usageCache{}}

func cacheFor(root string) *usageCache {
	usageCaches.Lock()
	defer usageCaches.Unlock()
	c := usageCaches.m[root]
	if c == nil {
		c = &usageCache{}
		usageCaches.m[root] = c
	}
	return c
}

// Usage measures the store: images, layers and containers' writable
// layers. Mounted rootfs are not entered (they would count twice). A
// recent measurement is returned as is while the store's layers and
// containers are unchanged; a walk outlives a caller that gives up.
func (s *Service) Usage(ctx context.Context) (FsUsage, error) {
	c := cacheFor(s.cfg.Root)
	stamp := storeStamp(s.cfg.Root)
	c.mu.Lock()
	if !c.last.Timestamp.IsZero() && c.lastErr == nil && stamp == c.stamp && time.Since(c.last.Timestamp) < usageMaxAge {
		u := c.last
		c.mu.Unlock()
		return u, nil
	}
	done := c.walking
	if done == nil {
		done = make(chan struct{})
		c.walking = done
		go func() {
			wctx, cancel := context.WithTimeout(context.Background(), usageWalkTimeout)
			u, err := walkUsage(wctx, s.cfg.Root)
			cancel()
			c.mu.Lock()
			c.last, c.lastErr, c.stamp, c.walking = u, err, stamp, nil
			c.mu.Unlock()
			close(done)
		}()
	}
	prev := c.last
	c.mu.Unlock()
	select {
	case <-done:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.last, c.lastErr
	case <-ctx.Done():
		if !prev.Timestamp.IsZero() {
			return prev, nil
		}
		return FsUsage{Mountpoint: s.cfg.Root}, ctx.Err()
	}
}

// storeStamp sums up the store's root and its immediate subdirectories
// (modification time, links, size): it changes when a layer, an image or
// a container is added or removed, not when a container writes a file.
func storeStamp(root string) string {
	var b strings.Builder
	see := func(p string) {
		var st syscall.Stat_t
		if syscall.Lstat(p, &st) == nil {
			fmt.Fprintf(&b, "%d.%d/%d/%d;", st.Mtim.Sec, st.Mtim.Nsec, st.Nlink, st.Size)
		}
	}
	see(root)
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		if e.IsDir() {
			see(filepath.Join(root, e.Name()))
		}
	}
	return b.String()
}

// walkUsage counts the allocated blocks and inodes below root on root's
// filesystem, within the bounds above.
func walkUsage(ctx context.Context, root string) (FsUsage, error) {
	u := FsUsage{Mountpoint: root, Timestamp: time.Now()}
	var rst syscall.Stat_t
	if err := syscall.Lstat(root, &rst); err != nil {
		return u, err
	}
	type ino struct{ dev, ino uint64 }
	links := map[ino]bool{} // only inodes with several links
	entries := 0
	errStop := errors.New("stop")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		if entries++; entries > usageMaxEntries || ctx.Err() != nil {
			return errStop
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if st.Dev != rst.Dev {
			if d.IsDir() {
				return filepath.SkipDir // a mount point
			}
			return nil
		}
		if !d.IsDir() && st.Nlink > 1 {
			k := ino{uint64(st.Dev), st.Ino}
			if links[k] {
				return nil
			}
			if len(links) < usageMaxLinks {
				links[k] = true
			}
		}
		u.InodesUsed++
		u.UsedBytes += uint64(st.Blocks) * 512
		return nil
	})
	if errors.Is(err, errStop) {
		err = nil // a lower bound: the store is over the walk's bounds
	}
	return u, err
}
