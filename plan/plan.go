package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// Plan is a spec fully resolved: every default applied, every derived value
// computed. Templates read only a Plan and compute nothing themselves.
type Plan struct {
	Version    string // nixplan's version, for headers
	SpecFile   string // the spec's base name, for headers
	SpecSHA256 string

	Provider Provider
	Host     Host
	Release  Release
	// StateVersion is the release first installed; it never follows Release.
	StateVersion string
	// Firmware is how the server boots: "bios".
	Firmware string
	Kexec    Kexec
	Network  Network
	Storage  Storage
	// AuthorizedKeys may log in as root, in the installer and the installed system.
	AuthorizedKeys []string
	// ConsolePassword: the install asks for a root password for the console.
	ConsolePassword bool
	// Nixpkgs says where the installed system's nixpkgs comes from.
	Nixpkgs Nixpkgs
	// Modules are the spec's own NixOS modules, which configuration.nix
	// imports from /etc/nixos/modules.
	Modules []Module
	// Flake is the user's own flake, which the install writes to /etc/nixos
	// and installs with nixos-install --flake; nil without one.
	Flake *UserFlake
	// Encryption is the encrypted root's unlock at boot; nil without one.
	Encryption *Encryption
	// Placeholders lists the keys that still hold the value `nixplan init`
	// wrote as a placeholder, as "key = value"; empty for a finished spec.
	Placeholders []string
}

// Nixpkgs is where the installed system's nixpkgs comes from: the release's
// channel, a pinned release (Pinned), a flake input pinned to a revision
// (FlakeRev), or the user's own flake's lock (UserFlake).
type Nixpkgs struct {
	// ChannelURL is the channel nix-channel adds (not used with a flake).
	ChannelURL string
	// Pinned: ChannelURL is one release; its nixexprs.tar.xz must have SHA256.
	Pinned bool
	SHA256 string
	// FlakeRev is the nixpkgs revision of flake.nix; empty without a flake.
	FlakeRev string
	// UserFlake: nixpkgs is what the user's flake.lock pins, UserFlakeRev
	// the revision it pins for the input named nixpkgs (may be empty).
	UserFlake    bool
	UserFlakeRev string
}

// AnyFlake: the install is of a flake, nixplan's pinned one or the user's.
func (n Nixpkgs) AnyFlake() bool { return n.FlakeRev != "" || n.UserFlake }

// FlakeURL is the flake reference of the pinned nixpkgs.
func (n Nixpkgs) FlakeURL() string { return "github:NixOS/nixpkgs/" + n.FlakeRev }

// Describe says in a few words what the bundle installs from.
func (n Nixpkgs) Describe() string {
	switch {
	case n.UserFlake && n.UserFlakeRev != "":
		return "your flake, whose flake.lock pins nixpkgs to " + n.UserFlakeRev
	case n.UserFlake:
		return "your flake, as its flake.lock pins it"
	case n.FlakeRev != "":
		return "flake, nixpkgs pinned to " + n.FlakeRev
	case n.Pinned:
		return "channel pinned to " + n.ChannelURL + " (nixexprs.tar.xz sha256 " + n.SHA256 + ")"
	}
	return "channel " + n.ChannelURL + ", following the release"
}

// Host names the machine.
type Host struct {
	Name string
	ID   string
	// IDDerived: the spec gave no host_id, so ID is derived from Name.
	IDDerived bool
}

// Kexec is the installer image the rescue system boots into.
type Kexec struct {
	URL    string
	SHA256 string // empty when the spec pins none
	// Tarball is the file name rescue-bootstrap.sh looks for beside itself and
	// downloads to.
	Tarball string
	Tag     string // the nixos-images release tag in URL, if any
	// Shipped: the tarball travels in the bundle (render --kexec-tarball).
	Shipped bool
	// CopiedKeys are the spec's keys of a type the image's kexec/run carries
	// into the installer (all of them when the image is not in the table).
	CopiedKeys []string
	// ExtraFlags for kexec, passed as kexec/run --kexec-extra-flags; may be empty.
	ExtraFlags string
	Image      Image
	// ImageKnown: Tag is in the capability table.
	ImageKnown bool
}

