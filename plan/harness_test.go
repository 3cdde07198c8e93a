package plan_test

// The script harness runs the bundle's real scripts under real bash against a
// fake machine, as root, in a private mount namespace (unshare --mount), so
// nothing the scripts do reaches this machine:
//   - PATH holds stubs for the commands simulate.FakeMachine plays; each stub runs
//     this test binary again (see TestMain), which answers from the machine
//     description, records every command that changes a machine, and keeps
//     the fake's state in a file between calls;
//   - next to them, links to a short list of real utilities (bash, grep,
//     awk, tar, ...) and nothing else, so a tool the machine lacks is missing;
//   - /root, /var/log, /var/lib and /run are harness folders bind-mounted
//     over the real ones (not /mnt: the scripts ask whether something is
//     mounted there); /etc/os-release, /proc/meminfo,
//     /sys/class/net and /sys/firmware are bind-mounted from files made from
//     the description;
//   - the script runs as `bash -p SCRIPT` in a session of its own, as over
//     SSH, so a test can hang it up; the run it detaches (setsid) stays in
//     the namespace and keeps recording;
//   - a "mount" of a ZFS dataset mounts a tmpfs at its target, so later
//     phases find /mnt mounted as on the real installer; at /mnt itself it
//     bind-mounts a harness folder instead, where a test reads what the
//     install wrote into the new system.
// Loop mode (the loop-device tests) runs the real parted, wipefs, mkfs.ext4,
// mkfs.vfat, mkswap, lsblk and mount against loop devices and stubs exactly
// what this kernel lacks: ZFS (zpool, zfs), md (mdadm; what is made on an md
// array is recorded only), udev (no udevadm) and vfat mounts.

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nixplan/nixplan/plan"
	"github.com/nixplan/nixplan/plan/machine"
	"github.com/nixplan/nixplan/plan/simulate"
)

const fakeToolFlag = "-nixplan-fake-tool"

func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == fakeToolFlag {
		os.Exit(fakeTool(os.Args[2], os.Args[3:]))
	}
	os.Exit(m.Run())
}

// harnessState is what the fake keeps between the stubs' calls.
type harnessState struct {
	Fake *simulate.FakeMachine `json:"fake"`
	// Fail maps a command (see failing) to the exit status it returns after
	// recording; FailRead does the same for the calls of a command that only
	// read.
	Fail     map[string]int `json:"fail"`
	FailRead map[string]int `json:"fail_read"`
	// Loop: real disk tools are in use; mounts other than ZFS are real.
	Loop bool `json:"loop"`
	// StandIns maps the sha256 of a download's stand-in to the sha256 it
	// stands for (a pinned channel's nixexprs.tar.xz), as simulate does.
	StandIns map[string]string `json:"stand_ins"`
	// Output maps a command that only reads (see failing for the keys) to
	// what it prints instead of the fake's answer: a test's way to make a
	// tool say something unexpected.
	Output map[string]string `json:"output"`
	// Block holds the first call of a command (after recording it) until a
	// file exists: a test's way to act while a phase is half-way.
	Block *blockPoint `json:"block"`
}

// blockPoint: the first call of Command writes Blocked, then waits for
// Release to exist.
type blockPoint struct {
	Command, Blocked, Release string
}

// fakeTool is the stub side: one command, answered or played by the fake.
// standIn is what the harness downloads in place of a URL other than the
// kexec tarball.
func standIn(url string) []byte { return []byte("nixplan harness: a stand-in for " + url + "\n") }

// sha256Tool is sha256sum reading stdin, with a stand-in reporting the sum
// it stands for; any other use runs the real sha256sum.
func sha256Tool(args []string, standIns map[string]string) int {
	if len(args) > 0 {
		cmd := exec.Command(loopRealPath("sha256sum"), args...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				return ee.ExitCode()
			}
			return 99
		}
		return 0
	}
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		return 99
	}
	sum := sha256.Sum256(data)
	hash := hex.EncodeToString(sum[:])
	if pinned, ok := standIns[hash]; ok {
		hash = pinned
	}
	fmt.Printf("%s  -\n", hash)
	return 0
}

