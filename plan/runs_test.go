package plan_test

// Tests of the scripts against the wrong machine, the wrong run, a steering
// environment and a dropped connection, under real bash with the recording
// harness.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nixplan/nixplan/plan"
	"github.com/nixplan/nixplan/plan/machine"
)

// wrongAddress makes the seed's machine another server: its address is not
// the spec's.
func wrongAddress(m *machine.Machine) { m.Interfaces[0].Addresses[0].Address = "198.51.100.3" }

// TestIdentityChecksComeFirst: on a machine that is not the spec's, every
// way of starting kexec-install.sh (--from, --only, a resume from the
// progress record) stops with the identity check's message and changes
// nothing; on the right machine --from partition still needs preflight.
func TestIdentityChecksComeFirst(t *testing.T) {
	for _, c := range []struct {
		name     string
		args     []string
		progress []string
	}{
		{name: "--from install", args: []string{"--from", "install"}},
		{name: "--from partition", args: []string{"--from", "partition"}},
		{name: "--only mount", args: []string{"--only", "mount"}},
		{name: "--only finish", args: []string{"--only", "finish"}},
		{name: "resume after format", progress: []string{"preflight", "partition", "format"}},
		{name: "--dry-run --from install", args: []string{"--dry-run", "--from", "install"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := installerHarness(t, exampleSpec(t), wrongAddress)
			h.premountMnt = true // as a resumed install finds it
			if c.progress != nil {
				h.writeProgress(h.plan.Storage.PlanSHA256, c.progress...)
			}
			r := h.run(plan.KexecInstallFile, "blog-demo\n", c.args...)
			expectStop(t, r, "kexec-install.sh: error: no interface of this machine has 203.0.113.10")
			for _, bad := range []string{"resuming", "==> "} {
				if strings.Contains(r.stdout, bad) {
					t.Errorf("a phase began before the identity checks stopped the run:\n%s", r.output())
				}
			}
		})
	}
	h := installerHarness(t, exampleSpec(t), nil)
	r := h.run(plan.KexecInstallFile, "", "--from", "partition")
	expectStop(t, r, "the partition phase erases data and runs only after the preflight phase")
	if !strings.Contains(r.stdout, "bundle files beside this script match SHA256SUMS") {
		t.Errorf("the identity checks did not run before the refusal:\n%s", r.output())
	}
}

// TestProgressOfAnotherStoragePlan: a progress record written for another
// storage plan is never resumed, while a bundle rendered again with the same
// storage plan resumes where the first one stopped.
func TestProgressOfAnotherStoragePlan(t *testing.T) {
	h := installerHarness(t, exampleSpec(t), nil)
	other, _ := renderText(t, "host.toml", exampleSpec(t, `pool = "rpool"`, `pool = "tank"`))
	h.writeProgress(other.Storage.PlanSHA256, "preflight", "partition", "format", "mount", "configure")
	h.premountMnt = true
	for _, args := range [][]string{nil, {"--from", "install"}, {"--only", "mount"}, {"--dry-run"}} {
		r := h.run(plan.KexecInstallFile, "", args...)
		expectStop(t, r, "records a run of another storage plan")
		if !strings.Contains(r.stderr, "bash -p /root/kexec-install.sh --from preflight") {
			t.Errorf("%q: no hint how to start over:\n%s", args, r.output())
		}
	}

	// The first bundle stops in nixos-install; the same spec with another
	// nameserver (the same storage plan) resumes it.
	h = installerHarness(t, exampleSpec(t), nil)
	h.state.Fail["nixos-install"] = 1
	if r := h.run(plan.KexecInstallFile, "blog-demo\n"); r.code == 0 {
		t.Fatalf("the first run should fail in nixos-install:\n%s", r.output())
	}
	delete(h.state.Fail, "nixos-install")
	p2, b2 := renderText(t, "host.toml", exampleSpec(t, `nameservers = ["8.8.8.8"]`, `nameservers = ["9.9.9.9"]`))
	if p2.Storage.PlanSHA256 != h.plan.Storage.PlanSHA256 || p2.SpecSHA256 == h.plan.SpecSHA256 {
		t.Fatal("the second spec should differ from the first but share its storage plan")
	}
	for _, f := range b2.Files {
		if err := os.WriteFile(filepath.Join(h.dir, "root", f.Name), f.Data, os.FileMode(f.Mode)); err != nil {
			t.Fatal(err)
		}
	}
	h.premountMnt = true
	r := h.run(plan.KexecInstallFile, "")
	if r.code != 0 {
		t.Fatalf("the re-rendered bundle does not resume: exit %d\n%s", r.code, r.output())
	}
	if !strings.Contains(r.stdout, "resuming at install") || !strings.Contains(r.stdout, "has the same storage plan") {
		t.Errorf("no word of resuming a record of the same storage plan:\n%s", r.stdout)
	}
	for _, bad := range []string{"wipefs", "parted", "mkfs", "zpool create"} {
		if i := r.firstIndex(bad); i >= 0 {
			t.Errorf("the resumed run ran %q", r.commands()[i])
		}
	}
	if r.firstIndex("nixos-install --root /mnt") < 0 {
		t.Errorf("the resumed run did not install: %q", r.commands())
	}
}

