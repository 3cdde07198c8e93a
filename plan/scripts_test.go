package plan_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixplan/nixplan/plan"
	"github.com/nixplan/nixplan/plan/machine"
	"github.com/nixplan/nixplan/plan/simulate"
)

// exampleSpec is the seed's spec, edited by replacing old with new in pairs.
func exampleSpec(t *testing.T, edits ...string) string {
	t.Helper()
	data, err := os.ReadFile("../examples/ovh-kimsufi.toml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for i := 0; i+1 < len(edits); i += 2 {
		if !strings.Contains(s, edits[i]) {
			t.Fatalf("spec edit: %q not found", edits[i])
		}
		s = strings.Replace(s, edits[i], edits[i+1], 1)
	}
	return s
}

// seed returns the seed's rescue machine, changed by edit.
func seed(t *testing.T, edit func(m *machine.Machine)) *machine.Machine {
	m := loadFixture(t, "ovh-seed")
	if edit != nil {
		edit(m)
	}
	return m
}

// withTarball puts a fake kexec tarball beside rescue-bootstrap.sh; its
// kexec/run is a stub that records itself. It returns the tarball's sha256.
func (h *harness) withTarball() string {
	hash := h.downloadTarball()
	if err := os.Rename(filepath.Join(h.dir, "download.tar.gz"), filepath.Join(h.dir, "root", h.plan.Kexec.Tarball)); err != nil {
		h.t.Fatal(err)
	}
	return hash
}

