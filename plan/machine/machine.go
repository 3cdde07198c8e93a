// Package machine reads machine descriptions: the JSON that facts.sh prints
// on a server (the provider's rescue system or the NixOS installer), with
// the types that hold it and the queries the rest of nixplan asks of it (the
// disks it could install on, which interface holds an address, the default
// gateway, what holds a disk busy).
//
// Its rules: it imports nothing from this project, so any part may use it;
// it knows nothing of specs or plans (comparing a spec with a machine is
// package plan's CheckMachine, and writing a spec from one is
// plan.SpecFromMachine); it never prints, never runs a command and never uses
// the network. Problems name the file and the key or position.
package machine

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
)

// Version is the version of the machine description format that
// facts.sh writes and this package reads.
const Version = 1

// Machine is a machine description: what facts.sh saw on a server, in the
// rescue system or the NixOS installer. It is one JSON format used wherever
// nixplan needs a machine: `nixplan init --facts` writes a spec from it,
// `nixplan check --facts` compares a spec with it, and the fake machines of
// tests and `simulate` are written in it (testdata/machines/*.json).
//
// The JSON keys are snake_case; sizes are in bytes; a value facts.sh could not
// find is null (a pointer or an empty string here). Version 1 holds:
//
//   - version: 1; description: free text, for fixtures; collected_by,
//     collected_at (UTC, RFC 3339), hostname, kernel (uname -r), arch
//     (uname -m);
//   - os: id, version_id and pretty_name from /etc/os-release;
//   - firmware: mode "bios" or "uefi"; secure_boot true, false or null
//     (unknown, or not UEFI);
//   - ram_bytes: MemTotal from /proc/meminfo;
//   - disks: every whole disk (type "disk"; loop devices with a backing file
//     as type "loop"), with path, size, model, serial, wwn, by_id links,
//     rotational, removable, read_only, partition_table ("gpt", "dos" or null),
//     signatures (what blkid -p finds on the whole disk), holders (the md or
//     device-mapper devices built on it), mountpoints ("[SWAP]" for swap) and
//     partitions (number, start, size, part_label, part_type, by_id,
//     signatures, holders, mountpoints);
//   - md_arrays, dm_volumes: assembled md arrays and device-mapper volumes
//     (LVM among them) with their members; zfs_pools: imported pools;
//   - interfaces: name, mac, physical, driver, operstate, mtu,
//     default_route (it holds a default route) and addresses (family, address,
//     prefix, scope);
//   - routes: the main table (family, destination "default" or a prefix,
//     gateway, interface, onlink);
//   - nameservers: the resolvers of /etc/resolv.conf (absent, and empty
//     here, in descriptions from an earlier facts.sh);
//   - tools: for each command nixplan cares about, whether it is in PATH;
//   - authorized_keys: root's login keys as file, type, fingerprint
//     ("SHA256:..." as ssh-keygen -l prints it) and comment; the key bodies
//     stay on the machine.
type Machine struct {
	Version        int             `json:"version"`
	Description    string          `json:"description,omitempty"`
	CollectedBy    string          `json:"collected_by,omitempty"`
	CollectedAt    string          `json:"collected_at,omitempty"`
	Hostname       string          `json:"hostname"`
	Kernel         string          `json:"kernel"`
	Arch           string          `json:"arch"`
	OS             OSRelease       `json:"os"`
	Firmware       Firmware        `json:"firmware"`
	RAMBytes       int64           `json:"ram_bytes"`
	Disks          []Disk          `json:"disks"`
	MDArrays       []MDArray       `json:"md_arrays"`
	DMVolumes      []DMVolume      `json:"dm_volumes"`
	ZFSPools       []string        `json:"zfs_pools"`
	Interfaces     []Interface     `json:"interfaces"`
	Routes         []Route         `json:"routes"`
	Nameservers    []string        `json:"nameservers,omitempty"`
	Tools          map[string]bool `json:"tools"`
	AuthorizedKeys []AuthorizedKey `json:"authorized_keys"`

	// File is the description's path as given, for messages.
	File string `json:"-"`
}

// OSRelease is what /etc/os-release says.
type OSRelease struct {
	ID         string `json:"id"`
	VersionID  string `json:"version_id"`
	PrettyName string `json:"pretty_name"`
}

// Firmware is how the machine booted.
type Firmware struct {
	Mode       string `json:"mode"` // "bios" or "uefi"
	SecureBoot *bool  `json:"secure_boot"`
}

// Firmware modes.
const (
	FirmwareBIOS = "bios"
	FirmwareUEFI = "uefi"
)