// TestOneRunAtATime: while one run holds the lock (here, waiting for the
// answer before the erase), a second refuses before it runs any command and
// names the first; once the first ends, a run goes through. A lock left by
// a run that is gone is taken over.
func TestOneRunAtATime(t *testing.T) {
	h := installerHarness(t, exampleSpec(t), nil)
	first := h.startStdin(plan.KexecInstallFile, runOpts{}, true)
	first.waitFor("Type the host name")
	second := h.run(plan.KexecInstallFile, "blog-demo\n")
	expectStop(t, second, "another run of kexec-install.sh holds the lock /run/nixplan/kexec-install.lock: PID ")
	if !strings.Contains(second.stderr, "bash -p kexec-install.sh --attach follows it") {
		t.Errorf("the refusal does not say how to follow the first run:\n%s", second.stderr)
	}
	if len(second.calls) > 0 {
		t.Errorf("the refused run ran %q", second.calls)
	}
	owner, err := os.ReadFile(filepath.Join(h.dir, "run/nixplan/kexec-install.lock/owner"))
	if err != nil {
		t.Fatal(err)
	}
	pid, started, _ := strings.Cut(strings.TrimSpace(string(owner)), " ")
	if !strings.Contains(second.stderr, "PID "+pid+", started "+started) {
		t.Errorf("the refusal does not name the first run (PID %s, started %s):\n%s", pid, started, second.stderr)
	}
	// The first run gets no answer and ends; the lock goes with it.
	r := first.wait()
	if r.code == 0 || !strings.Contains(r.stderr, "no answer; nothing was changed") {
		t.Fatalf("the first run: exit %d\n%s", r.code, r.output())
	}
	if _, err := os.Stat(filepath.Join(h.dir, "run/nixplan/kexec-install.lock")); err == nil {
		t.Error("the first run left its lock")
	}
	if r := h.run(plan.KexecInstallFile, "blog-demo\n"); r.code != 0 || r.firstIndex("nixos-install") < 0 {
		t.Fatalf("after the first run ended, a run does not go through: exit %d\n%s", r.code, r.output())
	}

	// A lock whose run is gone: PID 2^22+1 is above the kernel's pid_max.
	h = installerHarness(t, exampleSpec(t), nil)
	lock := filepath.Join(h.dir, "run/nixplan/kexec-install.lock")
	os.MkdirAll(lock, 0o755)
	os.WriteFile(filepath.Join(lock, "owner"), []byte("4194305 2000-01-01T00:00:00Z\n"), 0o644)
	r = h.run(plan.KexecInstallFile, "blog-demo\n")
	if r.code != 0 || !strings.Contains(r.stdout, "run 4194305 (started 2000-01-01T00:00:00Z) is gone but left its lock; taking it over") {
		t.Errorf("a stale lock is not taken over: exit %d\n%s", r.code, r.output())
	}
}

