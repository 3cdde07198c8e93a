package plan

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// Spec is a host spec as the operator wrote it. Empty fields take defaults in
// Validate; nothing here is trusted until Validate has looked at it.
type Spec struct {
	// Include names shared spec files (paths relative to this file) whose
	// values this spec starts from; see Load for the precedence.
	Include []string `toml:"include"`
	// Modules name the installed system's own NixOS modules: files, and
	// folders with a default.nix, relative to the spec file that lists them
	// and inside its folder. Unlike other keys they add up: a spec's
	// modules follow its includes' (see Load).
	Modules  []string    `toml:"modules"`
	Provider string      `toml:"provider"`
	Host     HostSpec    `toml:"host"`
	Kexec    KexecSpec   `toml:"kexec"`
	Network  NetworkSpec `toml:"network"`
	Disks    DisksSpec   `toml:"disks"`
	SSH      SSHSpec     `toml:"ssh"`
	Channel  ChannelSpec `toml:"channel"`
	Flake    FlakeSpec   `toml:"flake"`
	// Encryption encrypts the root, unlocked over SSH at every boot.
	Encryption EncryptionSpec `toml:"encryption"`

	// File is the spec's path as given. SHA256 is the sha256 of its bytes
	// when it includes nothing; with includes, the sha256 of a SHA256SUMS-style
	// list of every file read (see specHash).
	File   string `toml:"-"`
	SHA256 string `toml:"-"`
	// Origin maps each key the spec sets (a dotted path such as
	// "network.ipv4.gateway") to the file that set it.
	Origin map[string]string `toml:"-"`
	// files are every file read, the spec's own last, for specHash.
	files []loadedFile
	// moduleRefs are the modules entries of every file read, includes first;
	// Load reads them (and the flake folder) into userModules and userFlake.
	moduleRefs  []moduleRef
	userModules []Module
	userFlake   *UserFlake
	bundledRead bool
}

type loadedFile struct {
	name string
	sum  [32]byte
}

// maxIncludeDepth bounds nested includes.
const maxIncludeDepth = 8

// HostSpec names the machine and the NixOS it gets.
type HostSpec struct {
	Name         string `toml:"name"`
	HostID       string `toml:"host_id"`
	NixOS        string `toml:"nixos"`
	StateVersion string `toml:"state_version"`
	// Firmware is how the server boots: "bios" (the default).
	Firmware string `toml:"firmware"`
}

// KexecSpec says which NixOS installer tarball the rescue system kexecs into.
type KexecSpec struct {
	URL    string `toml:"url"`
	SHA256 string `toml:"sha256"`
	// ExtraFlags are passed to kexec by kexec/run --kexec-extra-flags, e.g.
	// "--kexec-syscall-auto"; only images that honour the option accept them.
	ExtraFlags string `toml:"extra_flags"`
}

// NetworkSpec is the installed system's network.
type NetworkSpec struct {
	Interface string `toml:"interface"`
	// MAC pins the interface: the scripts check that the interface holding
	// the address has it, and the installed system names it Interface.
	MAC         string   `toml:"mac"`
	Nameservers []string `toml:"nameservers"`
	IPv4        *IPSpec  `toml:"ipv4"`
	IPv6        *IPSpec  `toml:"ipv6"`
}

// IPSpec is a static address with its gateway, for IPv4 or IPv6.
type IPSpec struct {
	Address string `toml:"address"`
	Prefix  int    `toml:"prefix"`
	Gateway string `toml:"gateway"`
	// GatewayOnLink allows a gateway outside the prefix (OVH's IPv6, Hetzner's
	// /32): it is reached through an on-link route added before the default route.
	GatewayOnLink bool `toml:"gateway_on_link"`
	// DHCP configures the family by DHCP (IPv4) or router advertisements
	// (IPv6) instead; Address is then the address expected, to reach and
	// recognise the server, and Prefix and Gateway stay empty.
	DHCP bool `toml:"dhcp"`
	// DeriveGateway computes the gateway by the provider's documented rule
	// (OVH IPv6: the /64's gateway outside it).
	DeriveGateway bool `toml:"derive_gateway"`
}

