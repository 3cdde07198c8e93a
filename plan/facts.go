package plan

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/nixplan/nixplan/plan/machine"
	"github.com/nixplan/nixplan/templates"
)

// FactsFile is the name of the facts script in a bundle.
const FactsFile = "facts.sh"

// FactsScript returns facts.sh, the POSIX sh script that prints a machine
// description (see [Machine]) and changes nothing on the machine.
func FactsScript() string { return templates.FactsScript }

// Spec keys that check --facts and init --facts name in their messages.
const (
	keyNetworkMAC     = "network.mac"
	keyDiskIdentity   = "disks.identity"
	keyDisksClearBusy = "disks.clear_existing"
	keyHostFirmware   = "host.firmware"
)

const (
	tib2            = int64(1) << 41 // 2 TiB
	mib             = int64(1) << 20
	minPoolBytes    = int64(4) << 30 // a system and a few generations
	msdosMaxSectors = int64(1) << 32 // an msdos label counts sectors in 32 bits
)

// specIdentity returns the serial and size the spec's [[disks.identity]]
// gives for a device ("" and 0 when it gives none), and the entry's index.
func specIdentity(spec *Spec, device string) (serial string, size int64, index int) {
	for i, id := range spec.Disks.Identity {
		if id.Device == device {
			return id.Serial, id.SizeBytes, i
		}
	}
	return "", 0, -1
}

// CheckMachine compares a validated spec with the machine it is for, as
// facts.sh described it, and returns every mismatch: the disks exist with
// the spec's identity, the label fits them and nothing holds them, the
// address sits on an interface of this machine with the spec's gateway
// (unless DHCP gives it), the firmware and memory suit the installer image,
// and root's authorized_keys holds one of the spec's keys. Problems name the spec file and the spec key;
// their message names both the spec's value and the machine's.
func CheckMachine(spec *Spec, p *Plan, m *machine.Machine) Problems {
	c := &machineCheck{ps: &problems{file: spec.File}, spec: spec, plan: p, m: m, facts: fmt.Sprint(clip(m.File))}
	if c.facts == "" {
		c.facts = "the machine"
	}
	c.image()
	c.firmware()
	c.disks()
	c.network()
	c.keys()
	c.tools()
	return c.ps.list
}

type machineCheck struct {
	ps    *problems
	spec  *Spec
	plan  *Plan
	m     *machine.Machine
	facts string // the machine description's file name, for messages
}

func (c *machineCheck) image() {
	k := c.plan.Kexec
	if c.m.Arch != "" && strings.Contains(k.Tarball, "x86_64") && c.m.Arch != "x86_64" {
		c.ps.add("kexec.url", "use the installer built for "+fmt.Sprint(clip(c.m.Arch)),
			"the image is built for x86_64 and %s says this machine is %s", c.facts, clip(c.m.Arch))
	}
	if !k.ImageKnown || k.Image.MinRAMMiB == 0 {
		return
	}
	need := int64(k.Image.MinRAMMiB) * mib
	if c.m.RAMBytes < need {
		hint := "a server with more memory"
		for _, tag := range imagesByRAM() {
			img := images[tag]
			if ok, unsure, _ := img.CanInstall(c.plan.Release); ok && !unsure && int64(img.MinRAMMiB)*mib <= c.m.RAMBytes {
				hint = fmt.Sprintf("the %s image needs %d MiB: url = %q", tag, img.MinRAMMiB, KexecURL(tag))
				break
			}
		}
		c.ps.add("kexec.url", hint, "the %s image needs %d MiB of memory and %s has %d MiB",
			k.Tag, k.Image.MinRAMMiB, c.facts, c.m.RAMBytes/mib)
	}
}

// imagesByRAM lists the known images, the least hungry first.
func imagesByRAM() []string {
	var tags []string
	for tag := range images {
		tags = append(tags, tag)
	}
	sort.Slice(tags, func(i, j int) bool {
		if images[tags[i]].MinRAMMiB != images[tags[j]].MinRAMMiB {
			return images[tags[i]].MinRAMMiB < images[tags[j]].MinRAMMiB
		}
		return tags[i] > tags[j]
	})
	return tags
}

func (c *machineCheck) firmware() {
	fw := c.m.Firmware
	want := c.plan.Firmware
	key := keyHostFirmware
	if fw.Mode != want {
		hint := fmt.Sprintf("firmware = %q, or switch the server's boot mode in its firmware setup or the provider's panel", clip(fw.Mode))
		if want == machine.FirmwareBIOS && fw.Mode == machine.FirmwareUEFI {
			hint = `set host.firmware = "uefi" (GRUB on an EFI system partition), or switch the server to legacy (CSM) boot`
		}
		c.ps.add(key, hint, "the spec installs a boot loader for %s and %s says this machine booted %s",
			strings.ToUpper(want), c.facts, strings.ToUpper(fmt.Sprint(clip(fw.Mode))))
	}
	if fw.SecureBoot != nil && *fw.SecureBoot {
		c.ps.add("kexec.url", "turn Secure Boot off in the firmware setup (over the KVM), then collect the facts again",
			"%s says Secure Boot is on: kexec_load fails with \"Permission denied\" and the installer cannot start", c.facts)
	}
}