// TestForeignPoolOfTheSpecsName: a pool named like the spec's is this
// install's only when its comment says so; without clear_existing a
// foreign one stops both scripts before anything is changed, and this
// install's own is cleared as an earlier run's.
func TestForeignPoolOfTheSpecsName(t *testing.T) {
	for _, c := range []struct {
		name, comment string
		own           bool
	}{
		{name: "no comment"},
		{name: "another comment", comment: "made by proxmox"},
		{name: "another storage plan's", comment: "nixplan-000000000000000000000000"},
		{name: "this install's", own: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := installerHarness(t, exampleSpec(t), withPool("rpool"))
			comment := c.comment
			if c.own {
				comment = h.plan.Storage.PoolComment
			}
			if comment != "" {
				h.state.Fake.PoolComments["rpool"] = comment
			}
			r := h.run(plan.KexecInstallFile, "blog-demo\n")
			if c.own {
				if r.code != 0 || r.firstIndex("zpool labelclear -f /dev/sda2") < 0 {
					t.Errorf("this install's pool is not cleared as an earlier run's: exit %d\n%s", r.code, r.output())
				}
				return
			}
			expectStop(t, r, "/dev/sda holds RAID, LVM or ZFS members: /dev/sda2(zfs_member)")

			// The rescue system stops too when it has zpool to tell.
			h = newHarness(t, exampleSpec(t), seed(t, func(m *machine.Machine) {
				withPool("rpool")(m)
				m.Tools["zpool"] = true
			}))
			if comment != "" {
				h.state.Fake.PoolComments["rpool"] = comment
			}
			hash := h.withTarball()
			expectStop(t, h.run(plan.RescueBootstrapFile, "", "--accept-hash", hash), "/dev/sda holds RAID, LVM or ZFS members: /dev/sda2(zfs_member)")
		})
	}
	// Without zpool the rescue system cannot tell, says so, and leaves it to
	// the installer, which can.
	h := newHarness(t, exampleSpec(t), seed(t, withPool("rpool")))
	hash := h.withTarball()
	r := h.run(plan.RescueBootstrapFile, "", "--accept-hash", hash)
	if r.code != 0 || !strings.Contains(r.stdout, "note: a pool named rpool is on /dev/sda2; without zpool here it cannot be told whether this install made it") {
		t.Errorf("exit %d:\n%s", r.code, r.output())
	}
}