// DisksSpec is the storage layout.
type DisksSpec struct {
	// Layout is "zfs" (a ZFS pool), "ext4" (one ext4 root) or "mdadm" (an
	// ext4 root on an md RAID1 over every disk).
	Layout string `toml:"layout"`
	// Topology of the ZFS pool: "single" (one disk), "mirror", "raidz1", "raidz2".
	Topology string `toml:"topology"`
	// Boot is "first" (/boot and GRUB on the first disk only; the OVH legacy
	// constraint) or "all" (a /boot on every disk, GRUB on each: mirroredBoots).
	Boot string `toml:"boot"`
	// SwapSize, when set, adds a swap partition of this size to every disk.
	SwapSize string `toml:"swap_size"`
	// ARCMax caps the ZFS ARC (zfs.zfs_arc_max).
	ARCMax   string        `toml:"arc_max"`
	Devices  []string      `toml:"devices"`
	Label    string        `toml:"label"`
	BootSize string        `toml:"boot_size"`
	Pool     string        `toml:"pool"`
	Datasets []DatasetSpec `toml:"datasets"`
	// Identity says which physical disk each device must be; the scripts
	// refuse to touch a disk that does not match.
	Identity []DiskIdentitySpec `toml:"identity"`
	// ClearExisting consents to stopping and erasing md arrays, LVM volume
	// groups and ZFS pools found on the disks (OVH's default install is an
	// md RAID1). Without it the scripts stop when a disk is busy.
	ClearExisting bool `toml:"clear_existing"`
}

// DiskIdentitySpec is what one disk must be.
type DiskIdentitySpec struct {
	Device    string `toml:"device"`
	Serial    string `toml:"serial"`
	SizeBytes int64  `toml:"size_bytes"`
}

// DatasetSpec is one ZFS dataset, named relative to the pool. A dataset
// without a mountpoint is created but not mounted (a container like the seed's
// rpool/root).
type DatasetSpec struct {
	Name       string `toml:"name"`
	Mountpoint string `toml:"mountpoint"`
}

// ChannelSpec pins the nixos channel to one release's nixexprs.tar.xz, so
// the bundle installs the same system next month.
type ChannelSpec struct {
	// URL is a release folder, e.g.
	// https://releases.nixos.org/nixos/24.05/nixos-24.05.7376.b134951a4c9f
	URL string `toml:"url"`
	// SHA256 is the sha256 of URL/nixexprs.tar.xz.
	SHA256 string `toml:"sha256"`
}

// FlakeSpec installs from a flake instead of a channel: one nixplan writes,
// whose nixpkgs input is pinned to a revision, or the user's own.
type FlakeSpec struct {
	// NixpkgsRev is the nixpkgs commit, 40 hex digits.
	NixpkgsRev string `toml:"nixpkgs_rev"`
	// Path is the user's own flake: a folder with flake.nix and flake.lock,
	// relative to the spec file that sets it and inside its folder, whose
	// nixosConfigurations.HOST is installed.
	Path string `toml:"path"`
}

// SSHSpec holds the public keys that may log in as root.
type SSHSpec struct {
	AuthorizedKeys []string `toml:"authorized_keys"`
	// ConsolePassword: kexec-install.sh asks for a root password at install
	// time, for the KVM console. The password never enters the bundle.
	ConsolePassword bool `toml:"console_password"`
}

// EncryptionSpec encrypts the root file system; the initrd brings up the
// public NIC and an SSH server of its own at every boot, where the operator
// types the passphrase. /boot stays unencrypted.
type EncryptionSpec struct {
	// Type is "zfs" (ZFS native encryption of a child dataset of the pool,
	// under which every dataset goes) or "luks" (LUKS2 under the pool, the
	// ext4 root, or the ext4 on the md RAID).
	Type string `toml:"type"`
	// Dataset is the encrypted dataset below the pool ("crypt"), zfs only.
	Dataset string `toml:"dataset"`
	// SSHPort is where the initrd's SSH server listens (2222): never 22,
	// where the installed system answers with another host key.
	SSHPort int `toml:"ssh_port"`
	// NICDriver is the public NIC's kernel driver, which the initrd loads;
	// facts.sh reads it from the machine.
	NICDriver string `toml:"nic_driver"`
	// Cryptsetup says where LUKS's cryptsetup comes from in the installer:
	// "fetch" (built from the target's nixpkgs before the erase) or "image"
	// (the installer image carries it).
	Cryptsetup string `toml:"cryptsetup"`
	// Passphrase is decoded only to be refused: the passphrase is typed on
	// the server and is never in a spec.
	Passphrase string `toml:"passphrase"`
}

