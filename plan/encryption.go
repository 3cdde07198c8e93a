package plan

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// An encrypted root is unlocked over SSH at every boot: the initrd brings
// up the public NIC with the spec's address (or DHCP), loads the NIC's
// kernel driver, and runs an SSH server of its own on its own port, with the
// spec's keys and a host key that kexec-install.sh makes at install time.
// /boot stays unencrypted, so that host key lies unencrypted in the initrd:
// it is never the installed system's host key.
//
// The facts this relies on, from NixOS/nixpkgs:
//   - nixos/modules/system/boot/initrd-ssh.nix (001dade9): the initrd's sshd
//     runs when boot.initrd.network.ssh.enable and either
//     boot.initrd.network.enable or boot.initrd.systemd.network.enable;
//     hostKeys takes strings or paths, and a path is copied into the
//     world-readable store (`isPath path` → pkgs.runCommand), while a string
//     names a file that boot.initrd.secrets appends to the initrd when the
//     boot loader installs it (GRUB does: boot.loader.supportsInitrdSecrets),
//     so the file must exist under /mnt before nixos-install;
//     authorizedKeys defaults to root's keys.
//   - nixos/modules/system/boot/systemd/initrd.nix (00e6b22b):
//     boot.initrd.systemd.enable is an mkEnableOption (off unless set) in
//     that tree; its contents option puts files such as a networkd
//     .network unit into the initrd; its modules closure takes the firmware
//     of hardware.firmware, which hardware.enableRedistributableFirmware
//     fills; and it asserts that boot.initrd.network.postCommands and the
//     other scripted-stage-1 hooks are empty.
//   - lib/licenses.nix (the stored versions alike): unfreeRedistributableFirmware
//     does not set free = false, so hardware.enableRedistributableFirmware
//     needs no allowUnfree.
//   - nixos/tests/systemd-initrd-networkd-ssh.nix (05924f71): the systemd
//     initrd with boot.initrd.network.enable and ssh, a LUKS root, unlocked
//     by `systemd-tty-ask-password-agent` over SSH.
//   - nixos/modules/tasks/filesystems/zfs.nix (as of the tree with
//     createImportService's systemd-ask-password loop): under the systemd
//     initrd a root dataset with keylocation=prompt is unlocked through
//     systemd-ask-password, which systemd-tty-ask-password-agent answers;
//     boot.zfs.requestEncryptionCredentials takes true or a list of
//     datasets (its type, in a623be9d, a tree older than the systemd
//     initrd; the import loop is PR #168269's).
//   - nixos/modules/system/boot/luksroot.nix (e8778acb): the scripted
//     stage 1 offers `cryptsetup-askpass` instead, and ZFS's scripted
//     import runs `zfs load-key -a` on the console. nixplan does not write a
//     scripted-initrd configuration: it sets boot.initrd.systemd.enable
//     explicitly for every release it encrypts, and the one unlock command
//     of the systemd initrd, for LUKS and ZFS alike, is
//     systemd-tty-ask-password-agent.
//
// The release floor, 23.11: SSH and networkd in the systemd initrd came
// with nixpkgs PR #169116 ("Systemd stage 1 networkd": the
// boot.initrd.systemd.enable branch of initrd-ssh.nix, with its
// services.sshd, boot.initrd.systemd.network, and the
// systemd-initrd-networkd-ssh test), merged into the tree tagged 23.11-beta
// and not in 23.05 (nix-community/srvos issue 298, 2023-11-07: "at least for
// unstable"). ZFS in the systemd initrd (PR #168269, whose import prompts
// through systemd-ask-password), boot.initrd.systemd.contents (PR #164943)
// and systemd-tty-ask-password-agent (the initrd's /bin holds the systemd
// package's binaries: initrd.nix, initrdBin) are older. The merge commits
// and the release branches were not read here (nixpkgs' history is too
// large to fetch); the PRs and the tag's tree were. kexec-install.sh also
// evaluates the whole system with the target's nixpkgs before it erases
// anything: an option a release lacks stops the install there, with the
// disks untouched.

