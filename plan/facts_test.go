package plan

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"mvdan.cc/sh/v3/syntax"

	"github.com/nixplan/nixplan/plan/machine"
)

// otherKey is a valid key that no fixture's authorized_keys holds.
const otherKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILUf4O0geRbdddJVZpbafA7kT/4A3ffJZ6t4CNfINIM4 op@laptop"

// exampleSpec loads examples/ovh-kimsufi.toml, the seed's spec.
func exampleSpec(t *testing.T) *Spec {
	t.Helper()
	spec, err := Load("../examples/ovh-kimsufi.toml")
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// keysOf returns the keys of problems, errors or warnings, sorted.
func keysOf(ps Problems) []string {
	keys := []string{}
	for _, p := range ps {
		keys = append(keys, p.Key)
	}
	sort.Strings(keys)
	return keys
}

func TestCheckMachine(t *testing.T) {
	hetzner := func(s *Spec) {
		s.Provider = "ovh"
		s.Disks.Devices = []string{"/dev/disk/by-id/nvme-SAMSUNG_MZVL2512HCJQ-00B00_S675NX0R123456"}
		s.Disks.Label = "gpt"
		s.Network.Interface = "enp7s0"
		s.Network.IPv4.Address, s.Network.IPv4.Prefix, s.Network.IPv4.Gateway = "198.51.100.70", 26, "198.51.100.65"
	}
	vps := func(s *Spec) {
		s.Disks.Devices = []string{"/dev/vda"}
		s.Network.Interface = "ens3"
		s.Network.IPv4.Address, s.Network.IPv4.Prefix, s.Network.IPv4.Gateway = "192.0.2.20", 24, "192.0.2.1"
	}
	for _, tc := range []struct {
		name, machine string
		edit          func(*Spec, *machine.Machine)
		errors        []string // keys of the errors, sorted
		warnings      []string // keys of the warnings, sorted; nil: not checked
		want          []string // each in the problems' text
	}{
		{name: "seed matches", machine: "ovh-seed", errors: []string{}, warnings: []string{}},
		{name: "seed by id", machine: "ovh-seed", errors: []string{}, warnings: []string{},
			edit: func(s *Spec, _ *machine.Machine) {
				s.Disks.Devices = []string{"/dev/disk/by-id/ata-HGST_HUS724020ALA640_PN2134P5G1TJWX"}
			}},
		{name: "seed twice, by name and by id", machine: "ovh-seed", errors: []string{"disks.devices[1]"},
			edit: func(s *Spec, _ *machine.Machine) {
				s.Disks.Devices = []string{"/dev/sda", "/dev/disk/by-id/ata-HGST_HUS724020ALA640_PN2134P5G1TJWX"}
				s.Disks.Topology = "mirror"
			},
			want: []string{"disks.devices[1]: /dev/disk/by-id/ata-HGST_HUS724020ALA640_PN2134P5G1TJWX is /dev/sda on ovh-seed.json, and so is disks.devices[0] (/dev/sda): the same disk twice"}},
		{name: "seed other disk", machine: "ovh-seed", errors: []string{"disks.devices[0]"},
			edit: func(s *Spec, _ *machine.Machine) {
				s.Disks.Devices = []string{"/dev/disk/by-id/ata-HGST_HUS724020ALA640_PN2134P5XXXXXX"}
			},
			want: []string{"/dev/disk/by-id/ata-HGST_HUS724020ALA640_PN2134P5XXXXXX is not a disk of this machine (ovh-seed.json)",
				"its disks: /dev/disk/by-id/ata-HGST_HUS724020ALA640_PN2134P5G1TJWX (2.0 TB, HGST HUS724020ALA640, serial PN2134P5G1TJWX)"}},
		{name: "seed other address", machine: "ovh-seed", errors: []string{"network.ipv4.address"},
			edit: func(s *Spec, _ *machine.Machine) { s.Network.IPv4.Address = "203.0.113.11" },
			want: []string{"203.0.113.11 is not on any interface of this machine (ovh-seed.json has 203.0.113.10/24 on eth0)"}},
		{name: "seed other gateway", machine: "ovh-seed", errors: []string{"network.ipv4.gateway"},
			edit: func(s *Spec, _ *machine.Machine) { s.Network.IPv4.Gateway = "203.0.113.1" },
			want: []string{"the spec says 203.0.113.1 and ovh-seed.json routes by default via 203.0.113.254 (on eth0)"}},
		{name: "seed other prefix", machine: "ovh-seed", errors: []string{}, warnings: []string{"network.ipv4.prefix"},
			edit: func(s *Spec, _ *machine.Machine) { s.Network.IPv4.Prefix = 23 }},
		{name: "seed other key", machine: "ovh-seed", errors: []string{"ssh.authorized_keys"},
			edit: func(s *Spec, _ *machine.Machine) { s.SSH.AuthorizedKeys = []string{otherKey} },
			want: []string{"SHA256:Q+NnJi2Oy0KLu5b+yFM+swiGme+gojAf4t9WZoWSvvo", "SHA256:LNCSQRX1aIn/0awJUu71F8ifIFWurLkVdyTxMIrowiI"}},
		{name: "seed password login", machine: "ovh-seed", errors: []string{}, warnings: []string{"ssh.authorized_keys"},
			edit: func(_ *Spec, m *machine.Machine) { m.AuthorizedKeys = nil }},
		{name: "seed in the installer with a mount", machine: "ovh-seed", errors: []string{"disks.devices[0]"},
			edit: func(_ *Spec, m *machine.Machine) {
				m.OS.ID = "nixos"
				m.Disks[0].Partitions[1].Mountpoints = []string{"/mnt"}
			},
			want: []string{"sda2 is mounted on /mnt"}},
		{name: "seed in rescue with a mount", machine: "ovh-seed", errors: []string{}, warnings: []string{"disks.devices[0]"},
			edit: func(_ *Spec, m *machine.Machine) { m.Disks[0].Partitions[1].Mountpoints = []string{"/mnt"} }},
		{name: "seed secure boot", machine: "ovh-seed", errors: []string{"host.firmware", "kexec.url"},
			edit: func(_ *Spec, m *machine.Machine) {
				on := true
				m.Firmware = machine.Firmware{Mode: machine.FirmwareUEFI, SecureBoot: &on}
			},
			want: []string{"Secure Boot is on", "booted UEFI"}},
		{name: "seed arm", machine: "ovh-seed", errors: []string{"kexec.url"},
			edit: func(_ *Spec, m *machine.Machine) { m.Arch = "aarch64" },
			want: []string{"built for x86_64 and ovh-seed.json says this machine is aarch64"}},

		{name: "3 TB with msdos", machine: "big-3tb", errors: []string{"disks.label"},
			want: []string{"an msdos label addresses at most 2 TiB and big-3tb.json says /dev/sda is 3.0 TB (3000592982016 bytes)"}},
		{name: "3 TB with gpt", machine: "big-3tb", errors: []string{}, warnings: []string{},
			edit: func(s *Spec, _ *machine.Machine) { s.Disks.Label = "gpt" }},

		{name: "raid1 busy", machine: "kimsufi-raid1", errors: []string{"disks.devices[0]"},
			warnings: []string{"disks.devices", "disks.devices", "disks.devices[0]"},
			want:     []string{"/dev/sda is busy on kimsufi-raid1.json: sda1 is held by md1; sda2 is held by md2", "sdb1 keeps the old array's superblock"}},
		{name: "raid1 by id, free", machine: "kimsufi-raid1", errors: []string{}, warnings: []string{"disks.devices[0]"},
			edit: func(s *Spec, m *machine.Machine) {
				s.Disks.Devices = []string{"/dev/disk/by-id/ata-WDC_WD20EFRX-68EUZN0_WD-WCC4N7654321"}
				m.MDArrays = nil
				for i := range m.Disks {
					for j := range m.Disks[i].Partitions {
						m.Disks[i].Partitions[j].Holders = nil
					}
				}
			},
			want: []string{"/dev/disk/by-id/ata-WDC_WD20EFRX-68EUZN0_WD-WCC4N7654321 holds old metadata that the install wipes: sdb1 is an md RAID member"}},

		{name: "two NICs, wrong one", machine: "two-nic", errors: []string{"network.interface"},
			want: []string{"the spec puts the address on eth0 and two-nic.json has it on eth1 (MAC 0c:c4:7a:ee:ff:11)"}},
		{name: "two NICs, right one", machine: "two-nic", errors: []string{}, warnings: []string{"network.interface"},
			edit: func(s *Spec, _ *machine.Machine) { s.Network.Interface = "eth1" },
			want: []string{"this machine has 2 network cards (eth0 0c:c4:7a:ee:ff:10, eth1 0c:c4:7a:ee:ff:11)"}},

		{name: "UEFI", machine: "hetzner-uefi", errors: []string{"host.firmware"}, warnings: []string{},
			edit: func(s *Spec, _ *machine.Machine) { hetzner(s) },
			want: []string{"the spec installs a boot loader for BIOS and hetzner-uefi.json says this machine booted UEFI"}},
		{name: "UEFI, seed's spec", machine: "hetzner-uefi",
			errors: []string{"disks.devices[0]", "host.firmware", "network.ipv4.address"}},

		{name: "small RAM, 22.11", machine: "small-vps", errors: []string{"kexec.url"},
			edit: func(s *Spec, _ *machine.Machine) { vps(s) },
			want: []string{"the nixos-22.11 image needs 2560 MiB of memory and small-vps.json has 2014 MiB",
				`the nixos-25.05 image needs 1536 MiB: url = "` + KexecURL("nixos-25.05") + `"`}},
		{name: "small RAM, 24.05", machine: "small-vps", errors: []string{}, warnings: []string{"kexec.url"},
			edit: func(s *Spec, _ *machine.Machine) {
				vps(s)
				s.Kexec.URL = KexecURL("nixos-24.05")
			},
			want: []string{"small-vps.json has no cpio"}},
		// With DHCP the lease gives the prefix and the gateway: the spec has
		// neither to compare (found in the VM suite's DHCP scenario).
		{name: "DHCP", machine: "small-vps", errors: []string{}, warnings: []string{"kexec.url"},
			edit: func(s *Spec, _ *machine.Machine) {
				vps(s)
				s.Kexec.URL = KexecURL("nixos-24.05")
				s.Network.IPv4 = &IPSpec{DHCP: true, Address: "192.0.2.20"}
			}},
		{name: "DHCP, another address", machine: "small-vps", errors: []string{"network.ipv4.address"}, warnings: []string{"kexec.url"},
			edit: func(s *Spec, _ *machine.Machine) {
				vps(s)
				s.Kexec.URL = KexecURL("nixos-24.05")
				s.Network.IPv4 = &IPSpec{DHCP: true, Address: "192.0.2.21"}
			}},
		{name: "tiny disk", machine: "small-vps", errors: []string{"disks.boot_size", "kexec.url"},
			edit: func(s *Spec, m *machine.Machine) {
				vps(s)
				m.Disks[0].SizeBytes = 4 << 30
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := exampleSpec(t)
			m := loadFixture(t, tc.machine)
			m.File = tc.machine + ".json"
			if tc.edit != nil {
				tc.edit(spec, m)
			}
			p, ps := Validate(spec)
			if p == nil {
				t.Fatalf("the spec is invalid: %v", ps)
			}
			got := CheckMachine(spec, p, m)
			if diff := fmt.Sprint(keysOf(got.Errors())); diff != fmt.Sprint(tc.errors) {
				t.Errorf("error keys = %v, want %v\n%v", keysOf(got.Errors()), tc.errors, got)
			}
			if tc.warnings != nil && fmt.Sprint(keysOf(got.Warnings())) != fmt.Sprint(tc.warnings) {
				t.Errorf("warning keys = %v, want %v\n%v", keysOf(got.Warnings()), tc.warnings, got)
			}
			text := got.Error()
			for _, p := range got {
				text += "\n" + p.Hint
			}
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("want %q in\n%s", w, text)
				}
			}
			for _, p := range got {
				if p.File != spec.File {
					t.Errorf("problem %q names file %q, want the spec %q", p, p.File, spec.File)
				}
			}
		})
	}
}