func (c *machineCheck) disks() {
	installDisks := c.m.InstallDisks()
	inSpec := map[string]bool{}
	first := map[string]int{} // a disk's kernel name → the first device naming it
	for i, dev := range c.plan.Storage.Disks {
		key := fmt.Sprintf("disks.devices[%d]", i)
		d := c.m.Disk(dev)
		if d == nil {
			c.ps.add(key, c.diskList(), "%s is not a disk of this machine (%s)", dev, c.facts)
			continue
		}
		if j, dup := first[d.Name]; dup {
			c.ps.add(key, "list each disk once", "%s is %s on %s, and so is disks.devices[%d] (%s): the same disk twice",
				dev, clip(d.Path), c.facts, j, c.plan.Storage.Disks[j])
			continue
		}
		first[d.Name] = i
		inSpec[d.Name] = true
		c.identity(i, dev, d)
		switch {
		case d.Type != "disk":
			c.ps.warn(key, "", "%s is a %s device on %s, not a disk", dev, clip(d.Type), c.facts)
		case d.ReadOnly:
			c.ps.add(key, "", "%s is read-only on %s", dev, c.facts)
		case d.Removable:
			c.ps.warn(key, "", "%s is a removable disk on %s (a USB stick or a virtual CD?)", dev, c.facts)
		}
		if strings.HasPrefix(dev, "/dev/") && !strings.HasPrefix(dev, "/dev/disk/") && len(installDisks) > 1 {
			hint := "name the disk by a link that stays the same"
			if id := d.StableID(); id != "" {
				hint = fmt.Sprintf("write %q", id)
			}
			c.ps.warn(key, hint, "%s names a disk by the order the kernel found it, and this machine has %d disks: in the installer it may be another one", dev, len(installDisks))
		}
		if i == 0 {
			c.label(d)
		}
		c.busy(key, dev, d)
	}
	// md arrays that span a disk of the spec and a disk that is not: the
	// other half keeps its superblocks and is assembled again at boot.
	for _, md := range c.m.MDArrays {
		var ours, others []string
		for _, member := range md.Members {
			if disk := c.m.DiskOf(member); disk != nil {
				if inSpec[disk.Name] {
					ours = append(ours, member)
				} else {
					others = append(others, member)
				}
			}
		}
		if len(ours) > 0 && len(others) > 0 {
			c.ps.warn("disks.devices", "wipe the other members too (mdadm --zero-superblock), or the installed system may find the old array",
				"%s (%s) is built on %s and %s; the install wipes only %s, so %s keeps the old array's superblock",
				clip(md.Name), clip(md.Level), clip(strings.Join(ours, ", ")), clip(strings.Join(others, ", ")), clip(strings.Join(ours, ", ")), clip(strings.Join(others, ", ")))
		}
	}
}

// diskList is a hint that lists the machine's disks by their best path.
func (c *machineCheck) diskList() string {
	var names []string
	for _, d := range c.m.InstallDisks() {
		path := d.StableID()
		if path == "" {
			path = d.Path
		}
		names = append(names, fmt.Sprint(clip(path+" "+strings.TrimPrefix(d.Identity(), d.Name+" "))))
	}
	if len(names) == 0 {
		return "the description lists no disk nixplan could install on"
	}
	return "its disks: " + strings.Join(names, "; ")
}

// identity compares the serial and size the spec gives for disk i, if any,
// with the disk's.
func (c *machineCheck) identity(i int, dev string, d *machine.Disk) {
	serial, size, n := specIdentity(c.spec, dev)
	key := fmt.Sprintf("%s[%d]", keyDiskIdentity, n)
	if serial != "" && serial != d.Serial {
		c.ps.add(key+".serial", c.diskList(),
			"the spec says %s has serial %q and %s says its serial is %q", dev, serial, c.facts, clip(orUnknown(d.Serial)))
	}
	if size != 0 && size != d.SizeBytes {
		c.ps.add(key+".size_bytes", c.diskList(),
			"the spec says %s has %d bytes and %s says it has %d (%s)", dev, size, c.facts, d.SizeBytes, machine.FormatBytes(d.SizeBytes))
	}
}

// label checks that the boot disk's partition table can address all of it
// and that the pool gets room.
func (c *machineCheck) label(d *machine.Disk) {
	s := c.plan.Storage
	sector := d.LogicalSectorBytes
	if sector == 0 {
		sector = 512
	}
	if s.Label == "msdos" && d.SizeBytes > msdosMaxSectors*sector {
		c.ps.add("disks.label", `label = "gpt" (nixplan adds the 1 MiB bios_grub partition GRUB needs on BIOS)`,
			"an msdos label addresses at most %s and %s says %s is %s (%d bytes)",
			FormatTiB(msdosMaxSectors*sector), c.facts, s.BootDisk, machine.FormatBytes(d.SizeBytes), d.SizeBytes)
	}
	used := int64(s.BootSizeMiB+2) * mib
	if d.SizeBytes < used+minPoolBytes {
		c.ps.add("disks.boot_size", "a smaller boot_size, or a bigger disk",
			"%s is %s; after /boot (%d MiB) less than %d GiB is left for the pool", s.BootDisk, machine.FormatBytes(d.SizeBytes), s.BootSizeMiB, minPoolBytes>>30)
	}
}

// FormatTiB prints a power-of-two size in TiB.
func FormatTiB(n int64) string { return fmt.Sprintf("%d TiB", n>>40) }

