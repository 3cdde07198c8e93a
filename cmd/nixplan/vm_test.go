package main

// The VM suite: the bundle's scripts on real Linux. Each scenario boots a
// QEMU machine into a Debian rescue system, collects its facts with facts.sh,
// writes and checks a spec with `nixplan init --facts` and `check --facts`,
// renders the bundle with a test kexec tarball, and drives the scripts over
// SSH as an operator would: rescue-bootstrap.sh, the kexec into the stand-in
// NixOS installer, kexec-install.sh. Then it checks the disks against the
// plan with lsblk, blkid, parted and mdadm.
//
// It runs with NIXPLAN_VM=1 (README: "Testing in virtual machines").
// What stays unproven: nixos-install and the boot loader (stubbed), ZFS, and
// the first boot of the installed system.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/nixplan/nixplan/plan"
	"github.com/nixplan/nixplan/plan/machine"
)

const gib = int64(1) << 30

// Each phase's deadline; a scenario also has its own.
const (
	bootLimit      = 4 * time.Minute
	kexecLimit     = 5 * time.Minute
	commandLimit   = 2 * time.Minute
	copyLimit      = 3 * time.Minute
	bootstrapLimit = 6 * time.Minute
	installLimit   = 8 * time.Minute
)

func TestVM(t *testing.T) {
	if os.Getenv(vmSuite) != "1" {
		t.Skipf("the VM suite runs with %s=1 (README: Testing in virtual machines)", vmSuite)
	}
	imgs := buildVMImages(t)
	t.Run("bios-sata-two-nics-mdadm", func(t *testing.T) { scenarioBIOS(t, imgs) })
	t.Run("uefi-nvme-old-raid1", func(t *testing.T) { scenarioUEFI(t, imgs) })
	t.Run("virtio-no-serial-dhcp-ext4", func(t *testing.T) { scenarioVirtio(t, imgs) })
	t.Run("virtio-luks-ext4", func(t *testing.T) { scenarioLUKS(t, imgs) })
}

// nixplanCLI runs the command line in this process, as the operator runs
// nixplan on the laptop.
func nixplanCLI(args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return out.String(), errb.String(), code
}