// TestSpecFromMachine writes a spec from each fixture, with the provider
// guessed from the facts, and checks it against the same machine: it must be
// accepted with no edits.
func TestSpecFromMachine(t *testing.T) {
	for _, tc := range []struct {
		machine string
		errors  []string // keys of check --facts errors (or of Validate's, when it refuses the spec)
		want    []string // in the written spec
	}{
		{"ovh-seed", []string{}, []string{
			`devices = ["/dev/disk/by-id/ata-HGST_HUS724020ALA640_PN2134P5G1TJWX"]`,
			"[[disks.identity]]", `serial = "PN2134P5G1TJWX"`, "size_bytes = 2000398934016",
			`address = "203.0.113.10"`, "prefix = 24", `gateway = "203.0.113.254"`, `interface = "wan0"  # the rescue system calls it eth0`,
			`mac = "0c:c4:7a:12:34:56"`,
			`name = "server-203-0-113-10"  # CHANGE ME`,
			`label = "gpt"`,
		}},
		{"big-3tb", []string{}, []string{`label = "gpt"  # the disk is 3.0 TB: an msdos label cannot address beyond 2 TiB`}},
		{"two-nic", []string{}, []string{`interface = "wan0"  # the rescue system calls it eth1`, `mac = "0c:c4:7a:ee:ff:11"`, "the others: eth0 0c:c4:7a:ee:ff:10"}},
		{"small-vps", []string{}, []string{`devices = ["/dev/vda"]`, "/dev/vda has no /dev/disk/by-id link", "nixos-24.05"}},
		{"hetzner-uefi", []string{}, []string{"nvme-SAMSUNG_MZVL2512HCJQ-00B00_S675NX0R123456", `firmware = "uefi"`, `gateway = "198.51.100.65"`, `interface = "enp7s0"`,
			// The provider told by the rescue system's resolvers, and IPv6 from the facts.
			`provider = "hetzner"`, "resolves through 185.12.64.1, Hetzner's resolver",
			"[network.ipv6]", `address = "2001:db8:1:2::2"`, "prefix = 64", `gateway = "fe80::1"`}},
		// Two equal disks held by the provider's md RAID1: a mirror over both,
		// each pinned, with consent to clear the arrays it names.
		{"kimsufi-raid1", []string{}, []string{`topology = "mirror"`, `boot = "all"`,
			"  \"/dev/disk/by-id/ata-WDC_WD20EFRX-68EUZN0_WD-WCC4N1234567\",\n  \"/dev/disk/by-id/ata-WDC_WD20EFRX-68EUZN0_WD-WCC4N7654321\",\n]",
			`serial = "WD-WCC4N1234567"`, `serial = "WD-WCC4N7654321"`,
			"#   md1 (raid1 on sda1, sdb1)\n#   md2 (raid1 on sda2, sdb2)\nclear_existing = true\n"}},
	} {
		t.Run(tc.machine, func(t *testing.T) {
			m := loadFixture(t, tc.machine)
			text, ps := SpecFromMachine(m, InitOptions{AuthorizedKeys: []string{otherKey}})
			if len(ps.Errors()) > 0 {
				t.Fatal(ps)
			}
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("want %q in the spec:\n%s", w, text)
				}
			}
			spec, err := Parse("host.toml", []byte(text))
			if err != nil {
				t.Fatalf("the written spec does not parse: %v\n%s", err, text)
			}
			var got Problems
			if p, ps := Validate(spec); p != nil {
				got = CheckMachine(spec, p, m).Errors()
			} else {
				got = ps.Errors()
			}
			// The fixtures' authorized_keys hold the example's key, not otherKey.
			var keys []string
			for _, k := range keysOf(got) {
				if k != "ssh.authorized_keys" {
					keys = append(keys, k)
				}
			}
			if fmt.Sprint(keys) != fmt.Sprint(tc.errors) && !(len(keys) == 0 && len(tc.errors) == 0) {
				t.Errorf("check --facts errors = %v, want %v\n%v\n%s", keys, tc.errors, got, text)
			}
		})
	}
}