// Disk is one whole disk.
type Disk struct {
	Name               string          `json:"name"` // the kernel name, "sda"
	Path               string          `json:"path"` // "/dev/sda"
	Type               string          `json:"type"` // "disk" or "loop"
	SizeBytes          int64           `json:"size_bytes"`
	LogicalSectorBytes int64           `json:"logical_sector_bytes,omitempty"`
	Model              string          `json:"model,omitempty"`
	Serial             string          `json:"serial,omitempty"`
	WWN                string          `json:"wwn,omitempty"`
	ByID               []string        `json:"by_id"` // full paths under /dev/disk/by-id
	Rotational         *bool           `json:"rotational"`
	Removable          bool            `json:"removable"`
	ReadOnly           bool            `json:"read_only"`
	PartitionTable     string          `json:"partition_table,omitempty"` // "gpt", "dos"
	Signatures         []Signature     `json:"signatures"`
	Holders            []string        `json:"holders"`
	Mountpoints        []string        `json:"mountpoints"`
	Partitions         []DiskPartition `json:"partitions"`
}

// DiskPartition is one partition of a disk as the kernel sees it.
type DiskPartition struct {
	Name        string      `json:"name"`
	Path        string      `json:"path"`
	Number      int         `json:"number"`
	StartBytes  int64       `json:"start_bytes"`
	SizeBytes   int64       `json:"size_bytes"`
	PartLabel   string      `json:"part_label,omitempty"`
	PartType    string      `json:"part_type,omitempty"`
	ByID        []string    `json:"by_id"`
	Signatures  []Signature `json:"signatures"`
	Holders     []string    `json:"holders"`
	Mountpoints []string    `json:"mountpoints"`
}

// Signature is one thing blkid found on a device: a filesystem, a swap area,
// or a member of an md array ("linux_raid_member"), an LVM volume group
// ("LVM2_member") or a ZFS pool ("zfs_member", whose label is the pool name).
type Signature struct {
	Type    string `json:"type"`
	UUID    string `json:"uuid,omitempty"`
	Label   string `json:"label,omitempty"`
	Version string `json:"version,omitempty"`
}

// MDArray is an assembled md RAID array.
type MDArray struct {
	Name        string   `json:"name"`
	Path        string   `json:"path"`
	Level       string   `json:"level,omitempty"`
	State       string   `json:"state,omitempty"`
	SizeBytes   int64    `json:"size_bytes,omitempty"`
	Members     []string `json:"members"` // kernel names: "sda1"
	Mountpoints []string `json:"mountpoints"`
}

// DMVolume is a device-mapper volume (an LVM logical volume when its uuid
// starts with "LVM-").
type DMVolume struct {
	Name        string   `json:"name"`
	DMName      string   `json:"dm_name,omitempty"`
	UUID        string   `json:"uuid,omitempty"`
	Members     []string `json:"members"`
	Mountpoints []string `json:"mountpoints"`
}

// Interface is one network interface other than lo.
type Interface struct {
	Name         string    `json:"name"`
	MAC          string    `json:"mac"`
	Physical     bool      `json:"physical"` // backed by a device, not virtual
	Driver       string    `json:"driver,omitempty"`
	OperState    string    `json:"operstate,omitempty"`
	MTU          int       `json:"mtu,omitempty"`
	DefaultRoute bool      `json:"default_route"`
	Addresses    []Address `json:"addresses"`
}

// Address is one address on an interface.
type Address struct {
	Family  string `json:"family"` // "ipv4" or "ipv6"
	Address string `json:"address"`
	Prefix  int    `json:"prefix"`
	Scope   string `json:"scope,omitempty"`
}

// Route is one route of the main table.
type Route struct {
	Family      string `json:"family"`
	Destination string `json:"destination"` // "default" or a prefix
	Gateway     string `json:"gateway,omitempty"`
	Interface   string `json:"interface,omitempty"`
	OnLink      bool   `json:"onlink"`
}

// AuthorizedKey is one of root's login keys, by fingerprint.
type AuthorizedKey struct {
	File        string `json:"file"`
	Type        string `json:"type"`
	Fingerprint string `json:"fingerprint"`
	Comment     string `json:"comment,omitempty"`
}

// Load reads a machine description. Problems name the file.
func Load(path string) (*Machine, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, Problems{{File: path, Msg: readErrorText(err)}}
	}
	return Parse(path, data)
}

