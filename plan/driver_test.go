package plan_test

// install.sh, the driver that runs on the operator's machine, runs here
// under dash, posh and bash --posix against fake ssh and scp on PATH. The
// fakes play one server that is the rescue system, then the installer, then
// the installed system (the file "stage"), each answering with the host key
// of its stage (key.STAGE), and check host keys as OpenSSH does: the key of
// the HostKeyAlias in UserKnownHostsFile must be the presented one; with
// StrictHostKeyChecking=ask an unknown key is asked about and kept. OpenSSH
// asks on /dev/tty (sshconnect.c, confirm via read_passphrase); the fake
// writes the question to the file "tty" and reads the answer from stdin.
// Every call is recorded in the file "calls", one line each.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nixplan/nixplan/plan"
)

const (
	rescueKey    = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIRESCUEKEYRESCUEKEYRESCUEKEYRESCUEKEY"
	otherKey     = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOTHERKEYOTHERKEYOTHERKEYOTHERKEYOTHE"
	installedKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINSTALLEDKEYINSTALLEDKEYINSTALLEDKEYIN"
	fakeHash     = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

// fakeSSH is ssh and scp (by the name it is called with).
const fakeSSH = `#!/bin/sh
F=$FAKE_DIR
printf '%s' "${0##*/}" >>"$F/calls"
for a in "$@"; do printf ' [%s]' "$a" >>"$F/calls"; done
printf '\n' >>"$F/calls"
khf= alias= strict=ask control=
while [ $# -gt 0 ]; do
  case "$1" in
    -o)
      case "$2" in
        UserKnownHostsFile=*) khf=${2#*=} ;;
        HostKeyAlias=*) alias=${2#*=} ;;
        StrictHostKeyChecking=*) strict=${2#*=} ;;
      esac
      shift 2 ;;
    -p | -P | -J) shift 2 ;;
    -O) control=$2; shift 2 ;;
    -t) shift ;;
    *) break ;;
  esac
done
[ -z "$control" ] || exit 0
if [ -f "$F/down" ]; then
  echo "ssh: connect to host 203.0.113.10 port 22: Connection refused" >&2
  exit 255
fi
stage=$(cat "$F/stage")
presented=$(cat "$F/key.$stage")
known=
if [ -f "$khf" ]; then
  known=$(grep "^$alias " "$khf" | head -n 1 | cut -d ' ' -f 2,3)
fi
if [ -z "$known" ]; then
  if [ "$strict" = ask ]; then
    {
      echo "The authenticity of host '$alias (203.0.113.10)' can't be established."
      echo "ED25519 key fingerprint is SHA256:fake-$stage."
      echo "Are you sure you want to continue connecting (yes/no/[fingerprint])?"
    } >>"$F/tty"
    read -r answer
    if [ "$answer" != yes ]; then echo "Host key verification failed." >&2; exit 255; fi
    echo "$alias $presented" >>"$khf"
    echo asked >>"$F/prompts"
  else
    echo "No ED25519 host key is known for $alias and you have requested strict checking." >&2
    echo "Host key verification failed." >&2
    exit 255
  fi
elif [ "$known" != "$presented" ]; then
  echo "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@" >&2
  echo "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @" >&2
  echo "Host key verification failed." >&2
  exit 255
fi
if [ "${0##*/}" = scp ]; then
  for last in "$@"; do :; done
  case "$1" in
    root@*:/root/nixplan-installed-host-key.pub) echo "$(cat "$F/key.installed") root@blog-demo" >"$last" ;;
    root@*:/var/log/nixplan-install.log) echo "the install's log" >"$last" ;;
    root@*:/root/nixplan-initrd-host-key.pub) echo "$(cat "$F/key.initrd") initrd@blog-demo" >"$last" ;;
  esac
  exit 0
fi
shift
cmd="$*"
case "$stage:$cmd" in
  rescue:"test -e /etc/debian_version && echo rescue") echo rescue ;;
  installer:"grep -q ^ID=nixos /etc/os-release && echo installer" | installed:"grep -q ^ID=nixos /etc/os-release && echo installer") echo installer ;;
  rescue:"sh /root/facts.sh") cat >/dev/null; echo '{"facts":1}' ;; # ssh passes its stdin on
  rescue:"bash -p /root/rescue-bootstrap.sh --accept-hash $FAKE_HASH")
    echo "Booting into the NixOS installer. The SSH connection will drop"
    echo installer >"$F/stage"
    exit 255 ;;
  rescue:"bash -p /root/rescue-bootstrap.sh")
    echo "rescue-bootstrap.sh: error in phase tarball: the spec pins no sha256 for the kexec tarball; this one has sha256 $FAKE_HASH" >&2
    exit 1 ;;
  installer:"bash -p /root/kexec-install.sh")
    echo "Type the host name to erase the disks:"
    read -r answer
    [ "$answer" = blog-demo ] || { echo "not confirmed"; exit 1; }
    if [ -f "$F/drop" ]; then rm "$F/drop"; exit 255; fi
    [ ! -f "$F/fail" ] || exit 1
    echo "NixOS is installed" ;;
  installer:"mkdir -p /root/.ssh && cat >>/root/.ssh/known_hosts") cat >>"$F/installer-known-hosts" ;;
  installer:"bash -p /root/kexec-install.sh --attach") echo "following the install"; [ ! -f "$F/fail" ] || exit 1 ;;
  *:true) ;;
  installer:reboot)
    cat >/dev/null
    if [ -f "$F/encrypted" ]; then echo initrd >"$F/stage"; else echo installed >"$F/stage"; fi
    exit 255 ;;
  initrd:systemd-tty-ask-password-agent)
    printf 'Please enter passphrase for disk crypt-rpool: '
    read -r pass
    printf '%s\n' "$pass" >"$F/typed"
    echo installed >"$F/stage"
    exit 255 ;;
  installed:hostname) echo blog-demo ;;
  installed:nixos-version) echo "$FAKE_RELEASE.20250601.abcdef (Warbler)" ;;
  installed:"zpool list -H -o health rpool") echo ONLINE ;;
  installed:"systemctl is-active sshd") echo active ;;
  installed:"ip -4 -o addr show") cat "$F/addr" 2>/dev/null || echo "2: eno1    inet 203.0.113.10/24 brd 203.0.113.255 scope global eno1" ;;
  installed:"ip -4 route show default") echo "default via 203.0.113.254 dev eno1 proto static" ;;
  *) echo "fake ssh: no answer for $stage: $cmd" >&2; exit 127 ;;
esac
`

// driverShells are the shells install.sh must run under: Debian's sh, the
// Policy-compliant Ordinary SHell, and bash in POSIX mode (macOS's sh).
var driverShells = []struct{ tool, pkg string }{{"dash", "dash"}, {"posh", "posh"}, {"bash", "bash"}}

type driverRun struct {
	t      *testing.T
	bundle string
	fake   string
	path   string
	shell  []string
}

func newDriverRun(t *testing.T, shell []string) *driverRun {
	t.Helper()
	return newDriverRunOf(t, shell, "../examples/ovh-kimsufi.toml")
}

// newDriverRunOf is newDriverRun for the bundle of another spec.
func newDriverRunOf(t *testing.T, shell []string, spec string) *driverRun {
	t.Helper()
	root := t.TempDir()
	bundle := filepath.Join(root, "bundle")
	if err := plan.Write(renderFile(t, spec), bundle); err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(root, "fake")
	bin := filepath.Join(root, "bin")
	for _, d := range []string{fake, bin} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"ssh", "scp"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(fakeSSH), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d := &driverRun{t: t, bundle: bundle, fake: fake, shell: shell, path: bin + ":/usr/bin:/bin"}
	d.set("stage", "rescue")
	d.set("key.rescue", rescueKey)
	d.set("key.installer", rescueKey)
	d.set("key.installed", installedKey)
	return d
}

func (d *driverRun) set(name, value string) {
	if err := os.WriteFile(filepath.Join(d.fake, name), []byte(value+"\n"), 0o644); err != nil {
		d.t.Fatal(err)
	}
}

func (d *driverRun) read(name string) string {
	data, err := os.ReadFile(name)
	if err != nil && !os.IsNotExist(err) {
		d.t.Fatal(err)
	}
	return string(data)
}

// run runs install.sh with stdin and args; it returns the output and whether it succeeded.
func (d *driverRun) run(stdin string, args ...string) (string, bool) {
	d.t.Helper()
	// A bound, so that a wait that never ends fails the test instead of hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.shell[0], append(append(d.shell[1:], "install.sh"), args...)...)
	cmd.Dir = d.bundle
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = []string{"PATH=" + d.path, "HOME=" + d.fake, "TMPDIR=" + d.t.TempDir(), "FAKE_DIR=" + d.fake,
		"FAKE_HASH=" + fakeHash, "FAKE_RELEASE=24.05", "LC_ALL=C"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			d.t.Fatal(err)
		}
	}
	return string(out), err == nil
}