// editSpec decodes a spec, lets edit change it, and writes it to path.
func editSpec(t *testing.T, text, path string, edit func(m map[string]any)) {
	t.Helper()
	m := map[string]any{}
	if _, err := toml.Decode(text, &m); err != nil {
		t.Fatalf("the spec nixplan init wrote does not decode: %v\n%s", err, text)
	}
	edit(m)
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func table(m map[string]any, key string) map[string]any {
	sub, ok := m[key].(map[string]any)
	if !ok {
		sub = map[string]any{}
		m[key] = sub
	}
	return sub
}

// collectFacts runs facts.sh on the VM, as checklist.md says, and keeps its
// output in the scenario's log folder.
func (v *vm) collectFacts(ctx context.Context, name string) (string, error) {
	script := filepath.Join(v.dir, "facts.sh")
	out, _, code := nixplanCLI("facts-script")
	if code != 0 {
		return "", fmt.Errorf("nixplan facts-script: exit %d", code)
	}
	if err := os.WriteFile(script, []byte(out), 0o644); err != nil {
		return "", err
	}
	if err := v.scp(ctx, "/root/", script); err != nil {
		return "", err
	}
	facts, err := v.must(ctx, "sh /root/facts.sh")
	if err != nil {
		return "", err
	}
	path := filepath.Join(v.logDir, name)
	return path, os.WriteFile(path, []byte(facts), 0o644)
}

// initSpec writes the spec for the machine with nixplan init --facts, and
// requires check --facts to agree with what init wrote.
func (v *vm) initSpec(facts string) (string, error) {
	pub := filepath.Join(v.dir, "operator.pub")
	if err := os.WriteFile(pub, []byte(v.imgs.ClientPub+"\n"), 0o644); err != nil {
		return "", err
	}
	spec, stderr, code := nixplanCLI("init", "--facts", facts, "--ssh-key", pub)
	if code != 0 {
		return "", fmt.Errorf("nixplan init --facts: exit %d\n%s", code, stderr)
	}
	first := filepath.Join(v.logDir, "init.toml")
	if err := os.WriteFile(first, []byte(spec), 0o644); err != nil {
		return "", err
	}
	out, stderr, code := nixplanCLI("check", "--facts", facts, first)
	if code != 0 {
		return "", fmt.Errorf("check --facts does not accept the spec init --facts wrote: exit %d\n%s%s", code, out, stderr)
	}
	return spec, nil
}

// render checks a spec against the facts and renders its bundle with the
// test kexec tarball.
func (v *vm) render(spec, facts, tarball, name string) (string, error) {
	if out, stderr, code := nixplanCLI("check", "--facts", facts, spec); code != 0 {
		return "", fmt.Errorf("nixplan check --facts %s: exit %d\n%s%s", spec, code, out, stderr)
	}
	dir := filepath.Join(v.dir, name)
	if _, stderr, code := nixplanCLI("render", spec, "-o", dir, "--kexec-tarball", tarball); code != 0 {
		return "", fmt.Errorf("nixplan render: exit %d\n%s", code, stderr)
	}
	return dir, nil
}

func loadPlan(t *testing.T, spec string) *plan.Plan {
	t.Helper()
	s, err := plan.Load(spec)
	if err != nil {
		t.Fatal(err)
	}
	p, ps := plan.Validate(s)
	if len(ps.Errors()) > 0 {
		t.Fatalf("%s: %v", spec, ps)
	}
	return p
}

// bundleFiles are the bundle's files that checklist.md copies to the
// rescue system, and those it copies to the installer.
func bundleFiles(dir string, p *plan.Plan, installer bool) []string {
	if installer {
		return []string{filepath.Join(dir, "kexec-install.sh"), filepath.Join(dir, "SHA256SUMS")}
	}
	files := []string{"rescue-bootstrap.sh", "kexec-install.sh", "facts.sh", "SHA256SUMS"}
	// render --kexec-tarball put the tarball in the bundle.
	if _, err := os.Stat(filepath.Join(dir, p.Kexec.Tarball)); err == nil {
		files = append(files, p.Kexec.Tarball)
	}
	for i := range files {
		files[i] = filepath.Join(dir, files[i])
	}
	return files
}

// bootRescue starts the VM and waits for the rescue system's SSH.
func (v *vm) bootRescue() {
	v.phase("boot rescue system", bootLimit, func(ctx context.Context) error {
		v.start()
		if err := v.waitConsole(ctx, "nixplan-vm: rescue ready", 0); err != nil {
			return err
		}
		return v.waitSSH(ctx)
	})
}

// expectStop runs a script that must stop on a fault: exit 1, its error
// naming want, and every disk unchanged.
func (v *vm) expectStop(ctx context.Context, command, input, want string, hashes []string) error {
	r := v.ssh(ctx, input, command)
	if r.Exit != 1 {
		return fmt.Errorf("%s: exit %d, want 1 (the fault must stop it)\n%s%s", command, r.Exit, r.Stdout, r.Stderr)
	}
	if !strings.Contains(r.Stderr, ": error: ") || !strings.Contains(r.Stderr, want) {
		return fmt.Errorf("%s stopped, but its error does not name %q:\n%s", command, want, r.Stderr)
	}
	if err := v.sameDisks(hashes); err != nil {
		return fmt.Errorf("%s stopped, but a disk changed: %v", command, err)
	}
	return nil
}

// runBootstrap copies the bundle to the rescue system and runs
// rescue-bootstrap.sh, which ends with kexec/run; then it waits for the
// installer, which must answer with the rescue system's host keys.
func (v *vm) runBootstrap(bundle string, p *plan.Plan) {
	v.phase("copy the bundle to the rescue system", copyLimit, func(ctx context.Context) error {
		return v.scp(ctx, "/root/", bundleFiles(bundle, p, false)...)
	})
	v.phase("rescue-bootstrap.sh", bootstrapLimit, func(ctx context.Context) error {
		r := v.ssh(ctx, "", "bash -p /root/rescue-bootstrap.sh")
		if r.Exit != 0 {
			return fmt.Errorf("rescue-bootstrap.sh: exit %d\n%s%s", r.Exit, r.Stdout, r.Stderr)
		}
		for _, want := range []string{"kexec tarball sha256 matches the spec", "Booting into the NixOS installer", "machine will boot into nixos in"} {
			if !strings.Contains(r.Stdout+r.Stderr, want) {
				return fmt.Errorf("rescue-bootstrap.sh ended well but did not print %q:\n%s%s", want, r.Stdout, r.Stderr)
			}
		}
		return nil
	})
	v.phase("kexec into the installer", kexecLimit, func(ctx context.Context) error {
		if err := v.waitConsole(ctx, "nixplan-vm: installer ready", 0); err != nil {
			return err
		}
		// The same pinned host keys: kexec/run carried them over.
		if err := v.waitSSH(ctx); err != nil {
			return fmt.Errorf("%w (the installer must answer with the rescue system's host keys and take the operator's key)", err)
		}
		osr, err := v.must(ctx, "cat /etc/os-release")
		if err != nil {
			return err
		}
		if !strings.Contains(osr, "ID=nixos\n") || !strings.Contains(osr, "VARIANT_ID=installer\n") {
			return fmt.Errorf("after the kexec /etc/os-release is not the installer's:\n%s", osr)
		}
		return nil
	})
}

// checkStandIn holds the booted stand-in to the capability table once more,
// on the running system.
func (v *vm) checkStandIn(ctx context.Context, img plan.Image) error {
	for _, tool := range img.Tools {
		if _, err := v.must(ctx, "command -v "+tool); err != nil {
			return fmt.Errorf("the stand-in lacks %s, which the table lists for %s", tool, img.Tag)
		}
	}
	for _, tool := range vmAbsentUnlessListed {
		if slices.Contains(img.Tools, tool) {
			continue
		}
		if r := v.ssh(ctx, "", "command -v "+tool); r.Exit == 0 {
			return fmt.Errorf("the stand-in has %s, which the table does not list for %s", tool, img.Tag)
		}
	}
	return nil
}

// runInstall copies kexec-install.sh and SHA256SUMS to the installer and
// runs it, typing the host name at its question.
func (v *vm) runInstall(bundle string, p *plan.Plan) {
	v.phase("copy kexec-install.sh to the installer", copyLimit, func(ctx context.Context) error {
		return v.scp(ctx, "/root/", bundleFiles(bundle, p, true)...)
	})
	v.phase("kexec-install.sh", installLimit, func(ctx context.Context) error {
		r := v.ssh(ctx, p.Host.Name+"\n", "bash -p /root/kexec-install.sh")
		if r.Exit != 0 {
			return fmt.Errorf("kexec-install.sh: exit %d\n%s%s", r.Exit, lastLines(r.Stdout, 60), r.Stderr)
		}
		if !strings.Contains(r.Stdout, "NixOS is installed on "+p.Host.Name) {
			return fmt.Errorf("kexec-install.sh ended well but did not say NixOS is installed:\n%s", lastLines(r.Stdout, 40))
		}
		return nil
	})
}

// partedPartition is one line of parted --machine ... unit B print.
type partedPartition struct {
	Number     int
	Start, End int64
	Name       string
	Flags      string
}

// parted reads a disk's partition table as parted prints it.
func (v *vm) parted(ctx context.Context, disk string) (label string, size int64, parts []partedPartition, err error) {
	out, err := v.must(ctx, "parted --script --machine "+disk+" unit B print")
	if err != nil {
		return "", 0, nil, err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(strings.TrimSuffix(strings.TrimSpace(line), ";"), ":")
		switch {
		case len(f) >= 6 && strings.HasPrefix(f[0], "/dev/"):
			label = f[5]
			size, _ = strconv.ParseInt(strings.TrimSuffix(f[1], "B"), 10, 64)
		case len(f) >= 7:
			n, err := strconv.Atoi(f[0])
			if err != nil {
				continue
			}
			start, _ := strconv.ParseInt(strings.TrimSuffix(f[1], "B"), 10, 64)
			end, _ := strconv.ParseInt(strings.TrimSuffix(f[2], "B"), 10, 64)
			parts = append(parts, partedPartition{Number: n, Start: start, End: end, Name: f[5], Flags: f[6]})
		}
	}
	return label, size, parts, nil
}

var unitRE = regexp.MustCompile(`^(\d+)(MiB|GiB)$`)

// partedOffset is where parted puts a boundary given as "513MiB" or "100%"
// on a disk of size bytes: the first byte of a start, the last of an end.
func partedOffset(s string, size int64, end bool) (int64, bool) {
	if s == "100%" {
		return size - 1, true
	}
	m := unitRE.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	n <<= 20
	if m[2] == "GiB" {
		n <<= 10
	}
	if end {
		n--
	}
	return n, true
}

// blkid reads what blkid -p finds on a device: TYPE, LABEL, UUID, ...
func (v *vm) blkid(ctx context.Context, dev string) (map[string]string, error) {
	out, err := v.must(ctx, "blkid -p -o export "+dev)
	if err != nil {
		return nil, err
	}
	kv := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, val, ok := strings.Cut(line, "="); ok {
			kv[k] = val
		}
	}
	return kv, nil
}