// TestEnvironmentCannotSteer: CDPATH and GLOBIGNORE are dropped, so the
// bundle is still checked (and a changed checklist.md stops both scripts);
// BASH_ENV, SHELLOPTS or an exported function stop both scripts before any
// check runs a command, with bash -p as the checklist has it and without.
func TestEnvironmentCannotSteer(t *testing.T) {
	// Started as root/SCRIPT from /, `cd root` would follow CDPATH and print
	// the folder, which script_dir then returned twice.
	dropped := []string{"CDPATH=/tmp:/", "GLOBIGNORE=*"}
	for _, script := range scripts {
		for _, privileged := range []bool{true, false} {
			h := newHarness(t, exampleSpec(t), seed(t, nil))
			if script == plan.KexecInstallFile {
				h = installerHarness(t, exampleSpec(t), nil)
			}
			hash := h.withTarball()
			o := runOpts{env: dropped, dir: "/", path: "root/" + script, notPrivileged: !privileged}
			r := h.runWith(script, o, "--dry-run", "--accept-hash", hash)
			if script == plan.KexecInstallFile {
				r = h.runWith(script, o, "--dry-run")
			}
			if r.code != 0 || !strings.Contains(r.stdout, "bundle files beside this script match SHA256SUMS") {
				t.Errorf("%s (bash -p %v) with CDPATH: the bundle was not checked: exit %d\n%s", script, privileged, r.code, r.output())
			}
			if err := os.WriteFile(filepath.Join(h.dir, "root", plan.ChecklistFile), []byte("- [ ] trust me\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			o.stdin = "blog-demo\n"
			r = h.runWith(script, o, "--accept-hash", hash)
			if script == plan.KexecInstallFile {
				r = h.runWith(script, o)
			}
			expectStop(t, r, "the bundle beside this script does not match its SHA256SUMS")
		}
	}

	steering := []struct {
		name string
		env  []string
		says []string
		// acts: it acts before the first line unless bash -p keeps it from it.
		acts bool
	}{
		{"BASH_ENV", []string{"BASH_ENV=/root/steer.sh"}, []string{"the environment sets BASH_ENV, which can change what this script does"}, true},
		{"SHELLOPTS", []string{"SHELLOPTS=xtrace"}, []string{"the environment sets SHELLOPTS"}, false},
		{"an exported function", []string{"BASH_FUNC_lsblk%%=() {  echo /dev/sda disk\n}"}, []string{"the environment sets the exported function lsblk"}, false},
		{"two of them", []string{"ENV=/root/steer.sh", "BASH_FUNC_id%%=() {  echo 0\n}"}, []string{"ENV", "the exported function id"}, false},
	}
	for _, script := range scripts {
		for _, c := range steering {
			for _, privileged := range []bool{true, false} {
				if c.acts && !privileged {
					continue // it runs before any line of the script: what bash -p is for
				}
				t.Run(script+" "+c.name+map[bool]string{true: " bash -p", false: " bash"}[privileged], func(t *testing.T) {
					h := newHarness(t, exampleSpec(t), seed(t, nil))
					if script == plan.KexecInstallFile {
						h = installerHarness(t, exampleSpec(t), nil)
					}
					// The file BASH_ENV names runs a command the fake would log.
					os.WriteFile(filepath.Join(h.dir, "root/steer.sh"), []byte("lsblk >/dev/null\n"), 0o644)
					hash := h.withTarball()
					o := runOpts{stdin: "blog-demo\n", env: c.env, notPrivileged: !privileged}
					r := h.runWith(script, o, "--accept-hash", hash)
					if script == plan.KexecInstallFile {
						r = h.runWith(script, o)
					}
					expectStop(t, r, script+": error: the environment sets ")
					for _, want := range c.says {
						if !strings.Contains(r.stderr, want) {
							t.Errorf("the refusal does not name %q:\n%s", want, r.stderr)
						}
					}
					if len(r.calls) > 0 {
						t.Errorf("commands ran before the refusal: %q", r.calls)
					}
				})
			}
		}
	}
}

// TestFailingCommandSaysWhatFailed: a command that fails ends the run with
// the phase, the command and its exit status, and a hint of what is safe to
// run next; a command outside run names the phase.
func TestFailingCommandSaysWhatFailed(t *testing.T) {
	for _, c := range []struct {
		name     string
		fail     map[string]int
		failRead map[string]int
		message  string
		hint     string
		before   string // a command that must not have run
		code     int
	}{
		{name: "mkfs", fail: map[string]int{"mkfs.ext4": 1}, code: 1,
			message: "kexec-install.sh: error: format failed: mkfs.ext4 -F -L boot /dev/sda1 (exit 1)",
			hint:    "kexec-install.sh: hint: the disks are half-written: bash -p /root/kexec-install.sh starts over at preflight, which asks before it erases them again",
			before:  "zpool create"},
		{name: "mount", fail: map[string]int{"mount": 32}, code: 1,
			message: "kexec-install.sh: error: mount failed: mount -t zfs rpool/root/nixos /mnt (exit 32)",
			hint:    "kexec-install.sh: hint: fix the cause, then bash -p /root/kexec-install.sh resumes at the mount phase",
			before:  "nixos-generate-config"},
		{name: "outside run", failRead: map[string]int{"ssh-keygen": 3}, code: 3,
			message: "kexec-install.sh: error: finish failed (exit 3); the output above says which command",
			hint:    "kexec-install.sh: hint: fix the cause, then bash -p /root/kexec-install.sh resumes at the finish phase",
			before:  "umount"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := installerHarness(t, exampleSpec(t), nil)
			for k, v := range c.fail {
				h.state.Fail[k] = v
			}
			for k, v := range c.failRead {
				h.state.FailRead[k] = v
			}
			r := h.run(plan.KexecInstallFile, "blog-demo\n")
			if r.code != c.code {
				t.Errorf("exit %d, want %d", r.code, c.code)
			}
			for _, want := range []string{c.message, c.hint, fmt.Sprintf("the detached run ended with exit status %d", c.code)} {
				if !strings.Contains(r.stderr, want) && !strings.Contains(r.stdout, want) {
					t.Errorf("the output does not say %q:\n%s", want, r.output())
				}
			}
			if i := r.firstIndex(c.before); i >= 0 {
				t.Errorf("%s ran after the failure", r.commands()[i])
			}
			log, _ := os.ReadFile(filepath.Join(h.dir, "varlog/nixplan-install.log"))
			if !strings.Contains(string(log), c.message) {
				t.Errorf("the log does not say %q:\n%s", c.message, log)
			}
		})
	}
}

// TestReadOnlyOptionsWriteNothing: --help, --list-phases and --dry-run
// leave no new file in /var/log, /var/lib, /run, /root or /mnt.
func TestReadOnlyOptionsWriteNothing(t *testing.T) {
	list := func(h *harness) []string {
		var files []string
		for _, dir := range []string{filepath.Join(h.dir, "root"), filepath.Join(h.dir, "varlog"), filepath.Join(h.dir, "varlib"), filepath.Join(h.dir, "run"), "/mnt"} {
			filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
				if err == nil {
					files = append(files, p)
				}
				return nil
			})
		}
		return files
	}
	for _, c := range []struct {
		script string
		args   []string
	}{
		{plan.KexecInstallFile, []string{"--help"}},
		{plan.KexecInstallFile, []string{"--list-phases"}},
		{plan.KexecInstallFile, []string{"--dry-run"}},
		{plan.KexecInstallFile, []string{"--dry-run", "--from", "install"}},
		{plan.RescueBootstrapFile, []string{"--help"}},
		{plan.RescueBootstrapFile, []string{"--dry-run"}},
	} {
		t.Run(c.script+" "+strings.Join(c.args, " "), func(t *testing.T) {
			h := newHarness(t, exampleSpec(t), seed(t, nil))
			if c.script == plan.KexecInstallFile {
				h = installerHarness(t, exampleSpec(t), nil)
			}
			hash := h.withTarball()
			args := c.args
			if c.script == plan.RescueBootstrapFile {
				args = append(args, "--accept-hash", hash)
			}
			before := list(h)
			r := h.run(c.script, "", args...)
			if r.code != 0 {
				t.Fatalf("exit %d:\n%s", r.code, r.output())
			}
			if diff := cmp.Diff(before, list(h)); diff != "" {
				t.Errorf("files appeared (-before +after):\n%s", diff)
			}
			if len(r.recorded) > 0 {
				t.Errorf("recorded %q", r.commands())
			}
		})
	}
}