// Network is the installed system's network.
type Network struct {
	Interface string
	// MAC pins Interface to one NIC; empty when the spec pins none, and then
	// kexec-install.sh takes it from the interface holding the address.
	MAC string
	// PredictableNames is networking.usePredictableInterfaceNames: off when the
	// interface is a kernel name such as eth0, as in the seed.
	PredictableNames bool
	// RenameByMAC: Interface is a name of the spec's own (not a kernel name
	// like eth0, not a predictable one like enp1s0), so the installed system
	// gives it to the NIC with the public MAC (see nixplan-network.nix).
	RenameByMAC bool
	IPv4        Static
	IPv6        *Static // nil: no IPv6 configured
	Nameservers []string
}

// Static is a static address with its gateway, IPv4 or IPv6.
type Static struct {
	Address string
	Prefix  int
	Gateway string
	// OnLink: the gateway lies outside the prefix and is reached through an
	// on-link host route (NixOS adds it when the default gateway names the
	// interface).
	OnLink bool
	// DHCP: the family is configured by DHCP or router advertisements;
	// Address is only the address expected.
	DHCP bool
	// Derived: Gateway was computed by the provider's rule.
	Derived bool
}

// Storage is the disk layout: partitions on each disk, the boot
// filesystems, swap, the root (a ZFS pool with datasets, an ext4 partition, or
// ext4 on md RAID1), and the order to mount them.
type Storage struct {
	Layout string // "zfs", "ext4" or "mdadm"
	Label  string // "msdos" or "gpt"
	// Disks are wiped and partitioned; BootDisk is the first.
	Disks    []string
	BootDisk string
	// Partitions in the order they are created, disk by disk.
	Partitions  []Partition
	BootSizeMiB int
	// Boots are the boot filesystems: one on the first disk, or one on every
	// disk (MirroredBoots), each with GRUB for its disk.
	Boots         []Boot
	MirroredBoots bool
	// Swaps are swap partitions, by filesystem label.
	Swaps       []Swap
	SwapSizeMiB int
	// Topology is the pool's vdev type: "" for a single disk, "mirror",
	// "raidz1" or "raidz2".
	Topology    string
	Pool        string
	PoolDevices []string
	// RootDevice is the ext4 root of the ext4 and mdadm layouts (with LUKS,
	// the opened volume in /dev/mapper).
	RootDevice string
	// RAIDDevice is the md RAID1 of the mdadm layout.
	RAIDDevice string
	// RAIDMembers make the md RAID1 of the mdadm layout, at RAIDDevice.
	RAIDMembers []string
	// ARCMaxBytes caps the ZFS ARC; 0 leaves the default.
	ARCMaxBytes int64
	// DevNodes is boot.zfs.devNodes when the default (/dev/disk/by-id) would
	// not find the pool: disks without a by-id link, such as virtio disks
	// without a serial, or a pool on LUKS volumes (/dev/mapper).
	DevNodes string
	// EncryptedDataset is the ZFS dataset created with native encryption
	// (rpool/crypt), under which every other dataset goes; empty without.
	EncryptedDataset string
	// LUKSVolumes are formatted with LUKS2 and opened before the pool or
	// the ext4 root is made on them; empty without LUKS.
	LUKSVolumes []LUKSVolume
	// PoolOptions are `zpool create -o` settings, in order (ashift, and
	// compatibility when the installer's ZFS is newer than the release's).
	PoolOptions []string
	// PoolCompatibility is the pool's compatibility= value, or empty.
	PoolCompatibility string
	// Datasets are created in order (parents first), all with mountpoint=legacy.
	Datasets []Dataset
	// Mounts are mounted under /mnt in order, parents first.
	Mounts []Mount
	// Identity is what each disk must be, for the disks the spec describes.
	Identity []DiskIdentity
	// ClearExisting: md arrays, LVM and ZFS pools on the disks may be stopped
	// and erased.
	ClearExisting bool
	// GrubConfigurationLimit keeps the generations on /boot within its size.
	GrubConfigurationLimit int

	// PlanSHA256 names what the partition and format phases carry out: the
	// sha256 of the disks, label, partitions, filesystems, swap, pool (its
	// options and datasets) or RAID, and mounts. kexec-install.sh writes it
	// into its progress record and resumes only a record of the same plan, so
	// a re-rendered bundle with the same storage resumes and any other does not.
	PlanSHA256 string
	// PoolComment is the ZFS pool's `comment` property, set at `zpool create`:
	// how the scripts recognise the pool this storage plan made ("nixplan-"
	// and 24 hex digits of PlanSHA256; OpenZFS allows 32 printable characters).
	// Empty for layouts without a pool.
	PoolComment string
}