// checkDisks holds the disks to the plan: each disk's label and partitions
// (number, GPT name, start, end, flag) with parted, each boot filesystem and
// swap with blkid, the root (ext4, or ext4 on an md RAID1 of the plan's
// members) with blkid and mdadm, and the tree with lsblk.
func (v *vm) checkDisks(ctx context.Context, p *plan.Plan) error {
	s := p.Storage
	sizes := map[string]int64{}
	for _, disk := range s.Disks {
		label, size, parts, err := v.parted(ctx, disk)
		if err != nil {
			return err
		}
		sizes[disk] = size
		if label != s.Label {
			return fmt.Errorf("%s has a %s label, the plan says %s", disk, label, s.Label)
		}
		var want []plan.Partition
		for _, pp := range s.Partitions {
			if pp.Disk == disk {
				want = append(want, pp)
			}
		}
		if len(parts) != len(want) {
			return fmt.Errorf("%s has %d partitions, the plan %d: %+v", disk, len(parts), len(want), parts)
		}
		for i, w := range want {
			got := parts[i]
			start, ok1 := partedOffset(w.Start, size, false)
			end, ok2 := partedOffset(w.End, size, true)
			if !ok1 || !ok2 {
				return fmt.Errorf("cannot read the plan's bounds %s..%s", w.Start, w.End)
			}
			// With optimal alignment parted ends a "100%" partition on the
			// last 1 MiB boundary before the end's reserved sectors (GPT keeps
			// 33 for its backup): 1 MiB short of a disk whose size is whole
			// MiB (seen here: 5367660543 on a 5 GiB disk).
			endOK := got.End == end || (w.End == "100%" && (got.End+1)%(1<<20) == 0 && got.End < end && end-got.End <= 1<<20+34*512)
			if got.Number != w.Number || got.Start != start || !endOK {
				return fmt.Errorf("%s partition %d is %d..%d, the plan says %d %s..%s (%d..%d)", disk, got.Number, got.Start, got.End, w.Number, w.Start, w.End, start, end)
			}
			if s.Label == "gpt" && got.Name != w.Name {
				return fmt.Errorf("%s partition %d is named %q, the plan says %q", disk, got.Number, got.Name, w.Name)
			}
			if w.Flag != "" && !strings.Contains(got.Flags, w.Flag) {
				return fmt.Errorf("%s partition %d has flags %q, the plan sets %s", disk, got.Number, got.Flags, w.Flag)
			}
		}
	}
	for _, b := range s.Boots {
		kv, err := v.blkid(ctx, b.Partition)
		if err != nil {
			return err
		}
		if kv["TYPE"] != b.FSType || kv["LABEL"] != b.Label {
			return fmt.Errorf("%s holds %s labelled %q, the plan says %s labelled %q", b.Partition, kv["TYPE"], kv["LABEL"], b.FSType, b.Label)
		}
	}
	for _, sw := range s.Swaps {
		kv, err := v.blkid(ctx, sw.Partition)
		if err != nil {
			return err
		}
		if kv["TYPE"] != "swap" || kv["LABEL"] != sw.Label {
			return fmt.Errorf("%s holds %s labelled %q, the plan says swap labelled %q", sw.Partition, kv["TYPE"], kv["LABEL"], sw.Label)
		}
	}
	switch s.Layout {
	case "mdadm":
		for _, m := range s.RAIDMembers {
			kv, err := v.blkid(ctx, m)
			if err != nil {
				return err
			}
			if kv["TYPE"] != "linux_raid_member" {
				return fmt.Errorf("%s holds %q, the plan makes it a member of %s", m, kv["TYPE"], s.RootDevice)
			}
		}
		detail, err := v.must(ctx, "mdadm --detail --export "+s.RootDevice)
		if err != nil {
			return err
		}
		for _, want := range []string{"MD_LEVEL=raid1", fmt.Sprintf("MD_DEVICES=%d", len(s.RAIDMembers))} {
			if !strings.Contains(detail, want+"\n") {
				return fmt.Errorf("mdadm --detail %s does not say %s:\n%s", s.RootDevice, want, detail)
			}
		}
		members, err := v.must(ctx, "for m in "+strings.Join(s.RAIDMembers, " ")+"; do readlink -f $m; done")
		if err != nil {
			return err
		}
		for _, m := range strings.Fields(members) {
			if !strings.Contains(detail, "="+m+"\n") {
				return fmt.Errorf("mdadm --detail %s does not list %s:\n%s", s.RootDevice, m, detail)
			}
		}
		fallthrough
	case "ext4":
		kv, err := v.blkid(ctx, s.RootDevice)
		if err != nil {
			return err
		}
		if kv["TYPE"] != "ext4" || kv["LABEL"] != "root" {
			return fmt.Errorf("%s holds %s labelled %q, the plan says ext4 labelled root", s.RootDevice, kv["TYPE"], kv["LABEL"])
		}
	default:
		return fmt.Errorf("the VM suite does not check the %s layout (no ZFS in Debian's main)", s.Layout)
	}
	tree, err := v.must(ctx, "lsblk -o NAME,SIZE,TYPE,FSTYPE,LABEL,SERIAL "+strings.Join(s.Disks, " "))
	if err != nil {
		return err
	}
	v.t.Logf("the disks after the install:\n%s", tree)
	return nil
}