// busy refuses a disk that an md array or an LVM volume holds (the
// installer assembles them again, so the wipe would fail) unless the spec
// says clearing it is intended, and a disk mounted in the installer itself.
func (c *machineCheck) busy(key, dev string, d *machine.Disk) {
	if why := d.HeldBy(); len(why) > 0 {
		msg := fmt.Sprintf("%s is busy on %s: %s", dev, c.facts, clip(strings.Join(why, "; ")))
		if c.spec.Disks.ClearExisting {
			c.ps.warn(key, "", "%s; the spec says to clear it", msg)
		} else {
			c.ps.add(key, "if wiping it is intended, set "+keyDisksClearBusy+" = true", "%s", msg)
		}
	}
	if why := d.MountedAt(); len(why) > 0 {
		if c.m.OS.ID == "nixos" {
			c.ps.add(key, "unmount it in the installer", "%s is in use on %s: %s", dev, c.facts, clip(strings.Join(why, "; ")))
		} else {
			c.ps.warn(key, "the kexec ends these mounts; copy off anything you still need first",
				"%s is in use on %s: %s", dev, c.facts, clip(strings.Join(why, "; ")))
		}
	}
	if len(d.HeldBy()) == 0 {
		if member := d.Memberships(); len(member) > 0 {
			c.ps.warn(key, "", "%s holds old metadata that the install wipes: %s", dev, clip(strings.Join(member, "; ")))
		}
	}
}

func (c *machineCheck) network() {
	v4 := c.plan.Network.IPv4
	addr, err := netip.ParseAddr(v4.Address)
	if err != nil {
		return
	}
	ifc, a := c.m.InterfaceWith(addr)
	if ifc == nil {
		c.ps.add("network.ipv4.address", "check that the facts come from the right server, and the address in the provider's panel",
			"%s is not on any interface of this machine (%s has %s)", addr, c.facts, c.addressList())
		return
	}
	// With DHCP the lease gives the prefix and the gateway; the spec holds
	// only the address it expects.
	if !v4.DHCP {
		if a.Prefix != v4.Prefix {
			c.ps.warn("network.ipv4.prefix", fmt.Sprintf("prefix = %d, if the rescue system's network is the real one", a.Prefix),
				"the spec says /%d and %s has %s/%d on %s", v4.Prefix, c.facts, addr, a.Prefix, clip(ifc.Name))
		}
		if gw, ok := c.m.DefaultGateway(); ok && gw.Gateway != "" && gw.Gateway != v4.Gateway {
			c.ps.add("network.ipv4.gateway", fmt.Sprintf("gateway = %q", clip(gw.Gateway)),
				"the spec says %s and %s routes by default via %s (on %s)", v4.Gateway, c.facts, clip(gw.Gateway), clip(gw.Interface))
		}
	}

	// The initrd loads the spec's driver for the unlock: it must be the
	// driver of the NIC that holds the address. The facts come from the
	// rescue system, whose kernel may bind another driver than NixOS's does
	// (an out-of-tree r8125 where NixOS binds r8169): a warning, and the
	// stop is kexec-install.sh's check_nic_driver, which reads what the
	// installer's NixOS kernel binds before anything is erased.
	if e := c.plan.Encryption; e != nil && ifc.Driver != "" && ifc.Driver != e.NICDriver {
		c.ps.warn("encryption.nic_driver", fmt.Sprintf("nic_driver = %q, unless NixOS's kernel binds %s there", clip(ifc.Driver), e.NICDriver),
			"the spec loads %s in the initrd and %s has %s on %s, to which the rescue system's kernel binds %s; kexec-install.sh checks the driver the installer's kernel binds before anything is erased and stops if it is not %s",
			e.NICDriver, c.facts, addr, clip(ifc.Name), clip(ifc.Driver), e.NICDriver)
	}
	if mac := c.spec.Network.MAC; mac != "" {
		if !strings.EqualFold(mac, ifc.MAC) {
			c.ps.add(keyNetworkMAC, fmt.Sprintf("mac = %q", clip(ifc.MAC)),
				"the spec pins the interface with MAC %s and %s has %s on %s, MAC %s", mac, c.facts, addr, clip(ifc.Name), clip(ifc.MAC))
		}
		return
	}
	// Without a MAC, compare names where they are comparable: a kernel name
	// such as eth0 in the spec turns predictable names off, so it matches a
	// kernel name in rescue; a predictable name (enp3s0) matches one in rescue.
	name := c.plan.Network.Interface
	sameKind := ethRE.MatchString(name) == ethRE.MatchString(ifc.Name)
	phys := c.m.PhysicalInterfaces()
	hint := fmt.Sprintf("pin it: mac = %q", clip(ifc.MAC))
	switch {
	case sameKind && name != ifc.Name:
		c.ps.add("network.interface", fmt.Sprintf("interface = %q; better, %s", clip(ifc.Name), hint),
			"the spec puts the address on %s and %s has it on %s (MAC %s)", name, c.facts, clip(ifc.Name), clip(ifc.MAC))
	case len(phys) > 1:
		var cards []string
		for _, p := range phys {
			cards = append(cards, fmt.Sprint(clip(p.Name+" "+p.MAC)))
		}
		c.ps.warn("network.interface", hint,
			"this machine has %d network cards (%s) and the address is on %s; the name %s may mean another card in the installed system",
			len(phys), clip(strings.Join(cards, ", ")), clip(ifc.Name), name)
	}
}