// downloadTarball makes the fake kexec tarball a download brings (the fake
// curl copies it to its --output), and returns its sha256.
func (h *harness) downloadTarball() string {
	t := h.t
	src := filepath.Join(h.dir, "tarball-src/kexec")
	os.MkdirAll(src, 0o755)
	self, _ := os.Executable()
	// kexec/run records itself first thing; the lines after it are what
	// rescue-bootstrap.sh reads, as the image has them (or as the test says).
	first := "exec " + self + " " + fakeToolFlag + " /root/kexec/run \"$@\""
	run := plan.StandInKexecRunFor(h.plan.Kexec, first)
	if h.kexecRun != nil {
		run = h.kexecRun(first)
	}
	if err := os.WriteFile(filepath.Join(src, "run"), []byte(run), 0o755); err != nil {
		t.Fatal(err)
	}
	// The rest of the real layout (nix/kexec-installer/module.nix).
	for _, f := range plan.KexecTarballFiles {
		if f != "kexec/run" {
			if err := os.WriteFile(filepath.Join(h.dir, "tarball-src", f), []byte("nixplan test: a stand-in for "+f+"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	tarball := filepath.Join(h.dir, "download.tmp")
	out, err := exec.Command("tar", "-C", filepath.Join(h.dir, "tarball-src"), "--mtime=@0", "--owner=0", "--group=0", "-czf", tarball, "kexec").CombinedOutput()
	if err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	name := filepath.Join(h.dir, "download.tar.gz")
	if err := os.Rename(tarball, name); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(name)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func expectStop(t *testing.T, r result, message string) {
	t.Helper()
	if r.code == 0 {
		t.Errorf("exit 0, want a failure; output:\n%s", r.output())
	}
	// kexec-install.sh's detached run writes its errors to the log, which the
	// foreground run prints: look at both streams.
	if !strings.Contains(r.output(), message) {
		t.Errorf("output does not say %q:\n%s", message, r.output())
	}
	// Getting nixpkgs and evaluating the system change only the installer's
	// memory; nothing else may have run.
	for _, argv := range r.recorded {
		if !simulate.PreErase(argv) {
			t.Errorf("machine-changing commands ran before the stop: %q", r.commands())
			break
		}
	}
}

func TestRescueBootstrapHealthy(t *testing.T) {
	h := newHarness(t, exampleSpec(t), seed(t, nil))
	hash := h.withTarball()
	r := h.run(plan.RescueBootstrapFile, "", "--accept-hash", hash)
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.output())
	}
	if got := r.commands(); len(got) != 1 || got[0] != "/root/kexec/run" {
		t.Errorf("recorded %q, want only /root/kexec/run", got)
	}
	keys, err := os.ReadFile(filepath.Join(h.dir, "root/.ssh/authorized_keys"))
	if err != nil || !strings.Contains(string(keys), "operator@laptop") {
		t.Errorf("authorized_keys after the run: %q, %v", keys, err)
	}
	// The bundle beside it was verified.
	if !strings.Contains(r.stdout, "match SHA256SUMS") {
		t.Errorf("SHA256SUMS not verified:\n%s", r.stdout)
	}
}

// TestRescueBootstrapFaults: every fault stops before kexec, names the
// problem, and records nothing that changes the machine.
func TestRescueBootstrapFaults(t *testing.T) {
	for _, c := range []struct {
		name    string
		spec    []string
		machine func(m *machine.Machine)
		args    func(hash string) []string
		stdin   string
		message string
	}{
		{name: "disk missing", machine: func(m *machine.Machine) { m.Disks[0].Path = "/dev/sdb"; m.Disks[0].Name = "sdb" },
			message: "/dev/sda does not exist on this machine"},
		{name: "disk identity", spec: []string{`pool = "rpool"`, "pool = \"rpool\"\n[[disks.identity]]\ndevice = \"/dev/sda\"\nserial = \"WRONG-SERIAL\""},
			message: "/dev/sda has serial"},
		{name: "disk mounted", machine: func(m *machine.Machine) { m.Disks[0].Partitions[0].Mountpoints = []string{"/mnt/old"} },
			message: "/dev/sda is in use: /dev/sda1 on /mnt/old"},
		{name: "disk in RAID", machine: func(m *machine.Machine) { *m = *loadFixture(t, "kimsufi-raid1") },
			message: "/dev/sda holds RAID, LVM or ZFS members"},
		{name: "wrong address", machine: func(m *machine.Machine) { m.Interfaces[0].Addresses[0].Address = "203.0.113.99" },
			message: "no interface of this machine has 203.0.113.10"},
		{name: "wrong MAC", spec: []string{`interface = "eth0"`, "interface = \"wan0\"\nmac = \"0c:c4:7a:00:00:01\""},
			message: "but the spec pins 0c:c4:7a:00:00:01"},
		{name: "UEFI machine", machine: func(m *machine.Machine) { m.Firmware.Mode = machine.FirmwareUEFI },
			message: "this machine booted UEFI"},
		{name: "low RAM", machine: func(m *machine.Machine) { m.RAMBytes = 1 << 30 },
			message: "this machine has 1024 MiB of memory; the kexec installer needs 2560 MiB"},
		{name: "no cpio", machine: func(m *machine.Machine) { m.Tools["cpio"] = false },
			message: "cpio is missing"},
		{name: "tarball hash", spec: []string{`url = "https://`, "sha256 = \"" + strings.Repeat("ab", 32) + "\"\nurl = \"https://"},
			args:    func(string) []string { return nil },
			message: "but the spec pins abababab"},
		{name: "hash not accepted", args: func(string) []string { return nil },
			message: "the spec pins no sha256 for the kexec tarball"},
		{name: "already NixOS", machine: func(m *machine.Machine) { m.OS.ID = "nixos" },
			message: "this is already NixOS"},
		{name: "live gateway differs", machine: func(m *machine.Machine) { m.Routes[0].Gateway = "203.0.113.1" },
			message: "the default route goes through 203.0.113.1, but the spec's gateway is 203.0.113.254"},
		{name: "3 TB disk with msdos", machine: func(m *machine.Machine) { m.Disks[0].SizeBytes = 3000592982016 },
			message: "/dev/sda is larger than 2 TiB, which an msdos partition table cannot address"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, exampleSpec(t, c.spec...), seed(t, c.machine))
			hash := h.withTarball()
			args := []string{"--accept-hash", hash}
			if c.args != nil {
				args = c.args(hash)
			}
			expectStop(t, h.run(plan.RescueBootstrapFile, c.stdin, args...), c.message)
		})
	}
}

// TestRescueBootstrapKeyNotWritable: when root's authorized_keys cannot be
// written, it refuses to kexec.
func TestRescueBootstrapKeyNotWritable(t *testing.T) {
	h := newHarness(t, exampleSpec(t), seed(t, nil))
	hash := h.withTarball()
	// A directory where the file should be: nothing can be appended to it.
	if err := os.MkdirAll(filepath.Join(h.dir, "root/.ssh/authorized_keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	expectStop(t, h.run(plan.RescueBootstrapFile, "", "--accept-hash", hash), "you would be locked out after the kexec")
}

func TestRescueBootstrapDryRun(t *testing.T) {
	h := newHarness(t, exampleSpec(t), seed(t, nil))
	hash := h.withTarball()
	r := h.run(plan.RescueBootstrapFile, "", "--dry-run", "--accept-hash", hash)
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.output())
	}
	if len(r.recorded) > 0 {
		t.Errorf("--dry-run recorded %q", r.commands())
	}
	for _, want := range []string{"would run: append_line /root/.ssh/authorized_keys", "would run: /root/kexec/run"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--dry-run does not print %q:\n%s", want, r.stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(h.dir, "root/.ssh")); err == nil {
		t.Errorf("--dry-run created /root/.ssh")
	}
}

// installerHarness is the seed's machine after the kexec.
func installerHarness(t *testing.T, spec string, edit func(m *machine.Machine)) *harness {
	return newHarness(t, spec, installer(*seed(t, edit)))
}

func TestKexecInstallHealthy(t *testing.T) {
	h := installerHarness(t, exampleSpec(t), nil)
	r := h.run(plan.KexecInstallFile, "blog-demo\n")
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.output())
	}
	got := strings.Join(r.commands(), "\n")
	// The seed's sequence, in the seed's order, with nixplan's additions.
	// The seed's sequence, in the seed's order, with nixplan's additions; the
	// channel comes before the erase, for the evaluation of the system.
	want := []string{
		"nix-channel --add https://nixos.org/channels/nixos-24.05 nixos", "nix-channel --update",
		"nix-instantiate <nixpkgs/nixos> -A system -I nixos-config=/root/nixplan-eval/configuration.nix",
		"wipefs --all /dev/sda1", "wipefs --all /dev/sda", "parted --script /dev/sda -- mklabel msdos",
		"parted --script /dev/sda -- mkpart primary 1MiB 512MiB", "parted --script /dev/sda -- mkpart primary 512MiB 100%",
		"mkfs.ext4 -F -L boot /dev/sda1", "zpool create -f -o ashift=12 -o comment=" + h.plan.Storage.PoolComment + " -O mountpoint=none rpool /dev/sda2",
		"zfs create -o mountpoint=legacy rpool/root", "zfs create -o mountpoint=legacy rpool/root/nixos",
		"zfs create -o mountpoint=legacy rpool/home", "mount -t zfs rpool/root/nixos /mnt", "mount -t ext4 /dev/sda1 /mnt/boot",
		"mount -t zfs rpool/home /mnt/home", "nixos-generate-config --root /mnt",
		"nixos-install --root /mnt --no-root-passwd", "umount -R /mnt", "zpool export rpool",
	}
	last := -1
	for _, w := range want {
		i := strings.Index(got, w)
		if i < 0 {
			t.Errorf("missing %q in:\n%s", w, got)
			continue
		}
		if i < last {
			t.Errorf("%q comes out of order in:\n%s", w, got)
		}
		last = i
	}
	// The configuration was written byte for byte (the fake mount is a tmpfs
	// that umount -R took away, so check the log's message instead).
	if !strings.Contains(r.stdout, "wrote /mnt/etc/nixos/configuration.nix (sha256 ") {
		t.Errorf("configuration.nix not written:\n%s", r.stdout)
	}
	log, err := os.ReadFile(filepath.Join(h.dir, "varlog/nixplan-install.log"))
	if err != nil || !strings.Contains(string(log), "==> finish") {
		t.Errorf("the log lacks the run: %v\n%s", err, log)
	}
}