// checkInstalled mounts the new root read-only and holds what the install
// wrote to the bundle: configuration.nix byte for byte, the generated
// hardware configuration with the plan's filesystems, nixplan-network.nix
// with the public NIC's MAC, the host keys, the log, and the stand-in
// nixos-install's mark.
func (v *vm) checkInstalled(ctx context.Context, p *plan.Plan, bundle, publicMAC string) error {
	conf, err := os.ReadFile(filepath.Join(bundle, "configuration.nix"))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(conf)
	if _, err := v.must(ctx, "mkdir -p /run/check && mount -o ro "+p.Storage.RootDevice+" /run/check"); err != nil {
		return err
	}
	defer v.must(context.Background(), "umount /run/check")
	got, err := v.must(ctx, "sha256sum /run/check/etc/nixos/configuration.nix")
	if err != nil {
		return err
	}
	if !strings.HasPrefix(got, hex.EncodeToString(sum[:])+" ") {
		return fmt.Errorf("the installed configuration.nix is not the bundle's: %s", got)
	}
	hw, err := v.must(ctx, "cat /run/check/etc/nixos/hardware-configuration.nix")
	if err != nil {
		return err
	}
	for _, m := range p.Storage.Mounts {
		if !strings.Contains(hw, fmt.Sprintf("fileSystems.%q =", m.Target)) || !strings.Contains(hw, fmt.Sprintf("fsType = %q;", m.FSType)) {
			return fmt.Errorf("hardware-configuration.nix lacks %s (%s), which the install mounted:\n%s", m.Target, m.FSType, hw)
		}
	}
	netnix, err := v.must(ctx, "cat /run/check/etc/nixos/nixplan-network.nix")
	if err != nil {
		return err
	}
	if !strings.Contains(netnix, publicMAC) {
		return fmt.Errorf("nixplan-network.nix does not name the public NIC's MAC %s:\n%s", publicMAC, netnix)
	}
	if _, err := v.must(ctx, "test -s /run/check/etc/ssh/ssh_host_ed25519_key && test -s /run/check/var/log/nixplan-install.log && test -e /run/check/etc/NIXOS"); err != nil {
		return fmt.Errorf("the installed system lacks its host key, the install log or /etc/NIXOS: %v", err)
	}
	calls, err := v.must(ctx, "cat /var/log/nixplan-vm/calls")
	if err != nil {
		return err
	}
	for _, want := range []string{"nix-channel --add " + p.Nixpkgs.ChannelURL + " nixos", "nix-channel --update", "nixos-install --root /mnt --no-root-passwd"} {
		if !strings.Contains(calls, want) {
			return fmt.Errorf("the stand-in installer was not called with %q; its calls:\n%s", want, calls)
		}
	}
	return nil
}

// stableDisk is the by-id path facts.sh found for the disk with a serial.
func stableDisk(m *machine.Machine, serial string) (string, error) {
	for _, d := range m.Disks {
		if d.Serial == serial {
			if id := d.StableID(); id != "" {
				return id, nil
			}
			return "", fmt.Errorf("facts.sh found no /dev/disk/by-id link for %s (serial %s)", d.Path, serial)
		}
	}
	return "", fmt.Errorf("facts.sh found no disk with serial %s", serial)
}