func (c *machineCheck) addressList() string {
	var out []string
	for _, ifc := range c.m.Interfaces {
		for _, a := range ifc.Addresses {
			if a.Family == "ipv4" {
				out = append(out, fmt.Sprintf("%s/%d on %s", a.Address, a.Prefix, clip(ifc.Name)))
			}
		}
	}
	if len(out) == 0 {
		return "no IPv4 address"
	}
	return strings.Join(out, ", ")
}

func (c *machineCheck) keys() {
	want := map[string]bool{}
	for _, k := range c.plan.AuthorizedKeys {
		if fp, err := machine.KeyFingerprint(k); err == nil {
			want[fp] = true
		}
	}
	if len(want) == 0 {
		return
	}
	var have []string
	for _, k := range c.m.AuthorizedKeys {
		if want[k.Fingerprint] {
			return
		}
		have = append(have, k.Fingerprint)
	}
	var spec []string
	for fp := range want {
		spec = append(spec, fp)
	}
	sort.Strings(spec)
	if len(have) == 0 {
		c.ps.warn("ssh.authorized_keys", "give the rescue system the spec's key in the provider's panel; rescue-bootstrap.sh adds it before the kexec",
			"%s lists no key in root's authorized_keys (a password login?), so none of the spec's keys (%s) is known to work here",
			c.facts, strings.Join(spec, ", "))
		return
	}
	c.ps.add("ssh.authorized_keys", "add the key you log in with to the spec, or give the rescue system the spec's key in the provider's panel",
		"none of the spec's keys (%s) is in root's authorized_keys on %s (%s): you logged in with another key, and only the spec's keys work after the install",
		strings.Join(spec, ", "), c.facts, clip(strings.Join(have, ", ")))
}

// tools checks what rescue-bootstrap.sh needs from the rescue system; facts
// from the NixOS installer are not checked here.
func (c *machineCheck) tools() {
	if c.m.Tools == nil || c.m.OS.ID == "nixos" {
		return
	}
	missing := func(t string) bool { has, known := c.m.Tools[t]; return known && !has }
	for _, t := range []string{"cpio", "tar", "gzip", "sha256sum"} {
		if missing(t) {
			c.ps.warn("kexec.url", "apt-get update && apt-get install -y "+t+" in the rescue system",
				"%s has no %s, which rescue-bootstrap.sh needs to unpack and start the installer", c.facts, t)
		}
	}
	if missing("curl") && missing("wget") {
		c.ps.warn("kexec.url", "apt-get install -y curl in the rescue system, or copy the tarball beside rescue-bootstrap.sh",
			"%s has neither curl nor wget to download the installer", c.facts)
	}
}

// InitOptions are the inputs of SpecFromMachine besides the machine.
type InitOptions struct {
	Provider       string   // a provider id; "ovh" when empty
	AuthorizedKeys []string // public key lines; the spec lists them
}

var nonLabelRE = regexp.MustCompile(`[^a-z0-9-]+`)