func TestSpecFromMachineRefuses(t *testing.T) {
	m := loadFixture(t, "ovh-seed")
	m.Routes = nil
	if _, ps := SpecFromMachine(m, InitOptions{}); fmt.Sprint(keysOf(ps.Errors())) != "[routes]" {
		t.Errorf("without a default route: %v", ps)
	}
	m = loadFixture(t, "ovh-seed")
	if _, ps := SpecFromMachine(m, InitOptions{AuthorizedKeys: []string{"ssh-ed25519 AAAA"}}); len(ps.Errors()) != 1 {
		t.Errorf("with a broken key: %v", ps)
	}
	text, ps := SpecFromMachine(m, InitOptions{})
	if len(ps) > 0 || !strings.Contains(text, "authorized_keys = []") || !strings.Contains(text, "SHA256:LNCSQRX1aIn/0awJUu71F8ifIFWurLkVdyTxMIrowiI") {
		t.Errorf("without keys, want an empty list and the machine's fingerprints in a comment: %v\n%s", ps, text)
	}
}

func TestTOMLString(t *testing.T) {
	for in, want := range map[string]string{`a"b\c`: `"a\"b\\c"`, "t\tn\nx\x01": `"t\tn\nx\u0001"`, "$x": `"$x"`} {
		if got := tomlString(in); got != want {
			t.Errorf("tomlString(%q) = %s, want %s", in, got, want)
		}
	}
}