func fakeTool(name string, args []string) int {
	m, err := machine.Load(os.Getenv("NIXPLAN_FAKE_MACHINE"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake:", err)
		return 99
	}
	statePath := os.Getenv("NIXPLAN_FAKE_STATE")
	st := harnessState{}
	data, err := os.ReadFile(statePath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake:", err)
		return 99
	}
	if err := json.Unmarshal(data, &st); err != nil {
		fmt.Fprintln(os.Stderr, "fake:", err)
		return 99
	}
	st.Fake.Machine = m
	argv := append([]string{name}, args...)
	if line, err := json.Marshal(argv); err == nil {
		// Every call, reading or changing: what a script ran at all.
		if f, err := os.OpenFile(os.Getenv("NIXPLAN_CALLS"), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644); err == nil {
			fmt.Fprintf(f, "%s\n", line)
			f.Close()
		}
	}
	if name == "sha256sum" {
		return sha256Tool(args, st.StandIns)
	}
	if readsKey(argv) {
		// What the encrypting command got on its standard input, for the
		// tests of the passphrase; kept outside the machine's folders.
		data, err := io.ReadAll(os.Stdin)
		if err != nil {
			return 99
		}
		line, _ := json.Marshal(stdinRecord{Argv: argv, Stdin: string(data)})
		if f, err := os.OpenFile(os.Getenv("NIXPLAN_STDIN"), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600); err == nil {
			fmt.Fprintf(f, "%s\n", line)
			f.Close()
		}
	}
	if simulate.ChangesMachine(argv) {
		line, _ := json.Marshal(argv)
		f, err := os.OpenFile(os.Getenv("NIXPLAN_RECORD"), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fake:", err)
			return 99
		}
		fmt.Fprintf(f, "%s\n", line)
		f.Close()
	}
	if b := st.Block; b != nil && b.Command == filepath.Base(name) {
		if _, err := os.Stat(b.Blocked); err != nil {
			os.WriteFile(b.Blocked, nil, 0o644)
			// A test that fails before it releases the command must not
			// leave it waiting: it gives up after two minutes.
			for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				if _, err := os.Stat(b.Release); err == nil {
					break
				}
			}
		}
	}
	if st.Loop && slices.Contains(loopReal, filepath.Base(name)) && onLoopDevices(args) {
		// Loop mode: the real tool, on the loop device.
		cmd := exec.Command(loopRealPath(filepath.Base(name)), args...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				return ee.ExitCode()
			}
			fmt.Fprintln(os.Stderr, "fake:", err)
			return 99
		}
		return 0
	}
	code := 0
	if out, ok := lookup(st.Output, argv); ok && !simulate.ChangesMachine(argv) {
		fmt.Print(out)
	} else {
		code = st.Fake.Exec(argv, os.Stdout, os.Stderr)
	}
	// What the real command would leave that later reads need.
	switch filepath.Base(name) {
	case "mount":
		if len(args) == 4 && args[0] == "-t" {
			fstype := "tmpfs"
			if st.Loop && onLoopDevices(args[2:3]) && args[1] != "vfat" {
				fstype = args[1] // a real filesystem on a loop device: mount it for real (this kernel cannot mount vfat)
			}
			src := args[2]
			if fstype == "tmpfs" {
				src = "nixplan-fake"
			}
			mount := exec.Command("/usr/bin/mount", "-t", fstype, src, args[3])
			if fstype == "tmpfs" && args[3] == "/mnt" {
				// The new system's root is a harness folder, so a test can
				// read what the install wrote after the namespace is gone.
				mount = exec.Command("/usr/bin/mount", "--bind", os.Getenv("NIXPLAN_FAKE_MNT"), "/mnt")
			}
			if out, err := mount.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "fake mount: %v: %s", err, out)
				return 32
			}
		}
	case "umount":
		if out, err := exec.Command("/usr/bin/umount", args...).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "fake umount: %v: %s", err, out)
			return 32
		}
	case "curl", "wget":
		// A download (not curl --head) brings the harness's stand-in tarball
		// for a .tar.gz, else a stand-in for the URL.
		for i, a := range args {
			if !simulate.ChangesMachine(argv) {
				break
			}
			if (a == "--output" || a == "--output-document") && i+1 < len(args) {
				url := args[len(args)-1]
				if !strings.HasSuffix(url, ".tar.gz") {
					if err := os.WriteFile(args[i+1], standIn(url), 0o644); err != nil {
						fmt.Fprintln(os.Stderr, "fake download:", err)
						return 22
					}
					break
				}
				data, err := os.ReadFile(os.Getenv("NIXPLAN_FAKE_TARBALL"))
				if err == nil {
					err = os.WriteFile(args[i+1], data, 0o644)
				}
				if err != nil {
					fmt.Fprintln(os.Stderr, "fake download:", err)
					return 22
				}
			}
		}
	case "ssh-keygen":
		// A key pair where the real one would make it, for the later reads.
		if key := optionAfter(args, "-f"); key != "" && !slices.Contains(args, "-l") {
			os.WriteFile(key, []byte("nixplan harness: a stand-in for a private host key\n"), 0o600)
			pub := "ssh-" + optionAfter(args, "-t") + " AAAAharness-host-key " + optionAfter(args, "-C")
			if optionAfter(args, "-t") == "ed25519" {
				pub = sshEd25519Line(harnessHostSeed[:], optionAfter(args, "-C")) // a real one, for its age recipient
			}
			os.WriteFile(key+".pub", []byte(pub+"\n"), 0o644)
		}
	case "nix-build", "nix":
		// A build of cryptsetup leaves its out-link with a cryptsetup the
		// fake plays, as the real build leaves the real one.
		if link := simulate.CryptsetupOutLink(argv); link != "" {
			self, _ := os.Executable()
			os.MkdirAll(link+"/bin", 0o755)
			os.WriteFile(link+"/bin/cryptsetup", []byte(fmt.Sprintf("#!/bin/sh\nexec %q %s cryptsetup \"$@\"\n", self, fakeToolFlag)), 0o755)
		}
	case "nixos-generate-config":
		if !simulate.ChangesMachine(argv) {
			break // --show-hardware-config: the fake printed it
		}
		root, dir := "", "/etc/nixos"
		for i := 0; i+1 < len(args); i++ {
			switch args[i] {
			case "--root":
				root = args[i+1]
			case "--dir":
				dir = args[i+1]
			}
		}
		if err := os.MkdirAll(root+dir, 0o755); err == nil {
			os.WriteFile(root+dir+"/hardware-configuration.nix", []byte("{ ... }: { }\n"), 0o644)
		}
	}
	if c, ok := failing(st.Fail, argv); ok && simulate.ChangesMachine(argv) {
		code = c
		fmt.Fprintf(os.Stderr, "%s: failed (harness fault)\n", name)
	}
	if c, ok := st.FailRead[filepath.Base(name)]; ok && !simulate.ChangesMachine(argv) {
		code = c
		fmt.Fprintf(os.Stderr, "%s: failed (harness fault)\n", name)
	}
	st.Fake.Machine = nil
	out, _ := json.Marshal(st)
	if err := os.WriteFile(statePath, out, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "fake:", err)
		return 99
	}
	return code
}