// SpecFromMachine writes a spec for a machine: its disk by by-id path with
// size and serial, its public interface with the address and gateway it has
// now, and a partition label that fits the disk. What the spec cannot say yet
// is written as a comment. It returns problems when the machine lacks
// something a spec needs (a disk, an IPv4 address) or a key is not a public
// key; warnings tell what the operator should look at.
func SpecFromMachine(m *machine.Machine, opts InitOptions) (string, Problems) {
	ps := &problems{file: m.File}
	providerID, providerWhy := opts.Provider, ""
	if providerID == "" {
		providerID, providerWhy = guessProvider(m)
	}
	prov, ok := LookupProvider(providerID)
	if !ok {
		ps.add("", "one of: "+strings.Join(knownProviders(), ", "), "unknown provider %q", providerID)
		return "", ps.list
	}
	for i, k := range opts.AuthorizedKeys {
		if msg, hint := checkPublicKey(k); msg != "" {
			ps.add(fmt.Sprintf("ssh key %d", i+1), hint, "%s", msg)
		}
	}

	// The public interface: the one with the IPv4 default route.
	var ifc *machine.Interface
	var addr *machine.Address
	gw, hasGW := m.DefaultGateway()
	if hasGW {
		for i := range m.Interfaces {
			if m.Interfaces[i].Name == gw.Interface {
				ifc = &m.Interfaces[i]
			}
		}
	}
	if ifc != nil {
		for j := range ifc.Addresses {
			if a := &ifc.Addresses[j]; a.Family == "ipv4" && (a.Scope == "" || a.Scope == "global") {
				addr = a
				break
			}
		}
	}
	if addr == nil || gw.Gateway == "" {
		ps.add("routes", "collect the facts in the rescue system while its network is up",
			"no interface has a global IPv4 address with a default route via a gateway")
	}
	disks := m.InstallDisks()
	if len(disks) == 0 {
		ps.add("disks", "", "no disk nixplan could install on (whole, writable, not removable)")
	}
	if len(ps.list.Errors()) > 0 {
		return "", ps.list
	}

	used, left := chooseInstallDisks(disks)
	release := releases[StarterRelease]
	// A gateway outside the address's prefix is reached on-link, and only an
	// image that restores such a route keeps the server reachable.
	onLink := outsidePrefix(addr.Address, addr.Prefix, gw.Gateway)
	v6, gw6, hasV6 := ipv6Of(m, ifc)
	onLink6 := hasV6 && outsidePrefix(v6.Address, v6.Prefix, gw6.Gateway)
	tag := imageFor(release, onLink || onLink6)
	img := images[tag]

	// The spec's values must be ones its check accepts; the machine's
	// strings in comments are shown escaped (shown), since a TOML comment may
	// hold no control character and a line break would end it.
	ifcName, pinMAC := ifc.Name, strings.ToLower(ifc.MAC)
	if !macRE.MatchString(pinMAC) {
		pinMAC = ""
	}
	if msg, _ := interfaceProblem(ifcName); msg != "" || (ethRE.MatchString(ifcName) && pinMAC != "") {
		ifcName = "wan0"
	}
	if pinMAC == "" && ifcName == "wan0" {
		ps.add("interfaces", "collect the facts again with facts.sh",
			"the interface with the default route, %q, has neither a name nor a MAC (%q) a spec can pin", clip(ifc.Name), clip(ifc.MAC))
	}
	// Each disk by its by-id link, or by its kernel name where it has no
	// link a spec can name.
	ids := make([]string, len(used))
	for i, d := range used {
		if ids[i] = installablePath(d.StableID()); ids[i] == "" {
			ids[i] = installablePath(d.Path)
		}
		if ids[i] == "" {
			ps.add("disks", "collect the facts again with facts.sh", "the disk %q has no path a spec can name", clip(d.Path))
		}
	}
	if len(ps.list.Errors()) > 0 {
		return "", ps.list
	}

	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	fillIn := map[string]bool{} // keys left for the operator to fill in
	if len(opts.AuthorizedKeys) == 0 {
		fillIn["ssh.authorized_keys"] = true
	}
	comment := func(text string) {
		for _, l := range strings.Split(text, "\n") {
			line("# %s", Printable(l))
		}
	}
	src := shown(m.File)
	if m.File == "" {
		src = "a machine description"
	}
	comment(fmt.Sprintf("nixplan host spec written by `nixplan init --facts` from %s", src))
	if m.Hostname != "" || m.CollectedAt != "" {
		comment(fmt.Sprintf("(host %s, %s, collected %s).", shown(orUnknown(m.Hostname)), shown(orUnknown(m.OS.PrettyName)), shown(orUnknown(m.CollectedAt))))
	}
	comment("Read every value, then run\n  nixplan check --facts " + src + " host.toml && nixplan render host.toml -o bundle")
	line("")
	if providerWhy != "" {
		comment(providerWhy) // the host name and resolvers in it are shown
	}
	line("provider = %s", tomlString(prov.ID))
	line("")
	line("[host]")
	name, fromHostname := hostNameFor(m, addr)
	if fromHostname {
		line("name = %s", tomlString(name))
	} else {
		line("name = %s  # CHANGE ME: the rescue system's host name is not the server's", tomlString(name))
	}
	line("nixos = %s", tomlString(release.Version))
	line("firmware = %s  # %s says the machine booted %s", tomlString(m.Firmware.Mode), src, strings.ToUpper(m.Firmware.Mode))
	if m.Firmware.Mode == machine.FirmwareUEFI {
		comment("UEFI: GRUB goes on an EFI system partition as the removable boot loader; no EFI variable is written.")
	}
	line("")
	line("[kexec]")
	comment(fmt.Sprintf("%s ships Nix %s and needs %d MiB of memory; this machine has %d MiB.", tag, img.Nix, img.MinRAMMiB, m.RAMBytes/mib))
	if onLink || onLink6 {
		comment("It restores the on-link default route after the kexec (the gateway lies outside the prefix).")
	}
	line("url = %s", tomlString(KexecURL(tag)))
	line("")
	line("[network]")
	switch {
	case ifcName != ifc.Name:
		// A kernel name belongs to whichever card the kernel finds first, and
		// a name Linux or a spec refuses is no name: a MAC-pinned interface
		// gets a name of its own.
		line("interface = \"wan0\"  # the rescue system calls it %s; the installed system names the card with this MAC wan0", shown(ifc.Name))
	default:
		line("interface = %s", tomlString(ifc.Name))
	}
	if pinMAC != "" {
		line("mac = %s", tomlString(pinMAC))
	} else {
		comment(fmt.Sprintf("not pinned by MAC: %s gives %q, which is not a MAC address", src, shown(ifc.MAC)))
	}
	if phys := m.PhysicalInterfaces(); len(phys) > 1 {
		var others []string
		for _, p := range phys {
			if p.Name != ifc.Name {
				others = append(others, shown(p.Name)+" "+shown(p.MAC))
			}
		}
		comment(fmt.Sprintf("this machine has %d network cards; the others: %s", len(phys), strings.Join(others, ", ")))
	}
	var ns []string
	for _, n := range prov.Nameservers {
		ns = append(ns, tomlString(n))
	}
	switch {
	case len(ns) > 0:
		line("nameservers = [%s]  # %s's resolvers", strings.Join(ns, ", "), prov.Name)
	case len(usableResolvers(m.Nameservers)) > 0:
		for _, n := range usableResolvers(m.Nameservers) {
			ns = append(ns, tomlString(n))
		}
		line("nameservers = [%s]  # the rescue system's resolvers", strings.Join(ns, ", "))
	default:
		if len(m.Nameservers) > 0 {
			comment(fmt.Sprintf("the rescue system resolves through %s, a local stub the installed system will not have", shown(strings.Join(m.Nameservers, ", "))))
		}
		comment("FILL IN: the provider's resolvers; the facts name none")
		line("nameservers = []")
		fillIn["network.nameservers"] = true
	}
	line("")
	line("[network.ipv4]  # as configured in the rescue system now")
	line("address = %s", tomlString(addr.Address))
	line("prefix = %d", addr.Prefix)
	line("gateway = %s", tomlString(gw.Gateway))
	if onLink {
		line("gateway_on_link = true  # %s lies outside %s/%d", shown(gw.Gateway), addr.Address, addr.Prefix)
	}
	if hasV6 {
		line("")
		line("[network.ipv6]  # as configured in the rescue system now")
		line("address = %s", tomlString(v6.Address))
		line("prefix = %d", v6.Prefix)
		switch rule, ok := OVHIPv6Gateway(v6.Address); {
		case prov.OVHFamily && ok && rule == gw6.Gateway:
			line("derive_gateway = true  # %s, by OVH's rule for the address; reached on-link", shown(gw6.Gateway))
		case onLink6:
			line("gateway = %s", tomlString(gw6.Gateway))
			line("gateway_on_link = true  # %s lies outside %s/%d", shown(gw6.Gateway), v6.Address, v6.Prefix)
		default:
			line("gateway = %s", tomlString(gw6.Gateway))
		}
	} else if why := ipv6LeftOut(m, ifc); why != "" {
		comment(why)
	}
	line("")
	line("[disks]")
	line("layout = \"zfs\"")
	for i, d := range used {
		switch {
		case d.StableID() == "":
			comment(fmt.Sprintf("%s has no /dev/disk/by-id link (no udev in the rescue system?): the kernel name may change", shown(d.Path)))
		case ids[i] != d.StableID():
			comment(fmt.Sprintf("the by-id link %s is not a path a spec can name: the kernel name may change", shown(d.StableID())))
		}
	}
	switch len(used) {
	case 1:
	case 2:
		comment("two equal disks: a ZFS mirror, with a /boot and GRUB on each so either disk can boot")
		line("topology = \"mirror\"")
		line("boot = \"all\"")
	default:
		comment(fmt.Sprintf("%d equal disks: raidz1, with a /boot and GRUB on every disk", len(used)))
		line("topology = \"raidz1\"")
		line("boot = \"all\"")
	}
	for _, d := range used {
		comment(fmt.Sprintf("ERASED by the install: %s", shown(d.Identity())))
	}
	if len(used) == 1 {
		line("devices = [%s]", tomlString(ids[0]))
	} else {
		line("devices = [")
		for _, id := range ids {
			line("  %s,", tomlString(id))
		}
		line("]")
	}
	for _, d := range left {
		id := d.StableID()
		if id == "" {
			id = d.Path
		}
		comment(fmt.Sprintf("left alone (not the same size and kind as the disks above): %s %s", shown(id), shown(strings.TrimPrefix(d.Identity(), d.Name+" "))))
	}
	largest := used[0]
	for _, d := range used {
		if d.SizeBytes > largest.SizeBytes {
			largest = d
		}
	}
	if largest.SizeBytes > tib2 {
		line("label = \"gpt\"  # the disk is %s: an msdos label cannot address beyond 2 TiB", machine.FormatBytes(largest.SizeBytes))
	} else {
		line("label = \"gpt\"  # fits any size; msdos would too on this %s disk", machine.FormatBytes(largest.SizeBytes))
	}
	arrays, otherHolders := mdArraysOn(m, used)
	if len(arrays) > 0 {
		comment("the provider's install left md arrays on these disks; the install stops and erases them:")
		for _, a := range arrays {
			comment("  " + shown(a))
		}
	}
	if len(otherHolders) > 0 {
		comment("BUSY now: " + shown(strings.Join(otherHolders, "; ")))
		comment(lastKey(keyDisksClearBusy) + " = true  # uncomment to consent: stop what holds the disks and wipe them")
	} else if len(arrays) > 0 {
		line("%s = true", lastKey(keyDisksClearBusy))
	}
	for _, d := range used {
		if why := d.MountedAt(); len(why) > 0 {
			comment("in use now: " + shown(strings.Join(why, "; ")))
		}
		if member := d.Memberships(); len(member) > 0 {
			comment("old metadata the install wipes: " + shown(strings.Join(member, "; ")))
		}
	}
	line("boot_size = \"512MiB\"")
	line("pool = \"rpool\"")
	for i, d := range used {
		line("")
		serial := d.Serial
		if serial != "" && !serialRE.MatchString(serial) {
			comment(fmt.Sprintf("the serial of %s, %q, is not one a spec can pin (printable, no spaces, at most 64 bytes): its identity has the size only", shown(ids[i]), shown(serial)))
			serial = ""
		}
		size := d.SizeBytes
		if size < 1<<30 {
			size = 0 // smaller than any disk to install on: validateIdentity refuses it
		}
		if serial == "" && size == 0 {
			continue
		}
		line("[[disks.identity]]  # the install refuses a disk that is not this one")
		line("device = %s", tomlString(ids[i]))
		if serial != "" {
			line("serial = %s", tomlString(serial))
		}
		if size != 0 {
			line("size_bytes = %d  # %s", size, machine.FormatBytes(size))
		}
	}
	// An encrypted root is the operator's choice; the NIC's driver, which
	// its initrd needs, is the machine's.
	if ifc.Driver != "" && kernelModuleRE.MatchString(ifc.Driver) {
		line("")
		comment("to encrypt the root, unlocked over SSH at every boot (README, Encrypted root), uncomment:")
		comment("[encryption]")
		comment(`type = "zfs"  # ZFS native encryption of rpool/crypt; or "luks"`)
		comment(fmt.Sprintf("nic_driver = %s  # the driver of %s, which the initrd loads", tomlString(ifc.Driver), shown(ifc.Name)))
	}
	line("")
	line("[ssh]")
	if len(opts.AuthorizedKeys) == 0 {
		comment("FILL IN: your public key(s); root's authorized_keys on the machine holds:")
		for _, k := range m.AuthorizedKeys {
			comment("  " + shown(k.Type+" "+k.Fingerprint+" "+k.Comment))
		}
		line("authorized_keys = []")
	} else {
		line("authorized_keys = [")
		for _, k := range opts.AuthorizedKeys {
			line("  %s,", tomlString(k))
		}
		line("]")
	}
	// What init writes, its own check accepts: a value of the machine's
	// that it would refuse stops init here rather than in check.
	spec, err := Parse(m.File+" (the spec written)", []byte(b.String()))
	var parsed Problems
	switch {
	case errors.As(err, &parsed):
		return "", append(ps.list, parsed...)
	case err != nil:
		return "", append(ps.list, Problem{File: m.File, Msg: err.Error()})
	}
	if p, vs := Validate(spec); p == nil {
		var refused Problems
		for _, v := range vs.Errors() {
			if !fillIn[v.Key] {
				refused = append(refused, v)
			}
		}
		if len(refused) > 0 {
			return "", append(ps.list, refused...)
		}
	}
	return b.String(), ps.list
}