// scenarioBIOS: a BIOS server with three SATA disks with serials (two in
// the spec, an mdadm RAID1; the third not in the spec) and two NICs, the
// public address (static IPv4 and IPv6) on the second. Its boots also carry
// the faults: a spec whose disk serial differs and a spec whose MAC is the
// other NIC's stop both scripts with every disk unchanged.
func scenarioBIOS(t *testing.T, imgs *vmImages) {
	const (
		mac1, mac2 = "0c:c4:7a:aa:bb:01", "0c:c4:7a:aa:bb:02"
		addr4, gw4 = "203.0.113.10", "203.0.113.254"
		addr6, gw6 = "2001:db8:8:e79d::1", "fe80::1"
		tag        = "nixos-22.11"
	)
	v := newVM(t, imgs, vmConfig{
		Name: "bios", MemMiB: 3072,
		Disks: []vmDisk{
			{Bus: "sata", Serial: "WD-WCC4N0000001", Size: 5 * gib},
			{Bus: "sata", Serial: "WD-WCC4N0000002", Size: 5 * gib},
			{Bus: "sata", Serial: "WD-WCC4N0000003", Size: 5 * gib},
		},
		NICs: []vmNIC{
			{Model: "e1000", MAC: mac1},
			{Model: "e1000", MAC: mac2, Net: "203.0.113.0/24", Host: gw4, Forward: true, GuestAddr: addr4},
		},
		Cmdline: fmt.Sprintf("ip=%s::%s:255.255.255.0::eth1:none ip=[%s]::[%s]:64::eth1:none", addr4, gw4, addr6, gw6),
	})
	before, err := v.diskHashes()
	if err != nil {
		t.Fatal(err)
	}
	v.bootRescue()

	facts := v.rescueFacts()

	v.phase("the network stays inside QEMU", commandLimit, func(ctx context.Context) error {
		return v.checkIsolated(ctx, gw4)
	})

	var spec, badSerial, badNIC string
	var p *plan.Plan
	var bundle, bundleSerial, bundleNIC string
	v.phase("init, check and render on the laptop", commandLimit, func(ctx context.Context) error {
		text, err := v.initSpec(facts)
		if err != nil {
			return err
		}
		m, err := machine.Load(facts)
		if err != nil {
			return err
		}
		d1, err := stableDisk(m, "WD-WCC4N0000001")
		if err != nil {
			return err
		}
		d2, err := stableDisk(m, "WD-WCC4N0000002")
		if err != nil {
			return err
		}
		base := func(m map[string]any) {
			h := table(m, "host")
			h["name"] = "vm-bios"
			h["nixos"] = "24.05"
			table(m, "kexec")["url"] = plan.KexecURL(tag)
			n := table(m, "network")
			n["ipv6"] = map[string]any{"address": addr6, "prefix": 64, "gateway": gw6}
			d := table(m, "disks")
			delete(d, "pool")
			delete(d, "topology") // init's ZFS vdev layout, like pool
			d["layout"] = "mdadm"
			d["boot"] = "all"
			d["devices"] = []string{d1, d2}
			d["identity"] = []map[string]any{
				{"device": d1, "serial": "WD-WCC4N0000001", "size_bytes": 5 * gib},
				{"device": d2, "serial": "WD-WCC4N0000002", "size_bytes": 5 * gib},
			}
		}
		spec = filepath.Join(v.logDir, "host.toml")
		editSpec(t, text, spec, base)
		badSerial = filepath.Join(v.logDir, "host-wrong-serial.toml")
		editSpec(t, text, badSerial, func(m map[string]any) {
			base(m)
			table(m, "disks")["identity"].([]map[string]any)[0]["serial"] = "WD-WCC4N0000009"
		})
		badNIC = filepath.Join(v.logDir, "host-other-nic.toml")
		editSpec(t, text, badNIC, func(m map[string]any) {
			base(m)
			table(m, "network")["mac"] = mac1
		})
		if bundle, err = v.render(spec, facts, imgs.Tarballs[tag], "bundle"); err != nil {
			return err
		}
		// The faults are the machine's, not the laptop's: render them
		// without the facts (check --facts refuses both, rightly).
		for _, f := range []struct{ spec, want string }{{badSerial, "WD-WCC4N0000009"}, {badNIC, mac1}} {
			out, stderr, code := nixplanCLI("check", "--facts", facts, f.spec)
			if code != 1 || !strings.Contains(stderr, f.want) {
				return fmt.Errorf("check --facts should refuse %s naming %s: exit %d\n%s%s", f.spec, f.want, code, out, stderr)
			}
		}
		dir := func(name, spec string) (string, error) {
			d := filepath.Join(v.dir, name)
			if _, stderr, code := nixplanCLI("render", spec, "-o", d); code != 0 {
				return "", fmt.Errorf("nixplan render %s: exit %d\n%s", spec, code, stderr)
			}
			return d, nil
		}
		if bundleSerial, err = dir("bundle-wrong-serial", badSerial); err != nil {
			return err
		}
		if bundleNIC, err = dir("bundle-other-nic", badNIC); err != nil {
			return err
		}
		p = loadPlan(t, spec)
		return nil
	})

	faults := []struct{ dir, bundle, want string }{
		{"/root/wrong-serial", bundleSerial, "WD-WCC4N0000009"},
		{"/root/other-nic", bundleNIC, mac1},
	}
	v.phase("faults in the rescue system", bootstrapLimit, func(ctx context.Context) error {
		for _, f := range faults {
			if _, err := v.must(ctx, "mkdir -p "+f.dir); err != nil {
				return err
			}
			if err := v.scp(ctx, f.dir+"/", bundleFiles(f.bundle, p, false)...); err != nil {
				return err
			}
			if err := v.expectStop(ctx, "bash -p "+f.dir+"/rescue-bootstrap.sh", "", f.want, before); err != nil {
				return err
			}
		}
		_, err := v.must(ctx, "test ! -e /root/kexec")
		return err
	})

	v.runBootstrap(bundle, p)

	v.phase("the installer: keys, network, tools", commandLimit, func(ctx context.Context) error {
		link, err := v.must(ctx, "ip -o link")
		if err != nil {
			return err
		}
		addrs, err := v.must(ctx, "ip -o addr")
		if err != nil {
			return err
		}
		routes, err := v.must(ctx, "ip route; ip -6 route")
		if err != nil {
			return err
		}
		var iface string
		for _, line := range strings.Split(link, "\n") {
			if strings.Contains(line, mac2) {
				iface = strings.TrimSuffix(strings.Fields(line)[1], ":")
			}
		}
		for _, want := range []string{iface + "    inet " + addr4 + "/24", iface + "    inet6 " + addr6 + "/64"} {
			if iface == "" || !strings.Contains(addrs, want) {
				return fmt.Errorf("the installer did not restore %q on the NIC with MAC %s:\n%s\n%s", want, mac2, link, addrs)
			}
		}
		for _, want := range []string{"default via " + gw4 + " dev " + iface, "default via " + gw6 + " dev " + iface} {
			if !strings.Contains(routes, want) {
				return fmt.Errorf("the installer did not restore the route %q:\n%s", want, routes)
			}
		}
		return v.checkStandIn(ctx, p.Kexec.Image)
	})

	v.phase("faults in the installer", installLimit, func(ctx context.Context) error {
		for _, f := range faults {
			if _, err := v.must(ctx, "mkdir -p "+f.dir); err != nil {
				return err
			}
			if err := v.scp(ctx, f.dir+"/", bundleFiles(f.bundle, p, true)...); err != nil {
				return err
			}
			if err := v.expectStop(ctx, "bash -p "+f.dir+"/kexec-install.sh", "vm-bios\n", f.want, before); err != nil {
				return err
			}
		}
		return nil
	})

	v.runInstall(bundle, p)

	v.phase("check the disks against the plan", commandLimit, func(ctx context.Context) error {
		if err := v.checkDisks(ctx, p); err != nil {
			return err
		}
		return v.checkInstalled(ctx, p, bundle, mac2)
	})

	v.phase("the disk not in the spec is unchanged", commandLimit, func(ctx context.Context) error {
		v.stop()
		after, err := v.diskHashes()
		if err != nil {
			return err
		}
		if after[2] != before[2] {
			return fmt.Errorf("the third disk (WD-WCC4N0000003, not in the spec) changed")
		}
		if after[0] == before[0] || after[1] == before[1] {
			return fmt.Errorf("the spec's disks did not change: the hashes cannot tell")
		}
		return nil
	})
	t.Logf("phases: %s", strings.Join(v.phases, ", "))
}