// TestKexecInstallFaults: every preflight fault exits non-zero naming the
// problem and records no command that changes the machine.
func TestKexecInstallFaults(t *testing.T) {
	for _, c := range []struct {
		name    string
		spec    []string
		machine func(m *machine.Machine)
		offline bool
		stdin   string
		args    []string
		message string
	}{
		{name: "disk missing", machine: func(m *machine.Machine) { m.Disks[0].Path = "/dev/vda" }, stdin: "blog-demo\n",
			message: "/dev/sda does not exist on this machine"},
		{name: "disk identity", spec: []string{`pool = "rpool"`, "pool = \"rpool\"\n[[disks.identity]]\ndevice = \"/dev/sda\"\nsize_bytes = 1000204886016"},
			stdin: "blog-demo\n", message: "/dev/sda has 2000398934016 bytes, but the spec says 1000204886016"},
		{name: "disk mounted", machine: func(m *machine.Machine) { m.Disks[0].Partitions[1].Mountpoints = []string{"/data"} },
			stdin: "blog-demo\n", message: "/dev/sda is in use"},
		{name: "wrong address", machine: func(m *machine.Machine) { m.Interfaces[0].Addresses[0].Address = "198.51.100.3" },
			stdin: "blog-demo\n", message: "no interface of this machine has 203.0.113.10"},
		{name: "wrong MAC", spec: []string{`interface = "eth0"`, "interface = \"wan0\"\nmac = \"0c:c4:7a:00:00:01\""},
			stdin: "blog-demo\n", message: "but the spec pins 0c:c4:7a:00:00:01"},
		{name: "UEFI machine", machine: func(m *machine.Machine) { m.Firmware.Mode = machine.FirmwareUEFI }, stdin: "blog-demo\n",
			message: "this machine booted UEFI"},
		{name: "not the installer", machine: func(m *machine.Machine) {}, stdin: "blog-demo\n",
			message: "this is not the NixOS installer"},
		{name: "cache unreachable", offline: true, stdin: "blog-demo\n",
			message: "cannot reach https://nixos.org/channels/nixos-24.05; nixos-install would fail after the erase"},
		{name: "wrong host name typed", stdin: "blog\n", message: "you typed 'blog', not 'blog-demo'; nothing was changed"},
		{name: "no answer", stdin: "", message: "no answer; nothing was changed"},
		{name: "RAID without consent", machine: func(m *machine.Machine) { *m = *loadFixture(t, "kimsufi-raid1") }, stdin: "blog-demo\n",
			message: "/dev/sda holds RAID, LVM or ZFS members"},
		{name: "address on the second NIC", machine: func(m *machine.Machine) {
			second := m.Interfaces[0]
			second.Name, second.MAC = "eth1", "0c:c4:7a:12:34:57"
			m.Interfaces[0].Addresses = nil
			m.Interfaces = append(m.Interfaces, second)
		}, stdin: "blog-demo\n", message: "203.0.113.10 is on eth1 and this machine has 2 NICs: eth0 may not be the NIC with the address"},
		{name: "3 TB disk with msdos", machine: func(m *machine.Machine) { m.Disks[0].SizeBytes = 3000592982016 }, stdin: "blog-demo\n",
			message: "/dev/sda is larger than 2 TiB"},
		{name: "partition without preflight", args: []string{"--only", "partition"},
			message: "the partition phase erases data and runs only after the preflight phase"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var m *machine.Machine
			if c.name == "not the installer" {
				m = seed(t, nil) // still the rescue system
			} else {
				m = installer(*seed(t, c.machine))
			}
			h := newHarness(t, exampleSpec(t, c.spec...), m)
			h.state.Fake.Faults.Offline = c.offline
			expectStop(t, h.run(plan.KexecInstallFile, c.stdin, c.args...), c.message)
		})
	}
}