// ipv6Of returns the public interface's global IPv6 address and the IPv6
// default route through it, when the rescue system has both.
func ipv6Of(m *machine.Machine, ifc *machine.Interface) (machine.Address, machine.Route, bool) {
	var addr *machine.Address
	for i := range ifc.Addresses {
		if a := &ifc.Addresses[i]; a.Family == "ipv6" && (a.Scope == "" || a.Scope == "global") {
			addr = a
			break
		}
	}
	if addr == nil {
		return machine.Address{}, machine.Route{}, false
	}
	for _, r := range m.Routes {
		if r.Family == "ipv6" && r.Destination == "default" && r.Interface == ifc.Name && r.Gateway != "" {
			return *addr, r, true
		}
	}
	return machine.Address{}, machine.Route{}, false
}

// usableResolvers drops loopback resolvers (a local stub such as
// 127.0.0.53) and anything that is not an address.
func usableResolvers(ns []string) []string {
	var out []string
	for _, n := range ns {
		if a, err := netip.ParseAddr(n); err == nil && !a.IsLoopback() && !a.IsUnspecified() {
			out = append(out, n)
		}
	}
	return out
}

// outsidePrefix reports whether gateway lies outside address/prefix, so that
// it is reached on-link; a link-local gateway (fe80::1) is on the link by
// definition.
func outsidePrefix(address string, prefix int, gateway string) bool {
	a, err1 := netip.ParseAddr(address)
	g, err2 := netip.ParseAddr(gateway)
	if err1 != nil || err2 != nil || g.IsLinkLocalUnicast() {
		return false
	}
	return !netip.PrefixFrom(a, prefix).Masked().Contains(g)
}