// readOnlyCommands are the only commands facts.sh may run, besides its own
// functions and shell builtins that change nothing outside the shell.
var readOnlyCommands = map[string]bool{
	// builtins
	"command": true, "printf": true, "echo": true, "read": true, "set": true, "export": true, "shift": true,
	"return": true, "break": true, "continue": true, "[": true, "test": true, "local": false, "eval": false,
	// external commands that only read
	"awk": true, "uname": true, "ip": true, "blkid": true, "lsblk": true, "readlink": true, "od": true,
	"base64": true, "sha256sum": true, "tr": true, "date": true,
}

// TestFactsScriptStatic parses facts.sh as POSIX sh and checks that every
// command it runs is one that only reads, and that no redirection writes
// anywhere but /dev/null.
func TestFactsScriptStatic(t *testing.T) {
	f, err := syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(strings.NewReader(FactsScript()), FactsFile)
	if err != nil {
		t.Fatalf("facts.sh is not POSIX sh: %v", err)
	}
	funcs := map[string]bool{}
	syntax.Walk(f, func(n syntax.Node) bool {
		if fd, ok := n.(*syntax.FuncDecl); ok {
			funcs[fd.Name.Value] = true
		}
		return true
	})
	syntax.Walk(f, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.CallExpr:
			if len(n.Args) == 0 {
				return true
			}
			name := n.Args[0].Lit()
			if name == "" {
				t.Errorf("%s: a command whose name is not a literal", n.Pos())
			} else if !funcs[name] && !readOnlyCommands[name] {
				t.Errorf("%s: facts.sh runs %q, which is not on the read-only list", n.Pos(), name)
			}
			if name == "blkid" && !strings.Contains(wordsText(n.Args), " -p ") {
				t.Errorf("%s: blkid without -p may update its cache file", n.Pos())
			}
			if name == "ip" {
				if args := wordsText(n.Args); !strings.Contains(args, " show") {
					t.Errorf("%s: ip %s is not a show command", n.Pos(), args)
				}
			}
		case *syntax.Redirect:
			switch n.Op {
			case syntax.RdrIn, syntax.Hdoc:
			case syntax.RdrOut, syntax.AppOut:
				if n.Word.Lit() != "/dev/null" {
					t.Errorf("%s: facts.sh writes to %q", n.Pos(), wordsText([]*syntax.Word{n.Word}))
				}
			case syntax.DplOut:
				if n.Word.Lit() != "1" && n.Word.Lit() != "2" {
					t.Errorf("%s: redirection to fd %s", n.Pos(), n.Word.Lit())
				}
			default:
				t.Errorf("%s: redirection %s is not allowed in facts.sh", n.Pos(), n.Op)
			}
		}
		return true
	})
}

func wordsText(ws []*syntax.Word) string {
	var b bytes.Buffer
	for _, w := range ws {
		b.WriteByte(' ')
		syntax.NewPrinter().Print(&b, w)
	}
	b.WriteByte(' ')
	return b.String()
}

// writeCommands may change a machine; the recording PATH replaces them.
var writeCommands = strings.Fields(`parted wipefs mkfs mkfs.ext4 mkfs.vfat mkfs.xfs mkswap swapon swapoff mount umount
	dd mdadm zpool zfs rm mv cp tee touch mkdir rmdir ln chmod chown truncate sfdisk sgdisk fdisk gdisk losetup
	modprobe insmod rmmod partprobe blockdev hdparm udevadm kexec vgchange vgremove pvcreate pvremove lvm dmsetup
	efibootmgr cryptsetup sysctl hostname nixos-install shutdown reboot systemctl sed perl python3 install ssh-keygen`)

// recordingPath makes a folder of wrappers to put first in PATH: the write
// commands record their arguments in the log and fail; ip and blkid run the
// real tool only with the read-only arguments facts.sh uses.
func recordingPath(t *testing.T) (dir, log string) {
	t.Helper()
	dir = t.TempDir()
	log = filepath.Join(t.TempDir(), "refused.log")
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	refuse := fmt.Sprintf("echo \"$0 $*\" >>%s\nexit 1\n", shq(log))
	for _, c := range writeCommands {
		write(c, refuse)
	}
	if real, err := exec.LookPath("ip"); err == nil {
		write("ip", fmt.Sprintf("case \"$*\" in\n'-o addr show' | '-4 route show table main' | '-6 route show table main') exec %s \"$@\" ;;\nesac\n%s", shq(real), refuse))
	}
	if real, err := exec.LookPath("blkid"); err == nil {
		write("blkid", fmt.Sprintf("case \"$1\" in\n-p) exec %s \"$@\" ;;\nesac\n%s", shq(real), refuse))
	}
	return dir, log
}

func shq(s string) string { q, _ := ShellQuote(s); return q }

// shells are the POSIX shells facts.sh is run with.
func shells(t *testing.T) [][]string {
	var out [][]string
	for _, sh := range [][]string{{"dash"}, {"bash", "--posix"}, {"busybox", "sh"}} {
		if _, err := exec.LookPath(sh[0]); err == nil {
			out = append(out, sh)
		}
	}
	if len(out) == 0 {
		t.Skip("no POSIX shell")
	}
	return out
}

