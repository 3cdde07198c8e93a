package plan_test

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nixplan/nixplan/plan"
	"github.com/nixplan/nixplan/plan/machine"
)

// encryptedSpec is the seed's spec with an encrypted root of the type given.
func encryptedSpec(t *testing.T, typ string) string {
	return exampleSpec(t, "[ssh]", "[encryption]\ntype = \""+typ+"\"\nnic_driver = \"igb\"\n\n[ssh]")
}

const testPassphrase = "correct horse battery"

// TestPassphraseOnlyOnTheEncryptingCommandsStdin: the passphrase is read
// from the terminal twice before the install detaches, reaches cryptsetup
// on its standard input without a trailing newline, and is in no command's
// arguments, no output, no log and no file the scripts wrote. The initrd's
// host key is made before nixos-install and its known_hosts line printed.
func TestPassphraseOnlyOnTheEncryptingCommandsStdin(t *testing.T) {
	h := installerHarness(t, encryptedSpec(t, "luks"), nil)
	r := h.run(plan.KexecInstallFile, "blog-demo\n"+testPassphrase+"\n"+testPassphrase+"\n")
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.output())
	}
	prompt, again, detach := strings.Index(r.stdout, "Encryption passphrase: "), strings.Index(r.stdout, "Again: "), strings.Index(r.stdout, "==> detach")
	if prompt < 0 || again < prompt || detach < again {
		t.Errorf("the passphrase is not asked twice before the install detaches:\n%s", r.stdout)
	}

	inputs := h.keyInputs()
	var got []string
	for _, in := range inputs {
		got = append(got, in.Argv[1])
		if in.Stdin != testPassphrase {
			t.Errorf("%q got %q on its standard input, want the passphrase without a newline", in.Argv, in.Stdin)
		}
	}
	if want := []string{"luksFormat", "open"}; !slices.Equal(got, want) {
		t.Errorf("the commands that read the passphrase: %q, want %q", got, want)
	}
	for _, argv := range append(r.calls, r.recorded...) {
		if strings.Contains(strings.Join(argv, " "), "horse") {
			t.Errorf("the passphrase is in the arguments of %q", argv)
		}
	}
	if strings.Contains(r.output(), "horse") {
		t.Errorf("the passphrase shows in the output:\n%s", r.output())
	}
	filepath.WalkDir(h.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if data, err := os.ReadFile(path); err == nil && strings.Contains(string(data), "horse") {
			t.Errorf("the passphrase is in %s", strings.TrimPrefix(path, h.dir))
		}
		return nil
	})

	// The pool is made on the opened volume, after the LUKS format.
	format, pool := r.firstIndex("cryptsetup luksFormat --batch-mode --type luks2 --key-file=- /dev/sda2"), r.firstIndex("zpool create")
	if format < 0 || pool < format || !strings.HasSuffix(r.commands()[pool], "rpool /dev/mapper/crypt-rpool") {
		t.Errorf("LUKS is not formatted before the pool is made on it: %q", r.commands())
	}
	// The initrd's own host key, before nixos-install, and its line.
	key := r.firstIndex("ssh-keygen -q -t ed25519 -N  -C initrd@blog-demo -f /mnt/etc/secrets/initrd/ssh_host_ed25519_key")
	if key < 0 || key > r.firstIndex("nixos-install") {
		t.Errorf("the initrd's host key is not made before nixos-install: %q", r.commands())
	}
	for _, want := range []string{"The initrd's SSH host key (port 2222", "SHA256:fake-fingerprint",
		"[203.0.113.10]:2222 ssh-ed25519 AAAA", "ssh -t -p 2222 root@203.0.113.10 systemd-tty-ask-password-agent"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the install does not print %q:\n%s", want, r.stdout)
		}
	}
	// nixplan-unlock.nix, as the configure phase printed it: the NIC by its
	// MAC with the static address and gateway, the volume by its UUID.
	unlock := unlockNix(t, r.stdout)
	for _, want := range []string{"PermanentMACAddress=" + h.machine.Interfaces[0].MAC, "Address=203.0.113.10/24", "Gateway=203.0.113.254",
		`boot.initrd.luks.devices."crypt-rpool".device = "/dev/disk/by-uuid/`} {
		if !strings.Contains(unlock, want) {
			t.Errorf("nixplan-unlock.nix lacks %q:\n%s", want, unlock)
		}
	}
	nixParse(t, unlock)

	// The bytes cryptsetup got open a LUKS2 volume when the passphrase is
	// typed as the initrd takes it (a line, the newline not part of it);
	// the same passphrase with a newline in the key would not.
	cryptsetup, err := exec.LookPath("cryptsetup")
	if err != nil {
		requireOrSkip(t, "cryptsetup is not installed (Debian package cryptsetup-bin)")
	}
	if len(inputs) == 0 {
		t.Fatal("no command got the passphrase: nothing to open a LUKS header with")
	}
	for _, c := range []struct {
		key   string
		opens bool
	}{{inputs[0].Stdin, true}, {inputs[0].Stdin + "\n", false}} {
		img := filepath.Join(t.TempDir(), "luks.img")
		if err := os.WriteFile(img, make([]byte, 32<<20), 0o600); err != nil {
			t.Fatal(err)
		}
		// This machine has no device mapper: luksFormat writes the header
		// into the file, and --test-passphrase checks a key without opening.
		format := exec.Command(cryptsetup, "luksFormat", "--batch-mode", "--type", "luks2", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--key-file=-", img)
		format.Stdin = strings.NewReader(c.key)
		if out, err := format.CombinedOutput(); err != nil {
			t.Fatalf("cryptsetup luksFormat: %v\n%s", err, out)
		}
		typed := exec.Command(cryptsetup, "open", "--test-passphrase", img)
		typed.Stdin = strings.NewReader(testPassphrase + "\n")
		out, err := typed.CombinedOutput()
		if (err == nil) != c.opens {
			t.Errorf("key %q: the typed passphrase opens it: %v, want %v (%s)", c.key, err == nil, c.opens, out)
		}
	}
}

