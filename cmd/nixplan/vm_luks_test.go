package main

// The VM suite's LUKS scenario: an encrypted root (issue 22) with the real
// cryptsetup and the real dm-crypt of the VM's kernel. What stays unproven
// here is the initrd itself: the stand-in installs no boot loader, so nothing
// boots the installed system and nobody types the passphrase to its initrd.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixplan/nixplan/plan"
	"github.com/nixplan/nixplan/plan/machine"
)

// vmPassphrase is what the operator types at kexec-install.sh's question. It
// has spaces and shell metacharacters, and it reaches the VM only on
// standard input, never in a command line of the transcript.
const vmPassphrase = `nixplan vm "luks" $pass 'phrase' \ ` + vmPassphraseToken

// vmPassphraseToken is a part of the passphrase without metacharacters: a
// copy that a tool escaped (printf %q, JSON) still holds it.
const vmPassphraseToken = "Zq7xKw42"

// scenarioLUKS: the small VPS of scenarioVirtio with an encrypted root: ext4
// on LUKS2 on one virtio disk, /boot unencrypted, DHCP, on the nixos-24.05
// image, which carries no cryptsetup (kexec-install.sh builds it from the
// target's nixpkgs before the erase). The operator types the host name and
// the passphrase twice, without a terminal. Then the disk must hold a LUKS2
// header that the passphrase typed as a terminal gives it opens (and that
// the same bytes with the newline, or another passphrase, do not), the root
// ext4 inside it, the initrd's network and LUKS device by the header's UUID,
// and an initrd host key of its own; and the passphrase must be in no file,
// log or transcript.
func scenarioLUKS(t *testing.T, imgs *vmImages) {
	const (
		mac  = "52:54:00:12:34:57"
		addr = "192.0.2.21"
		tag  = "nixos-24.05"
		host = "vm-crypt"
	)
	v := bootVPS(t, imgs, "luks", mac, addr)
	facts := v.rescueFacts()
	var spec, bundle string
	var p *plan.Plan
	v.phase("init, check and render on the laptop", commandLimit, func(ctx context.Context) error {
		m, err := machine.Load(facts)
		if err != nil {
			return err
		}
		// The driver the initrd must load comes from the facts, as the
		// spec's comment written by init --facts says.
		var driver string
		for _, ifc := range m.Interfaces {
			if ifc.MAC == mac {
				driver = ifc.Driver
			}
		}
		if driver != "virtio_net" {
			return fmt.Errorf("facts.sh gives the virtio NIC %s the driver %q, not virtio_net", mac, driver)
		}
		text, err := v.initSpec(facts)
		if err != nil {
			return err
		}
		spec = filepath.Join(v.logDir, "host.toml")
		editSpec(t, text, spec, func(m map[string]any) {
			table(m, "host")["name"] = host
			table(m, "network")["ipv4"] = map[string]any{"dhcp": true, "address": addr}
			d := table(m, "disks")
			delete(d, "pool")
			delete(d, "topology")
			d["layout"] = "ext4"
			m["encryption"] = map[string]any{"type": "luks", "nic_driver": driver}
		})
		p = loadPlan(t, spec)
		e := p.Encryption
		if p.Kexec.Tag != tag || e == nil || !e.FetchCryptsetup || len(p.Storage.LUKSVolumes) != 1 {
			return fmt.Errorf("the plan should encrypt one volume on the %s image, fetching cryptsetup: image %s, encryption %+v, volumes %+v", tag, p.Kexec.Tag, e, p.Storage.LUKSVolumes)
		}
		bundle, err = v.render(spec, facts, imgs.Tarballs[tag], "bundle")
		return err
	})

	v.runBootstrap(bundle, p)
	v.phase("the installer has no cryptsetup of its own", commandLimit, func(ctx context.Context) error {
		if _, err := v.must(ctx, "test -d /sys/module/dm_crypt || modprobe dm_crypt"); err != nil {
			return fmt.Errorf("the VM's kernel has no dm-crypt: %v", err)
		}
		return v.checkStandIn(ctx, p.Kexec.Image)
	})

	vol := p.Storage.LUKSVolumes[0]
	input := host + "\n" + vmPassphrase + "\n" + vmPassphrase + "\n"
	var installOut string
	v.phase("copy kexec-install.sh to the installer", copyLimit, func(ctx context.Context) error {
		return v.scp(ctx, "/root/", bundleFiles(bundle, p, true)...)
	})
	v.phase("kexec-install.sh, with the passphrase typed twice", installLimit, func(ctx context.Context) error {
		r := v.ssh(ctx, input, "bash -p /root/kexec-install.sh")
		installOut = r.Stdout + r.Stderr
		if r.Exit != 0 {
			return fmt.Errorf("kexec-install.sh: exit %d\n%s%s", r.Exit, lastLines(r.Stdout, 60), r.Stderr)
		}
		for _, want := range []string{
			// The preflight read the NIC's driver from this kernel's sysfs.
			"is driven by virtio_net, the driver the initrd loads (encryption.nic_driver)",
			"building cryptsetup from the nixpkgs of NixOS " + p.Release.Version,
			"Encryption passphrase: ", "Again: ",
			"The initrd's SSH host key (port 2222; it is not the system's):",
			"NixOS is installed on " + host,
		} {
			if !strings.Contains(installOut, want) {
				return fmt.Errorf("kexec-install.sh ended well but did not print %q:\n%s", want, lastLines(r.Stdout, 60))
			}
		}
		calls, err := v.must(ctx, "cat /var/log/nixplan-vm/calls")
		if err != nil {
			return err
		}
		if !strings.Contains(calls, "nix-build \\<nixpkgs\\> -A cryptsetup --out-link /root/nixplan-cryptsetup") {
			return fmt.Errorf("kexec-install.sh did not build cryptsetup from the target's nixpkgs; the stand-in's calls:\n%s", calls)
		}
		return nil
	})

	// The fetched cryptsetup, the one the install used: Debian's real one.
	const cs = "/root/nixplan-cryptsetup/bin/cryptsetup"
	v.phase("the LUKS volume opens with the passphrase typed as the initrd takes it", commandLimit, func(ctx context.Context) error {
		// cryptsetup(8), RETURN CODES: 4 is "wrong device specified", here
		// an inactive one.
		if r := v.ssh(ctx, "", cs+" status "+vol.Name); r.Exit != 4 || !strings.Contains(r.Stdout, "is inactive") {
			return fmt.Errorf("%s should be closed after the install (kexec-install.sh closes it): cryptsetup status exit %d\n%s%s", vol.Name, r.Exit, r.Stdout, r.Stderr)
		}
		kv, err := v.blkid(ctx, vol.Device)
		if err != nil {
			return err
		}
		if kv["TYPE"] != "crypto_LUKS" || kv["VERSION"] != "2" {
			return fmt.Errorf("%s holds %s version %s, the plan says LUKS2", vol.Device, kv["TYPE"], kv["VERSION"])
		}
		// A passphrase typed at a prompt ends with the Enter key, which is not
		// part of it: the initrd's systemd-cryptsetup gets the line without
		// it, as cryptsetup does when it reads a passphrase from its standard
		// input without --key-file ("reading will stop at the first newline",
		// cryptsetup(8), Passphrase processing).
		for _, c := range []struct {
			input, args string
			opens       bool
		}{
			{vmPassphrase + "\n", "", true},
			{vmPassphrase + "\n", "--key-file=-", false}, // the newline is not part of the key
			{"not the passphrase\n", "", false},
		} {
			r := v.ssh(ctx, c.input, cs+" open --test-passphrase "+c.args+" "+vol.Device)
			// cryptsetup(8), RETURN CODES: 2 is "no permission (bad passphrase)".
			if want := map[bool]int{true: 0, false: 2}[c.opens]; r.Exit != want {
				return fmt.Errorf("cryptsetup open --test-passphrase %s of %s: exit %d, want %d\n%s", c.args, vol.Device, r.Exit, want, r.Stderr)
			}
		}
		// Opened as the initrd opens it, under its name: the checks below
		// read the root from it.
		if r := v.ssh(ctx, vmPassphrase+"\n", cs+" open "+vol.Device+" "+vol.Name); r.Exit != 0 {
			return fmt.Errorf("cryptsetup open %s %s: exit %d\n%s", vol.Device, vol.Name, r.Exit, r.Stderr)
		}
		return nil
	})

	v.phase("the passphrase is in no file, log or transcript", commandLimit, func(ctx context.Context) error {
		if strings.Contains(installOut, vmPassphraseToken) {
			return fmt.Errorf("kexec-install.sh printed the passphrase")
		}
		// The installer's files, the installed root (opened above) and the
		// raw unencrypted partitions. The shell reads the passphrase and its
		// token from its standard input, and grep takes them as patterns
		// through a pipe: never in argv or a file. -D skip: the FIFOs under
		// /run and /var. grep exits 0 when it finds, 1 when it does not.
		var raw []string
		for _, b := range p.Storage.Boots {
			raw = append(raw, b.Partition)
		}
		search := `IFS= read -r P; IFS= read -r T; mkdir -p /run/check && mount -o ro ` + p.Storage.RootDevice + ` /run/check || exit 9
grep -rlsF -D skip -f <(printf '%s\n' "$P" "$T") /root /etc /var /tmp /nix/var /run/nixplan /run/check; echo "grep: $?"
for d in ` + strings.Join(raw, " ") + `; do grep -qaF -f <(printf '%s\n' "$P" "$T") "$d"; echo "raw $d: $?"; done
umount /run/check`
		r := v.ssh(ctx, vmPassphrase+"\n"+vmPassphraseToken+"\n", search)
		clean := r.Exit == 0 && strings.Contains(r.Stdout, "grep: 1\n")
		for _, d := range raw {
			clean = clean && strings.Contains(r.Stdout, "raw "+d+": 1\n")
		}
		if len(raw) == 0 || !clean {
			return fmt.Errorf("the passphrase was found in files of the installer or of the installed system or on an unencrypted partition, or the search failed (grep exits 1 when it finds nothing): exit %d\n%s%s", r.Exit, r.Stdout, r.Stderr)
		}
		for _, f := range []string{"transcript.log", "console.log"} {
			data, err := os.ReadFile(filepath.Join(v.logDir, f))
			if err != nil {
				return err
			}
			if strings.Contains(string(data), vmPassphraseToken) {
				return fmt.Errorf("the passphrase is in the VM's %s", f)
			}
		}
		return nil
	})

	v.phase("check the disk and the unlock against the plan", commandLimit, func(ctx context.Context) error {
		if err := v.checkDisks(ctx, p); err != nil {
			return err
		}
		if err := v.checkInstalled(ctx, p, bundle, mac); err != nil {
			return err
		}
		uuid, err := v.must(ctx, cs+" luksUUID "+vol.Device)
		if err != nil {
			return err
		}
		uuid = strings.TrimSpace(uuid)
		if _, err := v.must(ctx, "mount -o ro "+p.Storage.RootDevice+" /run/check"); err != nil {
			return err
		}
		defer v.must(context.Background(), "umount /run/check")
		unlock, err := v.must(ctx, "cat /run/check/etc/nixos/nixplan-unlock.nix")
		if err != nil {
			return err
		}
		for _, want := range []string{
			"PermanentMACAddress=" + mac + "\n", "DHCP=ipv4\n",
			fmt.Sprintf("boot.initrd.luks.devices.%q.device = \"/dev/disk/by-uuid/%s\";", vol.Name, uuid),
		} {
			if !strings.Contains(unlock, want) {
				return fmt.Errorf("nixplan-unlock.nix lacks %q:\n%s", want, unlock)
			}
		}
		key := "/run/check" + p.Encryption.HostKey()
		mode, err := v.must(ctx, "stat -c %a "+key+" && ssh-keygen -y -f "+key+" >/dev/null && cat "+key+".pub /run/check/etc/ssh/ssh_host_ed25519_key.pub")
		if err != nil {
			return fmt.Errorf("the initrd's host key %s is missing or not a key: %v", p.Encryption.HostKey(), err)
		}
		lines := strings.Split(strings.TrimSpace(mode), "\n")
		if len(lines) != 3 || lines[0] != "600" || len(strings.Fields(lines[1])) < 2 || len(strings.Fields(lines[2])) < 2 {
			return fmt.Errorf("the initrd's host key should be mode 600 with its public key beside it, and the system's key a key line:\n%s", mode)
		}
		initrdKey := strings.Join(strings.Fields(lines[1])[:2], " ")
		if systemKey := strings.Join(strings.Fields(lines[2])[:2], " "); initrdKey == systemKey {
			return fmt.Errorf("the initrd's host key is the system's: %s", initrdKey)
		}
		if want := fmt.Sprintf("[%s]:%d %s", addr, p.Encryption.SSHPort, initrdKey); !strings.Contains(installOut, want) {
			return fmt.Errorf("kexec-install.sh did not print the initrd's known_hosts line %q:\n%s", want, lastLines(installOut, 30))
		}
		return nil
	})
	// A resume (here: mount, configure, install, finish again) asks for the
	// passphrase once, in the foreground, and opens the volume with it.
	v.phase("a resume asks for the passphrase once and opens the volume: --from mount", installLimit, func(ctx context.Context) error {
		if _, err := v.must(ctx, cs+" close "+vol.Name); err != nil {
			return err
		}
		r := v.ssh(ctx, vmPassphrase+"\n", "bash -p /root/kexec-install.sh --from mount")
		out := r.Stdout + r.Stderr
		if r.Exit != 0 {
			return fmt.Errorf("kexec-install.sh --from mount: exit %d\n%s%s", r.Exit, lastLines(r.Stdout, 60), r.Stderr)
		}
		if strings.Count(out, "Encryption passphrase: ") != 1 || strings.Contains(out, "Again: ") {
			return fmt.Errorf("a resume should ask for the passphrase once:\n%s", lastLines(out, 60))
		}
		for _, want := range []string{"is driven by virtio_net", "NixOS is installed on " + host} {
			if !strings.Contains(out, want) {
				return fmt.Errorf("kexec-install.sh --from mount did not print %q:\n%s", want, lastLines(out, 60))
			}
		}
		if strings.Contains(out, vmPassphraseToken) {
			return fmt.Errorf("kexec-install.sh --from mount printed the passphrase")
		}
		if r := v.ssh(ctx, "", cs+" status "+vol.Name); r.Exit != 4 {
			return fmt.Errorf("%s should be closed again after the resume: cryptsetup status exit %d\n%s", vol.Name, r.Exit, r.Stdout)
		}
		return nil
	})
	t.Logf("phases: %s", strings.Join(v.phases, ", "))
}