// LUKSVolume is one LUKS2 volume: Device is encrypted, and opened as
// /dev/mapper/Name.
type LUKSVolume struct {
	Name   string
	Device string
}

// Mapper is where the opened volume appears.
func (v LUKSVolume) Mapper() string { return "/dev/mapper/" + v.Name }

// Boot is one boot filesystem: ext4 /boot on BIOS, the EFI system
// partition (vfat) on UEFI.
type Boot struct {
	Disk      string // GRUB goes on this disk (BIOS)
	Partition string
	Path      string // "/boot", "/boot-2", ...
	FSType    string // "ext4" or "vfat"
	Label     string // filesystem label
}

// Swap is one swap partition.
type Swap struct {
	Partition string
	Label     string
}

// DiskIdentity is what one disk must be; an empty Serial or a zero size is
// not checked.
type DiskIdentity struct {
	Device    string
	Serial    string
	SizeBytes int64
}

// Partition is one partition to create with parted.
type Partition struct {
	Disk   string
	Number int
	Path   string
	// Name is the GPT partition name; on msdos parted takes the type "primary".
	Name       string
	Start, End string // parted units, e.g. "1MiB", "100%"
	Flag       string // parted flag to set on, e.g. "bios_grub"; empty for none
	Role       string // "bios_grub", "boot" or "pool", for comments and messages
}

// Dataset is one ZFS dataset.
type Dataset struct {
	Name       string // full name with the pool, e.g. "rpool/root/nixos"
	Mountpoint string // empty: created, not mounted
}

// Mount is one filesystem mounted for the install.
type Mount struct {
	Source string
	Target string // the mountpoint in the installed system; mounted at /mnt+Target
	FSType string
}

// MntTarget is where the mount goes during the install.
func (m Mount) MntTarget() string {
	if m.Target == "/" {
		return "/mnt"
	}
	return "/mnt" + m.Target
}

// DeriveHostID returns the host id used when a spec gives none: the first 8
// hex digits of the sha256 of the host name, so it is stable across renders.
func DeriveHostID(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:4])
}

// PartitionPath returns the device path of partition n of a disk as the
// kernel (or udev, for by-id links) names it.
func PartitionPath(disk string, n int) string {
	num := strconv.Itoa(n)
	if strings.HasPrefix(disk, "/dev/disk/") {
		return disk + "-part" + num
	}
	if last := disk[len(disk)-1]; last >= '0' && last <= '9' {
		return disk + "p" + num // nvme0n1p1, mmcblk0p1, loop0p1
	}
	return disk + num
}

// grubConfigurationLimit estimates how many generations fit on /boot: each
// generation's kernel and initrd take up to about 64 MiB with ZFS, and 64 MiB
// stay free for GRUB itself and for the next generation while it is written.
func grubConfigurationLimit(bootMiB int) int {
	return min(max((bootMiB-64)/64, 2), 30)
}

var (
	ethRE         = regexp.MustCompile(`^eth[0-9]+$`)
	predictableRE = regexp.MustCompile(`^(en|wl|ww|ib|sl)[a-z0-9]+$`)
)

// mountDepth orders mounts parents first.
func mountDepth(target string) int {
	if target == "/" {
		return 0
	}
	return strings.Count(path.Clean(target), "/")
}
