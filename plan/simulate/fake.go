package simulate

import (
	"fmt"
	"hash/fnv"
	"io"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/nixplan/nixplan/plan"
	"github.com/nixplan/nixplan/plan/machine"
)

// FakeMachine plays a machine described by a machine.Machine for the bundle's
// scripts: it answers the commands they read the machine with (lsblk, ip, id,
// uname, zpool list, lvs, curl --head) and keeps track of what the commands
// that change the machine would have done (partitions made by parted, pools
// created and exported, filesystems mounted), so that a later read sees it.
// `nixplan simulate` and the tests that run the scripts under bash both use
// it; neither runs any command that changes a real machine.
type FakeMachine struct {
	Machine *machine.Machine `json:"-"`
	Faults  Faults           `json:"faults"`

	// Relabeled disks have a new partition table with these partitions,
	// by the disk's kernel path.
	Relabeled map[string][]string `json:"relabeled"`
	// Labels are the partition tables parted wrote ("msdos", "gpt"), by the
	// disk's kernel path.
	Labels map[string]string `json:"labels"`
	// Pools imported now (the machine's own start imported).
	Pools map[string]bool `json:"pools"`
	// Stopped md arrays and device-mapper volumes, by kernel name.
	Stopped map[string]bool `json:"stopped"`
	// Mounts made by the scripts, in order.
	Mounts []plan.Mount `json:"mounts"`
	// Versions are what the installer's `nix --version` and `zfs version`
	// report ("nix": "2.18.0", "zfs": "2.2.0"), which a machine description
	// does not say; empty in the rescue system.
	Versions map[string]string `json:"versions"`
	// PoolComments are the pools' `comment` properties, by pool name: those
	// the scripts set with zpool create, and those a test gives the pools on
	// the description's disks (facts.sh cannot read them: blkid does not).
	PoolComments map[string]string `json:"pool_comments"`
	// CreatedPools are the pools the scripts created, with their devices.
	CreatedPools map[string][]string `json:"created_pools"`
	// Swaps are the swap partitions swapon turned on, as given.
	Swaps []string `json:"swaps"`
	// LUKS are the devices cryptsetup luksFormat formatted; Opened the
	// /dev/mapper names it opened. Keys are the encrypted ZFS datasets
	// whose key is loaded.
	LUKS   map[string]bool `json:"luks,omitempty"`
	Opened map[string]bool `json:"opened,omitempty"`
	Keys   map[string]bool `json:"keys,omitempty"`
	// Arrays are the md arrays mdadm created or assembled, by the device
	// given; an array of the description is there until it is stopped.
	Arrays map[string]bool `json:"arrays,omitempty"`
}

// Faults are what a machine description does not say but a test or a
// simulation may want to break.
type Faults struct {
	// Offline: the channel and binary cache cannot be reached.
	Offline bool `json:"offline"`
}

// NewFakeMachine starts a fake from a machine description.
func NewFakeMachine(m *machine.Machine) *FakeMachine {
	f := &FakeMachine{Machine: m, Relabeled: map[string][]string{}, Labels: map[string]string{}, Pools: map[string]bool{}, Stopped: map[string]bool{},
		PoolComments: map[string]string{}, CreatedPools: map[string][]string{},
		LUKS: map[string]bool{}, Opened: map[string]bool{}, Keys: map[string]bool{}}
	for _, p := range m.ZFSPools {
		f.Pools[p] = true
	}
	return f
}

// readCommands answer from the machine and change nothing.
var readCommands = map[string]bool{"id": true, "uname": true, "lsblk": true, "ip": true, "lvs": true, "blkid": true}

// changeCommands are the commands that change a machine: a recording PATH
// records them instead of running them, and simulate lists them.
var changeCommands = map[string]bool{
	"parted": true, "sgdisk": true, "wipefs": true, "mkfs.ext4": true, "mkfs.vfat": true, "mkfs.fat": true, "mkswap": true,
	"zpool": true, "zfs": true, "mdadm": true, "vgchange": true, "mount": true, "umount": true, "swapon": true, "swapoff": true,
	"nixos-generate-config": true, "nix-channel": true, "nixos-install": true, "nixos-enter": true,
	"kexec": true, "run": true, "reboot": true, "apt-get": true, "udevadm": true, "partprobe": true,
	"curl": true, "wget": true, "ssh-keygen": true, "nix": true, "nix-instantiate": true,
	"nix-build": true, "cryptsetup": true,
}

