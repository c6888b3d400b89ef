package cni

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/containernetworking/cni/libcni"
	"k8s.io/klog/v2"
)

// DefaultConflistName is the file name under which InstallDefaultConflist
// writes DefaultConflist.
const DefaultConflistName = "10-vc-cri.conflist"

// DefaultConflist is a bridge network for nodes without CNI
// configuration, with Debian's containernetworking-plugins. Its subnet,
// 10.87.0.0/16, stays clear of the defaults of podman and containerd
// (10.88/16), CRI-O (10.85/16), Kubernetes services (10.96/12) and
// flannel (10.244/16).
const DefaultConflist = `{
  "cniVersion": "1.0.0",
  "name": "vc-cri",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "vccri0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "routes": [{ "dst": "0.0.0.0/0" }],
        "ranges": [[{ "subnet": "10.87.0.0/16" }]]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } },
    { "type": "loopback" }
  ]
}
`

// InstallDefaultConflist writes DefaultConflist into dir unless dir
// already holds a CNI configuration file. It reports whether it wrote it.
func InstallDefaultConflist(dir string) (bool, error) {
	files, err := confFiles(dir)
	if err != nil {
		return false, err
	}
	if len(files) > 0 {
		return false, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("failed to create CNI conf dir: %w", err)
	}
	path := filepath.Join(dir, DefaultConflistName)
	if err := os.WriteFile(path, []byte(DefaultConflist), 0o644); err != nil {
		return false, fmt.Errorf("failed to write default conflist: %w", err)
	}
	return true, nil
}

// conflist loads the network the pods join: like kubelet and containerd,
// the first valid file of the conf dir in name order, where a single
// .conf or .json network counts as a list of one.
func (m *Manager) conflist() (*libcni.NetworkConfigList, error) {
	files, err := confFiles(m.confDir)
	if err != nil {
		return nil, err
	}
	for _, file := range files {
		list, err := loadConfFile(file)
		if err != nil {
			klog.V(2).InfoS("Skipping CNI config file", "file", file, "err", err)
			continue
		}
		return list, nil
	}
	return nil, fmt.Errorf("%w in %s", ErrNoConfig, m.confDir)
}

func confFiles(dir string) ([]string, error) {
	files, err := libcni.ConfFiles(dir, []string{".conf", ".conflist", ".json"})
	if err != nil {
		return nil, fmt.Errorf("failed to read CNI conf dir %s: %w", dir, err)
	}
	sort.Strings(files)
	return files, nil
}

func loadConfFile(file string) (*libcni.NetworkConfigList, error) {
	if filepath.Ext(file) == ".conflist" {
		list, err := libcni.NetworkConfFromFile(file)
		if err != nil {
			return nil, err
		}
		if len(list.Plugins) == 0 {
			return nil, fmt.Errorf("no plugins in %s", file)
		}
		return list, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	conf, err := libcni.NetworkPluginConfFromBytes(data)
	if err != nil {
		return nil, err
	}
	return libcni.ConfListFromConf(conf)
}