func (d *driverRun) calls() []string {
	return strings.Split(strings.TrimSpace(d.read(filepath.Join(d.fake, "calls"))), "\n")
}

func (d *driverRun) knownHosts() string {
	return d.read(filepath.Join(d.bundle+".install", "known_hosts"))
}

func forEachDriverShell(t *testing.T, f func(t *testing.T, shell []string)) {
	for _, s := range driverShells {
		t.Run(s.tool, func(t *testing.T) {
			path := needTool(t, s.tool, s.pkg)
			shell := []string{path}
			if s.tool == "bash" {
				shell = append(shell, "--posix")
			}
			f(t, shell)
		})
	}
}

func TestDriverWholeInstall(t *testing.T) {
	forEachDriverShell(t, func(t *testing.T, shell []string) {
		d := newDriverRun(t, shell)
		d.set("drop", "")
		// yes: the rescue key; the hash typed again; the host name for
		// kexec-install.sh's question; disk: the console toggle is made.
		out, ok := d.run("yes\n" + fakeHash + "\nblog-demo\ndisk\n")
		if !ok {
			t.Fatalf("install.sh failed:\n%s", out)
		}
		if got := d.read(filepath.Join(d.fake, "prompts")); got != "asked\n" {
			t.Errorf("host key prompts: %q, want one, at the first contact", got)
		}
		calls := d.calls()
		for i, c := range calls {
			if strings.Contains(c, "StrictHostKeyChecking=no") {
				t.Errorf("call %d turns host key checking off: %s", i, c)
			}
			if i > 0 && !strings.Contains(c, "[-O]") && !strings.Contains(c, "StrictHostKeyChecking=yes") {
				t.Errorf("call %d after the first contact is not strict: %s", i, c)
			}
		}
		kh := d.knownHosts()
		for _, want := range []string{"blog-demo-rescue " + rescueKey, "blog-demo-installer " + rescueKey, "blog-demo-installed " + installedKey} {
			if !strings.Contains(kh, want+"\n") {
				t.Errorf("known_hosts lacks %q:\n%s", want, kh)
			}
		}
		last := calls[len(calls)-1]
		if !strings.Contains(last, "[HostKeyAlias=blog-demo-installed]") {
			t.Errorf("the last login does not use the installed system's key: %s", last)
		}
		for _, want := range []string{"--accept-hash] [" + fakeHash + "]", "[-t]", "[bash] [-p] [/root/kexec-install.sh] [--attach]", "[reboot]"} {
			if !strings.Contains(strings.Join(calls, "\n"), want) {
				t.Errorf("no call with %q:\n%s", want, strings.Join(calls, "\n"))
			}
		}
		if tty := d.read(filepath.Join(d.fake, "tty")); !strings.Contains(tty, "ED25519 key fingerprint is SHA256:fake-rescue") {
			t.Errorf("the first contact did not show the fingerprint: %q", tty)
		}
		for _, want := range []string{"the connection dropped",
			"In the same Boot section click Edit", "PASS: host name is blog-demo", "PASS: pool rpool is ONLINE",
			"PASS: address 203.0.113.10/24", "PASS: default route via 203.0.113.254", "NixOS is installed on blog-demo"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "FAIL") {
			t.Errorf("a check failed:\n%s", out)
		}
		// The bundle folder holds only the bundle: render may replace it.
		if !plan.IsBundle(d.bundle) {
			t.Errorf("install.sh wrote into the bundle folder %s", d.bundle)
		}
	})
}