// ChangesMachine reports whether a command changes the machine, given its
// arguments (zpool list, status and get, zpool import without a pool to
// import, curl --head and ssh-keygen -l only read).
func ChangesMachine(argv []string) bool {
	name := path.Base(argv[0])
	switch {
	case name == "zpool" && len(argv) > 1 && (argv[1] == "list" || argv[1] == "status" || argv[1] == "get"):
		return false
	case name == "zpool" && len(argv) > 1 && argv[1] == "import" && zpoolTarget(argv[1:]) == "":
		return false
	case name == "curl" && slices.Contains(argv, "--head"):
		return false
	case name == "ssh-keygen" && slices.Contains(argv, "-l"):
		return false
	case name == "nix" && len(argv) == 2 && argv[1] == "--version":
		return false
	case name == "zfs" && len(argv) == 2 && argv[1] == "version":
		return false
	case name == "nixos-generate-config" && slices.Contains(argv, "--show-hardware-config"):
		return false
	case name == "zfs" && len(argv) > 1 && argv[1] == "get":
		return false
	case name == "mdadm" && len(argv) > 1 && argv[1] == "--detail":
		return false
	case name == "cryptsetup" && len(argv) > 1 && slices.Contains([]string{"status", "luksUUID", "--version", "isLuks", "luksDump"}, argv[1]):
		return false
	}
	return changeCommands[name]
}

// PreErase reports whether a command that changes the machine changes only
// the installer's memory, as getting nixpkgs and evaluating the target
// system do: kexec-install.sh runs these in preflight, before the operator
// consents to the erase.
func PreErase(argv []string) bool {
	switch path.Base(argv[0]) {
	case "nix-channel", "nix-instantiate", "curl", "nix-build":
		return true
	case "nix":
		return len(argv) > 1 && (slices.Contains(argv, "eval") || slices.Contains(argv, "archive") || slices.Contains(argv, "build"))
	}
	return false
}

// Handles reports whether the fake answers or plays this command.
func (f *FakeMachine) Handles(name string) bool {
	name = path.Base(name)
	return readCommands[name] || changeCommands[name]
}