// unlockNix cuts nixplan-unlock.nix out of the install's output.
func unlockNix(t *testing.T, out string) string {
	t.Helper()
	start := strings.Index(out, "# Generated by kexec-install.sh of nixplan: how the initrd")
	if start < 0 {
		t.Fatalf("the install does not show nixplan-unlock.nix:\n%s", out)
	}
	end := strings.Index(out[start:], "\n}\n")
	if end < 0 {
		t.Fatalf("nixplan-unlock.nix does not end:\n%s", out[start:])
	}
	return out[start : start+end+3]
}

// nixParse runs nix-instantiate --parse on Nix text.
func nixParse(t *testing.T, text string) {
	t.Helper()
	nix, err := exec.LookPath("nix-instantiate")
	if err != nil {
		requireOrSkip(t, "nix-instantiate is not installed (Debian package nix-bin)")
		return
	}
	file := filepath.Join(t.TempDir(), "file.nix")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(nix, "--parse", file).CombinedOutput(); err != nil {
		t.Errorf("nix-instantiate --parse: %v\n%s\n%s", err, out, text)
	}
}

// TestPassphraseRefusedBeforeTheErase: two different passphrases, or one
// too short, stop before anything is erased (only the installer's memory
// changed: nixpkgs, the evaluation, the cryptsetup build).
func TestPassphraseRefusedBeforeTheErase(t *testing.T) {
	for _, c := range []struct{ typed, message string }{
		{testPassphrase + "\n" + testPassphrase + "!\n", "the two passphrases differ"},
		{"short\nshort\n", "the passphrase is shorter than 8 bytes"},
		{"", "no passphrase given"},
	} {
		h := installerHarness(t, encryptedSpec(t, "luks"), nil)
		expectStop(t, h.run(plan.KexecInstallFile, "blog-demo\n"+c.typed), c.message)
		if len(h.keyInputs()) != 0 {
			t.Errorf("%q: a command got a passphrase: %v", c.typed, h.keyInputs())
		}
	}
}