// TestHangUpDoesNotStopTheInstall: a hang-up of the SSH session (SIGHUP to
// the foreground run's session) in the middle of the partition phase ends
// the foreground run only; the install finishes with the same commands as
// an undisturbed one, and --attach follows it to its end.
func TestHangUpDoesNotStopTheInstall(t *testing.T) {
	undisturbed := installerHarness(t, exampleSpec(t), nil).run(plan.KexecInstallFile, "blog-demo\n")
	if undisturbed.code != 0 {
		t.Fatalf("the undisturbed run: exit %d\n%s", undisturbed.code, undisturbed.output())
	}

	h := installerHarness(t, exampleSpec(t), nil)
	blocked, release := filepath.Join(h.dir, "blocked"), filepath.Join(h.dir, "release")
	h.state.Block = &blockPoint{Command: "parted", Blocked: blocked, Release: release}
	t.Cleanup(func() { os.WriteFile(release, nil, 0o644) }) // should the test stop before it releases parted
	fg := h.start(plan.KexecInstallFile, runOpts{stdin: "blog-demo\n"})
	waitForFile(t, blocked)
	fg.waitFor("==> partition")
	fg.hangUp()
	hungUp := fg.wait()
	if hungUp.code == 0 {
		t.Fatalf("the foreground run did not end with the hang-up:\n%s", hungUp.output())
	}

	// Follow the install again, as after logging in once more.
	attach := h.start(plan.KexecInstallFile, runOpts{keepRecord: true}, "--attach")
	attach.waitFor("following the install, run ")
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	attached := attach.wait()
	if attached.code != 0 || !strings.Contains(attached.stdout, "NixOS is installed on blog-demo") {
		t.Errorf("--attach does not follow the install to its end: exit %d\n%s", attached.code, attached.output())
	}
	status, err := os.ReadFile(filepath.Join(h.dir, "run/nixplan/kexec-install.status"))
	if err != nil || strings.TrimSpace(string(status)) != "0" {
		t.Errorf("the detached run's status: %q, %v", status, err)
	}
	all := h.readCommands("record.jsonl")
	if diff := cmp.Diff(undisturbed.recorded, all); diff != "" {
		t.Errorf("the hung-up install's commands differ from an undisturbed one's (-undisturbed +hung up):\n%s", diff)
	}
	// Once it is over, --attach shows the end of the log and its status,
	// and runs nothing.
	again := h.runWith(plan.KexecInstallFile, runOpts{keepRecord: true}, "--attach")
	if again.code != 0 || !strings.Contains(again.stdout, "no install is running; the end of /var/log/nixplan-install.log:") || len(again.calls) > 0 {
		t.Errorf("--attach after the end: exit %d, ran %q:\n%s", again.code, again.calls, again.output())
	}
}