// ipv6LeftOut says why the spec has no IPv6 although the machine has a
// global IPv6 address, or "" when it has none.
func ipv6LeftOut(m *machine.Machine, public *machine.Interface) string {
	for _, ifc := range m.Interfaces {
		for _, a := range ifc.Addresses {
			if a.Family != "ipv6" || (a.Scope != "" && a.Scope != "global") {
				continue
			}
			if ifc.Name != public.Name {
				return fmt.Sprintf("no [network.ipv6]: %s/%d is on %s, not on the interface with the IPv4 default route", a.Address, a.Prefix, shown(ifc.Name))
			}
			return fmt.Sprintf("no [network.ipv6]: %s/%d has no IPv6 default route in the rescue system; add the gateway from the provider's panel", a.Address, a.Prefix)
		}
	}
	return ""
}

// guessProvider names the provider the facts point to, and says why in a
// line for the spec's comment. Only OVH's rescue system tells itself apart
// by its host name (DOMAIN.md: the prompt is root@rescue-customer-eu); any
// other machine gets the generic rules rather than another provider's.
func guessProvider(m *machine.Machine) (id, why string) {
	const ovhGroup = " (Kimsufi and So you Start share OVH's rescue system: --provider kimsufi or soyoustart for those)"
	for _, ns := range m.Nameservers { // in resolv.conf's order: the first one named decides
		for _, id := range knownProviders() {
			prov, _ := LookupProvider(id)
			if id == "kimsufi" || id == "soyoustart" {
				continue // OVH's resolvers: told apart by --provider only
			}
			if slices.Contains(prov.Nameservers, ns) {
				why = fmt.Sprintf("provider: the rescue system resolves through %s, %s's resolver", shown(ns), prov.Name)
				if id == "ovh" {
					why += ovhGroup
				}
				return id, why
			}
		}
	}
	if strings.HasPrefix(m.Hostname, "rescue-customer") {
		return "ovh", fmt.Sprintf("provider: the rescue system's host name %s is OVH's", shown(m.Hostname)) + ovhGroup
	}
	var named []string
	for _, id := range knownProviders() {
		if id != "generic" {
			named = append(named, id)
		}
	}
	return "generic", fmt.Sprintf("provider: nothing in the facts names it (host name %q, resolvers %s), so the generic rules apply; --provider %s names one",
		shown(m.Hostname), shown(orUnknown(strings.Join(m.Nameservers, ", "))), strings.Join(named, ", --provider "))
}