// TestPassphraseBoundsAreBytes: ZFS bounds the passphrase in bytes; in a
// UTF-8 locale bash counts characters, so 257 two-byte characters (514
// bytes) must still be refused against the 512 before anything is erased.
func TestPassphraseBoundsAreBytes(t *testing.T) {
	long := strings.Repeat("\u00e4", 257)
	h := installerHarness(t, encryptedSpec(t, "zfs"), nil)
	r := h.runWith(plan.KexecInstallFile, runOpts{stdin: "blog-demo\n" + long + "\n" + long + "\n", env: []string{"LC_ALL=C.UTF-8"}})
	expectStop(t, r, "the passphrase is longer than 512 bytes")
	if len(h.keyInputs()) != 0 {
		t.Errorf("a command got the passphrase: %v", h.keyInputs())
	}
}

// TestResumeAsksForThePassphraseAgain: a run that stopped in the mount
// phase, after the encrypted dataset was made, is resumed by a run that asks
// for the passphrase once, in the foreground, and loads the dataset's key
// with it (ZFS native encryption on rpool/crypt, every dataset under it).
func TestResumeAsksForThePassphraseAgain(t *testing.T) {
	h := installerHarness(t, encryptedSpec(t, "zfs"), nil)
	h.state.Fail["mount"] = 32
	first := h.run(plan.KexecInstallFile, "blog-demo\n"+testPassphrase+"\n"+testPassphrase+"\n")
	if first.code == 0 {
		t.Fatalf("the mount phase did not fail:\n%s", first.output())
	}
	create := first.firstIndex("zfs create -o encryption=aes-256-gcm -o keyformat=passphrase -o keylocation=prompt -o mountpoint=none rpool/crypt")
	if create < 0 || create > first.firstIndex("zfs create -o mountpoint=legacy rpool/crypt/root/nixos") {
		t.Errorf("the datasets are not made under the encrypted one: %q", first.commands())
	}
	// The pool was exported and imported again: its key is not loaded.
	delete(h.state.Fail, "mount")
	h.state.Fake.Keys = map[string]bool{}
	h.state.Fake.Mounts = nil
	second := h.run(plan.KexecInstallFile, testPassphrase+"\n")
	if second.code != 0 {
		t.Fatalf("the resumed run failed:\n%s", second.output())
	}
	if n := strings.Count(second.stdout, "Encryption passphrase: "); n != 1 || strings.Contains(second.stdout, "Again: ") {
		t.Errorf("the resumed run asks %d times (want once, no confirmation):\n%s", n, second.stdout)
	}
	inputs := h.keyInputs()
	if len(inputs) == 0 {
		t.Fatalf("no command got the passphrase in the resumed run:\n%s", second.output())
	}
	last := inputs[len(inputs)-1]
	if strings.Join(last.Argv, " ") != "zfs load-key rpool/crypt" || last.Stdin != testPassphrase {
		t.Errorf("the resumed run's last key input: %q with %q, want zfs load-key rpool/crypt with the passphrase", last.Argv, last.Stdin)
	}
	if i := second.firstIndex("zfs load-key"); i < 0 || i > second.firstIndex("mount -t zfs rpool/crypt/root/nixos /mnt") {
		t.Errorf("the key is not loaded before the mounts: %q", second.commands())
	}
}

// TestDryRunSaysWhereThePassphraseIsAsked: --dry-run asks nothing, changes
// nothing, and says where the passphrase would be asked and which commands
// would get it.
func TestDryRunSaysWhereThePassphraseIsAsked(t *testing.T) {
	h := installerHarness(t, encryptedSpec(t, "luks"), nil)
	r := h.run(plan.KexecInstallFile, "", "--dry-run")
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.output())
	}
	for _, want := range []string{"would ask for the encryption passphrase here, twice, before the install detaches",
		"would run: cryptsetup luksFormat --batch-mode --type luks2 --key-file=- /dev/sda2 (the passphrase typed before the install detached on its standard input)",
		"would run: nix-build <nixpkgs> -A cryptsetup --out-link /root/nixplan-cryptsetup"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--dry-run does not say %q:\n%s", want, r.stdout)
		}
	}
	if len(r.recorded) != 0 || len(h.keyInputs()) != 0 {
		t.Errorf("--dry-run changed the machine: %q", r.commands())
	}
}