func waitForFile(t *testing.T, name string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(name); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSwapOnBeforeInstall: the new swap partitions are on before
// nixos-install builds in the installer's memory, and off before the pool
// is exported.
func TestSwapOnBeforeInstall(t *testing.T) {
	spec := exampleSpec(t, `boot_size = "511MiB"`, "boot_size = \"511MiB\"\nswap_size = \"4GiB\"")
	h := installerHarness(t, spec, nil)
	r := h.run(plan.KexecInstallFile, "blog-demo\n")
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.output())
	}
	order := []string{"mkswap -L swap /dev/sda2", "swapon /dev/sda2", "nixos-install", "swapoff -a", "zpool export rpool"}
	last := -1
	for _, c := range order {
		i := r.firstIndex(c)
		if i <= last {
			t.Errorf("%q at %d, want it after %d in:\n%s", c, i, last, strings.Join(r.commands(), "\n"))
		}
		last = i
	}
}

// TestPinnedChannelInstallsTheCheckedFile: nix-channel is given the very
// nixexprs.tar.xz whose sha256 was checked, once, for the evaluation and the
// install; a run that must fetch the channel again (a new installer boot)
// checks the file again and stops, before nix-channel sees it, when it
// changed.
func TestPinnedChannelInstallsTheCheckedFile(t *testing.T) {
	data, err := os.ReadFile("../examples/ovh-pinned-channel.toml")
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, string(data), installer(*seed(t, func(m *machine.Machine) { m.Interfaces[0].Addresses[0].Address = "203.0.113.50" })))
	h.state.Fail["nixos-install"] = 1
	r := h.run(plan.KexecInstallFile, "pinned-demo\n")
	fetched := "curl --fail --location --proto =https --retry 3 --output /root/nixexprs.tar.xz " + h.plan.Nixpkgs.ChannelURL + "/nixexprs.tar.xz"
	given := "nix-channel --add file:///root/nixexprs.tar.xz nixos"
	if r.firstIndex(fetched) < 0 || r.firstIndex(given) < r.firstIndex(fetched) || r.firstIndex("nix-instantiate") < r.firstIndex(given) {
		t.Fatalf("want %q, then %q, then the evaluation:\n%s", fetched, given, strings.Join(r.commands(), "\n"))
	}
	if !strings.Contains(r.stdout, "/root/nixexprs.tar.xz ("+h.plan.Nixpkgs.ChannelURL+"/nixexprs.tar.xz) matches the pinned sha256") {
		t.Errorf("the file given to nix-channel was not checked:\n%s", r.stdout)
	}
	if slices.ContainsFunc(r.commands(), func(c string) bool { return strings.HasPrefix(c, "nix-channel --add http") }) {
		t.Errorf("nix-channel downloads the release itself: %q", r.commands())
	}

	// The file changes after the check: the install goes on with the channel
	// fetched from the checked file, and gives nix-channel nothing new.
	delete(h.state.Fail, "nixos-install")
	if err := os.WriteFile(filepath.Join(h.dir, "root/nixexprs.tar.xz"), []byte("another release\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.premountMnt = true
	h.state.Fail["nixos-install"] = 1
	r = h.run(plan.KexecInstallFile, "", "--from", "install")
	if r.firstIndex("nix-channel") >= 0 || r.firstIndex("nixos-install") < 0 {
		t.Errorf("the resumed install does not use the channel fetched before: %q", r.commands())
	}
	delete(h.state.Fail, "nixos-install")

	// Without the channel fetched before (the installer's memory lost it),
	// the install phase fetches it, checks the changed file and stops.
	if err := os.Remove(filepath.Join(h.dir, "varlib/nixplan/nixpkgs-fetched")); err != nil {
		t.Fatal(err)
	}
	r = h.run(plan.KexecInstallFile, "", "--from", "install")
	if r.code == 0 || !strings.Contains(r.output(), "but the spec pins "+h.plan.Nixpkgs.SHA256) {
		t.Errorf("a changed nixexprs.tar.xz does not stop the install: exit %d\n%s", r.code, r.output())
	}
	if r.firstIndex("nix-channel") >= 0 || r.firstIndex("nixos-install") >= 0 {
		t.Errorf("nix-channel or nixos-install ran with a file that does not match the pin: %q", r.commands())
	}
}

// TestSameDiskUnderTwoNames: a disk listed by its kernel name and by its
// by-id link is refused by both scripts before anything is changed.
func TestSameDiskUnderTwoNames(t *testing.T) {
	spec := exampleSpec(t, `devices = ["/dev/sda"]`, `devices = ["/dev/sda", "/dev/disk/by-id/ata-HGST_HUS724020ALA640_PN2134P5G1TJWX"]`+"\ntopology = \"mirror\"")
	message := "/dev/sda and /dev/disk/by-id/ata-HGST_HUS724020ALA640_PN2134P5G1TJWX are the same disk (/dev/sda)"
	h := newHarness(t, spec, seed(t, nil))
	hash := h.withTarball()
	expectStop(t, h.run(plan.RescueBootstrapFile, "", "--accept-hash", hash), "rescue-bootstrap.sh: error: "+message)
	h = installerHarness(t, spec, nil)
	expectStop(t, h.run(plan.KexecInstallFile, "blog-demo\n"), "kexec-install.sh: error: "+message)
}

// TestDownloadedTarballLeavesMemory: rescue-bootstrap.sh removes a tarball it
// downloaded once it is unpacked (the rescue system runs from memory), and
// keeps one shipped in the bundle.
func TestDownloadedTarballLeavesMemory(t *testing.T) {
	h := newHarness(t, exampleSpec(t), seed(t, nil))
	hash := h.downloadTarball()
	r := h.run(plan.RescueBootstrapFile, "", "--accept-hash", hash)
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.output())
	}
	if _, err := os.Stat(filepath.Join(h.dir, "root", h.plan.Kexec.Tarball)); err == nil {
		t.Error("the downloaded tarball is still in /root")
	}
	if _, err := os.Stat(filepath.Join(h.dir, "root/kexec/run")); err != nil {
		t.Errorf("the unpacked installer is gone: %v", err)
	}
	h = newHarness(t, exampleSpec(t), seed(t, nil))
	hash = h.withTarball()
	if r := h.run(plan.RescueBootstrapFile, "", "--accept-hash", hash); r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.output())
	}
	if _, err := os.Stat(filepath.Join(h.dir, "root", h.plan.Kexec.Tarball)); err != nil {
		t.Errorf("the tarball beside the script was removed: %v", err)
	}
}