// Load reads and decodes a spec file and the files it includes. Syntax
// errors, wrong types and unknown keys are returned as Problems with the file
// and position.
//
// Precedence: a spec starts from its includes, in the order listed, each
// overriding the ones before it; then its own values override them all. A
// value is a whole key: lists and [[disks.datasets]] replace, never append.
// Includes may include, up to 8 deep, without cycles.
//
// The modules lists add up instead, as NixOS imports do: the modules of the
// includes in order, then the spec's own, each listed path read once. Load
// reads them and the flake folder (flake.path) and refuses what must not
// travel in a bundle (see readBundled).
func Load(path string) (*Spec, error) {
	l := &loader{resolved: map[string]*Spec{}}
	spec, err := l.load(path, nil)
	if err != nil {
		return nil, err
	}
	if ps := readBundled(spec); len(ps) > 0 {
		return nil, ps
	}
	spec.SHA256 = specHash(spec.files)
	return spec, nil
}

// loader reads one spec tree. Each file is read, parsed and resolved with
// its own includes once, however often the tree includes it, and the tree is
// bounded: MaxIncludeFiles files, MaxIncludeEdges include entries, 8 levels,
// MaxSpecTreeBytes in all.
type loader struct {
	resolved map[string]*Spec // by cleaned path
	edges    int
	bytes    int64
}

func (l *loader) load(path string, stack []string) (*Spec, error) {
	if p := fileNameProblem(path); p != nil {
		return nil, Problems{*p}
	}
	data, err := ReadRegular(path, MaxSpecFileBytes)
	if err != nil {
		p := Problem{File: path, Msg: readErrorText(err)}
		var nr *NotRegularError
		var tl *TooLargeError
		switch {
		case errors.As(err, &nr):
			p.Hint = "a spec is a TOML text file: give the path of the file itself"
		case errors.As(err, &tl):
			p.Hint = "a spec is a few KB of TOML; is this the right file?"
		}
		return nil, Problems{p}
	}
	if l.bytes += int64(len(data)); l.bytes > MaxSpecTreeBytes {
		return nil, Problems{{File: path, Msg: fmt.Sprintf("the spec and its includes hold more than %s together", FormatBinary(MaxSpecTreeBytes)),
			Hint: "a spec tree is a few files of a few KB each"}}
	}
	own, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	l.resolved[filepath.Clean(path)] = nil // being resolved: an include of it is a cycle
	if len(own.Include) == 0 {
		l.resolved[filepath.Clean(path)] = own
		return own, nil
	}
	stack = append(stack, path)
	merged := &Spec{File: path, Origin: map[string]string{}}
	listed := map[string]int{}
	for i, inc := range own.Include {
		key := fmt.Sprintf("include[%d]", i)
		refuse := func(hint, format string, args ...any) (*Spec, error) {
			return nil, Problems{{File: path, Key: key, Msg: fmt.Sprintf(format, args...), Hint: hint}}
		}
		incPath := inc
		if !filepath.IsAbs(inc) {
			incPath = filepath.Join(filepath.Dir(path), inc)
		}
		clean := filepath.Clean(incPath)
		done, seen := l.resolved[clean]
		l.edges++
		switch {
		case inc == "" || !strings.HasSuffix(inc, ".toml"):
			return refuse(`name a spec file relative to this one, e.g. "common.toml"`, "%q is not a .toml file", clip(inc))
		case unprintable(inc) != "":
			return refuse(`rename the file to printable characters, e.g. "common.toml"`, "%q holds %s; a file name in a spec is printable text", clip(inc), unprintable(inc))
		case seen && done == nil:
			chain := append(slices.Clone(stack), incPath)
			return refuse("", "includes form a cycle: %s", strings.Join(chain, " → "))
		case len(stack) >= maxIncludeDepth:
			return refuse("", "includes nest deeper than %d", maxIncludeDepth)
		case listed[clean] > 0:
			return refuse("list each file once", "%q is listed twice (as include[%d] too)", clip(inc), listed[clean]-1)
		case l.edges > MaxIncludeEdges:
			return refuse("share values through one common file rather than long chains",
				"the spec tree has more than %d include entries", MaxIncludeEdges)
		case !seen && len(l.resolved) >= MaxIncludeFiles:
			return refuse("share values through one common file rather than many",
				"the spec tree has more than %d files", MaxIncludeFiles)
		}
		listed[clean] = i + 1
		sub := done
		if sub == nil {
			if _, err := os.Stat(incPath); err != nil {
				return refuse("", "%s: %s", incPath, readErrorText(err))
			}
			if sub, err = l.load(incPath, stack); err != nil {
				return nil, err
			}
		}
		overlay(merged, sub)
		merged.files = append(merged.files, sub.files...)
	}
	overlay(merged, own)
	merged.files = append(merged.files, own.files...)
	merged.files = uniqueFiles(merged.files)
	l.resolved[filepath.Clean(path)] = merged
	return merged, nil
}