// TestCheckFactsComparesTheNICDriver: check --facts warns, and does not
// refuse, when the spec's nic_driver is not the driver the rescue system
// binds to the NIC holding the address: the rescue kernel may bind another
// (an out-of-tree r8125 where NixOS binds r8169), and kexec-install.sh
// checks the installer's kernel before anything is erased.
func TestCheckFactsComparesTheNICDriver(t *testing.T) {
	for _, c := range []struct {
		driver string
		warned bool
	}{{"igb", false}, {"e1000e", true}} {
		text := exampleSpec(t, "[ssh]", "[encryption]\ntype = \"luks\"\nnic_driver = \""+c.driver+"\"\n\n[ssh]")
		spec, err := plan.Parse("host.toml", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		p, ps := plan.Validate(spec)
		if p == nil {
			t.Fatal(ps)
		}
		checked := plan.CheckMachine(spec, p, loadFixture(t, "ovh-seed"))
		for _, pr := range checked.Errors() {
			if pr.Key == "encryption.nic_driver" {
				t.Errorf("nic_driver %q: check --facts refuses it: %s", c.driver, pr.Error())
			}
		}
		var got []string
		for _, pr := range checked.Warnings() {
			if pr.Key == "encryption.nic_driver" {
				got = append(got, pr.Error())
			}
		}
		if (len(got) > 0) != c.warned {
			t.Errorf("nic_driver %q: check --facts warns %q, want a warning %v", c.driver, got, c.warned)
		}
		for _, want := range []string{"the rescue system's kernel binds igb", "kexec-install.sh checks the driver the installer's kernel binds before anything is erased"} {
			if c.warned && !strings.Contains(strings.Join(got, "\n"), want) {
				t.Errorf("nic_driver %q: the warning does not say %q: %q", c.driver, want, got)
			}
		}
	}
}

// TestInitOffersTheEncryptionWithTheNICDriver: init --facts writes the
// [encryption] table commented out with the public NIC's driver from the
// facts; uncommented, the spec encrypts with that driver.
func TestInitOffersTheEncryptionWithTheNICDriver(t *testing.T) {
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHeVFQr7aj20GWUgd2JVHzu4yywDf+VA4xTtVkmOS+Rt operator@laptop"
	text, ps := plan.SpecFromMachine(loadFixture(t, "ovh-seed"), plan.InitOptions{AuthorizedKeys: []string{key}})
	if text == "" {
		t.Fatal(ps)
	}
	for _, line := range []string{"# [encryption]", `# type = "zfs"`, `# nic_driver = "igb"`} {
		if !strings.Contains(text, line) {
			t.Fatalf("init does not offer %q:\n%s", line, text)
		}
		text = strings.Replace(text, line, strings.TrimPrefix(line, "# "), 1)
	}
	spec, err := plan.Parse("init.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	p, vs := plan.Validate(spec)
	if p == nil {
		t.Fatalf("the uncommented spec is refused: %v\n%s", vs, text)
	}
	if p.Encryption == nil || p.Encryption.NICDriver != "igb" || p.Storage.EncryptedDataset != "rpool/crypt" {
		t.Errorf("the uncommented spec encrypts %+v, dataset %q; want igb and rpool/crypt", p.Encryption, p.Storage.EncryptedDataset)
	}
}

// TestPreflightProbesTheNICDriver: before the erase, kexec-install.sh reads
// the driver bound to the public NIC and stops when it is not the one the
// initrd will load (encryption.nic_driver), or when it cannot tell: an
// initrd without the NIC's driver has no network, and nobody can type the
// passphrase. --dry-run checks it too and says so; a plan without
// encryption does not check it.
func TestPreflightProbesTheNICDriver(t *testing.T) {
	typed := "blog-demo\n" + testPassphrase + "\n" + testPassphrase + "\n"
	for _, c := range []struct {
		name, spec string
		edit       func(m *machine.Machine)
		stop       []string
	}{
		{"other driver", strings.Replace(encryptedSpec(t, "luks"), `nic_driver = "igb"`, `nic_driver = "e1000e"`, 1), nil,
			[]string{"eth0 is driven by igb, but the initrd loads e1000e", `set encryption.nic_driver = "igb"`}},
		{"no driver bound", encryptedSpec(t, "luks"), func(m *machine.Machine) { m.Interfaces[0].Driver = "" },
			[]string{"cannot tell the driver of eth0", "readlink /sys/class/net/eth0/device/driver"}},
		{"no device", encryptedSpec(t, "zfs"), func(m *machine.Machine) { m.Interfaces[0].Physical = false },
			[]string{"eth0 has no device/: a virtual interface", "the address must be on the physical NIC"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := installerHarness(t, c.spec, c.edit)
			r := h.run(plan.KexecInstallFile, typed)
			for _, want := range c.stop {
				expectStop(t, r, want)
			}
			if strings.Contains(r.stdout, "Type the host name") {
				t.Errorf("the question came before the driver check:\n%s", r.stdout)
			}
			if c.name == "no device" {
				// readlink or nic_driver can never make a virtual interface pass.
				for _, never := range []string{"readlink", "set encryption.nic_driver"} {
					if strings.Contains(r.output(), never) {
						t.Errorf("the stop for a virtual interface suggests %q:\n%s", never, r.output())
					}
				}
			}
		})
	}
	t.Run("dry-run", func(t *testing.T) {
		h := installerHarness(t, encryptedSpec(t, "luks"), nil)
		r := h.run(plan.KexecInstallFile, "", "--dry-run")
		if r.code != 0 {
			t.Fatalf("exit %d:\n%s", r.code, r.output())
		}
		if want := "eth0 is driven by igb, the driver the initrd loads (encryption.nic_driver)"; !strings.Contains(r.stdout, want) {
			t.Errorf("--dry-run does not say %q:\n%s", want, r.stdout)
		}
	})
	t.Run("not encrypted", func(t *testing.T) {
		h := installerHarness(t, exampleSpec(t), func(m *machine.Machine) { m.Interfaces[0].Driver = "" })
		if r := h.run(plan.KexecInstallFile, "blog-demo\n"); r.code != 0 {
			t.Fatalf("a plan without encryption stops on the NIC's driver: exit %d\n%s", r.code, r.output())
		}
	})
}

// TestRepairProbesTheNICDriver: the repair checklist.md gives for an initrd
// without network (--from mount in a fresh installer boot: mount, configure,
// install) skips preflight; a driver that is still wrong stops it in
// configure, before nixos-install builds that initrd again.
func TestRepairProbesTheNICDriver(t *testing.T) {
	h := newHarness(t, encryptedMDSpec(t, "e1000e"), installer(*loadFixture(t, "kimsufi-raid1")))
	h.state.Fake.LUKS = map[string]bool{"/dev/md/root": true}
	h.state.Fake.Arrays = map[string]bool{"/dev/md/root": true}
	r := h.run(plan.KexecInstallFile, testPassphrase+"\n", "--from", "mount")
	if want := "eth0 is driven by igb, but the initrd loads e1000e"; r.code == 0 || !strings.Contains(r.output(), want) {
		t.Errorf("exit %d; want a stop saying %q:\n%s", r.code, want, r.output())
	}
	if i := r.firstIndex("nixos-install"); i >= 0 {
		t.Errorf("nixos-install ran with the wrong driver: %q", r.commands())
	}
	if i := r.firstIndex("mount -t ext4 /dev/mapper/crypt-root /mnt"); i < 0 {
		t.Errorf("the repair stopped before its mount phase, not in configure: %q\n%s", r.commands(), r.output())
	}
}

// encryptedMDSpec is ovh-mdadm.toml with LUKS on its RAID, for the
// kimsufi-raid1 machine, whose public NIC is driven by igb.
func encryptedMDSpec(t *testing.T, driver string) string {
	t.Helper()
	data, err := os.ReadFile("../examples/ovh-mdadm.toml")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Replace(strings.Replace(string(data), "203.0.113.40", "203.0.113.10", 1),
		"[ssh]", "[encryption]\ntype = \"luks\"\nnic_driver = \""+driver+"\"\n\n[ssh]", 1)
}

// TestUnlockNixRefusesAHostileLUKSUUID: what cryptsetup luksUUID prints goes
// into nixplan-unlock.nix only when it is a UUID; anything else (here text
// that would close the Nix string and add an option) stops the install
// before nixos-install, naming the device, and is written nowhere.
func TestUnlockNixRefusesAHostileLUKSUUID(t *testing.T) {
	for _, hostile := range []string{
		`0000"; }; boot.kernelParams = [ "init=/bin/sh" ]; x = { y = "`,
		"-", // hex digits and dashes, but no UUID: /dev/disk/by-uuid/- would never appear
	} {
		refuseLUKSUUID(t, hostile)
	}
}

func refuseLUKSUUID(t *testing.T, hostile string) {
	t.Helper()
	h := installerHarness(t, encryptedSpec(t, "luks"), nil)
	h.state.Output = map[string]string{"cryptsetup:luksUUID": hostile + "\n"}
	r := h.run(plan.KexecInstallFile, "blog-demo\n"+testPassphrase+"\n"+testPassphrase+"\n")
	if r.code == 0 {
		t.Fatalf("the install went on with luksUUID %q:\n%s", hostile, r.output())
	}
	if want := "cryptsetup luksUUID /dev/sda2 printed"; !strings.Contains(r.output(), want) {
		t.Errorf("the stop does not say %q:\n%s", want, r.output())
	}
	if i := r.firstIndex("nixos-install"); i >= 0 {
		t.Errorf("nixos-install ran: %q", r.commands())
	}
	// Written nowhere: the configure phase stops before it writes the file.
	if data, err := os.ReadFile(filepath.Join(h.dir, "mnt/etc/nixos/nixplan-unlock.nix")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("nixplan-unlock.nix was written with luksUUID %q (err %v):\n%s", hostile, err, data)
	}
}

// twoVolumeSpec is the seed's spec with a ZFS mirror on LUKS over two disks.
func twoVolumeSpec(t *testing.T) string {
	return exampleSpec(t, `devices = ["/dev/sda"]`, `devices = ["/dev/sda", "/dev/sdb"]`+"\ntopology = \"mirror\"\nclear_existing = true",
		"[ssh]", "[encryption]\ntype = \"luks\"\nnic_driver = \"igb\"\n\n[ssh]")
}

// TestLUKSClosedNamesEveryOpenVolume: a start over with several of the
// plan's LUKS volumes still open names them all, and the hint closes them
// all in one line.
func TestLUKSClosedNamesEveryOpenVolume(t *testing.T) {
	h := newHarness(t, twoVolumeSpec(t), installer(*loadFixture(t, "kimsufi-raid1")))
	if names := h.plan.Storage.LUKSNames(); !slices.Equal(names, []string{"crypt-rpool", "crypt-rpool2"}) {
		t.Fatalf("LUKS names %q", names)
	}
	h.state.Fake.LUKS = map[string]bool{"/dev/sda3": true, "/dev/sdb3": true}
	h.state.Fake.Opened = map[string]bool{"crypt-rpool": true, "crypt-rpool2": true}
	r := h.run(plan.KexecInstallFile, "", "--from", "preflight")
	expectStop(t, r, "the LUKS volumes crypt-rpool crypt-rpool2 are open")
	expectStop(t, r, "/root/nixplan-cryptsetup/bin/cryptsetup close crypt-rpool; /root/nixplan-cryptsetup/bin/cryptsetup close crypt-rpool2; bash -p /root/kexec-install.sh --from preflight")
}

// TestPassphraseHintsNameTheScriptsPath: the hints of ask_passphrase name
// the script where it is, not where the checklist copies it.
func TestPassphraseHintsNameTheScriptsPath(t *testing.T) {
	h := installerHarness(t, encryptedSpec(t, "luks"), nil)
	for _, f := range h.bundle.Files {
		name := filepath.Join(h.dir, "root/bundle", f.Name)
		os.MkdirAll(filepath.Dir(name), 0o755)
		if err := os.WriteFile(name, f.Data, os.FileMode(f.Mode)); err != nil {
			t.Fatal(err)
		}
	}
	for _, typed := range []string{"blog-demo\n", "blog-demo\n" + testPassphrase + "\n"} {
		r := h.runWith(plan.KexecInstallFile, runOpts{stdin: typed, dir: "/root/bundle", path: "kexec-install.sh"})
		expectStop(t, r, "no passphrase given")
		expectStop(t, r, "ssh -t root@203.0.113.10 bash -p /root/bundle/kexec-install.sh")
	}
}

// TestEncryptedMDRepairAssemblesFirst: a repair in a fresh installer boot
// (--from mount) of LUKS on the md RAID assembles the plan's array from its
// members before it opens LUKS on it, and opens it before the mount.
func TestEncryptedMDRepairAssemblesFirst(t *testing.T) {
	h := newHarness(t, encryptedMDSpec(t, "igb"), installer(*loadFixture(t, "kimsufi-raid1")))
	h.state.Fake.LUKS = map[string]bool{"/dev/md/root": true} // the install made it; nothing is assembled in this boot
	r := h.run(plan.KexecInstallFile, testPassphrase+"\n", "--from", "mount")
	if r.code != 0 {
		t.Fatalf("--from mount: exit %d\n%s", r.code, r.output())
	}
	// --name=root: only the array this plan made, not a foreign one on the
	// same partitions.
	assemble := r.firstIndex("mdadm --assemble /dev/md/root --name=root " + strings.Join(h.plan.Storage.RAIDMembers, " "))
	open, mount := r.firstIndex("cryptsetup open --key-file=- /dev/md/root crypt-root"), r.firstIndex("mount -t ext4 /dev/mapper/crypt-root /mnt")
	if assemble < 0 || open < assemble || mount < open {
		t.Errorf("want mdadm --assemble, then cryptsetup open, then the mount: %q", r.commands())
	}
	// An array already assembled (the normal run, or udev) is left as it is.
	h.state.Fake.Arrays = map[string]bool{"/dev/md/root": true}
	h.state.Fake.Opened = nil
	h.state.Fake.Mounts = nil
	r = h.run(plan.KexecInstallFile, testPassphrase+"\n", "--from", "mount")
	if r.code != 0 || r.firstIndex("mdadm") >= 0 {
		t.Errorf("an assembled array is assembled again, or the run failed (exit %d): %q\n%s", r.code, r.commands(), r.output())
	}
}

// TestInitrdCarriesTheNICsModules: the driver bound to the NIC
// (encryption.nic_driver) is not always the module that makes its
// interface: mlx4_core's interface comes from mlx4_en, and Xen's "vif" is
// no module at all (xen_netfront is). configuration.nix puts the modules
// into the initrd and checklist.md names them; a driver not in the table
// is its own module.
func TestInitrdCarriesTheNICsModules(t *testing.T) {
	for _, c := range []struct {
		driver, modules, listed string
	}{
		{"mlx4_core", `[ "mlx4_core" "mlx4_en" ]`, "the initrd loads `mlx4_core`, `mlx4_en`"},
		{"vif", `[ "xen_netfront" ]`, "the initrd loads `xen_netfront`"},
		{"virtio_net", `[ "virtio_net" "virtio_pci" ]`, "the initrd loads `virtio_net`, `virtio_pci`"},
		{"igb", `[ "igb" ]`, "the initrd loads `igb`"},
	} {
		text := strings.Replace(encryptedSpec(t, "luks"), `nic_driver = "igb"`, `nic_driver = "`+c.driver+`"`, 1)
		_, b := renderText(t, "host.toml", text)
		nix := string(b.File(plan.ConfigurationFile).Data)
		if want := "boot.initrd.availableKernelModules = " + c.modules + ";"; !strings.Contains(nix, want) {
			t.Errorf("nic_driver %q: configuration.nix lacks %q:\n%s", c.driver, want, nix)
		}
		nixParse(t, nix)
		if list := string(b.File(plan.ChecklistFile).Data); !strings.Contains(list, c.listed) {
			t.Errorf("nic_driver %q: checklist.md does not say %q", c.driver, c.listed)
		}
	}
}

// TestStartOverHintsNameTheScriptsPath: the hints of the start-over stops
// (a mounted /mnt, open LUKS volumes) name the script where it is, like
// the passphrase hints. Closing open volumes needs no umount (or pool
// export) first: a mounted /mnt, or an imported pool, stops the run before
// the LUKS check.
func TestStartOverHintsNameTheScriptsPath(t *testing.T) {
	bundled := func(spec string, m *machine.Machine) *harness {
		h := newHarness(t, spec, installer(*m))
		for _, f := range h.bundle.Files {
			name := filepath.Join(h.dir, "root/bundle", f.Name)
			os.MkdirAll(filepath.Dir(name), 0o755)
			if err := os.WriteFile(name, f.Data, os.FileMode(f.Mode)); err != nil {
				t.Fatal(err)
			}
		}
		return h
	}
	at := runOpts{dir: "/root/bundle", path: "kexec-install.sh"}
	_, b := renderText(t, "host.toml", twoVolumeSpec(t))
	script := string(b.File(plan.KexecInstallFile).Data)
	for _, fixed := range []string{"then: bash -p /root/kexec-install.sh", "bash -p kexec-install.sh --from", "zpool export $POOL; ${close}"} {
		if strings.Contains(script, fixed) {
			t.Errorf("kexec-install.sh still has the hint %q", fixed)
		}
	}

	h := bundled(exampleSpec(t), loadFixture(t, "ovh-seed"))
	h.premountMnt = true
	r := h.runWith(plan.KexecInstallFile, at, "--from", "preflight")
	expectStop(t, r, "/mnt is already mounted")
	expectStop(t, r, "or start over: umount -R /mnt; zpool export rpool; bash -p /root/bundle/kexec-install.sh --from preflight")

	h = bundled(twoVolumeSpec(t), loadFixture(t, "kimsufi-raid1"))
	h.state.Fake.LUKS = map[string]bool{"/dev/sda3": true, "/dev/sdb3": true}
	h.state.Fake.Opened = map[string]bool{"crypt-rpool": true}
	r = h.runWith(plan.KexecInstallFile, at, "--from", "preflight")
	expectStop(t, r, "or start over: /root/nixplan-cryptsetup/bin/cryptsetup close crypt-rpool; bash -p /root/bundle/kexec-install.sh --from preflight")

	// A mounted /mnt of an encrypted install: starting over closes its
	// volumes too, with the cryptsetup the install built (on no PATH).
	h = bundled(twoVolumeSpec(t), loadFixture(t, "kimsufi-raid1"))
	h.premountMnt = true
	r = h.runWith(plan.KexecInstallFile, at, "--from", "preflight")
	expectStop(t, r, "or start over: umount -R /mnt; zpool export rpool; /root/nixplan-cryptsetup/bin/cryptsetup close crypt-rpool; /root/nixplan-cryptsetup/bin/cryptsetup close crypt-rpool2; bash -p /root/bundle/kexec-install.sh --from preflight")
}

// TestLUKSPoolImportsFromDevMapper: a pool on LUKS volumes is imported from
// /dev/mapper, where the opened volumes are, also on virtio disks, whose
// partitions' by-partuuid links lead to the LUKS headers, not the pool.
func TestLUKSPoolImportsFromDevMapper(t *testing.T) {
	for _, disk := range []string{"/dev/sda", "/dev/vda"} {
		text := strings.Replace(encryptedSpec(t, "luks"), `devices = ["/dev/sda"]`, `devices = ["`+disk+`"]`, 1)
		_, b := renderText(t, "host.toml", text)
		conf := string(b.File(plan.ConfigurationFile).Data)
		if want := `boot.zfs.devNodes = "/dev/mapper";`; !strings.Contains(conf, want) {
			t.Errorf("%s: configuration.nix lacks %s:\n%s", disk, want, conf)
		}
	}
}
