package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// Layouts and their rules:
//   - zfs: a ZFS pool over a partition of every disk ("single" on one disk,
//     "mirror", "raidz1", "raidz2"), with legacy-mounted datasets;
//   - ext4: one disk, an ext4 root;
//   - mdadm: an ext4 root on an md RAID1 over a partition of every disk.
// Every disk that carries a /boot gets GRUB: the first disk only (boot =
// "first", the OVH legacy constraint) or every disk (boot = "all", GRUB's
// mirroredBoots). BIOS boots GRUB from the disk (GPT needs a 1 MiB bios_grub
// partition); UEFI boots \EFI\BOOT\BOOTX64.EFI from an EFI system partition
// mounted on /boot, and no EFI variable is ever written.

// maxDevices bounds disks.devices: the scripts check, wipe and partition
// each, and GRUB goes on every one with boot = "all".
const maxDevices = 64

// minDisks is the number of disks each ZFS topology needs.
var minDisks = map[string]int{"single": 1, "mirror": 2, "raidz1": 3, "raidz2": 4}

func validateDisks(ps *problems, spec *Spec, p *Plan) {
	d := spec.Disks
	s := &p.Storage

	s.Layout = d.Layout
	switch d.Layout {
	case "":
		s.Layout = "zfs"
	case "zfs", "ext4", "mdadm":
	default:
		ps.add("disks.layout", `"zfs" (a ZFS pool), "ext4" (one disk, ext4 root) or "mdadm" (ext4 on md RAID1 over every disk)`, "unknown layout %q", clip(d.Layout))
	}

	devicesOK := validateDevices(ps, d.Devices)
	n := len(d.Devices)

	// The shape of the root: a topology for ZFS, one disk for ext4, two or
	// more for mdadm. Several disks are never striped silently.
	switch s.Layout {
	case "zfs":
		topo := d.Topology
		if topo == "" {
			topo = "single"
			if n > 1 {
				ps.add("disks.topology", `topology = "mirror" (or "raidz1" from 3 disks, "raidz2" from 4)`,
					"%d disks need a topology; nixplan never stripes disks without redundancy", n)
			}
		}
		if need, ok := minDisks[topo]; !ok {
			ps.add("disks.topology", `"single", "mirror", "raidz1" or "raidz2"`, "unknown topology %q", clip(topo))
		} else if d.Topology != "" && n > 0 && (n < need || (topo == "single" && n != 1)) {
			ps.add("disks.topology", fmt.Sprintf("%s takes %s", clip(topo), map[bool]string{true: "exactly 1 disk", false: fmt.Sprintf("at least %d disks", need)}[topo == "single"]),
				"%s does not fit %d disks", clip(topo), n)
		}
		if topo != "single" {
			s.Topology = topo
		}
	case "ext4":
		if n > 1 {
			ps.add("disks.devices", `one disk; for RAID1 over several disks use layout = "mdadm"`, "layout \"ext4\" takes one disk, got %d", n)
			devicesOK = false
		}
	case "mdadm":
		if n == 1 {
			ps.add("disks.devices", `at least two disks for a RAID1; for one disk use layout = "ext4"`, "layout \"mdadm\" needs at least 2 disks, got 1")
			devicesOK = false
		}
	}
	if s.Layout == "ext4" || s.Layout == "mdadm" {
		for _, k := range []struct {
			key string
			set bool
		}{{"disks.topology", d.Topology != ""}, {"disks.pool", d.Pool != ""}, {"disks.datasets", d.Datasets != nil}, {"disks.arc_max", d.ARCMax != ""}} {
			if k.set {
				ps.add(k.key, `leave it out, or use layout = "zfs"`, "is for layout \"zfs\" only")
			}
		}
	}

	s.Label = d.Label
	switch d.Label {
	case "":
		s.Label = "gpt"
	case "gpt":
	case "msdos":
		if p.Firmware == "uefi" {
			ps.add("disks.label", `label = "gpt"`, "UEFI boots from an EFI system partition on a GPT disk, not msdos")
		}
	default:
		ps.add("disks.label", `"gpt" (any size; a 1 MiB bios_grub partition is added on BIOS) or "msdos" (disks up to 2 TiB)`, "unknown partition label %q", clip(d.Label))
	}

	switch d.Boot {
	case "", "first":
	case "all":
		s.MirroredBoots = n > 1
	default:
		ps.add("disks.boot", `"first" (/boot and GRUB on the first disk) or "all" (on every disk, GRUB mirroredBoots)`, "unknown boot %q", clip(d.Boot))
	}

	s.BootSizeMiB = 512
	if d.BootSize != "" {
		mib, err := parseMiB(d.BootSize)
		switch {
		case err != nil:
			ps.add("disks.boot_size", `a whole number of KiB, MiB, GiB or TiB that is a multiple of 1 MiB, e.g. "512MiB"`, "%q: %v", clip(d.BootSize), err)
		case mib < 128 || mib > 8192:
			ps.add("disks.boot_size", `between "128MiB" and "8GiB"; "512MiB" holds several generations`, "%q is out of range", clip(d.BootSize))
		default:
			s.BootSizeMiB = mib
		}
	}
	s.GrubConfigurationLimit = grubConfigurationLimit(s.BootSizeMiB)

	if d.SwapSize != "" {
		mib, err := parseMiB(d.SwapSize)
		switch {
		case err != nil:
			ps.add("disks.swap_size", `a size such as "8GiB"`, "%q: %v", clip(d.SwapSize), err)
		case mib < 128 || mib > 256<<10:
			ps.add("disks.swap_size", `between "128MiB" and "256GiB"`, "%q is out of range", clip(d.SwapSize))
		default:
			s.SwapSizeMiB = mib
		}
	}
	if d.ARCMax != "" {
		mib, err := parseMiB(d.ARCMax)
		switch {
		case err != nil:
			ps.add("disks.arc_max", `a size such as "4GiB"`, "%q: %v", clip(d.ARCMax), err)
		case mib < 64:
			ps.add("disks.arc_max", `at least "64MiB"`, "%q is too small for the ZFS ARC", clip(d.ARCMax))
		default:
			s.ARCMaxBytes = int64(mib) << 20
		}
	}

	// 4 KiB sectors: right for modern disks, harmless on 512-byte ones.
	s.PoolOptions = []string{"ashift=12"}
	if s.Layout == "zfs" {
		s.Pool = d.Pool
		if s.Pool == "" {
			s.Pool = "rpool"
		} else if !poolNameRE.MatchString(s.Pool) || reservedPoolNames[s.Pool] || isDiskLikePoolName(s.Pool) || len(s.Pool) > 200 {
			ps.add("disks.pool", `a name that starts with a letter, of letters, digits and "_ . : -", not a vdev word (mirror, raidz, …) or a disk name (c0…)`, "%q is not a valid pool name", clip(s.Pool))
		}
		validateDatasets(ps, d.Datasets, s, bootMountpoints(d, n))
	}

	validateIdentity(ps, d, s)
	validateSameDisk(ps, d)
	s.ClearExisting = d.ClearExisting

	if devicesOK && n > 0 {
		s.Disks = d.Devices
		s.BootDisk = d.Devices[0]
		layoutPartitions(s, p.Firmware)
	}
	// Disks without a /dev/disk/by-id link (virtio without a serial) cannot
	// be found where ZFS looks by default.
	for _, dev := range s.Disks {
		if s.Layout == "zfs" && strings.HasPrefix(dev, "/dev/vd") {
			s.DevNodes = "/dev/disk/by-partuuid"
		}
	}
}