// TestKexecInstallClearsRAIDWithConsent: with disks.clear_existing and the
// typed consent, the md arrays are stopped and their superblocks cleared
// before any partitioning.
func TestKexecInstallClearsRAIDWithConsent(t *testing.T) {
	spec := exampleSpec(t, `pool = "rpool"`, "pool = \"rpool\"\nclear_existing = true")
	h := newHarness(t, spec, installer(*loadFixture(t, "kimsufi-raid1")))
	r := h.run(plan.KexecInstallFile, "blog-demo\n")
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.output())
	}
	parted := r.firstIndex("parted")
	for _, want := range []string{"mdadm --stop /dev/md1", "mdadm --stop /dev/md2", "mdadm --zero-superblock /dev/sda1",
		"mdadm --zero-superblock /dev/sda2", "wipefs --all /dev/sda1", "wipefs --all /dev/sda"} {
		i := r.firstIndex(want)
		if i < 0 || i > parted {
			t.Errorf("%q at %d, want before the first parted at %d:\n%s", want, i, parted, strings.Join(r.commands(), "\n"))
		}
	}
	if !strings.Contains(r.stdout, "will be stopped and cleared first: /dev/md1(raid1)") {
		t.Errorf("preflight does not say what it clears:\n%s", r.stdout)
	}
}