// TestConsolePasswordAskedBeforeDetaching: the console password is read in
// the foreground, before the install detaches, and set after nixos-install
// from a file in memory that is removed afterwards.
func TestConsolePasswordAskedBeforeDetaching(t *testing.T) {
	spec := exampleSpec(t, `[ssh]`, "[ssh]\nconsole_password = true")
	h := installerHarness(t, spec, nil)
	// A password no line of the install's output holds by chance.
	r := h.run(plan.KexecInstallFile, "blog-demo\npw-7Qx9zV\npw-7Qx9zV\n")
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.output())
	}
	prompt, detach := strings.Index(r.stdout, "Root password for the KVM console"), strings.Index(r.stdout, "==> detach")
	if prompt < 0 || detach < prompt {
		t.Errorf("the password is not asked before the install detaches:\n%s", r.stdout)
	}
	if i := r.firstIndex("nixos-enter --root /mnt -c chpasswd"); i < 0 || i < r.firstIndex("nixos-install") {
		t.Errorf("the password is not set after nixos-install: %q", r.commands())
	}
	if _, err := os.Stat(filepath.Join(h.dir, "run/nixplan/console-password")); err == nil {
		t.Error("the password file is left in /run")
	}
	log, _ := os.ReadFile(filepath.Join(h.dir, "varlog/nixplan-install.log"))
	if strings.Contains(string(log), "pw-7Qx9zV") || strings.Contains(r.output(), "pw-7Qx9zV") {
		t.Error("the password shows in the output or the log")
	}
	// Two different passwords stop before anything is erased.
	h = installerHarness(t, spec, nil)
	expectStop(t, h.run(plan.KexecInstallFile, "blog-demo\nsecret\nsecrets\n"), "the two passwords differ")
}

// TestChecklistStartsTheScriptsAsTheyMustRun: every example's checklist
// starts both scripts with bash -p, says how to follow the detached install
// again, and no longer counts on tmux, which the installer images lack.
func TestChecklistStartsTheScriptsAsTheyMustRun(t *testing.T) {
	for _, spec := range examples(t) {
		b := renderFile(t, spec)
		text := string(b.File(plan.ChecklistFile).Data)
		for _, want := range []string{"bash -p /root/rescue-bootstrap.sh", "bash -p /root/kexec-install.sh", "bash -p /root/kexec-install.sh --attach"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s: checklist.md lacks %q", exampleName(spec), want)
			}
		}
		for _, bad := range []string{"bash /root/", "tmux", "inside screen"} {
			if strings.Contains(text, bad) {
				t.Errorf("%s: checklist.md still says %q", exampleName(spec), bad)
			}
		}
		for _, script := range scripts {
			if usage := string(b.File(script).Data); !strings.Contains(usage, "Usage: bash -p "+script) {
				t.Errorf("%s: %s's usage does not start it with bash -p", exampleName(spec), script)
			}
		}
	}
}