func validateDevices(ps *problems, devices []string) bool {
	ok := true
	switch {
	case len(devices) == 0:
		ps.add("disks.devices", `e.g. devices = ["/dev/sda"]; the first disk carries /boot and GRUB`, "missing; the disks to wipe and install on")
		return false
	case len(devices) > maxDevices:
		ps.add("disks.devices", `e.g. devices = ["/dev/sda", "/dev/sdb"]; add other disks to a pool after the install`, "an array of %d paths; nixplan installs on at most %d disks", len(devices), maxDevices)
		return false
	}
	seen := map[string]bool{}
	for i, dev := range devices {
		key := fmt.Sprintf("disks.devices[%d]", i)
		switch {
		case !devicePathRE.MatchString(dev):
			ps.add(key, `an absolute /dev path of letters, digits and "/ . _ : + -", e.g. "/dev/sda" or "/dev/disk/by-id/ata-..."`, "%q is not a device path", clip(dev))
			ok = false
		case path.Clean(dev) != dev:
			ps.add(key, fmt.Sprintf("write %q", clip(path.Clean(dev))), "%q is not a clean path", clip(dev))
			ok = false
		case pathLimit(dev) != "":
			ps.add(key, "the disk's path as ls /dev/disk/by-id lists it", "%s", pathLimit(dev))
			ok = false
		case seen[dev]:
			ps.add(key, "", "%s is listed twice", clip(dev))
			ok = false
		case strings.HasPrefix(dev, "/dev/disk/") && strings.Contains(dev, "-part"):
			ps.add(key, "name the whole disk; nixplan makes the partitions", "%s is a partition, not a disk", clip(dev))
			ok = false
		}
		seen[dev] = true
	}
	return ok
}