// Exec answers or plays one command and returns its exit status. A command
// that changes the machine only changes the fake's state.
func (f *FakeMachine) Exec(argv []string, stdout, stderr io.Writer) int {
	name := path.Base(argv[0])
	args := argv[1:]
	switch name {
	case "id":
		if slices.Contains(args, "-u") {
			fmt.Fprintln(stdout, "0")
		} else {
			fmt.Fprintln(stdout, "uid=0(root) gid=0(root) groups=0(root)")
		}
		return 0
	case "uname":
		switch {
		case slices.Contains(args, "-r"):
			fmt.Fprintln(stdout, f.Machine.Kernel)
		case slices.Contains(args, "-m"):
			fmt.Fprintln(stdout, f.Machine.Arch)
		default:
			fmt.Fprintln(stdout, "Linux")
		}
		return 0
	case "lsblk":
		return f.lsblk(args, stdout, stderr)
	case "ip":
		return f.ip(args, stdout, stderr)
	case "lvs":
		return f.lvs(args, stdout)
	case "curl":
		if slices.Contains(args, "--head") && f.Faults.Offline {
			fmt.Fprintln(stderr, "curl: (6) Could not resolve host")
			return 6
		}
		return 0
	case "zpool":
		return f.zpool(args, stdout, stderr)
	case "nix":
		if len(args) == 1 && args[0] == "--version" {
			if v := f.Versions["nix"]; v != "" {
				fmt.Fprintf(stdout, "nix (Nix) %s\n", v)
				return 0
			}
			fmt.Fprintln(stderr, "nix: the simulated machine has no Nix")
			return 127
		}
		if slices.Contains(args, "eval") {
			fmt.Fprint(stdout, "/nix/store/00000000000000000000000000000000-nixos-system-simulated.drv")
		}
	case "nixos-generate-config":
		if slices.Contains(args, "--show-hardware-config") {
			fmt.Fprintln(stdout, "# A stand-in for nixos-generate-config --show-hardware-config of the simulated machine.\n{ ... }:\n{\n}")
		}
	case "nix-instantiate":
		fmt.Fprintln(stdout, "/nix/store/00000000000000000000000000000000-nixos-system-simulated.drv")
	case "cryptsetup":
		return f.cryptsetup(args, stdout, stderr)
	case "zfs":
		if len(args) > 0 && args[0] != "version" {
			return f.zfs(args, stdout)
		}
		if len(args) == 1 && args[0] == "version" {
			if v := f.Versions["zfs"]; v != "" {
				fmt.Fprintf(stdout, "zfs-%s-1\nzfs-kmod-%s-1\n", v, v)
				return 0
			}
			fmt.Fprintln(stderr, "zfs: the simulated machine has no ZFS")
			return 127
		}
	case "parted":
		return f.parted(args, stderr)
	case "mdadm":
		return f.mdadm(args, stderr)
	case "vgchange":
		for _, v := range f.Machine.DMVolumes {
			if len(args) == 2 && strings.HasPrefix(v.DMName, args[1]+"-") {
				f.Stopped[v.Name] = true
			}
		}
	case "swapon":
		if len(args) > 0 {
			f.Swaps = append(f.Swaps, args[len(args)-1])
		}
	case "mount":
		if len(args) == 4 && args[0] == "-t" {
			f.Mounts = append(f.Mounts, plan.Mount{FSType: args[1], Source: args[2], Target: args[3]})
		}
	case "umount":
		if len(args) == 2 && args[0] == "-R" {
			f.Mounts = slices.DeleteFunc(f.Mounts, func(m plan.Mount) bool {
				return m.Target == args[1] || strings.HasPrefix(m.Target, strings.TrimSuffix(args[1], "/")+"/")
			})
		}
	case "ssh-keygen":
		if slices.Contains(args, "-l") {
			fmt.Fprintln(stdout, "256 SHA256:fake-fingerprint-of-a-simulated-host-key root@nixos (ED25519)")
		}
	}
	return 0
}

// cryptsetup plays luksFormat, open, close, status, luksUUID and --version.
// The passphrase is not checked: the fake keeps no key material.
func (f *FakeMachine) cryptsetup(args []string, stdout, stderr io.Writer) int {
	var operands []string
	for i := 1; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--type" || a == "--key-file" || a == "--cipher" || a == "--key-size":
			i++ // its value
		case !strings.HasPrefix(a, "-"):
			operands = append(operands, a)
		}
	}
	if f.LUKS == nil {
		f.LUKS = map[string]bool{}
	}
	if f.Opened == nil {
		f.Opened = map[string]bool{}
	}
	if len(operands) > 0 && strings.HasPrefix(operands[0], "/dev/md") && args[0] != "close" && args[0] != "status" && !f.arrayPresent(operands[0]) {
		// An md array that is not assembled has no device to open.
		fmt.Fprintf(stderr, "Device %s does not exist or access denied.\n", operands[0])
		return 4
	}
	switch {
	case len(args) > 0 && args[0] == "--version":
		fmt.Fprintln(stdout, "cryptsetup 2.7.5 flags: UDEV BLKID KEYRING FIPS KERNEL_CAPI PWQUALITY")
	case len(args) == 0:
		return 1
	case args[0] == "luksFormat" && len(operands) == 1:
		f.LUKS[operands[0]] = true
	case args[0] == "open" && len(operands) == 2:
		if !f.LUKS[operands[0]] {
			fmt.Fprintf(stderr, "Device %s is not a valid LUKS device.\n", operands[0])
			return 1
		}
		f.Opened[operands[1]] = true
	case args[0] == "close" && len(operands) == 1:
		delete(f.Opened, operands[0])
	case args[0] == "status" && len(operands) == 1:
		if !f.Opened[operands[0]] {
			fmt.Fprintf(stdout, "/dev/mapper/%s is inactive.\n", operands[0])
			return 4
		}
		fmt.Fprintf(stdout, "/dev/mapper/%s is active.\n", operands[0])
	case args[0] == "luksUUID" && len(operands) == 1:
		if !f.LUKS[operands[0]] {
			fmt.Fprintf(stderr, "Device %s is not a valid LUKS device.\n", operands[0])
			return 1
		}
		h := fnv.New64a()
		h.Write([]byte(operands[0]))
		sum := h.Sum64()
		fmt.Fprintf(stdout, "%08x-%04x-4%03x-8%03x-%012x\n", uint32(sum>>32), uint16(sum>>16), uint16(sum)&0xfff, uint16(sum>>4)&0xfff, sum&0xffffffffffff)
	default:
		fmt.Fprintf(stderr, "cryptsetup: the simulated machine does not play %q\n", args)
		return 1
	}
	return 0
}