// TestKexecInstallResumes: after nixos-install failed, --from install and a
// plain re-run neither partition nor format again.
func TestKexecInstallResumes(t *testing.T) {
	h := installerHarness(t, exampleSpec(t), nil)
	h.state.Fail["nixos-install"] = 1
	r := h.run(plan.KexecInstallFile, "blog-demo\n")
	if r.code == 0 || r.firstIndex("nixos-install") < 0 {
		t.Fatalf("the first run should fail in nixos-install; exit %d:\n%s", r.code, r.output())
	}
	delete(h.state.Fail, "nixos-install")
	// The failed run left /mnt mounted, as on the real installer.
	h.premountMnt = true
	for _, args := range [][]string{{"--from", "install"}, nil} {
		r = h.run(plan.KexecInstallFile, "", args...)
		if r.code != 0 {
			t.Fatalf("%q: exit %d:\n%s", args, r.code, r.output())
		}
		for _, bad := range []string{"parted", "wipefs", "zpool create", "mkfs"} {
			if i := r.firstIndex(bad); i >= 0 {
				t.Errorf("%q: resumed run ran %q", args, r.commands()[i])
			}
		}
		if r.firstIndex("nixos-install --root /mnt --no-root-passwd") < 0 || r.firstIndex("zpool export rpool") < 0 {
			t.Errorf("%q: resumed run did not install and finish: %q", args, r.commands())
		}
		// Forget the finished run for the next round.
		h.writeProgress(h.plan.Storage.PlanSHA256, "preflight", "partition", "format", "mount", "configure")
	}
}

func TestKexecInstallDryRun(t *testing.T) {
	h := installerHarness(t, exampleSpec(t), nil)
	r := h.run(plan.KexecInstallFile, "", "--dry-run", "--yes")
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.output())
	}
	if len(r.recorded) > 0 {
		t.Errorf("--dry-run recorded %q", r.commands())
	}
	for _, want := range []string{"would run: parted --script /dev/sda -- mklabel msdos", "would run: zpool create",
		"would run: nixos-install --root /mnt --no-root-passwd", "would write /mnt/etc/nixos/configuration.nix",
		"would run: nix-channel --update", "would run: nix-instantiate <nixpkgs/nixos> -A system -I nixos-config=/root/nixplan-eval/configuration.nix"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--dry-run does not print %q:\n%s", want, r.stdout)
		}
	}
}