// scenarioUEFI: a UEFI server (OVMF) with two NVMe disks that hold the
// provider's default install, an md RAID1 with an EFI system partition on
// each disk. With disks.clear_existing the installer's real mdadm stops the
// array the installer assembled at boot and clears its members; the new
// layout is mdadm with an EFI system partition on each disk, mounted for
// real.
func scenarioUEFI(t *testing.T, imgs *vmImages) {
	const (
		mac        = "52:54:00:5e:00:07"
		addr4, gw4 = "198.51.100.7", "198.51.100.1"
		tag        = "nixos-22.11"
		s1, s2     = "S4EWNX0R000001", "S4EWNX0R000002"
		oldArray   = "/dev/md2"
		oldInstall = "set -e; for d in /dev/nvme0n1 /dev/nvme1n1; do parted --script $d -- mklabel gpt mkpart esp fat32 1MiB 512MiB set 1 esp on mkpart root ext4 512MiB 100% set 2 raid on; done; udevadm settle; mdadm --create " + oldArray + " --run --assume-clean --level=1 --metadata=1.2 --raid-devices=2 /dev/nvme0n1p2 /dev/nvme1n1p2; mkfs.ext4 -q -L root " + oldArray + "; mkfs.vfat -n EFI_SYSPART /dev/nvme0n1p1; mkfs.vfat -n EFI_SYSPART /dev/nvme1n1p1; mdadm --detail --export " + oldArray
	)
	v := newVM(t, imgs, vmConfig{
		Name: "uefi", UEFI: true, MemMiB: 3072,
		Disks:   []vmDisk{{Bus: "nvme", Serial: s1, Size: 5 * gib}, {Bus: "nvme", Serial: s2, Size: 5 * gib}},
		NICs:    []vmNIC{{Model: "virtio-net-pci", MAC: mac, Net: "198.51.100.0/24", Host: gw4, Forward: true, GuestAddr: addr4}},
		Cmdline: fmt.Sprintf("ip=%s::%s:255.255.255.0::eth0:none", addr4, gw4),
	})
	v.bootRescue()

	var oldUUID string
	v.phase("the provider's old install: md RAID1 and EFI system partitions", commandLimit, func(ctx context.Context) error {
		out, err := v.must(ctx, oldInstall)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(out, "\n") {
			if u, ok := strings.CutPrefix(line, "MD_UUID="); ok {
				oldUUID = u
			}
		}
		if oldUUID == "" {
			return fmt.Errorf("mdadm --detail --export %s printed no MD_UUID:\n%s", oldArray, out)
		}
		return nil
	})

	facts := v.rescueFacts()
	var spec, bundle string
	var p *plan.Plan
	v.phase("init, check and render on the laptop", commandLimit, func(ctx context.Context) error {
		m, err := machine.Load(facts)
		if err != nil {
			return err
		}
		if m.Firmware.Mode != machine.FirmwareUEFI || len(m.MDArrays) != 1 {
			return fmt.Errorf("facts.sh says firmware %s and %d md arrays; OVMF and the old RAID1 should show", m.Firmware.Mode, len(m.MDArrays))
		}
		// The disks hold the provider's install: init says so and sets
		// clear_existing, naming the array the install will stop and erase.
		text, err := v.initSpec(facts)
		if err != nil {
			return err
		}
		if !strings.Contains(text, "\nclear_existing = true\n") || !strings.Contains(text, "md2 (raid1 on nvme0n1p2, nvme1n1p2)") {
			return fmt.Errorf("init --facts should set clear_existing and name md2 on a machine holding it:\n%s", text)
		}
		d1, err := stableDisk(m, s1)
		if err != nil {
			return err
		}
		d2, err := stableDisk(m, s2)
		if err != nil {
			return err
		}
		spec = filepath.Join(v.logDir, "host.toml")
		editSpec(t, text, spec, func(m map[string]any) {
			h := table(m, "host")
			h["name"] = "vm-uefi"
			h["nixos"] = "24.05"
			table(m, "kexec")["url"] = plan.KexecURL(tag)
			d := table(m, "disks")
			delete(d, "pool")
			delete(d, "topology") // init's ZFS vdev layout, like pool
			d["layout"] = "mdadm"
			d["boot"] = "all"
			d["clear_existing"] = true
			d["devices"] = []string{d1, d2}
			d["identity"] = []map[string]any{
				{"device": d1, "serial": s1, "size_bytes": 5 * gib},
				{"device": d2, "serial": s2, "size_bytes": 5 * gib},
			}
		})
		bundle, err = v.render(spec, facts, imgs.Tarballs[tag], "bundle")
		p = loadPlan(t, spec)
		return err
	})

	v.runBootstrap(bundle, p)

	v.phase("the installer: UEFI, the old array assembled", commandLimit, func(ctx context.Context) error {
		if _, err := v.must(ctx, "test -d /sys/firmware/efi"); err != nil {
			return fmt.Errorf("the installer did not boot UEFI after the kexec: %v", err)
		}
		mdstat, err := v.must(ctx, "cat /proc/mdstat")
		if err != nil {
			return err
		}
		if !strings.Contains(mdstat, "nvme0n1p2") || !strings.Contains(mdstat, "active") {
			return fmt.Errorf("the installer's udev and mdadm did not assemble the old array:\n%s", mdstat)
		}
		return v.checkStandIn(ctx, p.Kexec.Image)
	})

	v.runInstall(bundle, p)

	v.phase("check the disks against the plan", commandLimit, func(ctx context.Context) error {
		if err := v.checkDisks(ctx, p); err != nil {
			return err
		}
		for _, m := range p.Storage.RAIDMembers {
			out, err := v.must(ctx, "mdadm --examine --export "+m)
			if err != nil {
				return err
			}
			if strings.Contains(out, oldUUID) {
				return fmt.Errorf("%s still belongs to the old array %s:\n%s", m, oldUUID, out)
			}
		}
		return v.checkInstalled(ctx, p, bundle, mac)
	})

	// A repair in a fresh installer boot finds the array stopped: the mount
	// phase assembles it with the real mdadm, by the name mdadm --create gave
	// it (HOMEHOST:root), and mounts it.
	md := p.Storage.RAIDDevice
	v.phase("a repair assembles the array by its name: --only mount", installLimit, func(ctx context.Context) error {
		if _, err := v.must(ctx, "mdadm --stop "+md+" && ! test -e "+md); err != nil {
			return err
		}
		r := v.ssh(ctx, "", "bash -p /root/kexec-install.sh --only mount")
		if r.Exit != 0 {
			return fmt.Errorf("kexec-install.sh --only mount: exit %d\n%s%s", r.Exit, lastLines(r.Stdout, 40), r.Stderr)
		}
		detail, err := v.must(ctx, "mdadm --detail --export "+md+" && findmnt -n -o SOURCE /mnt && umount -R /mnt")
		if err != nil {
			return err
		}
		if !regexp.MustCompile(`(?m)^MD_NAME=[^:\n]+:root$`).MatchString(detail) {
			return fmt.Errorf("the assembled %s is not named HOST:root:\n%s", md, detail)
		}
		return nil
	})
	// The same partitions holding another array (another install's, named
	// otherwise): the repair must not assemble it, nor mount anything.
	v.phase("a repair leaves a foreign array on the members alone", installLimit, func(ctx context.Context) error {
		members := strings.Join(p.Storage.RAIDMembers, " ")
		if _, err := v.must(ctx, "mdadm --stop "+md+" && mdadm --create /dev/md/foreign --run --assume-clean --level=1 --metadata=1.2 --raid-devices=2 --name=md2 "+members+" && mdadm --stop /dev/md/foreign"); err != nil {
			return err
		}
		r := v.ssh(ctx, "", "bash -p /root/kexec-install.sh --only mount")
		if r.Exit != 1 || !strings.Contains(r.Stdout+r.Stderr, "mdadm --assemble "+md+" --name=root") {
			return fmt.Errorf("kexec-install.sh --only mount should stop at the assemble of a foreign array: exit %d\n%s%s", r.Exit, lastLines(r.Stdout, 40), r.Stderr)
		}
		// Exit 1: neither is there (an ssh failure is no answer).
		if r := v.ssh(ctx, "", "findmnt /mnt || test -e "+md); r.Exit != 1 {
			return fmt.Errorf("the repair assembled or mounted something from a foreign array, or the check did not run: exit %d\n%s%s", r.Exit, r.Stdout, r.Stderr)
		}
		return nil
	})
	t.Logf("phases: %s", strings.Join(v.phases, ", "))
}