// mdadm plays --create and --assemble (the array is there from then on),
// --stop, and --detail, which fails for an array that is not there.
func (f *FakeMachine) mdadm(args []string, stderr io.Writer) int {
	if len(args) < 2 {
		return 0
	}
	if f.Arrays == nil {
		f.Arrays = map[string]bool{}
	}
	dev := args[1]
	switch args[0] {
	case "--create", "--assemble":
		f.Arrays[dev] = true
	case "--stop":
		f.Stopped[path.Base(dev)] = true
		delete(f.Arrays, dev)
	case "--detail":
		if !f.arrayPresent(dev) {
			fmt.Fprintf(stderr, "mdadm: cannot open %s: No such file or directory\n", dev)
			return 1
		}
	}
	return 0
}

// arrayPresent: the md array dev is assembled.
func (f *FakeMachine) arrayPresent(dev string) bool {
	if f.Arrays[dev] {
		return true
	}
	for _, a := range f.Machine.MDArrays {
		if a.Path == dev && !f.Stopped[path.Base(dev)] {
			return true
		}
	}
	return false
}

// zfs plays the encryption of datasets: create with encryption= loads its
// key, load-key loads one, get keystatus reports it.
func (f *FakeMachine) zfs(args []string, stdout io.Writer) int {
	if f.Keys == nil {
		f.Keys = map[string]bool{}
	}
	last := args[len(args)-1]
	switch args[0] {
	case "create":
		if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "encryption=") }) {
			f.Keys[last] = true
		}
	case "load-key":
		f.Keys[last] = true
	case "get":
		if len(args) >= 2 && args[len(args)-2] == "keystatus" {
			if f.Keys[last] {
				fmt.Fprintln(stdout, "available")
			} else {
				fmt.Fprintln(stdout, "unavailable")
			}
		}
	}
	return 0
}

// Mounted reports whether something is mounted at target.
func (f *FakeMachine) Mounted(target string) bool {
	return slices.ContainsFunc(f.Mounts, func(m plan.Mount) bool { return m.Target == target })
}

func (f *FakeMachine) parted(args []string, stderr io.Writer) int {
	// parted --script DISK -- mklabel LABEL | mkpart NAME START END | set N FLAG on
	var rest []string
	for _, a := range args {
		if a != "--script" && a != "-s" && a != "--" {
			rest = append(rest, a)
		}
	}
	if len(rest) < 2 {
		return 0
	}
	// A disk named by a by-id link is the same disk as its kernel path.
	disk := rest[0]
	d := f.Machine.Disk(disk)
	if d != nil {
		disk = d.Path
	}
	if f.Labels == nil {
		f.Labels = map[string]string{}
	}
	switch rest[1] {
	case "mklabel":
		f.Relabeled[disk] = []string{}
		if len(rest) > 2 {
			f.Labels[disk] = rest[2]
		}
	case "mkpart":
		// An msdos label addresses 2^32 sectors: parted refuses a partition
		// beyond that, as on a 3 TB disk.
		if f.Labels[disk] == "msdos" && d != nil && len(rest) >= 5 {
			sector := d.LogicalSectorBytes
			if sector == 0 {
				sector = 512
			}
			start, okStart := partedBytes(rest[3], d.SizeBytes, sector)
			end, okEnd := partedBytes(rest[4], d.SizeBytes, sector)
			const maxSectors = 1<<32 - 1
			if okStart && okEnd && (end-start)/sector > maxSectors {
				fmt.Fprintf(stderr, "Error: partition length of %d sectors exceeds the msdos-partition-table-imposed maximum of %d\n", (end-start)/sector, int64(maxSectors))
				return 1
			}
		}
		f.Relabeled[disk] = append(f.Relabeled[disk], plan.PartitionPath(disk, len(f.Relabeled[disk])+1))
	}
	return 0
}