func validateIdentity(ps *problems, d DisksSpec, s *Storage) {
	listed := map[string]bool{}
	for _, dev := range d.Devices {
		listed[dev] = true
	}
	identified := map[string]bool{}
	for i, id := range d.Identity {
		key := fmt.Sprintf("disks.identity[%d]", i)
		ok := true
		switch {
		case id.Device == "":
			ps.add(key+".device", "the disk this identity is for, as listed in disks.devices", "missing")
			ok = false
		case !listed[id.Device]:
			ps.add(key+".device", "one of disks.devices", "%q is not in disks.devices", clip(id.Device))
			ok = false
		case identified[id.Device]:
			ps.add(key+".device", "", "%s has two identities", clip(id.Device))
			ok = false
		}
		identified[id.Device] = true
		if id.Serial != "" && !serialRE.MatchString(id.Serial) {
			ps.add(key+".serial", "the serial as lsblk -dno SERIAL prints it", "%q is not a disk serial", clip(id.Serial))
			ok = false
		}
		if id.SizeBytes < 0 || (id.SizeBytes > 0 && id.SizeBytes < 1<<30) {
			ps.add(key+".size_bytes", "the size in bytes as lsblk -dbno SIZE prints it", "%d is not the size of a disk to install on", id.SizeBytes)
			ok = false
		}
		if id.Serial == "" && id.SizeBytes == 0 {
			ps.add(key, "give serial, size_bytes or both", "an identity without serial or size checks nothing")
			ok = false
		}
		// An msdos label cannot address beyond 2 TiB.
		if id.SizeBytes > 2<<40 && s.Label == "msdos" {
			ps.add("disks.label", `label = "gpt"`, "%s is %d bytes, beyond the 2 TiB an msdos label can address", clip(id.Device), id.SizeBytes)
		}
		if ok {
			s.Identity = append(s.Identity, DiskIdentity{Device: id.Device, Serial: id.Serial, SizeBytes: id.SizeBytes})
		}
	}
}

// validateSameDisk refuses one disk listed twice under two names: the
// install would partition it twice and build a pool or RAID on itself. Two
// identities with one serial are one disk; so are a by-id path that ends in
// the serial another entry's identity gives, and two by-id paths that end in
// the same serial (udev names a disk's ata-, scsi- and nvme- links
// BUS-MODEL_SERIAL). check --facts compares what each path is on the machine.
func validateSameDisk(ps *problems, d DisksSpec) {
	bySerial := map[string]int{}
	for i, id := range d.Identity {
		if id.Serial == "" {
			continue
		}
		if j, dup := bySerial[id.Serial]; dup {
			ps.add(fmt.Sprintf("disks.identity[%d].serial", i), "give each disk its own serial, as lsblk -dno SERIAL prints it",
				"%q is also the serial disks.identity[%d] gives %s: one disk cannot be two entries of disks.devices", clip(id.Serial), j, clip(d.Identity[j].Device))
			continue
		}
		bySerial[id.Serial] = i
	}
	tails := map[string]int{}
	for i, dev := range d.Devices {
		name, ok := strings.CutPrefix(dev, "/dev/disk/by-id/")
		if !ok {
			continue
		}
		key := fmt.Sprintf("disks.devices[%d]", i)
		for j, id := range d.Identity {
			if id.Serial != "" && id.Device != dev && (strings.HasSuffix(name, "_"+id.Serial) || strings.HasSuffix(name, "-"+id.Serial)) {
				ps.add(key, "list each disk once; its identity may name it by either path", "%s names the disk with serial %s, which disks.identity[%d] gives %s: the same disk twice",
					clip(dev), clip(id.Serial), j, clip(id.Device))
			}
		}
		if k := strings.LastIndexByte(name, '_'); k >= 0 && len(name)-k > 4 {
			tail := name[k+1:]
			if j, dup := tails[tail]; dup {
				ps.add(key, "list each disk once; if they are two disks, pin them by serial in [[disks.identity]]",
					"%s and disks.devices[%d] (%s) both end in the serial %s: the same disk twice", clip(dev), j, clip(d.Devices[j]), clip(tail))
				continue
			}
			tails[tail] = i
		}
	}
}

// bootMountpoints are where the boot partitions will be mounted: /boot,
// and with boot = "all" /boot-2, /boot-3, … for the other disks (as
// layoutPartitions names them).
func bootMountpoints(d DisksSpec, disks int) []string {
	mps := []string{"/boot"}
	if d.Boot == "all" {
		for i := 2; i <= min(disks, maxDevices); i++ {
			mps = append(mps, "/boot-"+strconv.Itoa(i))
		}
	}
	return mps
}