// runFacts runs facts.sh on this machine under the recording PATH and
// returns its description; it fails the test if the script tried to run a
// write command or said anything on stderr.
func runFacts(t *testing.T, shell []string, env ...string) *machine.Machine {
	t.Helper()
	wrappers, log := recordingPath(t)
	script := filepath.Join(t.TempDir(), FactsFile)
	if err := os.WriteFile(script, []byte(FactsScript()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(shell[0], append(shell[1:], script)...)
	cmd.Env = append(os.Environ(), append(env, "PATH="+wrappers+string(os.PathListSeparator)+os.Getenv("PATH"))...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s facts.sh: %v\n%s", shell, err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("%s facts.sh wrote to stderr:\n%s", shell, stderr.String())
	}
	if data, err := os.ReadFile(log); err == nil {
		t.Errorf("%s facts.sh ran commands that could write:\n%s", shell, data)
	}
	m, err := machine.Parse("facts.json", stdout.Bytes())
	if err != nil {
		t.Fatalf("%s facts.sh output does not parse: %v\n%s", shell, err, stdout.String())
	}
	return m
}

func TestFactsScriptRuns(t *testing.T) {
	if _, err := os.Stat("/sys/class/net"); err != nil {
		t.Skip("not Linux with /sys")
	}
	keyFile := filepath.Join(t.TempDir(), "authorized_keys")
	example := exampleSpec(t).SSH.AuthorizedKeys[0]
	keys := strings.Join([]string{
		"# a comment line",
		"",
		strings.Replace(example, "operator@laptop", `"quoted" back\slash ünïcode`+"\x01", 1),
		`command="echo hi there",no-pty ` + otherKey,
	}, "\n") // and no final newline
	if err := os.WriteFile(keyFile, []byte(keys), 0o600); err != nil {
		t.Fatal(err)
	}
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("# from the provider\nsearch example.net\nnameserver 213.186.33.99\n  nameserver   2001:41d0:3:163::1  # v6\noptions edns0\nnameserver\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	uname, _ := exec.Command("uname", "-r").Output()
	nets, _ := filepath.Glob("/sys/class/net/*")
	for _, sh := range shells(t) {
		t.Run(strings.Join(sh, " "), func(t *testing.T) {
			m := runFacts(t, sh, "FACTS_KEY_FILES="+keyFile, "FACTS_RESOLV_CONF="+resolv)
			if want := []string{"213.186.33.99", "2001:41d0:3:163::1"}; !slices.Equal(m.Nameservers, want) {
				t.Errorf("nameservers = %q, want %q", m.Nameservers, want)
			}
			if m.Kernel == "" || m.Kernel != strings.TrimSpace(string(uname)) {
				t.Errorf("kernel = %q, want uname -r %q", m.Kernel, uname)
			}
			if m.RAMBytes < 64<<20 {
				t.Errorf("ram_bytes = %d", m.RAMBytes)
			}
			if len(m.Interfaces) == 0 || len(m.Interfaces) != len(nets)-1 {
				t.Errorf("interfaces = %d, want %d (every one in /sys/class/net but lo)", len(m.Interfaces), len(nets)-1)
			}
			for _, d := range m.Disks {
				if d.SizeBytes <= 0 || !strings.HasPrefix(d.Path, "/dev/") {
					t.Errorf("disk %+v", d)
				}
			}
			if _, err := os.Stat("/sys/firmware/efi"); (err == nil) != (m.Firmware.Mode == machine.FirmwareUEFI) {
				t.Errorf("firmware = %q", m.Firmware.Mode)
			}
			if out, _ := exec.Command("ip", "-4", "route", "show", "default").Output(); len(out) > 0 {
				gw, ok := m.DefaultGateway()
				if !ok || !strings.Contains(string(out), "via "+gw.Gateway+" dev "+gw.Interface) {
					t.Errorf("default route = %+v, ip says %q", gw, out)
				}
			}
			fp1, _ := machine.KeyFingerprint(example)
			fp2, _ := machine.KeyFingerprint(otherKey)
			if len(m.AuthorizedKeys) != 2 {
				t.Fatalf("authorized_keys = %+v, want 2 keys", m.AuthorizedKeys)
			}
			k := m.AuthorizedKeys
			if k[0].Fingerprint != fp1 || k[1].Fingerprint != fp2 || k[0].Type != "ssh-ed25519" {
				t.Errorf("fingerprints = %q, %q, want %q, %q", k[0].Fingerprint, k[1].Fingerprint, fp1, fp2)
			}
			if want := `"quoted" back\slash ünïcode` + "\x01"; k[0].Comment != want {
				t.Errorf("comment = %q, want %q", k[0].Comment, want)
			}
			if k[1].Comment != "op@laptop" {
				t.Errorf("comment after options = %q", k[1].Comment)
			}
		})
	}
}

// TestFactsScriptLoopDisk runs facts.sh with a partitioned, formatted and
// mounted loop device, where the machine allows it (root, loop devices).
func TestFactsScriptLoopDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a loop device")
	}
	for _, tool := range []string{"losetup", "parted", "mkfs.ext4", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skip("needs " + tool)
		}
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "-fP", "--show", img).Output()
	if err != nil {
		t.Skipf("no loop device: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	run := func(args ...string) {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	run("parted", "-s", dev, "mklabel", "gpt", "mkpart", "boot", "1MiB", "20MiB", "mkpart", "pool", "20MiB", "40MiB")
	part := dev + "p1"
	for i := 0; i < 50; i++ {
		if _, err := os.Stat(part); err == nil {
			break
		}
		exec.Command("sleep", "0.1").Run()
	}
	label := `a "b" \c`
	run("mkfs.ext4", "-q", "-L", label, part)
	mnt := filepath.Join(dir, "mount point")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	run("mount", part, mnt)
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })

	m := runFacts(t, shells(t)[0])
	d := m.Disk(dev)
	if d == nil {
		t.Fatalf("no %s in %+v", dev, m.Disks)
	}
	if d.Type != "loop" || d.SizeBytes != 64<<20 || d.PartitionTable != "gpt" || len(d.Partitions) != 2 {
		t.Fatalf("loop disk = %+v", d)
	}
	p := d.Partitions[0]
	if p.Number != 1 || p.StartBytes != 1<<20 || p.SizeBytes != 19<<20 || p.PartLabel != "boot" {
		t.Errorf("partition 1 = %+v", p)
	}
	if len(p.Signatures) != 1 || p.Signatures[0].Type != "ext4" || p.Signatures[0].Label != label {
		t.Errorf("partition 1 signatures = %+v, want ext4 labelled %q", p.Signatures, label)
	}
	if len(p.Mountpoints) != 1 || p.Mountpoints[0] != mnt {
		t.Errorf("partition 1 mountpoints = %q, want %q", p.Mountpoints, mnt)
	}
	if got := d.MountedAt(); len(got) != 1 {
		t.Errorf("MountedAt = %q", got)
	}
}

