package plan

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
)

// FleetMember is one valid spec of a fleet rendered or checked together.
type FleetMember struct {
	File string
	Plan *Plan
}

// CheckFleet finds what two specs of one fleet share that two servers
// cannot: a host name (one bundle folder), an address, a MAC. A shared host
// id is a warning (ZFS pools would look as if they belonged to both hosts),
// and so is a shared disk serial or by-id path (virtual disks can share
// them). Each problem names both files, on the later spec's line. clashes
// lists the members with an error (by index).
func CheckFleet(members []FleetMember) (ps Problems, clashes []int) {
	type claim struct {
		member    int
		file, key string
	}
	seen := map[string]claim{}
	var at int // the member being checked
	shared := func(m FleetMember, key, what, value, hint string, warning bool) {
		if value == "" {
			return
		}
		if a, err := netip.ParseAddr(value); err == nil {
			value = a.String() // 2001:db8:0:0::2 and 2001:db8::2 are one address
		}
		id := what + "\x00" + strings.ToLower(value)
		first, dup := seen[id]
		if !dup {
			seen[id] = claim{at, m.File, key}
			return
		}
		if first.member == at {
			return // one spec naming a thing twice is Validate's to judge
		}
		ps = append(ps, Problem{File: m.File, Key: key, Warning: warning, Hint: hint,
			Msg: fmt.Sprintf("%s %s is also %s's %s", what, value, first.file, first.key)})
		if !warning {
			clashes = append(clashes, first.member, at)
		}
	}
	files := map[string]int{}
	for i, m := range members {
		at = i
		if first, dup := files[sameFile(m.File)]; dup {
			ps = append(ps, Problem{File: m.File, Msg: "given twice", Hint: "name each spec once"})
			clashes = append(clashes, first, at)
			continue
		}
		files[sameFile(m.File)] = i
		p := m.Plan
		shared(m, "host.name", "host name", p.Host.Name,
			"two specs for one host would write one bundle folder twice: rename one, or remove the one that is out of date", false)
		shared(m, "host.host_id", "host id", p.Host.ID,
			"give each host its own host_id (or leave it out: it is then derived from the host name)", true)
		shared(m, "network.ipv4.address", "address", p.Network.IPv4.Address,
			"two servers cannot answer on one address: one spec names the wrong server", false)
		if p.Network.IPv6 != nil {
			shared(m, "network.ipv6.address", "address", p.Network.IPv6.Address,
				"two servers cannot answer on one address: one spec names the wrong server", false)
		}
		shared(m, "network.mac", "MAC", p.Network.MAC,
			"a MAC belongs to one network card: one spec names the wrong server", false)
		// Virtual disks can share a serial or a by-id name (QEMU's
		// QM00001, scsi-0QEMU_QEMU_HARDDISK_…), so a shared disk is a warning;
		// on the wrong server the install stops at the disk's identity.
		for i, d := range p.Storage.Identity {
			shared(m, fmt.Sprintf("disks.identity[%d].serial", i), "disk serial", d.Serial,
				"a real disk is in one server: unless these are virtual disks, one spec names another server's disk", true)
		}
		for i, dev := range p.Storage.Disks {
			if strings.HasPrefix(dev, "/dev/disk/by-id/") {
				shared(m, fmt.Sprintf("disks.devices[%d]", i), "disk", dev,
					"a real disk is in one server: unless these are virtual disks, one spec names another server's disk", true)
			}
		}
	}
	slices.Sort(clashes)
	return ps, slices.Compact(clashes)
}

// sameFile names a spec file so that two spellings of one file (a.toml,
// ./a.toml, /abs/a.toml) are one name.
func sameFile(name string) string {
	if abs, err := filepath.Abs(name); err == nil {
		return abs
	}
	return filepath.Clean(name)
}