// stdinRecord is one call of a command that reads a key on its standard input.
type stdinRecord struct {
	Argv  []string `json:"argv"`
	Stdin string   `json:"stdin"`
}

// readsKey: the command reads the encryption passphrase on its standard
// input (cryptsetup luksFormat and open with --key-file=-, zfs create with
// keylocation=prompt, zfs load-key).
func readsKey(argv []string) bool {
	switch filepath.Base(argv[0]) {
	case "cryptsetup":
		return slices.Contains(argv, "--key-file=-")
	case "zfs":
		return len(argv) > 1 && (argv[1] == "load-key" || (argv[1] == "create" && slices.Contains(argv, "keylocation=prompt")))
	}
	return false
}

// optionAfter returns the argument after the option name, or "".
func optionAfter(args []string, name string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == name {
			return args[i+1]
		}
	}
	return ""
}

// failing finds the harness fault for a command: Fail maps a command's
// name, or "NAME:WORD" for the command with WORD among its arguments
// ("nix:eval"), to the exit status it returns.
func failing(fail map[string]int, argv []string) (int, bool) { return lookup(fail, argv) }

// lookup finds the entry of m for a command: its name, or "NAME:WORD" for
// the command with WORD among its arguments.
func lookup[V any](m map[string]V, argv []string) (V, bool) {
	for key, v := range m {
		name, word, _ := strings.Cut(key, ":")
		if filepath.Base(argv[0]) == name && (word == "" || slices.Contains(argv[1:], word)) {
			return v, true
		}
	}
	var zero V
	return zero, false
}