// chooseInstallDisks picks the disks a proposed spec installs on: the
// largest set of disks of one size and kind (rotating, solid state, NVMe),
// the larger disks when two sets are as large, in the machine's order. The
// others are left alone.
func chooseInstallDisks(disks []machine.Disk) (used, left []machine.Disk) {
	kind := func(d machine.Disk) string {
		switch {
		case strings.HasPrefix(d.Name, "nvme"):
			return "nvme"
		case d.Rotational != nil && *d.Rotational:
			return "hdd"
		case d.Rotational != nil:
			return "ssd"
		}
		return "unknown"
	}
	type set struct {
		key   string
		size  int64
		disks []machine.Disk
	}
	var sets []*set
	for _, d := range disks {
		key := fmt.Sprintf("%d/%s", d.SizeBytes, kind(d))
		i := slices.IndexFunc(sets, func(s *set) bool { return s.key == key })
		if i < 0 {
			sets = append(sets, &set{key: key, size: d.SizeBytes})
			i = len(sets) - 1
		}
		sets[i].disks = append(sets[i].disks, d)
	}
	best := sets[0]
	for _, s := range sets[1:] {
		if len(s.disks) > len(best.disks) || len(s.disks) == len(best.disks) && s.size > best.size {
			best = s
		}
	}
	for _, d := range disks {
		if slices.ContainsFunc(best.disks, func(b machine.Disk) bool { return b.Path == d.Path }) {
			used = append(used, d)
		} else {
			left = append(left, d)
		}
	}
	return used, left
}

// mdArraysOn lists the md arrays built on the given disks, as "md1 (raid1 on
// sda1, sdb1)", noting members on other disks, which keep their superblock,
// and every other holder of the disks (LVM, device mapper), which init does
// not consent to clear on the operator's behalf.
func mdArraysOn(m *machine.Machine, disks []machine.Disk) (arrays, others []string) {
	onUsed := func(dev string) bool {
		d := m.DiskOf(dev)
		return d != nil && slices.ContainsFunc(disks, func(u machine.Disk) bool { return u.Path == d.Path })
	}
	isMD := map[string]bool{}
	for _, md := range m.MDArrays {
		if !slices.ContainsFunc(md.Members, onUsed) {
			continue
		}
		isMD[md.Name] = true
		text := fmt.Sprintf("%s (%s on %s)", md.Name, md.Level, strings.Join(md.Members, ", "))
		var kept []string
		for _, member := range md.Members {
			if !onUsed(member) {
				kept = append(kept, member)
			}
		}
		if len(kept) > 0 {
			text += "; " + strings.Join(kept, ", ") + " is on a disk left alone and keeps its superblock"
		}
		arrays = append(arrays, text)
	}
	for _, d := range disks {
		devs := []struct {
			name    string
			holders []string
		}{{d.Name, d.Holders}}
		for _, p := range d.Partitions {
			devs = append(devs, struct {
				name    string
				holders []string
			}{p.Name, p.Holders})
		}
		for _, dev := range devs {
			for _, h := range dev.holders {
				if !isMD[h] {
					others = append(others, dev.name+" is held by "+h)
				}
			}
		}
	}
	return arrays, others
}

// shown is a string of a machine description as a comment of the spec
// init writes shows it: escaped and clipped.
func shown(s string) string { return Printable(fmt.Sprint(clip(s))) }

// installablePath returns path if a spec may name the disk by it, else "".
func installablePath(p string) string {
	if !devicePathRE.MatchString(p) || path.Clean(p) != p || pathLimit(p) != "" ||
		(strings.HasPrefix(p, "/dev/disk/") && strings.Contains(p, "-part")) {
		return ""
	}
	return p
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// hostNameFor proposes a host name: the machine's own when it is a valid
// one and not the rescue system's, else one made from the address.
func hostNameFor(m *machine.Machine, addr *machine.Address) (string, bool) {
	name := strings.ToLower(strings.SplitN(m.Hostname, ".", 2)[0])
	if hostNameRE.MatchString(name) && !strings.Contains(name, "rescue") && name != "nixos" && name != "localhost" {
		return name, true
	}
	name = "server"
	if addr != nil {
		name += "-" + nonLabelRE.ReplaceAllString(addr.Address, "-")
	}
	return strings.Trim(name, "-"), false
}