// bootVPS boots a small VPS into the rescue system: one virtio disk without
// a serial and a virtio NIC that gets addr by DHCP.
func bootVPS(t *testing.T, imgs *vmImages, name, mac, addr string) *vm {
	v := newVM(t, imgs, vmConfig{
		Name: name, MemMiB: 3072,
		Disks: []vmDisk{{Bus: "virtio", Size: 5 * gib}},
		NICs:  []vmNIC{{Model: "virtio-net-pci", MAC: mac, Net: "192.0.2.0/24", Host: "192.0.2.1", DHCPStart: addr, Forward: true, GuestAddr: addr}},
		// QEMU's DHCP server sends no router with restrict=on (libslirp
		// src/bootp.c: RFC1533_GATEWAY and RFC1533_DNS only when
		// !slirp->restricted), where a provider's sends one: the gateway
		// comes from the command line, with the address it is reached from
		// (rd.route= with ip=eth0:dhcp left the rescue system without a
		// default route here). DHCP still runs on the NIC.
		Cmdline: "ip=" + addr + "::192.0.2.1:255.255.255.0::eth0:dhcp",
	})
	v.bootRescue()
	return v
}

// rescueFacts runs facts.sh in the rescue system, as a phase, and returns
// the path of what it printed.
func (v *vm) rescueFacts() string {
	var facts string
	v.phase("facts.sh in the rescue system", commandLimit, func(ctx context.Context) error {
		var err error
		facts, err = v.collectFacts(ctx, "facts-rescue.json")
		return err
	})
	return facts
}