// partedBytes reads a parted position ("1MiB", "100%", "2048s") as bytes.
func partedBytes(s string, size, sector int64) (int64, bool) {
	units := []struct {
		suffix string
		bytes  int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"kB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}, {"s", sector}}
	if n, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseInt(n, 10, 64)
		return size * v / 100, err == nil
	}
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			return v * u.bytes, err == nil
		}
	}
	return 0, false
}

// zpoolTarget returns the first argument of a zpool subcommand that is not
// an option or an option's value: the pool (or, for import, its id).
func zpoolTarget(args []string) string {
	for i := 1; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-o" || a == "-O" || a == "-d" || a == "-c" || a == "-R" || a == "-T":
			i++
		case !strings.HasPrefix(a, "-"):
			return a
		}
	}
	return ""
}

func (f *FakeMachine) zpool(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return 2
	}
	pool := zpoolTarget(args)
	if f.PoolComments == nil {
		f.PoolComments = map[string]string{}
	}
	if f.CreatedPools == nil {
		f.CreatedPools = map[string][]string{}
	}
	switch args[0] {
	case "list", "status":
		if pool == "" {
			for _, p := range sortedNames(f.Pools) {
				if f.Pools[p] {
					fmt.Fprintln(stdout, p)
				}
			}
			return 0
		}
		if !f.Pools[pool] {
			fmt.Fprintf(stderr, "cannot open '%s': no such pool\n", pool)
			return 1
		}
		fmt.Fprintln(stdout, pool)
	case "get":
		// zpool get [-H] [-o value] PROPERTY POOL: only comment is played.
		var words []string
		for i := 1; i < len(args); i++ {
			if args[i] == "-o" {
				i++
				continue
			}
			if !strings.HasPrefix(args[i], "-") {
				words = append(words, args[i])
			}
		}
		if len(words) != 2 || words[0] != "comment" {
			fmt.Fprintf(stderr, "fake zpool: only 'zpool get -H -o value comment POOL' is played, not %q\n", strings.Join(args, " "))
			return 2
		}
		if !f.Pools[words[1]] {
			fmt.Fprintf(stderr, "cannot open '%s': no such pool\n", words[1])
			return 1
		}
		comment := f.PoolComments[words[1]]
		if comment == "" {
			comment = "-"
		}
		fmt.Fprintln(stdout, comment)
	case "create":
		for i := 1; i+1 < len(args); i++ {
			if v, ok := strings.CutPrefix(args[i+1], "comment="); ok && args[i] == "-o" {
				f.PoolComments[pool] = v
			}
		}
		f.Pools[pool] = true
		// The devices follow the pool and its vdev type.
		for i, a := range args {
			if a == pool {
				f.CreatedPools[pool] = slices.DeleteFunc(slices.Clone(args[i+1:]), func(d string) bool { return !strings.HasPrefix(d, "/") })
				break
			}
		}
	case "import":
		return f.zpoolImport(args, pool, stdout, stderr)
	case "export":
		f.Pools[pool] = false
	}
	return 0
}

// importablePool is a pool `zpool import` can see: exported, on the disks.
type importablePool struct {
	name, id, comment string
	devices           []string
}