// Encryption is how the initrd unlocks the encrypted root.
type Encryption struct {
	// Type is "zfs" (native encryption) or "luks".
	Type string
	// SSHPort is the initrd's SSH port.
	SSHPort int
	// NICDriver is the name of the driver bound to the public NIC's device
	// (encryption.nic_driver, what facts.sh and kexec-install.sh read).
	NICDriver string
	// FetchCryptsetup: kexec-install.sh builds cryptsetup from the target's
	// nixpkgs before the erase (LUKS on an image without it).
	FetchCryptsetup bool
}

// InitrdModules are the kernel modules the initrd carries for the public
// NIC: those nicModules names for its driver, else the driver itself.
func (e Encryption) InitrdModules() []string {
	if m, ok := nicModules[e.NICDriver]; ok {
		return m
	}
	return []string{e.NICDriver}
}

// nicModules: the drivers whose name, bound to the NIC's device, is not
// the one module that makes its interface, with the modules the initrd
// must carry instead. Every other driver is its own module and stays as it
// is, the common case: a PCI NIC driver is registered under its module's
// name and its netdev's parent is the PCI device it binds, so the name the
// probe reads is the module's (igb, e1000e, ixgbe, i40e, ice, bnxt_en,
// r8169 are taken to be such; their files were not read one by one here).
// mlx5_core is one of them: its Ethernet (en_main.c) is built into mlx5_core.ko and
// mlx5e_build_nic_netdev sets the netdev's parent to mdev->device, the PCI
// device mlx5_core binds (Linux drivers/net/ethernet/mellanox/mlx5/core/,
// read in copies of the files; the commit was not pinned). ice also needs
// its DDP package from linux-firmware, which
// hardware.enableRedistributableFirmware puts in the initrd for the drivers
// it carries.
var nicModules = map[string][]string{
	// ConnectX-3: the PCI device is bound to mlx4_core, and the interface
	// is made by mlx4_en, whose netdev's parent is that PCI device
	// (drivers/net/ethernet/mellanox/mlx4/en_netdev.c, mlx4_en_init_netdev:
	// SET_NETDEV_DEV(dev, &mdev->dev->persist->pdev->dev)). mlx4_core loads
	// it on demand: by request_module_nowait("mlx4_en") (main.c,
	// mlx4_request_modules) until the auxiliary bus series of August 2023
	// (net-next, "mlx4: Delete custom device management logic", Petr
	// Pavlu), by the modalias of its auxiliary device since. Either way the
	// initrd must carry it, and the systemd initrd can load it: it sets
	// kernel.modprobe = /sbin/modprobe (nixpkgs 00e6b22b,
	// nixos/modules/system/boot/systemd/initrd.nix). The Linux files were
	// read in copies and the mailing list; their commit was not pinned.
	"mlx4_core": {"mlx4_core", "mlx4_en"},
	// Xen PV: the xenbus driver of the netfront is named after its first
	// device type, "vif" (drivers/xen/xenbus/xenbus_probe.c,
	// xenbus_register_driver_common: drv->name, else ids[0].devicetype;
	// drivers/net/xen-netfront.c: netfront_ids = { "vif" }, no .name), and
	// its module is xen-netfront.ko, named xen_netfront. "vif" is no module:
	// an initrd asked for it does not build. Read in copies of the files;
	// the commit was not pinned.
	"vif": {"xen_netfront"},
	// virtio: virtio_net binds the virtio device, which is the netdev's
	// parent (drivers/net/virtio_net.c, virtnet_probe: SET_NETDEV_DEV(dev,
	// &vdev->dev); the driver is named KBUILD_MODNAME), so the probe reads
	// virtio_net; that device exists only once its transport, virtio_pci,
	// has bound the PCI device, as nixpkgs' profiles/qemu-guest.nix pairs
	// them (the commit of these copies was not pinned).
	"virtio_net": {"virtio_net", "virtio_pci"},
}