// layoutPartitions lays out every disk: [bios_grub] [boot] [swap] data,
// where the data partition is the pool's, the ext4 root or the RAID member.
func layoutPartitions(s *Storage, firmware string) {
	for i, disk := range s.Disks {
		start, n := 1, 1
		add := func(name, role, flag string, size int) string {
			end := "100%"
			if size > 0 {
				end = strconv.Itoa(start+size) + "MiB"
			}
			part := Partition{Disk: disk, Number: n, Path: PartitionPath(disk, n), Name: name, Role: role, Flag: flag,
				Start: strconv.Itoa(start) + "MiB", End: end}
			s.Partitions = append(s.Partitions, part)
			start += size
			n++
			return part.Path
		}
		suffix := ""
		if i > 0 {
			suffix = strconv.Itoa(i + 1)
		}
		if i == 0 || s.MirroredBoots {
			boot := Boot{Disk: disk, Path: "/boot"}
			if i > 0 {
				boot.Path = "/boot-" + suffix
			}
			if firmware == "uefi" {
				boot.FSType, boot.Label = "vfat", "EFI"+suffix
				boot.Partition = add("ESP"+suffix, "esp", "esp", s.BootSizeMiB)
			} else {
				if s.Label == "gpt" {
					add("bios_grub", "bios_grub", "bios_grub", 1)
				}
				boot.FSType, boot.Label = "ext4", "boot"+suffix
				boot.Partition = add("boot"+suffix, "boot", "", s.BootSizeMiB)
			}
			s.Boots = append(s.Boots, boot)
			s.Mounts = append(s.Mounts, Mount{Source: boot.Partition, Target: boot.Path, FSType: boot.FSType})
		}
		if s.SwapSizeMiB > 0 {
			label := "swap" + suffix
			s.Swaps = append(s.Swaps, Swap{Label: label, Partition: add(label, "swap", "", s.SwapSizeMiB)})
		}
		switch s.Layout {
		case "zfs":
			s.PoolDevices = append(s.PoolDevices, add(s.Pool+suffix, "pool", "", 0))
		case "ext4":
			s.RootDevice = add("root", "root", "", 0)
		case "mdadm":
			s.RAIDMembers = append(s.RAIDMembers, add("raid"+suffix, "raid", "raid", 0))
		}
	}
	if s.Layout == "mdadm" {
		s.RAIDDevice = "/dev/md/root"
		s.RootDevice = s.RAIDDevice
	}
	if s.RootDevice != "" {
		s.Mounts = append(s.Mounts, Mount{Source: s.RootDevice, Target: "/", FSType: "ext4"})
	}
	sortMounts(s.Mounts)
}

// isDiskLikePoolName: zpool refuses pool names that look like disks (c0...).
func isDiskLikePoolName(name string) bool {
	return len(name) > 1 && name[0] == 'c' && name[1] >= '0' && name[1] <= '9'
}

// maxPoolComment is the longest pool comment OpenZFS accepts
// (openzfs/zfs zfs-2.1.5, include/sys/fs/zfs.h: ZPROP_MAX_COMMENT 32;
// lib/libzfs/libzfs_pool.c also requires printable characters).
const maxPoolComment = 32

// identifyStorage sets the storage plan's hash and, for ZFS, the pool
// comment derived from it. It runs after every storage value is final,
// the pool's compatibility option included.
func identifyStorage(s *Storage) {
	carried := struct {
		Layout, Label, Topology, Pool, RootDevice    string
		Disks, PoolDevices, PoolOptions, RAIDMembers []string
		Partitions                                   []Partition
		Boots                                        []Boot
		Swaps                                        []Swap
		Datasets                                     []Dataset
		Mounts                                       []Mount
		// Encryption changes what the format phase makes; omitted when
		// empty, so the plans of unencrypted layouts keep their hash.
		EncryptedDataset string       `json:",omitempty"`
		LUKSVolumes      []LUKSVolume `json:",omitempty"`
	}{s.Layout, s.Label, s.Topology, s.Pool, s.RootDevice, s.Disks, s.PoolDevices, s.PoolOptions, s.RAIDMembers,
		s.Partitions, s.Boots, s.Swaps, s.Datasets, s.Mounts, s.EncryptedDataset, s.LUKSVolumes}
	data, err := json.Marshal(carried)
	if err != nil {
		panic(err) // plain strings and slices always marshal
	}
	sum := sha256.Sum256(data)
	s.PlanSHA256 = hex.EncodeToString(sum[:])
	s.PoolComment = ""
	if s.Layout == "zfs" {
		prefix := "nixplan-"
		s.PoolComment = prefix + s.PlanSHA256[:maxPoolComment-len(prefix)]
	}
}