// importable lists the pools zpool import finds: the pools the
// description's partitions hold (where no new partition table replaced
// them) and the pools the scripts created, when they are not imported.
func (f *FakeMachine) importable() []importablePool {
	var out []importablePool
	byName := map[string]int{}
	add := func(name, dev string) {
		if f.Pools[name] {
			return
		}
		i, ok := byName[name]
		if !ok {
			sum := fnv.New64a()
			sum.Write([]byte(name))
			out = append(out, importablePool{name: name, id: strconv.FormatUint(sum.Sum64()>>1, 10), comment: f.PoolComments[name]})
			i = len(out) - 1
			byName[name] = i
		}
		out[i].devices = append(out[i].devices, dev)
	}
	for _, d := range f.Machine.Disks {
		if _, relabeled := f.Relabeled[d.Path]; relabeled {
			continue
		}
		for _, p := range d.Partitions {
			for _, sig := range p.Signatures {
				if sig.Type == "zfs_member" && sig.Label != "" {
					add(sig.Label, p.Path)
				}
			}
		}
	}
	for _, name := range sortedNames(f.CreatedPools) {
		for _, dev := range f.CreatedPools[name] {
			add(name, dev)
		}
	}
	return out
}

// zpoolImport plays zpool import: without a pool it lists the importable
// pools (those on the device given with -d) as OpenZFS prints them
// (openzfs/zfs zfs-2.1.5, cmd/zpool/zpool_main.c, show_import: pool, id,
// state, action, then comment when the pool has one, then the config);
// with a pool's name or numeric id it imports that pool.
func (f *FakeMachine) zpoolImport(args []string, target string, stdout, stderr io.Writer) int {
	device := ""
	for i := 1; i+1 < len(args); i++ {
		if args[i] == "-d" {
			device = args[i+1]
		}
	}
	pools := f.importable()
	if device != "" {
		want := device
		if n := f.find(device); n != nil {
			want = n.path
		}
		pools = slices.DeleteFunc(pools, func(p importablePool) bool {
			return !slices.ContainsFunc(p.devices, func(d string) bool {
				n := f.find(d)
				return d == device || (n != nil && n.path == want)
			})
		})
	}
	if target == "" {
		if len(pools) == 0 {
			fmt.Fprintln(stderr, "no pools available to import")
			return 0
		}
		for _, p := range pools {
			fmt.Fprintf(stdout, "   pool: %s\n     id: %s\n  state: ONLINE\n action: The pool can be imported using its name or numeric identifier.\n", p.name, p.id)
			if p.comment != "" {
				fmt.Fprintf(stdout, "comment: %s\n", p.comment)
			}
			fmt.Fprintf(stdout, " config:\n\n\t%s\tONLINE\n", p.name)
			for _, d := range p.devices {
				fmt.Fprintf(stdout, "\t  %s\tONLINE\n", path.Base(d))
			}
			fmt.Fprintln(stdout)
		}
		return 0
	}
	for _, p := range pools {
		if p.name == target || p.id == target {
			f.Pools[p.name] = true
			return 0
		}
	}
	fmt.Fprintf(stderr, "cannot import '%s': no such pool available\n", target)
	return 1
}

func (f *FakeMachine) lvs(args []string, stdout io.Writer) int {
	dev := args[len(args)-1]
	for _, v := range f.Machine.DMVolumes {
		if "/dev/"+v.Name == dev || "/dev/mapper/"+v.DMName == dev {
			vg, _, _ := strings.Cut(v.DMName, "-")
			fmt.Fprintf(stdout, "  %s\n", vg)
			return 0
		}
	}
	return 5
}

func (f *FakeMachine) ip(args []string, stdout, stderr io.Writer) int {
	family := ""
	var words []string
	for _, a := range args {
		switch a {
		case "-o", "-oneline":
		case "-4":
			family = "ipv4"
		case "-6":
			family = "ipv6"
		default:
			words = append(words, a)
		}
	}
	if len(words) >= 1 && (words[0] == "route" || words[0] == "r") {
		// ip [-4|-6] route show default: "default via GW dev IF [onlink]".
		for _, r := range f.Machine.Routes {
			if (family == "" || r.Family == family) && r.Destination == "default" {
				line := "default"
				if r.Gateway != "" {
					line += " via " + r.Gateway
				}
				if r.Interface != "" {
					line += " dev " + r.Interface
				}
				if r.OnLink {
					line += " onlink"
				}
				fmt.Fprintln(stdout, line)
			}
		}
		return 0
	}
	if len(words) < 1 || (words[0] != "addr" && words[0] != "a" && words[0] != "address") {
		fmt.Fprintf(stderr, "fake ip: only 'ip -o [-4|-6] addr show' and 'ip [-4|-6] route show default' are played, not %q\n", strings.Join(args, " "))
		return 1
	}
	for i, ifc := range f.Machine.Interfaces {
		for _, a := range ifc.Addresses {
			if family != "" && a.Family != family {
				continue
			}
			kind := "inet"
			if a.Family == "ipv6" {
				kind = "inet6"
			}
			scope := a.Scope
			if scope == "" {
				scope = "global"
			}
			fmt.Fprintf(stdout, "%d: %s    %s %s/%d scope %s %s\\       valid_lft forever preferred_lft forever\n",
				i+2, ifc.Name, kind, a.Address, a.Prefix, scope, ifc.Name)
		}
	}
	return 0
}