// CryptsetupLink is where kexec-install.sh leaves the cryptsetup it builds
// from the target's nixpkgs (nix-build's out-link, in the installer's
// memory).
const CryptsetupLink = "/root/nixplan-cryptsetup"

// CryptsetupLink is CryptsetupLink, for the templates.
func (Encryption) CryptsetupLink() string { return CryptsetupLink }

// Cryptsetup is the cryptsetup command an operator types in the installer:
// the one kexec-install.sh built, which is on no PATH of a login shell, or
// the image's own.
func (e Encryption) Cryptsetup() string {
	if e.FetchCryptsetup {
		return CryptsetupLink + "/bin/cryptsetup"
	}
	return "cryptsetup"
}

// HostKey is the initrd's SSH host key in the installed system, as the
// string configuration.nix names it (never a Nix path).
func (Encryption) HostKey() string { return InitrdHostKey }

// UnlockCommand is what a login to the initrd runs to type the passphrase.
func (Encryption) UnlockCommand() string { return UnlockCommand }

// MinPassphrase is the shortest passphrase the install accepts, in bytes.
func (Encryption) MinPassphrase() int { return minPassphrase }

// MaxPassphrase is the longest passphrase the install accepts, in bytes.
func (Encryption) MaxPassphrase() int { return maxPassphrase }

// InitrdHostKey is where the initrd's SSH host key lives in the installed
// system; kexec-install.sh makes it under /mnt before nixos-install.
const InitrdHostKey = "/etc/secrets/initrd/ssh_host_ed25519_key"

// DefaultUnlockPort is the initrd's SSH port unless the spec sets one.
const DefaultUnlockPort = 2222

// UnlockCommand of the systemd initrd: it answers the password requests of
// systemd-cryptsetup (LUKS) and of the ZFS import's systemd-ask-password
// (nixpkgs nixos/tests/systemd-initrd-networkd-ssh.nix 05924f71; zfs.nix,
// createImportService).
const UnlockCommand = "systemd-tty-ask-password-agent"

// Passphrase bounds, in bytes, the same for ZFS and LUKS:
//   - OpenZFS refuses a new passphrase shorter than MIN_PASSPHRASE_LEN (8)
//     or longer than MAX_PASSPHRASE_LEN (512) bytes, checked only when a key
//     is set (openzfs/zfs lib/libzfs/libzfs_crypto.c, validate_key; both
//     defined there since native encryption came, b5256303, and the same in
//     every tag from zfs-0.8.0 to zfs-2.4.0).
//   - cryptsetup stops a passphrase typed at a terminal at 512 bytes
//     (cryptsetup configure.ac, passphrase-size-max, 512 since 93da52f, the
//     same at v2.8.0 13306948); --key-file=-, which the install uses, reads
//     up to 8 MiB (keyfile-size-maxkb), newlines included.
//   - In the initrd, systemd-tty-ask-password-agent keeps LINE_MAX (2048)
//     bytes of what is typed and drops the newline (systemd
//     src/shared/ask-password-api.c, ask_password_tty; the commit was not
//     read here), and systemd-cryptsetup hands on strlen of it.
//
// 512 bytes is therefore what every one of them takes whole.
const (
	minPassphrase = 8
	maxPassphrase = 512
)

var kernelModuleRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,56}$`)

// encryptionSet reports whether the spec sets any encryption key.
func encryptionSet(spec *Spec) bool {
	if spec.Origin == nil {
		return spec.Encryption != (EncryptionSpec{})
	}
	for key := range spec.Origin {
		if strings.HasPrefix(key, "encryption.") {
			return true
		}
	}
	return false
}

// validateEncryption checks [encryption] and rewrites the storage plan: ZFS
// native encryption puts every dataset under the encrypted one; LUKS puts the
// pool, the ext4 root or the RAID's ext4 on opened volumes. It runs after
// the disks, network and keys are validated.
func validateEncryption(ps *problems, spec *Spec, p *Plan) {
	e := spec.Encryption
	if !encryptionSet(spec) {
		return
	}
	if e.Passphrase != "" {
		ps.add("encryption.passphrase", "remove it: kexec-install.sh asks for the passphrase on the server, twice, and keeps it nowhere; choose a new one if this file was shared",
			"a passphrase never goes in a spec: the spec is committed and shared")
	}
	s := &p.Storage
	ok := true
	switch e.Type {
	case "":
		ps.add("encryption.type", `type = "zfs" (ZFS native encryption) or type = "luks" (LUKS2)`, "missing")
		ok = false
	case "zfs":
		if s.Layout != "zfs" {
			ps.add("encryption.type", `type = "luks", which encrypts the `+s.Layout+` root; or layout = "zfs"`, "ZFS native encryption needs layout \"zfs\", not %q", s.Layout)
			ok = false
		}
	case "luks":
	default:
		ps.add("encryption.type", `"zfs" (ZFS native encryption) or "luks" (LUKS2)`, "unknown encryption type %q", clip(e.Type))
		ok = false
	}
	if e.Dataset != "" && e.Type != "zfs" {
		ps.add("encryption.dataset", `leave it out, or use type = "zfs"`, "is for type \"zfs\" only")
	}
	dataset := "crypt"
	if e.Dataset != "" {
		if !zfsNameRE.MatchString(e.Dataset) || len(e.Dataset) > 64 {
			ps.add("encryption.dataset", `one name of letters, digits and "_ . : -" directly below the pool, e.g. "crypt"`, "%q is not a dataset name below the pool", clip(e.Dataset))
			ok = false
		}
		dataset = e.Dataset
	}
	if e.Cryptsetup != "" && e.Type != "luks" {
		ps.add("encryption.cryptsetup", `leave it out, or use type = "luks"`, "is for type \"luks\" only")
	}
	fetch := true
	switch e.Cryptsetup {
	case "", "fetch":
	case "image":
		fetch = false
		if img := p.Kexec.Image; p.Kexec.ImageKnown && e.Type == "luks" && !slices.Contains(img.Tools, "cryptsetup") {
			ps.add("encryption.cryptsetup", `leave it out (or write "fetch"): kexec-install.sh then builds cryptsetup from the target's nixpkgs before it erases anything`,
				"the %s image has no cryptsetup, which LUKS needs", img.Tag)
		}
	default:
		ps.add("encryption.cryptsetup", `"fetch" (built from the target's nixpkgs before the erase) or "image" (the installer image carries it)`, "unknown value %q", clip(e.Cryptsetup))
	}

	if e.Type == "luks" && fetch && p.Flake != nil {
		// fetch_cryptsetup builds from the channel or the pinned flake
		// input; a flake of the user's own pins nixpkgs in its own lock.
		ps.add("encryption.cryptsetup", `type = "zfs" (ZFS native encryption needs no cryptsetup), or cryptsetup = "image" with an installer image that carries it`,
			"kexec-install.sh builds cryptsetup from the channel or from flake.nixpkgs_rev, not yet from the nixpkgs of your own flake (flake.path)")
	}
	port := e.SSHPort
	switch {
	case port == 0:
		port = DefaultUnlockPort
	case port == 22:
		ps.add("encryption.ssh_port", fmt.Sprintf("a port of its own, e.g. ssh_port = %d", DefaultUnlockPort),
			"22 is where the installed system's SSH answers with its own host key; the initrd's, with another key, needs a port of its own")
	case port < 1 || port > 65535:
		ps.add("encryption.ssh_port", fmt.Sprintf("a TCP port from 1 to 65535, e.g. %d", DefaultUnlockPort), "%d is not a TCP port", port)
	}

	// The way into the initrd: without the NIC's driver it has no network,
	// and the server waits for a passphrase nobody can type.
	switch {
	case e.NICDriver == "":
		ps.add("encryption.nic_driver", `the kernel module of the public NIC, e.g. nic_driver = "igb": facts.sh lists it as the interface's "driver" (nixplan init --facts writes it), or readlink /sys/class/net/IFACE/device/driver in the rescue system`,
			"missing; the initrd loads the public NIC's driver to reach the network for the unlock, and nixplan does not guess it")
	case !kernelModuleRE.MatchString(e.NICDriver):
		ps.add("encryption.nic_driver", `a kernel module name such as "igb", "e1000e" or "virtio_net"`, "%q is not a kernel module name", clip(e.NICDriver))
	}
	if p.Release.Version != "" && !p.Release.HasInitrdSSH() {
		ps.add("host.nixos", fmt.Sprintf("NixOS %q or later", initrdSSHRelease),
			"an encrypted root is unlocked by the systemd initrd's SSH server, which nixplan sets up from NixOS %s on, not on %s", initrdSSHRelease, p.Release.Version)
	}
	if !ok {
		return
	}
	p.Encryption = &Encryption{Type: e.Type, SSHPort: port, NICDriver: e.NICDriver, FetchCryptsetup: e.Type == "luks" && fetch}
	switch e.Type {
	case "zfs":
		encryptDatasets(s, s.Pool+"/"+dataset)
	case "luks":
		encryptVolumes(s)
	}
}