// realTools are the utilities the scripts may run for real under the harness.
var realTools = []string{"bash", "sh", "grep", "awk", "sed", "cut", "tr", "sort", "tail", "head", "tee", "cat",
	"mkdir", "cp", "mv", "chmod", "od", "base64", "dirname", "basename", "sleep", "rm", "env", "ls", "wc", "date", "setsid"}

// machineTools are real on a rescue system or installer only when the
// machine description lists them.
var machineTools = []string{"tar", "gzip", "cpio"}

// loopReal run for real in loop mode when every device they are given is a
// loop device; on anything else (an md array) they are only recorded.
var loopReal = []string{"parted", "wipefs", "mkfs.ext4", "mkfs.vfat", "mkswap"}

// loopRead are the real read-only tools in loop mode.
var loopRead = []string{"lsblk", "blkid"}

func onLoopDevices(args []string) bool {
	found := false
	for _, a := range args {
		if strings.HasPrefix(a, "/dev/") {
			if !strings.HasPrefix(a, "/dev/loop") {
				return false
			}
			found = true
		}
	}
	return found
}

func loopRealPath(name string) string {
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return filepath.Join(dir, name)
		}
	}
	return name
}

type harness struct {
	t       *testing.T
	dir     string
	machine *machine.Machine
	state   harnessState
	plan    *plan.Plan
	bundle  *plan.Bundle
	// premount /mnt as a tmpfs before the script runs (a resumed install).
	premountMnt bool
	// kexecRun makes the tarball's kexec/run from its first line; nil for
	// the one the capability table describes.
	kexecRun func(first string) string
}

// harnessDirs are the harness folders bind-mounted over the machine's.
var harnessDirs = map[string]string{"root": "/root", "varlog": "/var/log", "varlib": "/var/lib", "run": "/run"}

// newHarness renders spec (TOML text) and prepares a fake machine.
func newHarness(t *testing.T, specText string, m *machine.Machine) *harness {
	t.Helper()
	p, b := renderText(t, "host.toml", specText)
	return bundleHarness(t, p, b, m)
}