// blockNode is one line of lsblk.
type blockNode struct {
	path, kind, fstype, label, mountpoint, serial, model string
	size                                                 int64
	children                                             []*blockNode
}

func (f *FakeMachine) blockTree() []*blockNode {
	m := f.Machine
	holders := func(names []string) []*blockNode {
		var out []*blockNode
		for _, h := range names {
			if f.Stopped[h] {
				continue
			}
			for _, md := range m.MDArrays {
				if md.Name == h {
					out = append(out, &blockNode{path: "/dev/" + md.Name, kind: mdKind(md.Level), mountpoint: first(md.Mountpoints), size: md.SizeBytes})
				}
			}
			for _, dm := range m.DMVolumes {
				if dm.Name == h {
					kind := "dm"
					if strings.HasPrefix(dm.UUID, "LVM-") {
						kind = "lvm"
					}
					out = append(out, &blockNode{path: "/dev/" + dm.Name, kind: kind, mountpoint: first(dm.Mountpoints)})
				}
			}
		}
		return out
	}
	var disks []*blockNode
	for _, d := range m.Disks {
		n := &blockNode{path: d.Path, kind: d.Type, fstype: firstSig(d.Signatures), mountpoint: first(d.Mountpoints),
			serial: d.Serial, model: d.Model, size: d.SizeBytes}
		if n.kind == "" {
			n.kind = "disk"
		}
		if parts, ok := f.Relabeled[d.Path]; ok {
			for _, p := range parts {
				n.children = append(n.children, &blockNode{path: p, kind: "part"})
			}
		} else {
			for _, p := range d.Partitions {
				pn := &blockNode{path: p.Path, kind: "part", fstype: firstSig(p.Signatures), label: firstLabel(p.Signatures), mountpoint: first(p.Mountpoints), size: p.SizeBytes}
				pn.children = holders(p.Holders)
				n.children = append(n.children, pn)
			}
			n.children = append(n.children, holders(d.Holders)...)
		}
		disks = append(disks, n)
	}
	return disks
}

