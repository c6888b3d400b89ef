package testimages

import (
	"os"
	"path/filepath"
)

// UserRoot writes the users and groups of the user-resolution tests under
// dir/etc: web (1000, primary group 1001) is also in extra (2000), and in
// nothing else; other (3000) has no members.
func UserRoot(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		return err
	}
	for name, data := range map[string]string{
		"passwd": "root:x:0:0::/root:/bin/sh\nweb:x:1000:1001::/home/web:/bin/sh\n",
		"group":  "root:x:0:\nweb:x:1001:\nextra:x:2000:web\nother:x:3000:\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, "etc", name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	return nil
}
