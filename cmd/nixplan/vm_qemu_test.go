package main

// One QEMU virtual machine of the VM suite: started with its disks and
// NICs, its serial console on a unix socket (logged, and scanned for the
// images' ready markers), SSH forwarded to 127.0.0.1 only, and killed by its
// PID when the test ends or fails.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// OVMF from Debian's ovmf package: the 4 MiB build without Secure Boot.
const (
	ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// vmAccel is QEMU's accelerator. TCG, measured on this project's build
// machine (2 vCPUs, nested): the rescue image reaches sshd in 22 s under
// TCG, and under KVM (its /dev/kvm is a paravirtual one) the same kernel
// printed nothing in 150 s and had not reached sshd after 400 s.
// NIXPLAN_VM_ACCEL=kvm tries KVM on a machine where it is real.
func vmAccel() string {
	if a := os.Getenv("NIXPLAN_VM_ACCEL"); a != "" {
		return a
	}
	return "tcg"
}

func accelOption() string {
	if a := vmAccel(); a != "tcg" {
		return a
	}
	return "tcg,tb-size=32"
}

// vmDisk is one disk of a VM.
type vmDisk struct {
	Bus    string // "sata", "nvme" or "virtio"
	Serial string // empty: none (a virtio disk without a serial has no by-id link)
	Size   int64
	path   string
}

// vmNIC is one network card. With Net set it is on a QEMU user network of
// its own (restrict=on: nothing leaves QEMU) with the host address Host;
// Forward forwards 127.0.0.1:port to GuestAddr:22. Without Net the card has
// a link and nothing behind it, like a private network without DHCP.
type vmNIC struct {
	Model, MAC string
	Net, Host  string
	DHCPStart  string
	Forward    bool
	GuestAddr  string
}

type vmConfig struct {
	Name   string
	UEFI   bool
	MemMiB int
	Disks  []vmDisk
	NICs   []vmNIC
	// Cmdline is the rescue kernel's command line beyond the console: its
	// network (ip=, as systemd-network-generator reads it).
	Cmdline string
}

// vm is a running machine.
type vm struct {
	t       *testing.T
	cfg     vmConfig
	imgs    *vmImages
	dir     string // the scenario's files: disks, console.log, transcript.log
	logDir  string // kept after the test: console and transcript
	port    int
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error

	mu      sync.Mutex
	console bytes.Buffer // everything the serial console printed
	changed chan struct{}

	transcript *os.File
	phases     []string
	knownHosts string
}

func newVM(t *testing.T, imgs *vmImages, cfg vmConfig) *vm {
	dir := t.TempDir()
	base, err := vmCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	logDir := filepath.Join(base, "logs", cfg.Name+"-"+time.Now().UTC().Format("20060102T150405"))
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	v := &vm{t: t, cfg: cfg, imgs: imgs, dir: dir, logDir: logDir, changed: make(chan struct{})}
	v.transcript, err = os.Create(filepath.Join(logDir, "transcript.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.transcript.Close() })
	for i := range v.cfg.Disks {
		d := &v.cfg.Disks[i]
		d.path = filepath.Join(dir, fmt.Sprintf("disk%d.raw", i))
		f, err := os.Create(d.path)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(d.Size); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	v.port = freePort(t)
	var kh strings.Builder
	for _, k := range imgs.HostKeys {
		fmt.Fprintf(&kh, "[127.0.0.1]:%d %s\n", v.port, k)
	}
	v.knownHosts = filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(v.knownHosts, []byte(kh.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return v
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// qemuArgs is the machine: q35, the rescue kernel and initramfs booted
// directly (through OVMF for UEFI), the disks and the NICs.
func (v *vm) qemuArgs(sock string) []string {
	c := v.cfg
	args := []string{
		// One vCPU: with two, TCG's multi-threaded mode stops both for
		// every write to a page that held translated code, and the kernel
		// that kexec started took 45 to 60 s to unpack its initramfs, against
		// 5 s with one (measured here; a cold boot takes 5 s either way).
		// A small translation cache (tb-size, MiB) is flushed often, so few
		// pages still hold translated code when kexec starts the installer:
		// every write to such a page takes TCG's slow path, and the new
		// kernel, clearing pages for its initramfs, stalled for minutes
		// ("soft lockup" in clear_page_erms) with the default 1 GiB cache.
		"-machine", "q35", "-accel", accelOption(), "-cpu", "max", "-smp", "1", "-m", strconv.Itoa(c.MemMiB),
		"-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none", "-no-reboot",
		"-chardev", "socket,id=console,path=" + sock + ",server=on,wait=on",
		"-serial", "chardev:console",
		"-kernel", v.imgs.Kernel, "-initrd", v.imgs.Rescue,
		"-append", "console=ttyS0,115200 net.ifnames=0 panic=-1 " + c.Cmdline,
		"-pidfile", filepath.Join(v.dir, "qemu.pid"),
	}
	if c.UEFI {
		vars := filepath.Join(v.dir, "OVMF_VARS.fd")
		if err := copyFile(ovmfVars, vars, 0o644); err != nil {
			v.t.Fatal(err)
		}
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+ovmfCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+vars)
	}
	for i, d := range c.Disks {
		id := fmt.Sprintf("disk%d", i)
		args = append(args, "-drive", "if=none,format=raw,id="+id+",file="+d.path)
		serial := ""
		if d.Serial != "" {
			serial = ",serial=" + d.Serial
		}
		switch d.Bus {
		case "sata":
			// q35's AHCI controller has six ports, ide.0 to ide.5.
			args = append(args, "-device", fmt.Sprintf("ide-hd,drive=%s,bus=ide.%d%s", id, i, serial))
		case "nvme":
			args = append(args, "-device", "nvme,drive="+id+serial)
		case "virtio":
			args = append(args, "-device", "virtio-blk-pci,drive="+id+serial)
		default:
			v.t.Fatalf("unknown disk bus %q", d.Bus)
		}
	}
	for i, n := range c.NICs {
		id := fmt.Sprintf("net%d", i)
		if n.Net == "" {
			args = append(args, "-netdev", fmt.Sprintf("hubport,id=%s,hubid=%d", id, 10+i))
		} else {
			// restrict=on: the guest reaches nothing outside QEMU, and only
			// hostfwd, bound to 127.0.0.1, reaches the guest.
			nd := fmt.Sprintf("user,id=%s,restrict=on,ipv6=off,net=%s,host=%s", id, n.Net, n.Host)
			if n.DHCPStart != "" {
				nd += ",dhcpstart=" + n.DHCPStart
			}
			if n.Forward {
				nd += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-%s:22", v.port, n.GuestAddr)
			}
			args = append(args, "-netdev", nd)
		}
		args = append(args, "-device", fmt.Sprintf("%s,netdev=%s,mac=%s", n.Model, id, n.MAC))
	}
	return args
}

// start boots the machine into the rescue system.
func (v *vm) start() {
	t := v.t
	sock := filepath.Join(v.dir, "console.sock")
	v.cmd = exec.Command("qemu-system-x86_64", v.qemuArgs(sock)...)
	qlog, err := os.Create(filepath.Join(v.logDir, "qemu.log"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(qlog, "qemu-system-x86_64 %s\n", strings.Join(v.cmd.Args[1:], " "))
	v.cmd.Stdout, v.cmd.Stderr = qlog, qlog
	if err := v.cmd.Start(); err != nil {
		t.Fatalf("starting QEMU: %v", err)
	}
	v.exited = make(chan struct{})
	go func() {
		v.waitErr = v.cmd.Wait()
		qlog.Close()
		close(v.exited)
	}()
	// On any end of the test, pass or fail: kill QEMU by its PID.
	t.Cleanup(v.kill)
	var conn net.Conn
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err = net.Dial("unix", sock)
		if err == nil {
			break
		}
		select {
		case <-v.exited:
			t.Fatalf("QEMU exited at once (%v); see %s", v.waitErr, filepath.Join(v.logDir, "qemu.log"))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("QEMU's console socket did not appear: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	clog, err := os.Create(filepath.Join(v.logDir, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer clog.Close()
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if n > 0 {
				clog.Write(buf[:n])
				v.mu.Lock()
				v.console.Write(buf[:n])
				close(v.changed)
				v.changed = make(chan struct{})
				v.mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
}

// kill ends QEMU by its PID, at once.
func (v *vm) kill() {
	if v.cmd == nil || v.cmd.Process == nil {
		return
	}
	select {
	case <-v.exited:
		return
	default:
	}
	v.cmd.Process.Signal(syscall.SIGKILL)
	<-v.exited
}

// stop ends QEMU by its PID with SIGTERM, on which it closes its disks
// cleanly, and kills it if it does not end within 20 s.
func (v *vm) stop() {
	select {
	case <-v.exited:
		return
	default:
	}
	v.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-v.exited:
	case <-time.After(20 * time.Second):
		v.kill()
	}
}

// consoleText is what the serial console printed so far.
func (v *vm) consoleText() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.console.String()
}

// waitConsole waits until the console has printed marker more than n times.
func (v *vm) waitConsole(ctx context.Context, marker string, n int) error {
	for {
		v.mu.Lock()
		count := strings.Count(v.console.String(), marker)
		ch := v.changed
		v.mu.Unlock()
		if count > n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the console did not print %q: %w", marker, ctx.Err())
		case <-v.exited:
			return fmt.Errorf("QEMU exited (%v) before the console printed %q", v.waitErr, marker)
		case <-ch:
		}
	}
}

// phase runs one step of a scenario under its own deadline. On failure or
// timeout it kills QEMU and fails the test naming the phase, with the tail
// of the console log (the whole log is kept in logDir).
func (v *vm) phase(name string, limit time.Duration, f func(ctx context.Context) error) {
	v.t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	fmt.Fprintf(v.transcript, "\n==== phase %s (deadline %s)\n", name, limit)
	err := f(ctx)
	took := time.Since(start).Round(100 * time.Millisecond)
	v.phases = append(v.phases, fmt.Sprintf("%s %s", name, took))
	if err == nil {
		v.t.Logf("phase %s: %s", name, took)
		return
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (deadline %s)", err, limit)
	}
	v.kill()
	v.t.Fatalf("phase %q failed after %s: %v\n--- console log, last 80 lines (all of it: %s) ---\n%s",
		name, took, err, filepath.Join(v.logDir, "console.log"), lastLines(v.consoleText(), 80))
}

func lastLines(s string, n int) string {
	s = strings.ReplaceAll(s, "\r", "")
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// sshArgs are every SSH option in one place: the operator's key only, the
// host keys pinned (the rescue system's, which the installer must keep: no
// StrictHostKeyChecking=no), no configuration of the machine running the
// tests, and a connection that notices a VM gone away.
func (v *vm) sshArgs() []string {
	return []string{
		"-F", "/dev/null", "-i", v.imgs.ClientKey, "-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile=" + v.knownHosts, "-o", "StrictHostKeyChecking=yes",
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=5",
		"-o", "ServerAliveCountMax=12", "-o", "LogLevel=ERROR",
	}
}

// sshResult is one command run over SSH.
type sshResult struct {
	Stdout, Stderr string
	Exit           int // -1: SSH itself failed or the command was killed
}

// ssh runs a command line as root on the VM, as `ssh root@server COMMAND`
// does, with stdin from input, and logs both to the transcript.
func (v *vm) ssh(ctx context.Context, input, command string) sshResult {
	args := append(v.sshArgs(), "-p", strconv.Itoa(v.port), "root@127.0.0.1", command)
	cmd := exec.CommandContext(ctx, "ssh", args...)
	if input != "" {
		cmd.Stdin = strings.NewReader(input)
	}
	var out, errb bytes.Buffer
	cmd.Stdout = io.MultiWriter(&out, v.transcript)
	cmd.Stderr = io.MultiWriter(&errb, v.transcript)
	fmt.Fprintf(v.transcript, "$ ssh root@server %s\n", command)
	err := cmd.Run()
	r := sshResult{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.ExitCode() != 255 && ctx.Err() == nil:
		r.Exit = ee.ExitCode()
	default:
		r.Exit = -1
		r.Stderr += fmt.Sprintf("\n(ssh: %v)", err)
	}
	fmt.Fprintf(v.transcript, "(exit %d)\n", r.Exit)
	return r
}

// must runs a command that must succeed and returns its stdout.
func (v *vm) must(ctx context.Context, command string) (string, error) {
	r := v.ssh(ctx, "", command)
	if r.Exit != 0 {
		return r.Stdout, fmt.Errorf("%s: exit %d\n%s%s", command, r.Exit, r.Stdout, r.Stderr)
	}
	return r.Stdout, nil
}

// scp copies local files into a folder of the VM, as `scp FILES
// root@server:DIR` does.
func (v *vm) scp(ctx context.Context, dir string, files ...string) error {
	args := append(v.sshArgs(), "-P", strconv.Itoa(v.port), "-q")
	args = append(args, files...)
	args = append(args, "root@127.0.0.1:"+dir)
	fmt.Fprintf(v.transcript, "$ scp %s root@server:%s\n", strings.Join(files, " "), dir)
	out, err := exec.CommandContext(ctx, "scp", args...).CombinedOutput()
	v.transcript.Write(out)
	if err != nil {
		return fmt.Errorf("scp to %s: %v\n%s", dir, err, out)
	}
	return nil
}

// waitSSH waits until the VM accepts the operator's key with a pinned host key.
func (v *vm) waitSSH(ctx context.Context) error {
	var last sshResult
	for {
		short, cancel := context.WithTimeout(ctx, 30*time.Second)
		last = v.ssh(short, "", "true")
		cancel()
		if last.Exit == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no SSH login: %s", strings.TrimSpace(last.Stderr))
		case <-v.exited:
			return fmt.Errorf("QEMU exited (%v)", v.waitErr)
		case <-time.After(2 * time.Second):
		}
	}
}

// diskHash is the sha256 of a disk image's content, read extent by extent
// (SEEK_DATA, SEEK_HOLE): each data extent's offset, length and bytes go
// into the hash, so equal hashes mean equal content, and the untouched parts
// of a sparse image cost nothing to read.
func diskHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	const seekData, seekHole = 3, 4
	h := sha256.New()
	fmt.Fprintf(h, "size %d\n", st.Size())
	var off int64
	for off < st.Size() {
		data, err := f.Seek(off, seekData)
		if err != nil {
			break // ENXIO: no data after off
		}
		hole, err := f.Seek(data, seekHole)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "extent %d %d\n", data, hole-data)
		if _, err := f.Seek(data, io.SeekStart); err != nil {
			return "", err
		}
		if _, err := io.CopyN(h, bufio.NewReaderSize(f, 1<<20), hole-data); err != nil {
			return "", err
		}
		off = hole
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// diskHashes hashes every disk of the VM.
func (v *vm) diskHashes() ([]string, error) {
	var hs []string
	for _, d := range v.cfg.Disks {
		h, err := diskHash(d.path)
		if err != nil {
			return nil, err
		}
		hs = append(hs, h)
	}
	return hs, nil
}

// sameDisks says which disks differ from an earlier set of hashes.
func (v *vm) sameDisks(before []string) error {
	now, err := v.diskHashes()
	if err != nil {
		return err
	}
	var changed []string
	for i := range now {
		if now[i] != before[i] {
			changed = append(changed, fmt.Sprintf("disk %d (%s %s)", i, v.cfg.Disks[i].Bus, v.cfg.Disks[i].Serial))
		}
	}
	if len(changed) > 0 {
		return fmt.Errorf("changed: %s", strings.Join(changed, ", "))
	}
	return nil
}

// checkIsolated holds the VM to restrict=on: a connection from the guest to
// QEMU's host address, which user networking without restrict turns into a
// connection to this machine's loopback, must not reach a listener there.
func (v *vm) checkIsolated(ctx context.Context, hostAddr string) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	reached := make(chan struct{}, 1)
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close()
			reached <- struct{}{}
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	r := v.ssh(ctx, "", fmt.Sprintf("timeout 10 bash -c 'exec 3<>/dev/tcp/%s/%d' && echo connected", hostAddr, port))
	select {
	case <-reached:
		return fmt.Errorf("the VM reached a listener on this machine's 127.0.0.1:%d through %s: restrict=on is not in force", port, hostAddr)
	case <-time.After(time.Second):
	}
	if strings.Contains(r.Stdout, "connected") {
		return fmt.Errorf("the VM connected to %s:%d: restrict=on is not in force", hostAddr, port)
	}
	if r.Exit == -1 {
		return fmt.Errorf("the isolation probe did not run: %s", r.Stderr)
	}
	return nil
}