// uniqueFiles keeps the first of each file a tree lists more than once
// (two includes that both include a common file).
func uniqueFiles(files []loadedFile) []loadedFile {
	seen := map[string]bool{}
	out := files[:0:0]
	for _, f := range files {
		if !seen[f.name] {
			seen[f.name] = true
			out = append(out, f)
		}
	}
	return out
}

// Parse decodes the bytes of one spec file without following its includes;
// name is used in problems and the bundle header.
func Parse(name string, data []byte) (*Spec, error) {
	if p := fileNameProblem(name); p != nil {
		return nil, Problems{*p}
	}
	sum := sha256.Sum256(data)
	spec := &Spec{File: name, SHA256: hex.EncodeToString(sum[:]), files: []loadedFile{{name, sum}}}
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, Problems{{File: name, Msg: "contains a NUL byte; a spec is a UTF-8 TOML text file"}}
	}
	// Private key material is refused wherever it stands, comments included:
	// a spec is committed and shared.
	for i, line := range strings.Split(string(data), "\n") {
		if LooksPrivate(line) {
			return nil, Problems{{File: name, Line: i + 1,
				Msg:  "holds private key material; never put a private key in a spec (treat this key as exposed if the file was shared)",
				Hint: "use the public half: the one-line contents of the .pub file, e.g. ~/.ssh/id_ed25519.pub"}}
		}
	}
	if at, msg, hint := tomlShape(data); at >= 0 {
		line, col := lineCol(data, at)
		return nil, Problems{{File: name, Line: line, Col: col, Msg: msg, Hint: hint}}
	}
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(spec)
	if err != nil {
		return nil, Problems{tomlProblem(name, data, err)}
	}
	var ps Problems
	var positions map[string][]position // found once, when a key is unknown
	seen := map[string]int{}            // how often each unknown key was met
	undecoded := md.Undecoded()
	for i, k := range undecoded {
		if i == maxUnknownKeys {
			ps = append(ps, Problem{File: name, Msg: fmt.Sprintf("and %d more unknown keys", len(undecoded)-i),
				Hint: "is this a nixplan spec? The spec reference in README.md lists every key"})
			break
		}
		if positions == nil {
			positions = keyPositions(data)
		}
		key := k.String()
		p := Problem{File: name, Key: key, Msg: "unknown key"}
		// A key of a list of tables comes once for each entry, in order.
		if at := positions[key]; seen[key] < len(at) {
			p.Line, p.Col = at[seen[key]].line, at[seen[key]].col
		}
		seen[key]++
		if near := nearestKey(key); near != "" {
			p.Hint = fmt.Sprintf("did you mean %q?", near)
		} else {
			p.Hint = "the spec reference in README.md lists every key"
		}
		ps = append(ps, p)
	}
	if len(ps) > 0 {
		return nil, ps
	}
	for i, m := range spec.Modules {
		spec.moduleRefs = append(spec.moduleRefs, moduleRef{listed: m, from: name, index: i})
	}
	spec.Origin = map[string]string{}
	for _, key := range leafKeys {
		if md.IsDefined(strings.Split(key, ".")...) {
			spec.Origin[key] = name
		}
	}
	return spec, nil
}

// maxUnknownKeys is how many unknown keys a spec's problems name one by one.
const maxUnknownKeys = 20

// fileNameProblem refuses a spec file name that is not Printable: the name
// stands in the header of every bundle file and in checklist.md, and a line
// break in it would end the header's comment there.
func fileNameProblem(name string) *Problem {
	for i, r := range name {
		if r == utf8.RuneError || !unicode.IsGraphic(r) {
			what := fmt.Sprintf("the character %U", r)
			switch {
			case r == utf8.RuneError:
				what = fmt.Sprintf("the byte 0x%02x, which is not UTF-8", name[i])
			case r == '\n' || r == '\r':
				what = fmt.Sprintf("a line break (%U)", r)
			case unicode.IsControl(r):
				what = fmt.Sprintf("the control character %U", r)
			}
			return &Problem{File: name, Msg: "the file name holds " + what + "; nixplan writes the spec's name into the header of every bundle file",
				Hint: `rename the file to printable characters, e.g. "web1.toml"`}
		}
	}
	return nil
}