// encryptDatasets moves every dataset under the encrypted one.
func encryptDatasets(s *Storage, crypt string) {
	s.EncryptedDataset = crypt
	under := func(name string) string { return crypt + strings.TrimPrefix(name, s.Pool) }
	for i := range s.Datasets {
		s.Datasets[i].Name = under(s.Datasets[i].Name)
	}
	for i := range s.Mounts {
		if s.Mounts[i].FSType == "zfs" {
			s.Mounts[i].Source = under(s.Mounts[i].Source)
		}
	}
}

// encryptVolumes puts LUKS2 under the pool's partitions, the ext4 root
// partition, or the md RAID, and the pool or ext4 on the opened volumes.
func encryptVolumes(s *Storage) {
	switch s.Layout {
	case "zfs":
		for i, dev := range s.PoolDevices {
			name := "crypt-" + s.Pool
			if i > 0 {
				name += fmt.Sprint(i + 1)
			}
			v := LUKSVolume{Name: name, Device: dev}
			s.LUKSVolumes = append(s.LUKSVolumes, v)
			s.PoolDevices[i] = v.Mapper()
		}
		// The initrd imports the pool from the directory boot.zfs.devNodes
		// names (nixpkgs nixos/modules/tasks/filesystems/zfs.nix, importLib:
		// `zpool import -d "${devNodes}"`, default /dev/disk/by-id; the
		// stored version with createImportService, its commit not read).
		// The pool's members are the opened volumes: their nodes are in
		// /dev/mapper, which the partitions' by-partuuid links (virtio, see
		// validateDisks) never lead to; whether the initrd's udev also links
		// them under /dev/disk/by-id was not read, so it is not counted on.
		s.DevNodes = "/dev/mapper"
	case "ext4", "mdadm":
		if s.RootDevice == "" {
			return
		}
		v := LUKSVolume{Name: "crypt-root", Device: s.RootDevice}
		s.LUKSVolumes = append(s.LUKSVolumes, v)
		for i := range s.Mounts {
			if s.Mounts[i].Source == s.RootDevice {
				s.Mounts[i].Source = v.Mapper()
			}
		}
		s.RootDevice = v.Mapper()
	}
}

// LUKSDevices are the devices LUKS is formatted on, for the scripts.
func (s Storage) LUKSDevices() []string {
	var out []string
	for _, v := range s.LUKSVolumes {
		out = append(out, v.Device)
	}
	return out
}

// LUKSNames are the volumes' /dev/mapper names, in the order of LUKSDevices.
func (s Storage) LUKSNames() []string {
	var out []string
	for _, v := range s.LUKSVolumes {
		out = append(out, v.Name)
	}
	return out
}