// TestRescueBootstrapShippedTarball: with the tarball in the bundle (render
// --kexec-tarball), rescue-bootstrap.sh verifies it against the pinned hash
// and boots it without downloading and without --accept-hash.
func TestRescueBootstrapShippedTarball(t *testing.T) {
	h := newHarness(t, exampleSpec(t), seed(t, nil))
	h.downloadTarball()
	b, err := plan.ShipTarball(h.plan, filepath.Join(h.dir, "download.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.Write(b, filepath.Join(h.dir, "shipped")); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(h.dir, "root"))
	if err := os.Rename(filepath.Join(h.dir, "shipped"), filepath.Join(h.dir, "root")); err != nil {
		t.Fatal(err)
	}
	r := h.run(plan.RescueBootstrapFile, "")
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.output())
	}
	if got := r.commands(); len(got) != 1 || got[0] != "/root/kexec/run" {
		t.Errorf("recorded %q, want only /root/kexec/run (no download)", got)
	}
	for _, want := range []string{"using the kexec tarball beside this script", "kexec tarball sha256 matches the spec", "bundle files beside this script match SHA256SUMS"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	// Every file copied but the tarball: stop, do not download another copy.
	if err := os.Remove(filepath.Join(h.dir, "root", b.Shipped.Name)); err != nil {
		t.Fatal(err)
	}
	r = h.run(plan.RescueBootstrapFile, "")
	if r.code == 0 || !strings.Contains(r.stderr, "the bundle ships "+b.Shipped.Name+", but it is not beside this script") {
		t.Errorf("without the shipped tarball: exit %d:\n%s", r.code, r.output())
	}
	if got := r.commands(); len(got) != 0 {
		t.Errorf("without the shipped tarball it ran %q", got)
	}
}

// writeProgress writes a progress record of a storage plan that finished
// the phases given.
func (h *harness) writeProgress(storagePlan string, phases ...string) {
	text := "storage-plan " + storagePlan + "\nbundle an earlier render\n"
	for _, p := range phases {
		text += "phase " + p + "\n"
	}
	os.MkdirAll(filepath.Join(h.dir, "varlib/nixplan"), 0o755)
	if err := os.WriteFile(filepath.Join(h.dir, "varlib/nixplan/progress"), []byte(text), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// withPool puts the members of a ZFS pool named pool on the seed's disk.
func withPool(pool string) func(m *machine.Machine) {
	return func(m *machine.Machine) {
		m.Disks[0].Partitions[1].Signatures = []machine.Signature{{Type: "zfs_member", Label: pool}}
	}
}

// TestRepairPath: the checklist's repair (rescue again, then kexec-install.sh
// --only mount) works on a disk that holds the spec's own pool, while a
// foreign pool still stops the rescue system before the kexec.
func TestRepairPath(t *testing.T) {
	h := newHarness(t, exampleSpec(t), seed(t, withPool("rpool")))
	hash := h.withTarball()
	if r := h.run(plan.RescueBootstrapFile, "", "--accept-hash", hash); r.code != 0 {
		t.Errorf("rescue-bootstrap.sh refuses the spec's own pool: exit %d\n%s", r.code, r.output())
	}
	h = newHarness(t, exampleSpec(t), seed(t, withPool("tank")))
	hash = h.withTarball()
	expectStop(t, h.run(plan.RescueBootstrapFile, "", "--accept-hash", hash), "/dev/sda holds RAID, LVM or ZFS members: /dev/sda2(zfs_member)")

	h = installerHarness(t, exampleSpec(t), withPool("rpool"))
	h.state.Fake.PoolComments["rpool"] = h.plan.Storage.PoolComment
	r := h.run(plan.KexecInstallFile, "", "--only", "mount")
	if r.code != 0 {
		t.Fatalf("--only mount: exit %d\n%s", r.code, r.output())
	}
	if got := r.commands(); len(got) == 0 || !strings.HasPrefix(got[0], "zpool import -f -N ") || strings.HasSuffix(got[0], " rpool") {
		t.Errorf("--only mount should import the installed system's pool by its id, with -f, first: %q", got)
	}
}

// TestKexecInstallRestartsBeforeDisksAreReady: a run that stopped after
// preflight but before the disks were ready starts again at preflight, which
// asks again, rather than telling the operator to do what they just did.
func TestKexecInstallRestartsBeforeDisksAreReady(t *testing.T) {
	h := installerHarness(t, exampleSpec(t), nil)
	h.writeProgress(h.plan.Storage.PlanSHA256, "preflight")
	r := h.run(plan.KexecInstallFile, "blog-demo\n")
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.output())
	}
	if !strings.Contains(r.stdout, "starting again at preflight") || !strings.Contains(r.stdout, "Type the host name") {
		t.Errorf("did not start again at preflight with the question:\n%s", r.stdout)
	}
	if r.firstIndex("parted") < 0 {
		t.Errorf("the restarted run did not partition: %q", r.commands())
	}
}

// TestKexecInstallChecksBundle: a changed file beside kexec-install.sh stops
// it in preflight.
func TestKexecInstallChecksBundle(t *testing.T) {
	h := installerHarness(t, exampleSpec(t), nil)
	if err := os.WriteFile(filepath.Join(h.dir, "root", plan.ConfigurationFile), []byte("{ }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	expectStop(t, h.run(plan.KexecInstallFile, "blog-demo\n"), "the bundle beside this script does not match its SHA256SUMS")
}

// TestPinnedChannelCheckedBeforeWipe: a nixexprs.tar.xz that does not match
// the pin stops the install in preflight, before anything is erased.
func TestPinnedChannelCheckedBeforeWipe(t *testing.T) {
	data, err := os.ReadFile("../examples/ovh-pinned-channel.toml")
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, string(data), installer(*seed(t, func(m *machine.Machine) { m.Interfaces[0].Addresses[0].Address = "203.0.113.50" })))
	h.state.StandIns = nil // the download is not the pinned release
	r := h.run(plan.KexecInstallFile, "pinned-demo\n")
	if r.code == 0 || !strings.Contains(r.output(), "but the spec pins") {
		t.Fatalf("a wrong nixexprs.tar.xz did not stop the install: exit %d\n%s", r.code, r.output())
	}
	for _, bad := range []string{"wipefs", "parted", "mkfs", "zpool"} {
		if r.firstIndex(bad) >= 0 {
			t.Errorf("%s ran before the pin was checked: %q", bad, r.commands())
		}
	}
}

// TestKexecInstallDryRunAsksNothing: --dry-run without --yes runs through
// with no answer on stdin.
func TestKexecInstallDryRunAsksNothing(t *testing.T) {
	h := installerHarness(t, exampleSpec(t), nil)
	r := h.run(plan.KexecInstallFile, "", "--dry-run")
	if r.code != 0 || len(r.recorded) > 0 || !strings.Contains(r.stdout, "--dry-run: not asking") {
		t.Errorf("exit %d, recorded %q:\n%s", r.code, r.commands(), r.output())
	}
}