// Parse decodes a machine description strictly: unknown keys, a
// missing or other version, and values that cannot be right are problems.
func Parse(name string, data []byte) (*Machine, error) {
	if p := keyProblem(name, data); p != nil {
		return nil, Problems{*p}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Machine
	if err := dec.Decode(&m); err != nil {
		return nil, Problems{jsonProblem(name, data, err)}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, Problems{{File: name, Msg: "more than one JSON value", Hint: "a machine description is one JSON object, as facts.sh prints it"}}
	}
	var ps Problems
	add := func(key, format string, args ...any) {
		ps = append(ps, Problem{File: name, Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	switch {
	case m.Version == 0:
		ps = append(ps, Problem{File: name, Key: "version", Msg: "missing; this is not a nixplan machine description",
			Hint: "run `nixplan facts-script > facts.sh` and `sh facts.sh > facts.json` on the server"})
	case m.Version != Version:
		ps = append(ps, Problem{File: name, Key: "version", Msg: fmt.Sprintf("version %d is not one this nixplan reads (it reads %d)", m.Version, Version),
			Hint: "collect the facts again with this nixplan's facts-script"})
	}
	switch m.Firmware.Mode {
	case FirmwareBIOS, FirmwareUEFI:
	default:
		add("firmware.mode", "%s is neither %q nor %q", quoted(m.Firmware.Mode), FirmwareBIOS, FirmwareUEFI)
	}
	if m.RAMBytes <= 0 {
		add("ram_bytes", "%d: the memory size is missing", m.RAMBytes)
	}
	for i, d := range m.Disks {
		key := fmt.Sprintf("disks[%d]", i)
		if !strings.HasPrefix(d.Path, "/dev/") {
			add(key+".path", "%s is not a /dev path", quoted(d.Path))
		}
		if d.SizeBytes <= 0 {
			add(key+".size_bytes", "%d is not a disk size", d.SizeBytes)
		}
		for j, id := range d.ByID {
			if !strings.HasPrefix(id, "/dev/disk/by-id/") {
				add(fmt.Sprintf("%s.by_id[%d]", key, j), "%s is not under /dev/disk/by-id/", quoted(id))
			}
		}
	}
	for i, ifc := range m.Interfaces {
		for j, a := range ifc.Addresses {
			if _, err := netip.ParseAddr(a.Address); err != nil {
				add(fmt.Sprintf("interfaces[%d].addresses[%d].address", i, j), "%s is not an IP address", quoted(a.Address))
			}
		}
	}
	if len(ps) > 0 {
		return nil, ps
	}
	m.File = name
	return &m, nil
}

// jsonProblem turns a decoding error into a Problem with a line and column.
func jsonProblem(name string, data []byte, err error) Problem {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		line, col := lineCol(data, syn.Offset-1) // Offset is just past the bad byte
		return Problem{File: name, Line: line, Col: col, Msg: syn.Error(),
			Hint: "facts.sh prints one JSON object; was its output cut short or mixed with other text?"}
	case errors.As(err, &typ):
		line, col := lineCol(data, typ.Offset)
		return Problem{File: name, Line: line, Col: col, Key: typ.Field, Msg: fmt.Sprintf("a JSON %s where %s belongs", typ.Value, typ.Type)}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return Problem{File: name, Msg: "ends before the machine description does", Hint: "was facts.sh's output cut short?"}
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if f, ok := strings.CutPrefix(msg, "unknown field "); ok {
		return Problem{File: name, Key: strings.Trim(f, `"`), Msg: "unknown key", Hint: fmt.Sprintf("this nixplan reads machine descriptions of version %d", Version)}
	}
	return Problem{File: name, Msg: msg}
}

func lineCol(data []byte, offset int64) (int, int) {
	offset = min(max(offset, 0), int64(len(data)))
	before := data[:offset]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(offset) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// Disk returns the disk a spec's device path names: by kernel path
// ("/dev/sda"), by one of its by-id links, or nil.
func (m *Machine) Disk(path string) *Disk {
	for i := range m.Disks {
		d := &m.Disks[i]
		if d.Path == path {
			return d
		}
		for _, id := range d.ByID {
			if id == path {
				return d
			}
		}
	}
	return nil
}

// DiskOf returns the disk a kernel device name (a disk or a partition) is on.
func (m *Machine) DiskOf(name string) *Disk {
	for i := range m.Disks {
		d := &m.Disks[i]
		if d.Name == name {
			return d
		}
		for _, p := range d.Partitions {
			if p.Name == name {
				return d
			}
		}
	}
	return nil
}

// InstallDisks are the disks one could install on: whole, writable,
// not removable, not loop devices.
func (m *Machine) InstallDisks() []Disk {
	var out []Disk
	for _, d := range m.Disks {
		if d.Type == "disk" && !d.Removable && !d.ReadOnly {
			out = append(out, d)
		}
	}
	return out
}

// InterfaceWith returns the interface that holds an address, or nil.
func (m *Machine) InterfaceWith(addr netip.Addr) (*Interface, *Address) {
	for i := range m.Interfaces {
		for j := range m.Interfaces[i].Addresses {
			a := &m.Interfaces[i].Addresses[j]
			if got, err := netip.ParseAddr(a.Address); err == nil && got == addr {
				return &m.Interfaces[i], a
			}
		}
	}
	return nil, nil
}

// DefaultGateway returns the IPv4 default route, if there is one.
func (m *Machine) DefaultGateway() (Route, bool) {
	for _, r := range m.Routes {
		if r.Family == "ipv4" && r.Destination == "default" {
			return r, true
		}
	}
	return Route{}, false
}

// PhysicalInterfaces are the interfaces backed by a network card.
func (m *Machine) PhysicalInterfaces() []Interface {
	var out []Interface
	for _, ifc := range m.Interfaces {
		if ifc.Physical {
			out = append(out, ifc)
		}
	}
	return out
}

// HeldBy says what holds a disk or one of its partitions: an assembled md
// array or a device-mapper volume (LVM). The NixOS installer assembles them
// again after the kexec, so they keep the disk busy there too. Empty when
// nothing holds it.
func (d *Disk) HeldBy() []string {
	var why []string
	add := func(dev string, holders []string) {
		for _, h := range holders {
			why = append(why, dev+" is held by "+h)
		}
	}
	add(d.Name, d.Holders)
	for _, p := range d.Partitions {
		add(p.Name, p.Holders)
	}
	return why
}

// MountedAt says where a disk or one of its partitions is mounted or used as
// swap on the machine the facts come from. Mounts of the rescue system end
// with the kexec; in the NixOS installer they stop the install.
func (d *Disk) MountedAt() []string {
	var why []string
	add := func(dev string, mounts []string) {
		for _, mp := range mounts {
			if mp == "[SWAP]" {
				why = append(why, dev+" is in use as swap")
			} else {
				why = append(why, dev+" is mounted on "+mp)
			}
		}
	}
	add(d.Name, d.Mountpoints)
	for _, p := range d.Partitions {
		add(p.Name, p.Mountpoints)
	}
	return why
}

// Memberships lists the signatures on a disk and its partitions that make
// them part of something bigger: an md array, an LVM volume group, a ZFS
// pool. Such metadata outlives a new partition table unless it is wiped.
func (d *Disk) Memberships() []string {
	var out []string
	add := func(dev string, sigs []Signature) {
		for _, s := range sigs {
			switch s.Type {
			case "linux_raid_member":
				out = append(out, dev+" is an md RAID member")
			case "LVM2_member":
				out = append(out, dev+" is an LVM physical volume")
			case "zfs_member":
				what := dev + " is a ZFS pool member"
				if s.Label != "" {
					what += " (pool " + s.Label + ")"
				}
				out = append(out, what)
			}
		}
	}
	add(d.Name, d.Signatures)
	for _, p := range d.Partitions {
		add(p.Name, p.Signatures)
	}
	return out
}

// Identity describes a disk for messages: "sda (2.0 TB, HGST HUS724020ALA640,
// serial PN2134P5G1TJWX)".
func (d *Disk) Identity() string {
	parts := []string{FormatBytes(d.SizeBytes)}
	if d.Model != "" {
		parts = append(parts, d.Model)
	}
	if d.Serial != "" {
		parts = append(parts, "serial "+d.Serial)
	}
	return d.Name + " (" + strings.Join(parts, ", ") + ")"
}

// StableID returns the disk's by-id path to put in a spec: a wwn- link is
// stable but unreadable, so the first model-and-serial link comes first.
func (d *Disk) StableID() string {
	ids := append([]string(nil), d.ByID...)
	sort.SliceStable(ids, func(i, j int) bool { return byIDRank(ids[i]) < byIDRank(ids[j]) })
	if len(ids) == 0 {
		return ""
	}
	return ids[0]
}

func byIDRank(id string) int {
	name := strings.TrimPrefix(id, "/dev/disk/by-id/")
	switch {
	case strings.HasPrefix(name, "wwn-"), strings.HasPrefix(name, "nvme-eui."), strings.HasPrefix(name, "nvme-nvme."):
		return 2
	case strings.HasPrefix(name, "scsi-0"), strings.HasPrefix(name, "scsi-1"), strings.HasPrefix(name, "scsi-S"):
		return 1
	}
	return 0
}

// FormatBytes prints a size the way disk vendors and lsblk agree on enough to
// recognise a disk: decimal units, one decimal.
func FormatBytes(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}

// KeyFingerprint returns the OpenSSH SHA256 fingerprint of a public key line
// ("ssh-ed25519 AAAA... comment"), as `ssh-keygen -l` prints it.
func KeyFingerprint(line string) (string, error) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return "", fmt.Errorf("not a public key line")
	}
	blob, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil {
		return "", fmt.Errorf("the key body is not base64")
	}
	sum := sha256.Sum256(blob)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:]), nil
}