// TestDriverNoKeyToPin: resumed at the installer with no rescue key kept,
// install.sh says there is nothing to pin instead of pinning an empty key
// and then calling the answering key a stranger's.
func TestDriverNoKeyToPin(t *testing.T) {
	forEachDriverShell(t, func(t *testing.T, shell []string) {
		d := newDriverRun(t, shell)
		d.set("stage", "installer")
		out, ok := d.run("", "--from", "installer", "--wait", "0")
		if ok || !strings.Contains(out, "there is no host key to pin for the installer system") || !strings.Contains(out, "sh install.sh --from rescue") {
			t.Errorf("install.sh did not stop on the missing key, saying how to go on:\n%s", out)
		}
		if strings.Contains(out, "someone is in between") {
			t.Errorf("a missing pin was reported as another machine:\n%s", out)
		}
	})
}

// TestDriverUnlocksTheInitrd: with an encrypted root, install.sh pins the
// initrd's own host key that kexec-install.sh left, and after the reboot
// logs in to the initrd on its port with that key, where the operator types
// the passphrase, before it checks the installed system.
func TestDriverUnlocksTheInitrd(t *testing.T) {
	const initrdKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIINITRDKEYINITRDKEYINITRDKEYINITRDKEY"
	spec := filepath.Join(t.TempDir(), "host.toml")
	if err := os.WriteFile(spec, []byte(encryptedSpec(t, "luks")), 0o644); err != nil {
		t.Fatal(err)
	}
	forEachDriverShell(t, func(t *testing.T, shell []string) {
		d := newDriverRunOf(t, shell, spec)
		d.set("encrypted", "")
		d.set("key.initrd", initrdKey)
		out, ok := d.run("yes\n" + fakeHash + "\nblog-demo\ndisk\n" + testPassphrase + "\n")
		if !ok {
			t.Fatalf("install.sh failed:\n%s", out)
		}
		if got := d.read(filepath.Join(d.fake, "typed")); got != testPassphrase+"\n" {
			t.Errorf("the initrd got %q, want the passphrase typed there", got)
		}
		if kh := d.knownHosts(); !strings.Contains(kh, "blog-demo-initrd "+initrdKey+"\n") {
			t.Errorf("known_hosts does not pin the initrd's key:\n%s", kh)
		}
		unlock, verify := -1, -1
		for i, c := range d.calls() {
			if strings.Contains(c, "[HostKeyAlias=blog-demo-initrd]") && strings.Contains(c, "[-p] [2222]") && strings.HasSuffix(c, "[-t] [-p] [2222] [root@203.0.113.10] [systemd-tty-ask-password-agent]") {
				unlock = i
			}
			if strings.HasSuffix(c, "[hostname]") && strings.Contains(c, "[HostKeyAlias=blog-demo-installed]") && verify < 0 {
				verify = i
			}
		}
		if unlock < 0 || verify < unlock {
			t.Errorf("no unlock on port 2222 with the initrd's key before the checks (unlock %d, verify %d):\n%s", unlock, verify, strings.Join(d.calls(), "\n"))
		}
		if strings.Contains(d.read(filepath.Join(d.fake, "calls")), "horse") {
			t.Error("the passphrase is in an ssh argument")
		}
	})
}

