// Command testregistry builds vc-cri's test images offline (see
// hack/testimages) and serves them over plain HTTP.
//
//	testregistry serve [-addr 127.0.0.1:5000] [-pidfile F]   foreground
//	testregistry start [-addr ...] -pidfile F [-log F]        background, returns when ready
//	testregistry stop -pidfile F
//	testregistry list                                         image names
//
// With -private PREFIX, repositories under PREFIX require basic auth
// (-user/-password), for wrong-credential tests.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vc-cri/vc-cri/hack/testimages"
)

type flags struct {
	addr, pidfile, logfile  string
	private, user, password string
	bench                   bool
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testregistry serve|start|stop|list [flags]")
		os.Exit(2)
	}
	cmd := os.Args[1]
	var f flags
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	fs.StringVar(&f.addr, "addr", "127.0.0.1:5000", "listen address")
	fs.StringVar(&f.pidfile, "pidfile", "", "file holding the server's PID")
	fs.StringVar(&f.logfile, "log", "", "log file of a started server")
	fs.StringVar(&f.private, "private", "private/", "repository prefix that requires basic auth (empty: none)")
	fs.StringVar(&f.user, "user", "vc-cri", "basic auth user for -private")
	fs.StringVar(&f.password, "password", "secret", "basic auth password for -private")
	fs.BoolVar(&f.bench, "bench", false, "also serve bench/fivelayer:latest (5 layers of 10 MB)")
	_ = fs.Parse(os.Args[2:])

	var err error
	switch cmd {
	case "serve":
		err = serve(f)
	case "start":
		err = start(f)
	case "stop":
		err = stop(f)
	case "list":
		err = list()
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testregistry:", err)
		os.Exit(1)
	}
}

func catalog(ctx context.Context, bench bool) ([]testimages.Image, error) {
	tmp, err := os.MkdirTemp("", "testregistry")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	nnp, err := testimages.BuildNNP(ctx, tmp)
	if err != nil {
		return nil, err
	}
	imgs, err := testimages.Catalog(nnp)
	if err != nil {
		return nil, err
	}
	if bench {
		img, err := testimages.Bench(5, 10<<20)
		if err != nil {
			return nil, err
		}
		imgs = append(imgs, testimages.Image{Repo: "bench/fivelayer", Tags: []string{"latest"}, Image: img})
	}
	return imgs, nil
}

func serve(f flags) error {
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	imgs, err := catalog(ctx, f.bench)
	if err != nil {
		return err
	}
	opts := testimages.RegistryOptions{}
	if f.private != "" {
		opts.PrivatePrefix, opts.Username, opts.Password = f.private, f.user, f.password
		busybox := imgs[0] // e2e-test-images/busybox
		imgs = append(imgs, testimages.Image{Repo: strings.TrimSuffix(f.private, "/") + "/busybox", Tags: []string{"latest"}, Image: busybox.Image})
	}
	reg, err := testimages.StartRegistry(f.addr, opts)
	if err != nil {
		return err
	}
	defer reg.Close()
	if err := reg.Push(ctx, imgs...); err != nil {
		return err
	}
	if f.pidfile != "" {
		if err := os.WriteFile(f.pidfile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			return err
		}
		defer os.Remove(f.pidfile)
	}
	fmt.Fprintf(os.Stderr, "testregistry: serving %d images on http://%s\n", len(imgs), reg.Addr)
	select {
	case <-ctx.Done():
		return nil
	case <-waitErr(reg):
		return errors.New("registry stopped")
	}
}

func waitErr(reg *testimages.Registry) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- reg.Wait() }()
	return ch
}

// start runs serve in a new session and returns once it is ready.
func start(f flags) error {
	if f.pidfile == "" {
		return errors.New("start needs -pidfile")
	}
	if pid, err := readPid(f.pidfile); err == nil && syscall.Kill(pid, 0) == nil {
		return fmt.Errorf("already running as PID %d", pid)
	}
	_ = os.Remove(f.pidfile)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"serve", "-addr", f.addr, "-pidfile", f.pidfile, "-private", f.private, "-user", f.user, "-password", f.password}
	if f.bench {
		args = append(args, "-bench")
	}
	cmd := exec.Command(self, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	logf := f.logfile
	if logf == "" {
		logf = os.DevNull
	}
	if err := os.MkdirAll(filepath.Dir(logf), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(2 * time.Minute)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("server exited before it was ready (%v), see %s", err, logf)
		case <-deadline:
			_ = cmd.Process.Kill()
			return errors.New("server not ready after 2m")
		case <-time.After(100 * time.Millisecond):
		}
		if _, err := os.Stat(f.pidfile); err != nil {
			continue
		}
		if c, err := net.DialTimeout("tcp", f.addr, time.Second); err == nil {
			c.Close()
			fmt.Printf("testregistry: started, PID %d, http://%s\n", cmd.Process.Pid, f.addr)
			return cmd.Process.Release()
		}
	}
}

func readPid(file string) (int, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

func stop(f flags) error {
	if f.pidfile == "" {
		return errors.New("stop needs -pidfile")
	}
	pid, err := readPid(f.pidfile)
	if errors.Is(err, os.ErrNotExist) {
		return nil // not running
	}
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return os.Remove(f.pidfile)
		}
		return err
	}
	for range 100 {
		if syscall.Kill(pid, 0) != nil {
			_ = os.Remove(f.pidfile)
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("PID %d still running after 10s", pid)
}

func list() error {
	imgs, err := catalog(context.Background(), false)
	if err != nil {
		return err
	}
	for _, img := range imgs {
		d, err := img.Image.Digest()
		if err != nil {
			return err
		}
		for _, t := range img.Tags {
			fmt.Printf("%s:%s\t%s\n", img.Repo, t, d)
		}
	}
	return nil
}
