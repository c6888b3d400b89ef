package image

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
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

// Usage measures the store: images, layers and containers' writable
// layers. Mounted rootfs are not entered (they would count twice).
func (s *Service) Usage(ctx context.Context) (FsUsage, error) {
	u := FsUsage{Mountpoint: s.cfg.Root, Timestamp: time.Now()}
	var root syscall.Stat_t
	if err := syscall.Lstat(s.cfg.Root, &root); err != nil {
		return u, err
	}
	type ino struct{ dev, ino uint64 }
	seen := map[ino]bool{}
	err := filepath.WalkDir(s.cfg.Root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if st.Dev != root.Dev {
			if d.IsDir() {
				return filepath.SkipDir // a mount point
			}
			return nil
		}
		k := ino{uint64(st.Dev), st.Ino}
		if seen[k] {
			return nil
		}
		seen[k] = true
		u.InodesUsed++
		u.UsedBytes += uint64(st.Blocks) * 512
		return nil
	})
	return u, err
}