// TestCheckMachinePinned checks the spec keys that pin a machine: the MAC of
// the interface, the disks' identity, and the consent to clear busy disks.
func TestCheckMachinePinned(t *testing.T) {
	example, err := os.ReadFile("../examples/ovh-kimsufi.toml")
	if err != nil {
		t.Fatal(err)
	}
	identity := func(serial string, size int64) string {
		return fmt.Sprintf("pool = \"rpool\"\n\n[[disks.identity]]\ndevice = \"/dev/sda\"\nserial = %q\nsize_bytes = %d\n", serial, size)
	}
	for _, tc := range []struct {
		name, machine string
		edits         []string // pairs of old and new text
		errors        []string
		want          string
	}{
		{"MAC matches", "ovh-seed", []string{`interface = "eth0"`, "interface = \"wan0\"\nmac = \"0c:c4:7a:12:34:56\""}, []string{}, ""},
		{"MAC differs", "ovh-seed", []string{`interface = "eth0"`, "interface = \"wan0\"\nmac = \"0c:c4:7a:12:34:57\""}, []string{"network.mac"},
			"the spec pins the interface with MAC 0c:c4:7a:12:34:57 and ovh-seed.json has 203.0.113.10 on eth0, MAC 0c:c4:7a:12:34:56"},
		{"MAC of the other card", "two-nic", []string{`interface = "eth0"`, "interface = \"wan0\"\nmac = \"0c:c4:7a:ee:ff:10\""}, []string{"network.mac"}, "on eth1, MAC 0c:c4:7a:ee:ff:11"},
		{"identity matches", "ovh-seed", []string{`pool = "rpool"`, identity("PN2134P5G1TJWX", 2000398934016)}, []string{}, ""},
		{"serial differs", "ovh-seed", []string{`pool = "rpool"`, identity("PN2134P5G1XXXX", 2000398934016)}, []string{"disks.identity[0].serial"},
			`the spec says /dev/sda has serial "PN2134P5G1XXXX" and ovh-seed.json says its serial is "PN2134P5G1TJWX"`},
		{"size differs", "big-3tb", []string{`pool = "rpool"`, identity("Z3G0ABCDEFG", 2000398934016), `label = "msdos"`, `label = "gpt"`}, []string{"disks.identity[0].size_bytes"},
			"the spec says /dev/sda has 2000398934016 bytes and big-3tb.json says it has 3000592982016 (3.0 TB)"},
		{"busy, with consent", "kimsufi-raid1", []string{`pool = "rpool"`, "pool = \"rpool\"\nclear_existing = true"}, []string{}, "the spec says to clear it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := string(example)
			for i := 0; i < len(tc.edits); i += 2 {
				if !strings.Contains(text, tc.edits[i]) {
					t.Fatalf("%q is not in the example", tc.edits[i])
				}
				text = strings.Replace(text, tc.edits[i], tc.edits[i+1], 1)
			}
			spec, err := Parse("host.toml", []byte(text))
			if err != nil {
				t.Fatal(err)
			}
			p, ps := Validate(spec)
			if p == nil {
				t.Fatalf("the spec is invalid: %v", ps)
			}
			m := loadFixture(t, tc.machine)
			m.File = tc.machine + ".json"
			got := CheckMachine(spec, p, m)
			if fmt.Sprint(keysOf(got.Errors())) != fmt.Sprint(tc.errors) {
				t.Errorf("error keys = %v, want %v\n%v", keysOf(got.Errors()), tc.errors, got)
			}
			if !strings.Contains(got.Error(), tc.want) {
				t.Errorf("want %q in\n%v", tc.want, got)
			}
		})
	}
}

// loadFixture reads a machine from testdata/machines.
func loadFixture(t *testing.T, name string) *machine.Machine {
	t.Helper()
	m, err := machine.Load(filepath.Join("..", "testdata", "machines", name+".json"))
	if err != nil {
		t.Fatalf("loading %s: %v", name, err)
	}
	return m
}

// TestSpecFromMachineChoosesDisks: init proposes the largest set of equal
// disks (size and kind) and names the others as left alone; three equal
// disks make a raidz1. Either proposal passes check --facts as written.
func TestSpecFromMachineChoosesDisks(t *testing.T) {
	third := func(size int64, rotational bool) func(m *machine.Machine) {
		return func(m *machine.Machine) {
			d := m.Disks[1]
			d.Name, d.Path, d.Serial, d.SizeBytes = "sdc", "/dev/sdc", "THIRD0001", size
			d.ByID = []string{"/dev/disk/by-id/ata-THIRD_DISK_THIRD0001"}
			d.Rotational = &rotational
			d.Partitions, d.Signatures, d.Holders, d.PartitionTable = nil, nil, nil, ""
			m.Disks = append(m.Disks, d)
		}
	}
	for _, tc := range []struct {
		name  string
		edit  func(m *machine.Machine)
		want  []string
		avoid []string
	}{
		{"a smaller SSD beside two HDDs", third(480103981056, false),
			[]string{`topology = "mirror"`, "# left alone (not the same size and kind as the disks above): /dev/disk/by-id/ata-THIRD_DISK_THIRD0001 (480.1 GB"},
			[]string{`device = "/dev/disk/by-id/ata-THIRD_DISK_THIRD0001"`}},
		{"an SSD of the HDDs' size", third(2000398934016, false),
			[]string{`topology = "mirror"`, "left alone"}, []string{"raidz1"}},
		{"three equal HDDs", third(2000398934016, true),
			[]string{`topology = "raidz1"`, `boot = "all"`, `device = "/dev/disk/by-id/ata-THIRD_DISK_THIRD0001"`, `serial = "THIRD0001"`},
			[]string{"left alone"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := loadFixture(t, "kimsufi-raid1")
			tc.edit(m)
			text, ps := SpecFromMachine(m, InitOptions{AuthorizedKeys: exampleSpec(t).SSH.AuthorizedKeys})
			if len(ps.Errors()) > 0 {
				t.Fatal(ps)
			}
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("want %q in the spec:\n%s", w, text)
				}
			}
			for _, w := range tc.avoid {
				if strings.Contains(text, w) {
					t.Errorf("want no %q in the spec:\n%s", w, text)
				}
			}
			spec, err := Parse("host.toml", []byte(text))
			if err != nil {
				t.Fatalf("the written spec does not parse: %v\n%s", err, text)
			}
			p, ps := Validate(spec)
			if p == nil {
				t.Fatalf("the written spec is invalid: %v\n%s", ps, text)
			}
			if errs := CheckMachine(spec, p, m).Errors(); len(errs) > 0 {
				t.Errorf("check --facts: %v\n%s", errs, text)
			}
		})
	}
}