// bundleHarness prepares a fake machine for a rendered bundle.
func bundleHarness(t *testing.T, p *plan.Plan, b *plan.Bundle, m *machine.Machine) *harness {
	t.Helper()
	if os.Geteuid() != 0 {
		requireOrSkip(t, "the script harness needs root for a private mount namespace")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		requireOrSkip(t, "unshare is not installed (Debian package util-linux)")
	}
	h := &harness{t: t, dir: t.TempDir(), machine: m, plan: p, bundle: b}
	h.state = harnessState{Fake: simulate.NewFakeMachine(m), Fail: map[string]int{}, FailRead: map[string]int{}, StandIns: map[string]string{}}
	// What the installer's nix --version and zfs version report (unused in the rescue system).
	h.state.Fake.Versions = simulate.InstallerVersions(p)
	if p.Nixpkgs.Pinned {
		sum := sha256.Sum256(standIn(p.Nixpkgs.ChannelURL + "/nixexprs.tar.xz"))
		h.state.StandIns[hex.EncodeToString(sum[:])] = p.Nixpkgs.SHA256
	}
	for _, d := range []string{"root", "varlog", "varlib", "run", "bin", "real", "mnt", "sys/class/net", "sys/firmware"} {
		if err := os.MkdirAll(filepath.Join(h.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The bundle in /root, as the checklist has the operator copy it.
	for _, f := range b.Files {
		name := filepath.Join(h.dir, "root", f.Name)
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, f.Data, os.FileMode(f.Mode)); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func requireOrSkip(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv(requireToolsEnv) == "1" {
		t.Fatalf("%s, and %s=1 requires it", msg, requireToolsEnv)
	}
	t.Skip(msg)
}

// installer turns the machine into the NixOS installer that kexec boots.
func installer(m machine.Machine) *machine.Machine {
	m.OS = machine.OSRelease{ID: "nixos", VersionID: "22.11", PrettyName: "NixOS 22.11 (Raccoon)"}
	m.Tools = nil
	return &m
}

// loadFixture reads a machine from testdata/machines.
func loadFixture(t *testing.T, name string) *machine.Machine {
	t.Helper()
	m, err := machine.Load("../testdata/machines/" + name + ".json")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// setup writes the stubs, links and fake files, and returns the bash text
// that mounts them in the namespace.
func (h *harness) setup(loop bool) string {
	t := h.t
	h.state.Loop = loop
	stub := func(name string) {
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		text := fmt.Sprintf("#!/bin/sh\nexec %q %s %q \"$@\"\n", self, fakeToolFlag, name)
		if err := os.WriteFile(filepath.Join(h.dir, "bin", name), []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := func(name string) {
		real, err := exec.LookPath(name)
		if err != nil {
			t.Fatalf("real tool %s: %v", name, err)
		}
		if err := os.Symlink(real, filepath.Join(h.dir, "real", name)); err != nil {
			t.Fatal(err)
		}
	}
	tools := []string{"id", "uname", "lsblk", "ip", "lvs", "curl", "wget", "zpool", "zfs", "mdadm", "vgchange", "parted", "wipefs",
		"mkfs.ext4", "mkfs.vfat", "mkswap", "mount", "umount", "swapon", "swapoff", "nixos-generate-config", "nix-channel", "nixos-install",
		"nixos-enter", "ssh-keygen", "apt-get", "reboot", "kexec", "udevadm", "nix", "nix-instantiate", "sha256sum", "nix-build", "cryptsetup"}
	for _, name := range tools {
		if has, listed := h.machine.Tools[name]; listed && !has {
			continue // the machine lacks it, as its description says
		}
		if loop && slices.Contains(loopRead, name) {
			link(name)
			continue
		}
		stub(name)
	}
	for _, name := range realTools {
		link(name)
	}
	for _, name := range machineTools {
		if has, listed := h.machine.Tools[name]; !listed || has {
			if name == "cpio" {
				stub(name) // only `command -v cpio` is asked
			} else {
				link(name)
			}
		}
	}
	// Files the scripts read the machine with.
	fake := simulate.NewFakeMachine(h.machine)
	var mounts strings.Builder
	fmt.Fprintf(&mounts, "set -e\n")
	for name, content := range fake.FakeFiles() {
		local := filepath.Join(h.dir, "files", name)
		if strings.HasSuffix(name, "/") {
			os.MkdirAll(local, 0o755)
			continue
		}
		os.MkdirAll(filepath.Dir(local), 0o755)
		if err := os.WriteFile(local, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(h.dir, "files/sys/class/net"), 0o755)
	os.MkdirAll(filepath.Join(h.dir, "files/sys/firmware"), 0o755)
	q := func(s string) string { r, _ := plan.ShellQuote(s); return r }
	bind := func(from, to string) {
		fmt.Fprintf(&mounts, "/usr/bin/mount --bind %s %s\n", q(from), q(to))
	}
	bind(filepath.Join(h.dir, "files/etc/os-release"), "/etc/os-release")
	bind(filepath.Join(h.dir, "files/proc/meminfo"), "/proc/meminfo")
	bind(filepath.Join(h.dir, "files/sys/class/net"), "/sys/class/net")
	bind(filepath.Join(h.dir, "files/sys/firmware"), "/sys/firmware")
	if h.premountMnt {
		fmt.Fprintf(&mounts, "/usr/bin/mount -t tmpfs nixplan-fake /mnt\n")
	}
	// /run last: mount(8) keeps notes in /run/mount, which would otherwise
	// land in the harness's folder.
	for _, from := range slices.Sorted(maps.Keys(harnessDirs)) {
		if from != "run" {
			bind(filepath.Join(h.dir, from), harnessDirs[from])
		}
	}
	bind(filepath.Join(h.dir, "run"), "/run")
	data, _ := json.Marshal(h.state)
	if err := os.WriteFile(filepath.Join(h.dir, "state.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	mj, _ := json.Marshal(h.machine)
	if err := os.WriteFile(filepath.Join(h.dir, "machine.json"), mj, 0o644); err != nil {
		t.Fatal(err)
	}
	return mounts.String()
}

// result of one script run.
type result struct {
	code           int
	stdout, stderr string
	// recorded are the machine-changing commands, in order; calls are every
	// command the fake answered or played.
	recorded, calls [][]string
}

func (r result) output() string { return r.stdout + r.stderr }

// runOpts change how a script is started.
type runOpts struct {
	loop  bool
	stdin string
	// env is added to the script's environment.
	env []string
	// notPrivileged starts it with `bash` instead of `bash -p`.
	notPrivileged bool
	// dir is where it is started from, path how it is named ("/root" and
	// "/root/SCRIPT" by default).
	dir, path string
	// keepRecord keeps the commands recorded so far (a detached run's).
	keepRecord bool
}

// run runs a bundle script from /root under bash in a private namespace.
func (h *harness) run(script string, stdin string, args ...string) result {
	return h.runWith(script, runOpts{stdin: stdin}, args...)
}

func (h *harness) runMode(loop bool, script string, stdin string, args ...string) result {
	return h.runWith(script, runOpts{loop: loop, stdin: stdin}, args...)
}

func (h *harness) runWith(script string, o runOpts, args ...string) result {
	h.t.Helper()
	return h.start(script, o, args...).wait()
}

// running is a script started and not yet waited for.
type running struct {
	h      *harness
	script string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *syncBuffer
	err    *syncBuffer
}

// syncBuffer is a buffer a test can read while a process writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start starts a bundle script under bash in a private namespace, in a
// session of its own, and writes o.stdin to it; stdinOpen keeps its stdin
// open for closeStdin.
func (h *harness) start(script string, o runOpts, args ...string) *running {
	return h.startStdin(script, o, false, args...)
}

func (h *harness) startStdin(script string, o runOpts, stdinOpen bool, args ...string) *running {
	t := h.t
	t.Helper()
	os.RemoveAll(filepath.Join(h.dir, "bin"))
	os.RemoveAll(filepath.Join(h.dir, "real"))
	os.MkdirAll(filepath.Join(h.dir, "bin"), 0o755)
	os.MkdirAll(filepath.Join(h.dir, "real"), 0o755)
	if !o.keepRecord {
		os.Remove(filepath.Join(h.dir, "record.jsonl"))
	}
	os.Remove(filepath.Join(h.dir, "calls.jsonl"))
	mounts := h.setup(o.loop)
	q := func(s string) string { r, _ := plan.ShellQuote(s); return r }
	var words []string
	for _, a := range args {
		words = append(words, q(a))
	}
	dir, scriptPath, bash := "/root", "/root/"+script, "bash -p"
	if o.dir != "" {
		dir = o.dir
	}
	if o.path != "" {
		scriptPath = o.path
	}
	if o.notPrivileged {
		bash = "bash"
	}
	inner := mounts + fmt.Sprintf("cd %s\nexport PATH=%s\nexec %s %s %s\n",
		q(dir), q(filepath.Join(h.dir, "bin")+":"+filepath.Join(h.dir, "real")), bash, q(scriptPath), strings.Join(words, " "))
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "/bin/bash", "-c", inner)
	cmd.Env = append([]string{
		"HOME=/root", "LC_ALL=C", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"NIXPLAN_FAKE_MACHINE=" + filepath.Join(h.dir, "machine.json"),
		"NIXPLAN_FAKE_STATE=" + filepath.Join(h.dir, "state.json"),
		"NIXPLAN_RECORD=" + filepath.Join(h.dir, "record.jsonl"),
		"NIXPLAN_CALLS=" + filepath.Join(h.dir, "calls.jsonl"),
		"NIXPLAN_STDIN=" + h.stdinLog(),
		"NIXPLAN_FAKE_TARBALL=" + filepath.Join(h.dir, "download.tar.gz"),
		"NIXPLAN_FAKE_MNT=" + filepath.Join(h.dir, "mnt"),
	}, o.env...)
	// A session of its own, as an SSH login has: a hang-up reaches its
	// processes and no others.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	r := &running{h: h, script: script, cmd: cmd, out: &syncBuffer{}, err: &syncBuffer{}}
	cmd.Stdout, cmd.Stderr = r.out, r.err
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	r.stdin = in
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", script, err)
	}
	io.WriteString(in, o.stdin)
	if !stdinOpen {
		in.Close()
	}
	return r
}

// waitFor waits until the script's output says want.
func (r *running) waitFor(want string) {
	r.h.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(r.out.String()+r.err.String(), want) {
		if time.Now().After(deadline) {
			r.h.t.Fatalf("%s never printed %q:\n%s%s", r.script, want, r.out.String(), r.err.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hangUp sends SIGHUP to the script's session, as a dropped SSH connection does.
func (r *running) hangUp() {
	syscall.Kill(-r.cmd.Process.Pid, syscall.SIGHUP)
}

// wait waits for the script and collects what it did.
func (r *running) wait() result {
	h, t := r.h, r.h.t
	t.Helper()
	r.stdin.Close()
	err := r.cmd.Wait()
	res := result{stdout: r.out.String(), stderr: r.err.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
		if ee.ExitCode() < 0 {
			res.code = 128 + int(ee.Sys().(syscall.WaitStatus).Signal())
		}
	} else if err != nil {
		t.Fatalf("running %s: %v", r.script, err)
	}
	h.loadState()
	res.recorded, res.calls = h.readCommands("record.jsonl"), h.readCommands("calls.jsonl")
	return res
}

// stdinLog is where the stubs record what the commands that read a key got
// on their standard input: beside the harness's folder, not in it, so a
// test can look for the passphrase in every file the scripts wrote.
func (h *harness) stdinLog() string { return h.dir + ".stdin.jsonl" }

// keyInputs returns what each command that reads a key got, in order.
func (h *harness) keyInputs() []stdinRecord {
	data, err := os.ReadFile(h.stdinLog())
	if err != nil {
		return nil
	}
	var out []stdinRecord
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r stdinRecord
		if json.Unmarshal([]byte(line), &r) == nil {
			out = append(out, r)
		}
	}
	return out
}

// loadState keeps the fake's state for a following run (a resumed install).
func (h *harness) loadState() {
	if data, err := os.ReadFile(filepath.Join(h.dir, "state.json")); err == nil {
		var st harnessState
		if json.Unmarshal(data, &st) == nil {
			st.Fake.Machine = h.machine
			h.state = st
		}
	}
}

// readCommands reads a file of JSON argument lists, one a line.
func (h *harness) readCommands(name string) [][]string {
	var out [][]string
	f, err := os.Open(filepath.Join(h.dir, name))
	if err != nil {
		return nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var argv []string
		if err := json.Unmarshal(sc.Bytes(), &argv); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, argv)
	}
	return out
}

// commands returns the recorded commands as lines, for messages and matching.
func (r result) commands() []string {
	var out []string
	for _, argv := range r.recorded {
		out = append(out, strings.Join(argv, " "))
	}
	return out
}

// firstIndex returns the index of the first recorded command starting with prefix, or -1.
func (r result) firstIndex(prefix string) int {
	for i, c := range r.commands() {
		if strings.HasPrefix(c, prefix) {
			return i
		}
	}
	return -1
}