// TestDriverChecksDHCPAddress: with DHCP the spec knows the address, not the
// prefix of the lease, so the post-install check holds the address alone.
func TestDriverChecksDHCPAddress(t *testing.T) {
	forEachDriverShell(t, func(t *testing.T, shell []string) {
		d := newDriverRunOf(t, shell, "../examples/generic-ext4.toml")
		d.set("stage", "installed")
		d.set("addr", "2: ens3    inet 192.0.2.20/24 metric 1024 brd 192.0.2.255 scope global dynamic ens3")
		if err := os.MkdirAll(d.bundle+".install", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d.bundle+".install", "known_hosts"), []byte("vps1-installed "+installedKey+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, _ := d.run("", "--from", "verify", "--wait", "0")
		if !strings.Contains(out, "PASS: address 192.0.2.20 (DHCP)") {
			t.Errorf("the DHCP address check did not pass on a lease of 192.0.2.20/24:\n%s", out)
		}
		d.set("addr", "2: ens3    inet 192.0.2.200/24 metric 1024 brd 192.0.2.255 scope global dynamic ens3")
		out, _ = d.run("", "--from", "verify", "--wait", "0")
		if !strings.Contains(out, "FAIL: address 192.0.2.20 (DHCP)") {
			t.Errorf("the DHCP address check passed on a lease of 192.0.2.200:\n%s", out)
		}
	})
}

func TestDriverStopsOnChangedKeyAfterKexec(t *testing.T) {
	forEachDriverShell(t, func(t *testing.T, shell []string) {
		d := newDriverRun(t, shell)
		d.set("key.installer", otherKey)
		out, ok := d.run("yes\n"+fakeHash+"\nblog-demo\ndisk\n", "--wait", "0")
		if ok {
			t.Fatalf("install.sh went on with another key after the kexec:\n%s", out)
		}
		if !strings.Contains(out, "not the one pinned for the installer system") || !strings.Contains(out, "someone is in between") {
			t.Errorf("the stop does not say why:\n%s", out)
		}
		calls := d.calls()
		if last := calls[len(calls)-1]; !strings.Contains(last, "[HostKeyAlias=blog-demo-installer]") || !strings.Contains(last, "/etc/os-release") {
			t.Errorf("the last call is not the wait for the installer: %s", last)
		}
		if all := strings.Join(calls, "\n"); strings.Contains(all, "[/root/kexec-install.sh]") {
			t.Errorf("kexec-install.sh was run after the changed key:\n%s", all)
		}
	})
}

func TestDriverRefusesUnknownKeyAnswerNo(t *testing.T) {
	forEachDriverShell(t, func(t *testing.T, shell []string) {
		d := newDriverRun(t, shell)
		out, ok := d.run("no\n")
		if ok || !strings.Contains(out, "the rescue system's host key was not accepted") {
			t.Fatalf("install.sh went on without the operator's yes, or did not say so:\n%s", out)
		}
		if len(d.calls()) != 1 {
			t.Errorf("calls after the refusal:\n%s", strings.Join(d.calls(), "\n"))
		}
	})
}

func TestDriverTimeoutNamesConsole(t *testing.T) {
	forEachDriverShell(t, func(t *testing.T, shell []string) {
		d := newDriverRun(t, shell)
		d.set("down", "")
		out, ok := d.run("", "--wait", "0", "--rescue-key", rescueKey)
		if ok {
			t.Fatalf("install.sh succeeded against a server that is down:\n%s", out)
		}
		for _, want := range []string{"did not answer on 203.0.113.10 port 22 within 0 seconds", "KVM console", "sh install.sh --from rescue"} {
			if !strings.Contains(out, want) {
				t.Errorf("the timeout lacks %q:\n%s", want, out)
			}
		}
		// The given key was pinned without a question.
		if !strings.Contains(d.knownHosts(), "blog-demo-rescue "+rescueKey) || d.read(filepath.Join(d.fake, "prompts")) != "" {
			t.Errorf("--rescue-key was not pinned as given: %q", d.knownHosts())
		}
	})
}

func TestDriverResumesFrom(t *testing.T) {
	forEachDriverShell(t, func(t *testing.T, shell []string) {
		d := newDriverRun(t, shell)
		d.set("stage", "installed")
		if err := os.Mkdir(d.bundle+".install", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d.bundle+".install", "known_hosts"), []byte("blog-demo-installed "+installedKey+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		out, ok := d.run("", "--from", "verify")
		if !ok {
			t.Fatalf("--from verify failed:\n%s", out)
		}
		if strings.Contains(out, "==> rescue") || strings.Contains(out, "==> install\n") || !strings.Contains(out, "==> verify") {
			t.Errorf("--from verify ran other phases:\n%s", out)
		}
		for _, c := range d.calls() {
			if !strings.Contains(c, "[HostKeyAlias=blog-demo-installed]") {
				t.Errorf("--from verify made a call to another stage: %s", c)
			}
		}
		// The installed system answering with another key stops the checks.
		d.set("key.installed", otherKey)
		out, ok = d.run("", "--from", "verify", "--wait", "0")
		if ok || !strings.Contains(out, "not the one pinned for the installed system") {
			t.Errorf("another installed key was not stopped:\n%s", out)
		}
	})
}

func TestDriverDryRunShowsEveryCommand(t *testing.T) {
	d := newDriverRun(t, []string{needTool(t, "dash", "dash")})
	out, ok := d.run("", "--dry-run")
	if !ok {
		t.Fatalf("--dry-run failed:\n%s", out)
	}
	if calls := d.read(filepath.Join(d.fake, "calls")); calls != "" {
		t.Errorf("--dry-run ran ssh or scp:\n%s", calls)
	}
	for _, want := range []string{"+ scp ", "facts.sh root@203.0.113.10:/root/", "bash -p /root/rescue-bootstrap.sh",
		"-t -p 22 root@203.0.113.10 bash -p /root/kexec-install.sh", "/root/nixplan-installed-host-key.pub", " reboot", "'ip -4 -o addr show'"} {
		if !strings.Contains(out, want) {
			t.Errorf("the dry run lacks %q:\n%s", want, out)
		}
	}
}

// TestDriverCopiesModules: install.sh copies the spec's modules/ (a
// folder, so scp -r) to the rescue system and the installer, where
// kexec-install.sh checks and installs them.
func TestDriverCopiesModules(t *testing.T) {
	d := newDriverRunOf(t, []string{needTool(t, "dash", "dash")}, modulesExample)
	out, ok := d.run("", "--dry-run")
	if !ok {
		t.Fatalf("--dry-run failed:\n%s", out)
	}
	for _, want := range []string{"-r rescue-bootstrap.sh kexec-install.sh facts.sh SHA256SUMS modules root@203.0.113.20:/root/",
		"-r kexec-install.sh SHA256SUMS modules root@203.0.113.20:/root/"} {
		if !strings.Contains(out, want) {
			t.Errorf("the dry run lacks %q:\n%s", want, out)
		}
	}
}

// TestDriverFlakeInputsOverSSH: for a flake with an input fetched over SSH,
// install.sh --dry-run copies flake/, forwards the agent to the installer
// only, and gives the installer the keys the operator's known_hosts trusts
// for the input's host (TestDriverFlakeInputKnownHost runs that for real).
func TestDriverFlakeInputsOverSSH(t *testing.T) {
	d := newDriverRunOf(t, []string{needTool(t, "dash", "dash")}, flakeExample)
	out, ok := d.run("", "--dry-run")
	if !ok {
		t.Fatalf("--dry-run failed:\n%s", out)
	}
	for _, want := range []string{"-r kexec-install.sh SHA256SUMS flake root@198.51.100.90:/root/",
		"-o ForwardAgent=yes -p 22 root@198.51.100.90 'mkdir -p /root/.ssh && cat >>/root/.ssh/known_hosts'"} {
		if !strings.Contains(out, want) {
			t.Errorf("the dry run lacks %q:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "ForwardAgent") && strings.Contains(line, "HostKeyAlias=hz-own-rescue") {
			t.Errorf("the agent is forwarded to the rescue system: %s", line)
		}
	}
}

// TestDriverFlakeInputKnownHost: a real run (not --dry-run) of install.sh
// for a flake input fetched over SSH stops before kexec-install.sh when
// the operator's known_hosts has no key for the input's host, and
// otherwise gives the installer exactly the lines ssh-keygen -F finds. A
// stand-in ssh-keygen reads $HOME/.ssh/known_hosts: OpenSSH itself reads
// the passwd entry's home, which a test cannot point elsewhere.
func TestDriverFlakeInputKnownHost(t *testing.T) {
	d := newDriverRunOf(t, []string{needTool(t, "dash", "dash")}, flakeExample)
	keygen := "#!/bin/sh\n[ \"$1\" = -F ] || exit 2\ngrep \"^$2 \" \"$HOME/.ssh/known_hosts\" 2>/dev/null\n"
	if err := os.WriteFile(filepath.Join(filepath.Dir(d.fake), "bin", "ssh-keygen"), []byte(keygen), 0o755); err != nil {
		t.Fatal(err)
	}
	// The installer's key is pinned, as after install.sh's earlier phases.
	writeFile(t, filepath.Join(d.bundle+".install", "known_hosts"), "hz-own-installer "+rescueKey+"\n")
	d.set("stage", "installer")

	out, ok := d.run("hz-own\n", "--from", "install", "--wait", "0")
	if ok || !strings.Contains(out, "your known_hosts has no key for github.com, which a flake input is fetched from over SSH") {
		t.Errorf("install.sh went on without a key for github.com:\n%s", out)
	}
	for _, c := range d.calls() {
		if strings.Contains(c, "kexec-install.sh]") && strings.HasPrefix(c, "ssh") {
			t.Errorf("kexec-install.sh ran without the input host's key: %s", c)
		}
	}

	line := "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	writeFile(t, filepath.Join(d.fake, ".ssh", "known_hosts"), "gitlab.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAfuCHKVTjquxvt6CM6tdG4SLp1Btn/nOeHHE5UOzRdf\n"+line+"\n")
	d.run("hz-own\n", "--from", "install", "--wait", "0")
	if got := d.read(filepath.Join(d.fake, "installer-known-hosts")); got != line+"\n" {
		t.Errorf("the installer got the known_hosts lines %q, want %q", got, line+"\n")
	}
	var ran bool
	for _, c := range d.calls() {
		ran = ran || (strings.HasPrefix(c, "ssh") && strings.Contains(c, "[bash] [-p] [/root/kexec-install.sh]"))
	}
	if !ran {
		t.Errorf("kexec-install.sh did not run once the key was given:\n%s", strings.Join(d.calls(), "\n"))
	}
}