// TestSpecFromMachineOnLink: a rescue system whose gateway lies outside its
// prefix (Hetzner's /32 with an on-link default route) gets a spec that says
// so and an image that restores such a route after the kexec, and the spec
// passes its own check.
func TestSpecFromMachineOnLink(t *testing.T) {
	m := loadFixture(t, "hetzner-uefi")
	m.Interfaces[0].Addresses[0].Prefix = 32
	m.Routes[0].OnLink = true
	const exampleKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHeVFQr7aj20GWUgd2JVHzu4yywDf+VA4xTtVkmOS+Rt operator@laptop"
	text, ps := SpecFromMachine(m, InitOptions{Provider: "hetzner", AuthorizedKeys: []string{exampleKey}})
	if len(ps.Errors()) > 0 {
		t.Fatal(ps)
	}
	for _, w := range []string{"gateway_on_link = true", "releases/download/nixos-25.05/"} {
		if !strings.Contains(text, w) {
			t.Errorf("want %q in the spec:\n%s", w, text)
		}
	}
	spec, err := Parse("host.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	p, ps := Validate(spec)
	if p == nil {
		t.Fatalf("the written spec is refused:\n%v\n%s", ps, text)
	}
	if errs := CheckMachine(spec, p, m).Errors(); len(errs) > 0 {
		t.Errorf("check --facts refuses the written spec: %v", errs)
	}
}

// TestSpecFromMachineIPv6 writes the IPv6 the rescue system has, with OVH's
// rule or gateway_on_link for a gateway outside the /64, says why it leaves
// IPv6 out, and leaves out a local resolver stub.
func TestSpecFromMachineIPv6(t *testing.T) {
	keys := exampleSpec(t).SSH.AuthorizedKeys
	for _, tc := range []struct {
		name, fixture string
		edit          func(m *machine.Machine)
		want          []string
		valid         bool
	}{
		{"OVH's gateway outside the /64", "ovh-seed", func(m *machine.Machine) {
			m.Interfaces[0].Addresses = append(m.Interfaces[0].Addresses, machine.Address{Family: "ipv6", Address: "2001:41d0:8:e79d::1", Prefix: 64, Scope: "global"})
			m.Routes = append(m.Routes, machine.Route{Family: "ipv6", Destination: "default", Gateway: "2001:41d0:8:e7ff:ff:ff:ff:ff", Interface: "eth0", OnLink: true})
		}, []string{"[network.ipv6]", "derive_gateway = true  # 2001:41d0:8:e7ff:ff:ff:ff:ff, by OVH's rule", "nixos-25.05"}, true},
		{"another gateway outside the /64", "hetzner-uefi", func(m *machine.Machine) {
			m.Routes[2].Gateway = "2001:db8:1:ff::1"
		}, []string{`gateway = "2001:db8:1:ff::1"`, "gateway_on_link = true  # 2001:db8:1:ff::1 lies outside 2001:db8:1:2::2/64", "nixos-25.05"}, true},
		{"no IPv6 default route", "hetzner-uefi", func(m *machine.Machine) { m.Routes = m.Routes[:2] },
			[]string{"# no [network.ipv6]: 2001:db8:1:2::2/64 has no IPv6 default route in the rescue system"}, true},
		{"IPv6 on another NIC", "two-nic", func(m *machine.Machine) {
			m.Interfaces[0].Addresses = []machine.Address{{Family: "ipv6", Address: "2001:db8::5", Prefix: 64, Scope: "global"}}
		}, []string{"# no [network.ipv6]: 2001:db8::5/64 is on eth0, not on the interface with the IPv4 default route"}, true},
		{"a local resolver stub", "small-vps", func(m *machine.Machine) { m.Nameservers = []string{"127.0.0.53"} },
			[]string{"# the rescue system resolves through 127.0.0.53, a local stub", "nameservers = []"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := loadFixture(t, tc.fixture)
			tc.edit(m)
			text, ps := SpecFromMachine(m, InitOptions{AuthorizedKeys: keys})
			if len(ps.Errors()) > 0 {
				t.Fatal(ps)
			}
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("want %q in the spec:\n%s", w, text)
				}
			}
			spec, err := Parse("host.toml", []byte(text))
			if err != nil {
				t.Fatalf("%v\n%s", err, text)
			}
			p, ps := Validate(spec)
			if p != nil {
				ps = append(ps, CheckMachine(spec, p, m)...)
			}
			if ok := len(ps.Errors()) == 0; ok != tc.valid {
				t.Errorf("check --facts passes: %v, want %v: %v\n%s", ok, tc.valid, ps.Errors(), text)
			}
		})
	}
}

