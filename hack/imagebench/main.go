// Command imagebench times pulling a five-layer, 50 MB image from a local
// registry into vc-cri's image store (pkg/image: fetch, verify, unpack)
// against `skopeo copy docker://... dir:...` (fetch and verify only) of
// the same image, in the same run, and prints the ratio.
//
//	go run -tags containers_image_openpgp ./hack/imagebench [-n 5]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"go.podman.io/storage/pkg/reexec"

	"github.com/vc-cri/vc-cri/hack/testimages"
	"github.com/vc-cri/vc-cri/pkg/image"
)

func main() {
	if reexec.Init() {
		return
	}
	n := flag.Int("n", 5, "runs of each")
	flag.Parse()
	if err := run(*n); err != nil {
		fmt.Fprintln(os.Stderr, "imagebench:", err)
		os.Exit(1)
	}
}

func run(n int) error {
	ctx := context.Background()
	img, err := testimages.Bench(5, 10<<20)
	if err != nil {
		return err
	}
	reg, err := testimages.StartRegistry("127.0.0.1:0", testimages.RegistryOptions{})
	if err != nil {
		return err
	}
	defer reg.Close()
	if err := reg.Push(ctx, testimages.Image{Repo: "bench/fivelayer", Tags: []string{"latest"}, Image: img}); err != nil {
		return err
	}
	size := int64(0)
	layers, _ := img.Layers()
	for _, l := range layers {
		s, _ := l.Size()
		size += s
	}
	tmp, err := os.MkdirTemp("", "imagebench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	conf := filepath.Join(tmp, "registries.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("[[registry]]\nlocation = %q\ninsecure = true\n", reg.Addr)), 0o644); err != nil {
		return err
	}
	ref := reg.Addr + "/bench/fivelayer:latest"
	fmt.Printf("image %s: %d layers, %.1f MB compressed\n", ref, len(layers), float64(size)/1e6)

	var ours, skopeo []time.Duration
	for i := range n {
		// vc-cri: a fresh store each time, so every layer is fetched and unpacked.
		root := filepath.Join(tmp, fmt.Sprint("store", i))
		s, err := image.New(image.Config{Root: root, RunRoot: root + "-run", RegistriesConf: conf})
		if err != nil {
			return err
		}
		t0 := time.Now()
		if _, err := s.Pull(ctx, ref, nil); err != nil {
			return err
		}
		ours = append(ours, time.Since(t0))
		_ = s.Close()
		_ = os.RemoveAll(root)

		dir := filepath.Join(tmp, fmt.Sprint("skopeo", i))
		t0 = time.Now()
		cmd := exec.Command("skopeo", "copy", "--quiet", "--src-tls-verify=false", "docker://"+ref, "dir:"+dir)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("skopeo copy: %w", err)
		}
		skopeo = append(skopeo, time.Since(t0))
		_ = os.RemoveAll(dir)
	}
	mo, ms := median(ours), median(skopeo)
	fmt.Printf("vc-cri pull (fetch+verify+unpack to overlay): median %v  runs %v\n", mo.Round(time.Millisecond), round(ours))
	fmt.Printf("skopeo copy to dir: (fetch+verify)           median %v  runs %v\n", ms.Round(time.Millisecond), round(skopeo))
	fmt.Printf("ratio vc-cri/skopeo: %.2f\n", float64(mo)/float64(ms))
	return nil
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func round(d []time.Duration) []time.Duration {
	out := make([]time.Duration, len(d))
	for i, x := range d {
		out[i] = x.Round(time.Millisecond)
	}
	return out
}