func mdKind(level string) string {
	if level == "" {
		return "raid1"
	}
	return level
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func firstLabel(s []machine.Signature) string {
	if len(s) == 0 {
		return ""
	}
	return s[0].Label
}

func firstSig(s []machine.Signature) string {
	if len(s) == 0 {
		return ""
	}
	return s[0].Type
}

// find returns the node with a path (or a by-id link of its disk).
func (f *FakeMachine) find(dev string) *blockNode {
	var found *blockNode
	var walk func(ns []*blockNode)
	walk = func(ns []*blockNode) {
		for _, n := range ns {
			if n.path == dev && found == nil {
				found = n
			}
			walk(n.children)
		}
	}
	tree := f.blockTree()
	walk(tree)
	if found == nil {
		for i, d := range f.Machine.Disks {
			if slices.Contains(d.ByID, dev) {
				found = tree[i]
			}
			// A partition by its disk's by-id link: "...-part2".
			for _, id := range d.ByID {
				n, ok := strings.CutPrefix(dev, id+"-part")
				if k, err := strconv.Atoi(n); ok && err == nil && k >= 1 && k <= len(tree[i].children) && tree[i].children[k-1].kind == "part" && found == nil {
					found = tree[i].children[k-1]
				}
			}
		}
	}
	return found
}

func (f *FakeMachine) lsblk(args []string, stdout, stderr io.Writer) int {
	var noDeps, noHead, raw, fullPath, bytes bool
	cols := []string{"NAME", "SIZE", "TYPE", "MOUNTPOINT"}
	var devs []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			devs = append(devs, a)
			continue
		}
		for _, c := range strings.TrimLeft(a, "-") {
			switch c {
			case 'd':
				noDeps = true
			case 'n':
				noHead = true
			case 'r':
				raw = true
			case 'p':
				fullPath = true
			case 'b':
				bytes = true
			case 'o':
				i++
				if i < len(args) {
					cols = strings.Split(args[i], ",")
				}
			}
		}
	}
	var nodes []*blockNode
	if len(devs) == 0 {
		nodes = f.blockTree()
	}
	for _, d := range devs {
		n := f.find(d)
		if n == nil {
			fmt.Fprintf(stderr, "lsblk: %s: not a block device\n", d)
			return 32
		}
		nodes = append(nodes, n)
	}
	if !noHead {
		fmt.Fprintln(stdout, strings.Join(cols, " "))
	}
	seen := map[string]bool{}
	var print func(n *blockNode)
	print = func(n *blockNode) {
		if seen[n.path] && noDeps {
			return
		}
		seen[n.path] = true
		var fields []string
		for _, c := range cols {
			var v string
			switch c {
			case "NAME":
				v = n.path
				if !fullPath {
					v = path.Base(n.path)
				}
			case "TYPE":
				v = n.kind
			case "FSTYPE":
				v = n.fstype
			case "LABEL":
				v = n.label
			case "MOUNTPOINT", "MOUNTPOINTS":
				v = n.mountpoint
			case "SERIAL":
				v = n.serial
			case "MODEL":
				v = n.model
			case "SIZE":
				if bytes {
					v = fmt.Sprint(n.size)
				} else {
					v = machine.FormatBytes(n.size)
				}
			}
			if raw {
				v = strings.ReplaceAll(v, " ", `\x20`)
			}
			fields = append(fields, v)
		}
		fmt.Fprintln(stdout, strings.Join(fields, " "))
		if !noDeps {
			for _, c := range n.children {
				print(c)
			}
		}
	}
	for _, n := range nodes {
		print(n)
	}
	return 0
}

// FakeFiles are the files the scripts read the machine with, as the machine
// would have them: /etc/os-release, /proc/meminfo, /sys/class/net/*/address
// and device/uevent,
// /sys/firmware/efi (a folder, with SecureBoot when the description knows).
// A value of "" with a name ending in "/" is a folder.
func (f *FakeMachine) FakeFiles() map[string]string {
	m := f.Machine
	files := map[string]string{
		"/etc/os-release": fmt.Sprintf("ID=%s\nVERSION_ID=%q\nPRETTY_NAME=%q\n", m.OS.ID, m.OS.VersionID, m.OS.PrettyName),
		"/proc/meminfo":   fmt.Sprintf("MemTotal:       %d kB\nMemFree:        %d kB\nMemAvailable:   %d kB\n", m.RAMBytes/1024, m.RAMBytes/2048, m.RAMBytes/2048),
	}
	for _, ifc := range m.Interfaces {
		files["/sys/class/net/"+ifc.Name+"/address"] = ifc.MAC + "\n"
		if ifc.Physical {
			// A NIC backed by hardware has a device link; its uevent names
			// the driver bound to it.
			files["/sys/class/net/"+ifc.Name+"/device/"] = ""
			if ifc.Driver != "" {
				files["/sys/class/net/"+ifc.Name+"/device/uevent"] = "DRIVER=" + ifc.Driver + "\n"
			}
		}
	}
	if m.Firmware.Mode == machine.FirmwareUEFI {
		files["/sys/firmware/efi/"] = ""
		if sb := m.Firmware.SecureBoot; sb != nil {
			v := "\x06\x00\x00\x00\x00"
			if *sb {
				v = "\x06\x00\x00\x00\x01"
			}
			files["/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"] = v
		}
	}
	return files
}

// sortedNames returns a map's keys in order, for stable output.
func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