// specHash is the sha256 of the spec's one file, or with includes, of a list
// of "SHA256  NAME" lines for every file read, includes first.
func specHash(files []loadedFile) string {
	if len(files) == 1 {
		return hex.EncodeToString(files[0].sum[:])
	}
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%x  %s\n", f.sum, filepath.Base(f.name))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// overlay copies every key src sets into dst, with its origin, and adds
// src's modules entries to dst's.
func overlay(dst, src *Spec) {
	dst.moduleRefs = append(dst.moduleRefs, src.moduleRefs...)
	dv, sv := reflect.ValueOf(dst).Elem(), reflect.ValueOf(src).Elem()
	for key, file := range src.Origin {
		path := strings.Split(key, ".")
		from := fieldByPath(sv, path, false)
		if !from.IsValid() {
			continue
		}
		fieldByPath(dv, path, true).Set(from)
		dst.Origin[key] = file
	}
}

// fieldByPath finds the struct field for a dotted toml key path, allocating
// nil pointers on the way when alloc is set.
func fieldByPath(v reflect.Value, path []string, alloc bool) reflect.Value {
	for _, name := range path {
		if v.Kind() == reflect.Pointer {
			if v.IsNil() {
				if !alloc {
					return reflect.Value{}
				}
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		found := false
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).Tag.Get("toml") == name {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			return reflect.Value{}
		}
	}
	return v
}

// tomlProblem turns a decoder error into a Problem with a position.
func tomlProblem(file string, data []byte, err error) Problem {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		p := Problem{File: file, Line: pe.Position.Line, Col: pe.Position.Col, Msg: strings.TrimSuffix(lowerFirst(pe.Message), ".")}
		if pe.Usage != "" {
			p.Hint = strings.Join(strings.Fields(pe.Usage), " ")
		}
		return p
	}
	// Type mismatches are plain errors that carry line and key in their text.
	if p, ok := typeProblem(file, data, err); ok {
		return p
	}
	return Problem{File: file, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// knownKeys lists every dotted key a spec may hold, from Spec's toml tags;
// leafKeys those that hold values (not tables), except include and modules,
// which Load merges itself. A list of tables such as disks.datasets is one
// value.
var knownKeys, leafKeys = func() (keys, leaves []string) {
	var walk func(prefix string, t reflect.Type, inList bool)
	walk = func(prefix string, t reflect.Type, inList bool) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			inList = inList || t.Kind() == reflect.Slice
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		for i := 0; i < t.NumField(); i++ {
			tag := t.Field(i).Tag.Get("toml")
			if tag == "" || tag == "-" {
				continue
			}
			keys = append(keys, prefix+tag)
			ft := t.Field(i).Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() != reflect.Struct && prefix+tag != "include" && prefix+tag != "modules" && !inList {
				leaves = append(leaves, prefix+tag)
			}
			// Into tables, and into lists of tables for their key names.
			walk(prefix+tag+".", ft, inList)
		}
	}
	walk("", reflect.TypeOf(Spec{}), false)
	sort.Strings(keys)
	return keys, leaves
}()

// nearestKey returns the known key closest to an unknown one, if any is close.
func nearestKey(key string) string {
	best, bestDist := "", 4
	if len(key) > 64 {
		return "" // no known key is near, and the distance costs len(key) per key
	}
	for _, k := range knownKeys {
		// Compare within the same table only: "network.gatway" → "network.gateway"
		// is a useful hint, "disks.name" → "host.name" is not.
		if parentKey(k) != parentKey(key) && !strings.HasSuffix(k, "."+lastKey(key)) {
			continue
		}
		if d := EditDistance(k, key); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

func parentKey(k string) string {
	if i := strings.LastIndexByte(k, '.'); i >= 0 {
		return k[:i]
	}
	return ""
}

func lastKey(k string) string { return k[strings.LastIndexByte(k, '.')+1:] }

// EditDistance is the Levenshtein distance between a and b, with a swap of
// two neighbouring letters counted as one edit: how far a mistyped key or
// command is from a known one.
func EditDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