// hostileFacts are strings a machine description may hold, on purpose or
// from odd hardware: escapes and bells, line breaks that would end a TOML
// comment, quotes, names Linux or a spec refuses, a very long one.
var hostileFacts = []string{
	"\x1b[2J\x1b]8;;https://evil.example\x07link",
	"a\nb = 1\n[x]",
	"\r\x00",
	"sp ace",
	"lo",
	"..",
	`x"y\z`,
	"ünï\u202e",
	strings.Repeat("z", 5000),
	"",
}

// commentOnly are the fields of a machine description that init shows in
// comments only: whatever they hold, init writes a spec.
var commentOnly = map[string]bool{"Model": true, "Hostname": true, "Description": true, "PrettyName": true,
	"CollectedAt": true, "CollectedBy": true, "Comment": true, "Driver": true, "Kernel": true, "WWN": true}

// eachString calls fn for every exported string under v, with its path of
// field and element indexes.
func eachString(v reflect.Value, at []int, fn func(v reflect.Value, at []int)) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			eachString(v.Elem(), at, fn)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				eachString(v.Field(i), append(slices.Clone(at), i), fn)
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			eachString(v.Index(i), append(slices.Clone(at), i), fn)
		}
	case reflect.String:
		fn(v, at)
	}
}

// stringAt follows a path of indexes into m to a string, and names the
// struct field that holds it.
func stringAt(m *machine.Machine, at []int) (reflect.Value, string) {
	v, name := reflect.ValueOf(m).Elem(), ""
	for _, i := range at {
		if v.Kind() == reflect.Pointer {
			v = v.Elem()
		}
		if v.Kind() == reflect.Slice {
			v = v.Index(i)
		} else {
			name = v.Type().Field(i).Name
			v = v.Field(i)
		}
	}
	return v, name
}

// TestSpecFromMachineHostile is a property over every fixture and, for
// each, every string of it set to each hostile value: init --facts either
// refuses with a printable message, or writes a spec that its own check
// (Parse and Validate) accepts and that holds no control character.
func TestSpecFromMachineHostile(t *testing.T) {
	files, err := filepath.Glob("../testdata/machines/*.json")
	if err != nil || len(files) == 0 {
		t.Fatal("no fixtures")
	}
	written, refused := 0, 0
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		fresh := func() *machine.Machine {
			m, err := machine.Parse(filepath.Base(file), data)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
		// Every string of the description but its file name, by its path.
		var paths [][]int
		probe := fresh()
		eachString(reflect.ValueOf(probe).Elem(), nil, func(_ reflect.Value, at []int) {
			if _, name := stringAt(probe, at); len(at) > 1 || name != "File" {
				paths = append(paths, at)
			}
		})
		for _, at := range paths {
			for _, value := range hostileFacts {
				m := fresh()
				v, name := stringAt(m, at)
				v.SetString(value)
				text, ps := SpecFromMachine(m, InitOptions{AuthorizedKeys: []string{otherKey}})
				where := fmt.Sprintf("%s, field %v = %.40q", filepath.Base(file), at, value)
				if commentOnly[name] && text == "" {
					t.Errorf("%s: a string init only shows in a comment stopped it: %v", where, ps)
				}
				for _, p := range ps {
					if msg := p.Error() + p.Hint; strings.ContainsFunc(msg, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
						t.Errorf("%s: a message is not printable: %q", where, msg)
					}
				}
				if text == "" {
					if len(ps.Errors()) == 0 {
						t.Errorf("%s: no spec and no error", where)
					}
					refused++
					continue
				}
				written++
				if strings.ContainsFunc(text, func(r rune) bool { return (r < 0x20 && r != '\n') || r == 0x7f }) {
					t.Errorf("%s: the spec holds a control character", where)
				}
				spec, err := Parse("host.toml", []byte(text))
				if err != nil {
					t.Errorf("%s: the spec init wrote does not parse: %v\n%s", where, err, text)
					continue
				}
				if p, ps := Validate(spec); p == nil {
					for _, e := range ps.Errors() {
						// With no resolvers in the facts, init leaves them to fill in.
						if !(e.Key == "network.nameservers" && strings.Contains(text, "\nnameservers = []\n")) {
							t.Errorf("%s: check refuses the spec init wrote: %v\n%s", where, e, text)
						}
					}
				}
			}
		}
	}
	if written == 0 || refused == 0 {
		t.Errorf("%d specs written, %d refused: the property tested nothing", written, refused)
	}
	t.Logf("%d hostile descriptions: %d specs written and accepted, %d refused", written+refused, written, refused)
}

// TestCheckMachineHostile: check --facts quotes a machine's strings short
// and escaped whatever they hold (each message line is Printable by
// construction; here every string of every fixture is 6 KB of escapes).
func TestCheckMachineHostile(t *testing.T) {
	files, _ := filepath.Glob("../testdata/machines/*.json")
	spec := exampleSpec(t)
	p, ps := Validate(spec)
	if p == nil {
		t.Fatal(ps)
	}
	hostile := strings.Repeat("\x1b[31m", 1000)
	for _, file := range files {
		m := loadFixture(t, strings.TrimSuffix(filepath.Base(file), ".json"))
		eachString(reflect.ValueOf(m).Elem(), nil, func(v reflect.Value, _ []int) { v.SetString(hostile) })
		got := CheckMachine(spec, p, m)
		if len(got) == 0 {
			t.Errorf("%s: no problem found with a machine of escapes", file)
		}
		for _, pr := range got {
			for _, line := range []string{pr.Error(), Printable(pr.Hint)} {
				if len(line) > 2000 {
					t.Errorf("%s: a message of %d bytes: %.300s…", file, len(line), line)
				}
				if strings.ContainsRune(line, '\x1b') {
					t.Errorf("%s: an escape reaches the terminal: %q", file, line)
				}
			}
		}
	}
}