// scenarioVirtio: a small VPS: one virtio disk without a serial (so no
// /dev/disk/by-id link), DHCP, ext4, and the nixos-24.05 image, whose
// kexec/run copies the machine id and whose restore asks DHCP for the same
// lease. The operator's laptop runs the bundle's install.sh, the one command
// of the README, from the rescue system to the installed disk.
func scenarioVirtio(t *testing.T, imgs *vmImages) {
	const (
		mac  = "52:54:00:12:34:56"
		addr = "192.0.2.20"
		tag  = "nixos-24.05"
	)
	v := bootVPS(t, imgs, "virtio", mac, addr)
	facts := v.rescueFacts()
	var spec, bundle string
	var p *plan.Plan
	var machineID string
	v.phase("init, check and render on the laptop", commandLimit, func(ctx context.Context) error {
		m, err := machine.Load(facts)
		if err != nil {
			return err
		}
		if len(m.Disks) != 1 || len(m.Disks[0].ByID) != 0 || m.Disks[0].Serial != "" {
			return fmt.Errorf("facts.sh should find one disk without serial or by-id link: %+v", m.Disks)
		}
		text, err := v.initSpec(facts)
		if err != nil {
			return err
		}
		spec = filepath.Join(v.logDir, "host.toml")
		editSpec(t, text, spec, func(m map[string]any) {
			table(m, "host")["name"] = "vm-vps"
			n := table(m, "network")
			n["ipv4"] = map[string]any{"dhcp": true, "address": addr}
			d := table(m, "disks")
			delete(d, "pool")
			delete(d, "topology") // init's ZFS vdev layout, like pool
			d["layout"] = "ext4"
		})
		p = loadPlan(t, spec)
		if p.Kexec.Tag != tag || p.Storage.Disks[0] != "/dev/vda" {
			return fmt.Errorf("init should propose the %s image and /dev/vda: %s, %v", tag, p.Kexec.Tag, p.Storage.Disks)
		}
		bundle, err = v.render(spec, facts, imgs.Tarballs[tag], "bundle")
		return err
	})
	v.phase("the rescue system's machine id", commandLimit, func(ctx context.Context) error {
		var err error
		machineID, err = v.must(ctx, "cat /etc/machine-id")
		return err
	})

	// The operator's one command: install.sh drives every stage from the
	// laptop, pinning each stage's host key, up to the console toggle,
	// which a VM cannot make: no answer there stops it, as it should.
	v.phase("install.sh from the laptop, up to the boot toggle", bootstrapLimit+kexecLimit+installLimit, func(ctx context.Context) error {
		out, err := v.runDriver(ctx, bundle, filepath.Dir(spec), "vm-vps\n")
		if err == nil {
			return fmt.Errorf("install.sh went past the boot toggle that nobody confirmed:\n%s", lastLines(out, 40))
		}
		for _, want := range []string{
			"==> rescue", "facts.json saved", "==> bootstrap", "kexec tarball sha256 matches the spec",
			"==> installer", "NixOS is installed on vm-vps", "==> reboot",
			"install.sh: error in phase reboot: the boot setting was not confirmed", "sh install.sh --from reboot asks again",
		} {
			if !strings.Contains(out, want) {
				return fmt.Errorf("install.sh did not print %q:\n%s", want, lastLines(out, 60))
			}
		}
		if strings.Contains(out, "nixplan check was not run") {
			return fmt.Errorf("install.sh did not run nixplan check --facts:\n%s", lastLines(out, 60))
		}
		return v.checkDriverState(bundle, "vm-vps")
	})

	v.phase("the installer: DHCP lease, machine id", commandLimit, func(ctx context.Context) error {
		addrs, err := v.must(ctx, "ip -o -4 addr")
		if err != nil {
			return err
		}
		if !strings.Contains(addrs, "inet "+addr+"/") {
			return fmt.Errorf("the installer did not get %s again by DHCP:\n%s", addr, addrs)
		}
		id, err := v.must(ctx, "cat /etc/machine-id")
		if err != nil {
			return err
		}
		if id != machineID {
			return fmt.Errorf("the installer's machine id %q is not the rescue system's %q (the %s kexec/run copies it)", id, machineID, tag)
		}
		return v.checkStandIn(ctx, p.Kexec.Image)
	})

	v.phase("check the disk against the plan", commandLimit, func(ctx context.Context) error {
		if err := v.checkDisks(ctx, p); err != nil {
			return err
		}
		if err := v.checkInstalled(ctx, p, bundle, mac); err != nil {
			return err
		}
		return v.checkPinnedInstalledKey(ctx, p.Storage.RootDevice, bundle, "vm-vps")
	})
	t.Logf("phases: %s", strings.Join(v.phases, ", "))
}
