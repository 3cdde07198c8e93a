package plan

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/netip"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

var (
	hostNameRE   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	hostIDRE     = regexp.MustCompile(`^[0-9a-f]{8}$`)
	releaseRE    = regexp.MustCompile(`^[0-9]{2}\.(05|11)$`)
	sha256RE     = regexp.MustCompile(`^[0-9a-f]{64}$`)
	gitRevRE     = regexp.MustCompile(`^[0-9a-f]{40}$`)
	ifaceRE      = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)
	macRE        = regexp.MustCompile(`^([0-9a-f]{2}:){5}[0-9a-f]{2}$`)
	serialRE     = regexp.MustCompile(`^[\x21-\x7e]{1,64}$`)
	devicePathRE = regexp.MustCompile(`^/dev/[A-Za-z0-9/._:+-]+$`)
	zfsNameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]*$`)
	poolNameRE   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.:-]*$`)
	sizeRE       = regexp.MustCompile(`^([0-9]+)\s*(KiB|MiB|GiB|TiB)$`)
	// imageURLRE is the path of a nixos-images release asset on github.com
	// (see KexecURL).
	imageURLRE = regexp.MustCompile(`^/nix-community/nixos-images/releases/download/([^/]+)/[^/]+$`)
	// kexecFlagsRE: options only (each starting with -), no shell syntax.
	kexecFlagsRE = regexp.MustCompile(`^-[A-Za-z0-9_=,.:/-]*( -[A-Za-z0-9_=,.:/-]*)*$`)
)

// Validate checks a spec and resolves it into a Plan. It reports every
// problem it finds, not only the first; warnings come back with a Plan.
func Validate(spec *Spec) (*Plan, Problems) {
	ps := &problems{file: spec.File, origin: spec.Origin, refused: map[string]bool{}}
	p := &Plan{
		Version:    Version,
		SpecFile:   filepath.Base(spec.File),
		SpecSHA256: spec.SHA256,
	}
	validateText(ps, spec)
	validateProvider(ps, spec, p)
	validateHost(ps, spec, p)
	validateKexec(ps, spec, p)
	validateNetwork(ps, spec, p)
	validateDisks(ps, spec, p)
	validateKeys(ps, spec, p)
	validateNixpkgs(ps, spec, p)
	validateBundled(ps, spec, p)
	validateCombinations(ps, spec, p)
	validateEncryption(ps, spec, p)
	checkPlaceholders(ps, spec, p)
	identifyStorage(&p.Storage)
	if len(ps.list.Errors()) > 0 {
		return nil, ps.list
	}
	warnKernelNames(ps, p)
	return p, ps.list
}

func validateProvider(ps *problems, spec *Spec, p *Plan) {
	switch prov, ok := LookupProvider(spec.Provider); {
	case spec.Provider == "":
		ps.add("provider", `write provider = "ovh" (or one of: `+strings.Join(knownProviders(), ", ")+")", "missing")
	case !ok:
		ps.add("provider", "one of: "+strings.Join(knownProviders(), ", "), "unknown provider %q", clip(spec.Provider))
	default:
		p.Provider = prov
	}
}

func validateHost(ps *problems, spec *Spec, p *Plan) {
	h := spec.Host
	switch {
	case h.Name == "":
		ps.add("host.name", `for example name = "web1"`, "missing; the installed system's host name")
	case strings.EqualFold(h.Name, starterHostName):
		ps.add("host.name", `the server's own host name, for example name = "web1"`, "%q is the starter spec's placeholder", h.Name)
	case !hostNameRE.MatchString(h.Name):
		hint := "1 to 63 lowercase letters, digits and hyphens, not starting or ending with a hyphen"
		if low := strings.ToLower(h.Name); hostNameRE.MatchString(low) {
			hint = fmt.Sprintf("write %q", clip(low))
		}
		ps.add("host.name", hint, "%q is not a valid host name (RFC 1123 label)", clip(h.Name))
	default:
		p.Host.Name = h.Name
	}

	switch {
	case h.HostID == "":
		if p.Host.Name != "" {
			p.Host.ID = DeriveHostID(p.Host.Name)
			p.Host.IDDerived = true
		}
	case !hostIDRE.MatchString(h.HostID):
		hint := "exactly 8 hexadecimal digits; or leave host_id out to derive it from the host name"
		if p.Host.Name != "" {
			hint = fmt.Sprintf("exactly 8 hexadecimal digits, e.g. %q; or leave host_id out to derive it from the host name", DeriveHostID(p.Host.Name))
		}
		if low := strings.ToLower(h.HostID); hostIDRE.MatchString(low) {
			hint = fmt.Sprintf("write %q", clip(low))
		}
		ps.add("host.host_id", hint, "%q is not 8 lowercase hex digits (ZFS needs networking.hostId)", clip(h.HostID))
	default:
		p.Host.ID = h.HostID
	}

	release, ok := validateRelease(ps, "host.nixos", h.NixOS, true)
	if ok {
		p.Release = release
	}
	state := h.StateVersion
	if state == "" {
		state = h.NixOS
	} else if r, ok := validateRelease(ps, "host.state_version", state, false); ok && p.Release.Version != "" && versionLess(p.Release.Version, r.Version) {
		ps.add("host.state_version", fmt.Sprintf("state_version is the release first installed: %q or older", p.Release.Version),
			"%q is newer than the release installed (%s)", clip(state), p.Release.Version)
	}
	p.StateVersion = state

	switch h.Firmware {
	case "", "bios":
		p.Firmware = "bios"
	case "uefi":
		p.Firmware = "uefi"
	default:
		ps.add("host.firmware", `"bios" (legacy boot) or "uefi"; facts.sh tells which the server uses`, "unknown firmware %q", clip(h.Firmware))
	}
}

// validateRelease checks a YY.05/YY.11 release; known says it must be in the
// release table (the release installed must be; a stateVersion need not).
func validateRelease(ps *problems, key, v string, known bool) (Release, bool) {
	list := strings.Join(knownReleases(), ", ")
	switch {
	case v == "":
		ps.add(key, "the NixOS release to install, one of: "+list, "missing")
	case !releaseRE.MatchString(v):
		ps.add(key, "releases are YY.05 or YY.11, e.g. \"24.05\"", "%q is not a NixOS release", clip(v))
	default:
		r, ok := LookupRelease(v)
		if ok || !known {
			return r, true
		}
		ps.add(key, "one of: "+list, "NixOS %s is not a release nixplan knows", clip(v))
	}
	return Release{}, false
}

func validateKexec(ps *problems, spec *Spec, p *Plan) {
	k := spec.Kexec
	if k.URL == "" {
		ps.add("kexec.url", fmt.Sprintf("the seed's image: url = %q", KexecURL("nixos-22.11")),
			"missing; the kexec installer tarball to boot from the rescue system")
	} else if msg := urlProblem(k.URL); msg != "" {
		ps.add("kexec.url", "an https:// address without user, query or fragment, e.g. "+KexecURL("nixos-22.11"), "%s", msg)
	} else if u, _ := url.Parse(k.URL); !strings.HasSuffix(path.Base(u.Path), ".tar.gz") || !isPlainFileName(path.Base(u.Path)) {
		ps.add("kexec.url", "the nixos-images asset nixos-kexec-installer-noninteractive-x86_64-linux.tar.gz", "%q does not name a .tar.gz file", clip(k.URL))
	} else {
		p.Kexec.URL = k.URL
		p.Kexec.Tarball = path.Base(u.Path)
		// Only nixos-images' own release assets are the images the
		// capability table describes; a mirror may serve anything.
		m := imageURLRE.FindStringSubmatch(u.Path)
		if m != nil && u.Host == "github.com" {
			p.Kexec.Tag = m[1]
			p.Kexec.Image, p.Kexec.ImageKnown = LookupImage(m[1])
		}
		switch {
		case m != nil && u.Host != "github.com":
			ps.warn("kexec.url", "to have it checked, use the release URL: "+KexecURL(m[1]),
				"%s is not github.com, so this is not nixos-images' own release asset: the image's Nix, ZFS and key handling are not checked", clip(u.Host))
		case p.Kexec.Tag == "":
			ps.warn("kexec.url", "known tags: "+strings.Join(imageTags(), ", "),
				"the URL names no nixos-images release tag: nixplan knows nothing of the image; only ssh-* keys are trusted to survive the kexec")
		case !p.Kexec.ImageKnown:
			ps.warn("kexec.url", "known tags: "+strings.Join(imageTags(), ", "),
				"image tag %q is not in nixplan's capability table: only ssh-* keys are trusted to survive the kexec", clip(p.Kexec.Tag))
		}
	}
	if k.ExtraFlags != "" {
		if !kexecFlagsRE.MatchString(k.ExtraFlags) {
			ps.add("kexec.extra_flags", `kexec options separated by spaces, e.g. "--kexec-syscall-auto"`, "%q is not a list of kexec options", clip(k.ExtraFlags))
		} else {
			p.Kexec.ExtraFlags = k.ExtraFlags
		}
	}
	if k.SHA256 != "" {
		if !sha256RE.MatchString(k.SHA256) {
			hint := "64 lowercase hex digits, as printed by sha256sum"
			if low := strings.ToLower(k.SHA256); sha256RE.MatchString(low) {
				hint = fmt.Sprintf("write %q", clip(low))
			}
			ps.add("kexec.sha256", hint, "%q is not a sha256 hash", clip(k.SHA256))
		} else {
			p.Kexec.SHA256 = k.SHA256
		}
	}
}

func isPlainFileName(s string) bool {
	for _, r := range s {
		if !(r == '.' || r == '-' || r == '_' || r == '+' || unicode.IsDigit(r) || (r < 128 && unicode.IsLetter(r))) {
			return false
		}
	}
	return true
}

func validateNetwork(ps *problems, spec *Spec, p *Plan) {
	n := spec.Network
	p.Network.Interface = n.Interface
	if n.Interface == "" {
		p.Network.Interface = "eth0"
	} else if msg, hint := interfaceProblem(n.Interface); msg != "" {
		ps.add("network.interface", hint, "%s", msg)
	}
	if name := p.Network.Interface; ifaceRE.MatchString(name) && strings.HasPrefix(name, "eth") && !ethRE.MatchString(name) {
		// systemd.link(5), Name=: a name the kernel would use for another
		// interface (eth*) makes the rename race with the kernel's own names.
		ps.add("network.interface", `a name outside the kernel's eth* namespace, such as "wan0"`,
			"%q is in the kernel's namespace (eth*); renaming a NIC to it can collide with another NIC's kernel name", name)
	}
	p.Network.PredictableNames = !ethRE.MatchString(p.Network.Interface)
	p.Network.RenameByMAC = !ethRE.MatchString(p.Network.Interface) && !predictableRE.MatchString(p.Network.Interface)
	if n.MAC != "" {
		if !macRE.MatchString(n.MAC) {
			hint := `six lowercase hex pairs separated by colons, e.g. "0c:c4:7a:12:34:56", as the provider's panel lists it`
			if low := strings.ToLower(strings.ReplaceAll(n.MAC, "-", ":")); macRE.MatchString(low) {
				hint = fmt.Sprintf("write %q", clip(low))
			}
			ps.add("network.mac", hint, "%q is not a MAC address", clip(n.MAC))
		} else {
			p.Network.MAC = n.MAC
		}
		if ethRE.MatchString(p.Network.Interface) {
			ps.add("network.interface", `a name of your own such as "wan0"; the installed system gives it to the NIC with network.mac`,
				"%q is a kernel name, which another NIC may take first; a MAC-pinned interface needs a name of its own", clip(p.Network.Interface))
		}
	}

	if n.IPv4 == nil {
		ps.add("network.ipv4", "add [network.ipv4] with address, prefix and gateway from the provider's panel (or address and dhcp = true)",
			"missing; the server's IPv4 address is needed to reach it")
	} else {
		p.Network.IPv4 = validateFamily(ps, "network.ipv4", n.IPv4, false, p.Provider)
	}
	if n.IPv6 != nil {
		v6 := validateFamily(ps, "network.ipv6", n.IPv6, true, p.Provider)
		p.Network.IPv6 = &v6
	}

	p.Network.Nameservers = n.Nameservers
	if len(n.Nameservers) == 0 {
		p.Network.Nameservers = p.Provider.Nameservers
		if p.Provider.ID != "" && len(p.Provider.Nameservers) == 0 {
			ps.add("network.nameservers", `the provider's resolvers, e.g. nameservers = ["1.1.1.1", "9.9.9.9"]`, "missing; provider %q has no default resolvers", p.Provider.ID)
		}
	}
	if len(n.Nameservers) > maxNameservers {
		ps.add("network.nameservers", `e.g. nameservers = ["213.186.33.99"]; the C library asks only the first 3`, "an array of %d addresses; nixplan takes at most %d", len(n.Nameservers), maxNameservers)
		return
	}
	seen := map[string]bool{}
	for i, ns := range n.Nameservers {
		key := fmt.Sprintf("network.nameservers[%d]", i)
		if a, err := netip.ParseAddr(ns); err != nil || a.Zone() != "" {
			ps.add(key, "an IPv4 or IPv6 address such as \"8.8.8.8\"", "%q is not an IP address", clip(ns))
		} else if a.IsUnspecified() || a.IsMulticast() {
			ps.add(key, "a resolver's address, e.g. the provider's", "%s cannot be a nameserver", clip(ns))
		} else if seen[ns] {
			ps.add(key, "", "%s is listed twice", clip(ns))
		}
		seen[ns] = true
	}
}

// maxNameservers bounds network.nameservers.
const maxNameservers = 8

// validateFamily checks one address family: DHCP with the address
// expected, or a static address, whose gateway may be derived by the
// provider's rule.
func validateFamily(ps *problems, key string, spec *IPSpec, v6 bool, prov Provider) Static {
	if spec.DHCP {
		for _, k := range []struct {
			name string
			set  bool
		}{{"prefix", spec.Prefix != 0}, {"gateway", spec.Gateway != ""}, {"gateway_on_link", spec.GatewayOnLink}, {"derive_gateway", spec.DeriveGateway}} {
			if k.set {
				ps.add(key+"."+k.name, "leave it out: DHCP provides it", "does not go with dhcp = true")
			}
		}
		addr, err := netip.ParseAddr(spec.Address)
		switch {
		case spec.Address == "":
			ps.add(key+".address", "the address the provider's panel shows, to reach and recognise the server", "missing; with DHCP it is the address expected")
		case err != nil || addr.Is6() != v6 || addr.Is4In6():
			ps.add(key+".address", "an address of this family", "%q is not an %s address", clip(spec.Address), map[bool]string{false: "IPv4", true: "IPv6"}[v6])
		}
		return Static{Address: spec.Address, DHCP: true}
	}
	derived := false
	if spec.DeriveGateway {
		switch {
		case spec.Gateway != "":
			ps.add(key+".gateway", "give gateway or derive_gateway, not both", "is set, and so is derive_gateway")
		case !v6 || !prov.OVHFamily:
			ps.add(key+".derive_gateway", "give the gateway from the provider's panel", "nixplan knows a rule only for IPv6 at OVH, Kimsufi and So you Start")
		default:
			if gw, ok := OVHIPv6Gateway(spec.Address); ok {
				spec.Gateway, spec.GatewayOnLink, derived = gw, true, true
			}
		}
	}
	before := len(ps.list.Errors())
	st := validateStatic(ps, key, spec, v6)
	st.Derived = derived
	if prov.OVHFamily && !spec.DeriveGateway && len(ps.list.Errors()) == before {
		// A valid gateway that breaks the provider's documented rule is
		// likely a typo, but the provider may know better: warn.
		rule, ok := ovhIPv4Gateway(spec.Address)
		if v6 {
			rule, ok = OVHIPv6Gateway(spec.Address)
		}
		if ok && spec.Gateway != rule && spec.Gateway != "fe80::1" && spec.Prefix <= 64 {
			ps.warn(key+".gateway", fmt.Sprintf("check the panel; OVH's documented gateway for %s is %s", clip(spec.Address), rule),
				"%s differs from the gateway OVH's rule gives", clip(spec.Gateway))
		}
	}
	return st
}

// OVHIPv6Gateway is OVH's documented IPv6 gateway for a server address:
// outside the server's /64, on the /56 boundary: the fourth group with its
// low byte set to ff, then ff:ff:ff:ff (2001:41d0:8:e79d::1 →
// 2001:41d0:8:e7ff:ff:ff:ff:ff).
func OVHIPv6Gateway(address string) (string, bool) {
	a, err := netip.ParseAddr(address)
	if err != nil || !a.Is6() || a.Is4In6() {
		return "", false
	}
	b := a.As16()
	b[7] = 0xff
	for i := 8; i < 16; i += 2 {
		b[i], b[i+1] = 0, 0xff
	}
	return netip.AddrFrom16(b).String(), true
}

// ovhIPv4Gateway is OVH's documented IPv4 gateway: the first three octets of
// the address, then .254.
func ovhIPv4Gateway(address string) (string, bool) {
	a, err := netip.ParseAddr(address)
	if err != nil || !a.Is4() {
		return "", false
	}
	b := a.As4()
	b[3] = 254
	return netip.AddrFrom4(b).String(), true
}

// validateStatic checks a static address, its prefix and its gateway.
func validateStatic(ps *problems, key string, spec *IPSpec, v6 bool) Static {
	family, bits, example, gwExample := "IPv4", 32, "203.0.113.10", "203.0.113.254"
	if v6 {
		family, bits, example, gwExample = "IPv6", 128, "2001:db8:8:e79d::1", "fe80::1"
	}
	is := func(a netip.Addr) bool { return a.IsValid() && a.Is6() == v6 && !a.Is4In6() }
	addr, err := netip.ParseAddr(spec.Address)
	addrOK := err == nil && is(addr) && addr.Zone() == ""
	cidrPrefix := false // the address was written with its prefix length
	switch {
	case spec.Address == "":
		ps.add(key+".address", "the server's main "+family+" address from the provider's panel", "missing")
	case !addrOK:
		if pfx, err := netip.ParsePrefix(spec.Address); err == nil && is(pfx.Addr()) {
			// "203.0.113.10/24": the prefix belongs in its own key.
			ps.add(key+".address", fmt.Sprintf("write address = %q and prefix = %d", pfx.Addr().String(), pfx.Bits()),
				"%q is an address with its prefix length; the prefix goes in its own key", clip(spec.Address))
			cidrPrefix = true
			break
		}
		ps.add(key+".address", fmt.Sprintf("an %s address such as %q", family, example), "%q is not an %s address", clip(spec.Address), family)
	case addr.IsUnspecified() || addr.IsLoopback() || addr.IsMulticast() || addr.IsLinkLocalUnicast():
		ps.add(key+".address", "the server's public address", "%s is not a usable host address", addr)
		addrOK = false
	}
	prefixOK := spec.Prefix >= 1 && spec.Prefix <= bits
	// Origin is set by Parse; a zero prefix in a Spec built otherwise is "not a prefix".
	if _, set := ps.origin[key+".prefix"]; ps.origin != nil && !set && cidrPrefix {
		// The address's hint already says where the prefix goes.
	} else if ps.origin != nil && !set {
		ps.add(key+".prefix", fmt.Sprintf("the prefix length from the provider's panel, e.g. prefix = %d", map[bool]int{false: 24, true: 64}[v6]), "missing")
	} else if !prefixOK {
		hint := "a prefix length from 1 to 32, e.g. 24"
		if v6 {
			hint = "a prefix length from 1 to 128, e.g. 64"
		}
		ps.add(key+".prefix", hint, "%d is not an %s prefix length", spec.Prefix, family)
	}
	var prefix netip.Prefix
	if addrOK && prefixOK {
		prefix = netip.PrefixFrom(addr, spec.Prefix).Masked()
		if !v6 && spec.Prefix <= 30 && (addr == prefix.Addr() || addr == lastAddr(prefix)) {
			ps.add(key+".address", "", "%s is the network or broadcast address of %s, not a host address", addr, prefix)
		}
		if v6 && spec.Prefix < 127 && addr == prefix.Addr() {
			ps.add(key+".address", "", "%s is the subnet-router anycast address of %s, not a host address", addr, prefix)
		}
	}
	gw, err := netip.ParseAddr(spec.Gateway)
	gwOK := err == nil && is(gw) && gw.Zone() == ""
	switch {
	case spec.Gateway == "":
		hint := "the gateway from the provider's panel (OVH: the first three octets of the address, then .254)"
		if v6 {
			hint = "the gateway from the provider's panel (Hetzner: fe80::1)"
		}
		ps.add(key+".gateway", hint, "missing")
	case !gwOK:
		ps.add(key+".gateway", fmt.Sprintf("an %s address such as %q", family, gwExample), "%q is not an %s address", clip(spec.Gateway), family)
	case addrOK && gw == addr:
		ps.add(key+".gateway", "", "%s is the server's own address", gw)
	case gw.IsLinkLocalUnicast():
		// fe80::1 is on the link by definition.
	case prefix.IsValid() && !prefix.Contains(gw) && !spec.GatewayOnLink:
		ps.add(key+".gateway", fmt.Sprintf("check the prefix length; if the provider documents this gateway outside the prefix, set %s.gateway_on_link = true", key),
			"%s is outside %s, so the server could not reach it", gw, prefix)
	case prefix.IsValid() && prefix.Contains(gw) && spec.GatewayOnLink:
		ps.warn(key+".gateway_on_link", "leave gateway_on_link out", "%s is inside %s already; gateway_on_link changes nothing", gw, prefix)
	}
	return Static{Address: spec.Address, Prefix: spec.Prefix, Gateway: spec.Gateway,
		OnLink: spec.GatewayOnLink && prefix.IsValid() && gwOK && !prefix.Contains(gw) && !gw.IsLinkLocalUnicast()}
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) | (1<<(32-p.Bits()) - 1)
	binary.BigEndian.PutUint32(a[:], v)
	return netip.AddrFrom4(a)
}

// reservedPoolNames cannot name a pool (zpool(8)).
var reservedPoolNames = map[string]bool{"mirror": true, "raidz": true, "raidz1": true, "raidz2": true, "raidz3": true,
	"draid": true, "spare": true, "log": true, "cache": true, "special": true, "dedup": true}

func sortMounts(ms []Mount) {
	sort.SliceStable(ms, func(i, j int) bool {
		di, dj := mountDepth(ms[i].Target), mountDepth(ms[j].Target)
		if di != dj {
			return di < dj
		}
		return ms[i].Target < ms[j].Target
	})
}

// defaultDatasets are the seed's.
var defaultDatasets = []DatasetSpec{
	{Name: "root"},
	{Name: "root/nixos", Mountpoint: "/"},
	{Name: "home", Mountpoint: "/home"},
}

func validateDatasets(ps *problems, specs []DatasetSpec, s *Storage, boots []string) {
	if specs == nil {
		specs = defaultDatasets
	}
	if len(specs) > maxDatasets {
		ps.add("disks.datasets", "create the others after the install with zfs create", "an array of %d tables; nixplan creates at most %d datasets", len(specs), maxDatasets)
		return
	}
	names := map[string]bool{}
	mounts := map[string]bool{}
	for i, ds := range specs {
		key := fmt.Sprintf("disks.datasets[%d]", i)
		ok := true
		parts := strings.Split(ds.Name, "/")
		for _, c := range parts {
			if !zfsNameRE.MatchString(c) || len(ds.Name) > 200 {
				ps.add(key+".name", `a path below the pool of letters, digits and "_ . : -", e.g. "root/nixos" (without the pool name)`, "%q is not a valid dataset name", clip(ds.Name))
				ok = false
				break
			}
		}
		if ok {
			if names[ds.Name] {
				ps.add(key+".name", "", "dataset %q is listed twice", clip(ds.Name))
				ok = false
			} else if parent := path.Dir(ds.Name); parent != "." && !names[parent] {
				ps.add(key+".name", fmt.Sprintf("list %q before it", clip(parent)), "the parent of %q is not listed before it", clip(ds.Name))
			}
			names[ds.Name] = true
		}
		if mp := ds.Mountpoint; mp != "" {
			switch {
			case !strings.HasPrefix(mp, "/"):
				ps.add(key+".mountpoint", "an absolute path such as \"/home\"", "%q is not absolute", clip(mp))
				ok = false
			case path.Clean(mp) != mp || strings.ContainsAny(mp, " \t\n\\"):
				ps.add(key+".mountpoint", fmt.Sprintf("write %q", clip(path.Clean(mp))), "%q is not a clean path", clip(mp))
				ok = false
			case pathLimit(mp) != "":
				ps.add(key+".mountpoint", "a shorter path", "%s", pathLimit(mp))
				ok = false
			case bootUnder(mp, boots) != "":
				b := bootUnder(mp, boots)
				hint := `a path of its own, e.g. mountpoint = "/srv"`
				if b != "/boot" {
					hint = fmt.Sprintf(`with boot = "all" the boot partitions are mounted on /boot to %s: %s`, boots[len(boots)-1], hint)
				}
				if mp == b {
					ps.add(key+".mountpoint", hint, "%s is where a boot partition is mounted", clip(mp))
				} else {
					ps.add(key+".mountpoint", hint, "%s lies under %s, where a boot partition is mounted", clip(mp), b)
				}
				ok = false
			case mounts[mp]:
				ps.add(key+".mountpoint", "", "%s is mounted twice", clip(mp))
				ok = false
			}
			mounts[mp] = true
		}
		if ok {
			full := s.Pool + "/" + ds.Name
			s.Datasets = append(s.Datasets, Dataset{Name: full, Mountpoint: ds.Mountpoint})
			if ds.Mountpoint != "" {
				s.Mounts = append(s.Mounts, Mount{Source: full, Target: ds.Mountpoint, FSType: "zfs"})
			}
		}
	}
	if !mounts["/"] {
		ps.add("disks.datasets", `give one dataset mountpoint = "/", e.g. name = "root/nixos"`, "no dataset is mounted at /")
	}
}

// maxDatasets bounds disks.datasets.
const maxDatasets = 64

// bootUnder returns the boot mountpoint mp is or lies under, or "".
func bootUnder(mp string, boots []string) string {
	for _, b := range boots {
		if mp == b || strings.HasPrefix(mp, b+"/") {
			return b
		}
	}
	return ""
}

// parseMiB parses a size such as "512MiB" or "1GiB" into MiB.
func parseMiB(s string) (int, error) {
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("not a size with a binary unit (KiB, MiB, GiB, TiB)")
	}
	unit := map[string]int64{"KiB": 1, "MiB": 1 << 10, "GiB": 1 << 20, "TiB": 1 << 30}[m[2]]
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n > maxSizeKiB/unit {
		return 0, fmt.Errorf("more than 1 PiB, beyond any disk or memory")
	}
	kib := n * unit
	if kib%1024 != 0 {
		return 0, fmt.Errorf("not a multiple of 1 MiB")
	}
	return int(kib / 1024), nil
}

// maxSizeKiB bounds every size a spec gives (1 PiB): no multiplication
// with its unit can overflow, and no size is clipped silently.
const maxSizeKiB = int64(1) << 40

// keyTypes are the public key types sshd accepts for root logins.
var keyTypes = map[string]bool{
	"ssh-ed25519": true, "ssh-rsa": true,
	"ecdsa-sha2-nistp256": true, "ecdsa-sha2-nistp384": true, "ecdsa-sha2-nistp521": true,
	"sk-ssh-ed25519@openssh.com": true, "sk-ecdsa-sha2-nistp256@openssh.com": true,
}

// maxKeys bounds ssh.authorized_keys.
const maxKeys = 64

// maxKeyLen bounds one authorized_keys entry; a 16384-bit RSA key is about 2.8 KB.
const maxKeyLen = 8192

func validateKeys(ps *problems, spec *Spec, p *Plan) {
	p.ConsolePassword = spec.SSH.ConsolePassword
	keys := spec.SSH.AuthorizedKeys
	if len(keys) == 0 {
		ps.add("ssh.authorized_keys", `add your public key, e.g. authorized_keys = ["ssh-ed25519 AAAA... you@laptop"] (the contents of ~/.ssh/id_ed25519.pub)`,
			"missing; without a key nobody can log in to the installer or the installed system")
		return
	}
	if len(keys) > maxKeys {
		ps.add("ssh.authorized_keys", "add the others to users.users.root.openssh.authorizedKeys.keys after the install", "an array of %d keys; nixplan takes at most %d", len(keys), maxKeys)
		return
	}
	seen := map[string]bool{}
	for i, k := range keys {
		key := fmt.Sprintf("ssh.authorized_keys[%d]", i)
		if msg, hint := checkPublicKey(k); msg != "" {
			ps.add(key, hint, "%s", msg)
			continue
		}
		body := strings.Fields(k)[1]
		if seen[body] {
			ps.add(key, "", "the same key is listed twice")
			continue
		}
		seen[body] = true
		p.AuthorizedKeys = append(p.AuthorizedKeys, k)
	}
}

// LooksPrivate reports whether s holds private key material: PEM and
// OpenSSH private keys, PuTTY's, and age identities, which sops-nix and
// agenix decrypt with (bech32 with the prefix AGE-SECRET-KEY- and its
// separator 1, in capitals: Mic92/ssh-to-age 2643a7f, convert.go).
func LooksPrivate(s string) bool {
	return strings.Contains(s, "PRIVATE KEY") || strings.Contains(s, "PuTTY-User-Key-File") || strings.Contains(s, "AGE-SECRET-KEY-1") ||
		strings.Contains(s, "openssh-key-v1") || strings.Contains(s, "b3BlbnNzaC1rZXktdjE") // base64 of "openssh-key-v1"
}

// checkPublicKey returns what is wrong with one authorized_keys entry, if anything.
func checkPublicKey(k string) (msg, hint string) {
	if LooksPrivate(k) {
		return "this is a PRIVATE key; never put a private key in a spec (and consider it exposed if this file was shared)",
			"use the public half: the one-line contents of the .pub file, e.g. ~/.ssh/id_ed25519.pub"
	}
	if strings.ContainsAny(k, "\r\n") {
		return "holds a line break; write one key per list entry", "split it into separate strings"
	}
	for _, r := range k {
		if unicode.IsControl(r) {
			return fmt.Sprintf("holds the control character %U", r), "remove it"
		}
	}
	if len(k) > maxKeyLen {
		return fmt.Sprintf("is %d bytes long; a public key line is at most %d", len(k), maxKeyLen), "paste only the .pub file's one line"
	}
	f := strings.Fields(k)
	if len(f) == 0 {
		return "is empty", "paste the one-line contents of your .pub file"
	}
	if !keyTypes[f[0]] {
		if f[0] == "ssh-dss" {
			return "DSA keys are refused by current OpenSSH", "use an ed25519 key: ssh-keygen -t ed25519"
		}
		if strings.Contains(f[0], "=") || strings.Contains(f[0], ",") {
			return "authorized_keys options are not supported", "give the key alone: type, base64 body, optional comment"
		}
		return fmt.Sprintf("%q is not a known SSH key type", trunc(f[0], 40)), "ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256/384/521 or an sk- key"
	}
	if len(f) < 2 {
		return "has a key type but no key", "paste the whole .pub line: type, base64 body, comment"
	}
	blob, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil {
		return "the key body is not valid base64", "paste the .pub line exactly as ssh-keygen wrote it"
	}
	if len(blob) < 4 {
		return "the key body is too short", "paste the .pub line exactly as ssh-keygen wrote it"
	}
	if !keyBlobIs(f[0], f[1]) {
		return fmt.Sprintf("the key body is not a %s key", f[0]), "the type in front must match the key; paste the .pub line unchanged"
	}
	// Two .pub lines pasted into one string: the second would pass as the
	// first one's comment, and never log in.
	for i := 2; i+1 < len(f); i++ {
		if keyTypes[f[i]] && keyBlobIs(f[i], f[i+1]) {
			return "holds two keys in one string; the second would be taken for the first one's comment",
				"give each key its own string: authorized_keys = [\"ssh-ed25519 AAAA... one\", \"ssh-ed25519 AAAA... two\"]"
		}
	}
	return "", ""
}

// keyBlobIs reports whether body is the base64 of an SSH public key of type
// typ: its first field names the type.
func keyBlobIs(typ, body string) bool {
	blob, err := base64.StdEncoding.DecodeString(body)
	if err != nil || len(blob) < 4 {
		return false
	}
	n := binary.BigEndian.Uint32(blob)
	return uint64(n) <= uint64(len(blob)-4) && bytes.Equal(blob[4:4+n], []byte(typ))
}

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// validateCombinations refuses specs that are valid field by field but cannot
// work with the chosen installer image. A fact whose wrong guess locks the
// operator out after the kexec (the default route, the login keys) is
// refused unless the capability table knows it; any other fact the table
// does not know is a warning here and a probe on the machine before the
// disks are erased (kexec-install.sh's preflight).
func validateCombinations(ps *problems, spec *Spec, p *Plan) {
	if p.Storage.Layout == "mdadm" && p.Release.Version != "" && !p.Release.HasSwraid() {
		ps.add("host.nixos", `NixOS "23.11" or later`, "layout \"mdadm\" needs boot.swraid, which NixOS %s does not have", p.Release.Version)
	}
	img := p.Kexec.Image
	if !p.Kexec.ImageKnown {
		// What every kexec/run copies, and nothing the table does not know.
		img = Image{Tag: p.Kexec.Tag, KeyPrefixes: knownKeyPrefixes}
		if img.Tag == "" {
			img.Tag = "this"
		}
	}
	onLinkHint := func(key string) string {
		hint := "an image whose kexec/run restores on-link gateways"
		if p.Release.Version != "" {
			if tag := imageFor(p.Release, true); tag != "" {
				hint = fmt.Sprintf("the %s image, which restores on-link gateways: url = %q", tag, KexecURL(tag))
			}
		}
		return "use " + hint + "; or, where the provider's DHCP serves this address, " + key + ".dhcp = true (the installer asks DHCP on every interface)"
	}
	if p.Network.IPv4.OnLink && !img.RestoresOnLinkGateway {
		what := fmt.Sprintf("the %s image does not restore a gateway outside the prefix", img.Tag)
		if !p.Kexec.ImageKnown {
			what = "nixplan does not know whether this image restores a gateway outside the prefix"
		}
		ps.add("network.ipv4.gateway_on_link", onLinkHint("network.ipv4"),
			"%s: the server would be unreachable after the kexec", what)
	}

	p.Kexec.CopiedKeys = nil
	for _, k := range p.AuthorizedKeys {
		if img.Copies(strings.Fields(k)[0]) {
			p.Kexec.CopiedKeys = append(p.Kexec.CopiedKeys, k)
		}
	}
	if len(p.AuthorizedKeys) > 0 && len(p.Kexec.CopiedKeys) == 0 {
		what := fmt.Sprintf("the %s image copies only %s keys into the installer", img.Tag, strings.Join(img.KeyPrefixes, "*, ")+"*")
		if !p.Kexec.ImageKnown {
			what = "nixplan knows only that every kexec/run copies ssh-* keys"
		}
		hint := "add an ssh-ed25519 or ssh-rsa key"
		if tag := imageFor(p.Release, false); tag != "" && p.Release.Version != "" && images[tag].Copies("ecdsa-sha2-nistp256") {
			hint += ", or use the " + tag + " image"
		}
		ps.add("ssh.authorized_keys", hint, "%s; with these keys you would be locked out after kexec", what)
	}
	if !p.Kexec.ImageKnown || p.Release.Version == "" {
		if p.Kexec.ExtraFlags != "" && p.Kexec.Tag != "" {
			ps.warn("kexec.extra_flags", "rescue-bootstrap.sh reads the image's kexec/run and stops before the kexec if it ignores them",
				"nixplan does not know whether this image's kexec/run honours --kexec-extra-flags")
		}
		return
	}

	if ok, unsure, why := img.CanInstall(p.Release); !ok {
		hint := "choose an older release"
		if tag := imageFor(p.Release, p.Network.IPv4.OnLink); tag != "" {
			hint = fmt.Sprintf("use the %s image: url = %q", tag, KexecURL(tag))
		}
		ps.add("host.nixos", hint, "the kexec image cannot install this release: %s", why)
	} else if unsure {
		ps.warn("host.nixos", "kexec-install.sh reads the installer's `nix --version` and stops before erasing if it is older",
			"the kexec image may not install this release: %s", why)
	}
	if p.Storage.Layout == "zfs" {
		compat, unsure := img.PoolCompatibility(p.Release)
		p.Storage.PoolCompatibility = compat
		if compat != "" {
			p.Storage.PoolOptions = append(p.Storage.PoolOptions, "compatibility="+compat)
		}
		if unsure {
			ps.warn("disks.layout", "kexec-install.sh reads the installer's `zfs version` and stops before erasing if it is newer",
				"the %s image ships ZFS %s and NixOS %s ZFS %s or later: a pool made by a newer installer may not import", img.Tag, img.ZFS, p.Release.Version, p.Release.ZFS)
		}
	}

	// The layout needs tools from the installer image.
	var need []string
	switch p.Storage.Layout {
	case "zfs":
		need = append(need, "zpool", "zfs")
	case "mdadm":
		need = append(need, "mdadm")
	}
	if p.Firmware == "uefi" {
		need = append(need, "mkfs.vfat")
	}
	if len(p.Storage.Swaps) > 0 {
		need = append(need, "mkswap")
	}
	for _, tool := range need {
		if !slices.Contains(img.Tools, tool) {
			hint := "use an image that carries it"
			for _, tag := range imageTags() {
				if other := images[tag]; slices.Contains(other.Tools, tool) {
					if ok, unsure, _ := other.CanInstall(p.Release); ok && !unsure {
						hint = fmt.Sprintf("use an image that carries it: the %s image, url = %q", tag, KexecURL(tag))
					}
				}
			}
			ps.add("disks.layout", hint, "the %s image has no %s, which this layout needs", img.Tag, tool)
		}
	}
	if p.Nixpkgs.AnyFlake() && !img.CanFlake() {
		key := "flake.nixpkgs_rev"
		if p.Nixpkgs.UserFlake {
			key = "flake.path"
		}
		ps.add(key, "use a channel (leave [flake] out), or an image with Nix >= "+minNixFlakes+" such as nixos-24.05",
			"the %s image ships Nix %s, which cannot lock or install a flake", img.Tag, img.Nix)
	}
	if p.Kexec.ExtraFlags != "" && !img.ExtraFlags {
		ps.add("kexec.extra_flags", "leave extra_flags out, or use the nixos-24.05 image, whose kexec/run has --kexec-extra-flags",
			"the %s image's kexec/run ignores --kexec-extra-flags (nixos-images e2fd329, June 2024)", img.Tag)
	}
}

// validateNixpkgs resolves where nixpkgs comes from: the release's channel, a
// pinned release, or a flake pinned to a revision.
func validateNixpkgs(ps *problems, spec *Spec, p *Plan) {
	ch, fl := spec.Channel, spec.Flake
	p.Nixpkgs.ChannelURL = p.Release.ChannelURL()
	if ch.URL != "" && fl.NixpkgsRev != "" {
		ps.add("flake.nixpkgs_rev", "a flake pins nixpkgs itself: leave [channel] out", "cannot go with a pinned [channel]: install from one or the other")
	}
	if ch.URL != "" || ch.SHA256 != "" {
		u, _ := url.Parse(ch.URL)
		switch {
		case ch.URL == "":
			ps.add("channel.url", "the release folder, e.g. https://releases.nixos.org/nixos/24.05/nixos-24.05.7376.b134951a4c9f", "missing; channel.sha256 pins a release only with its url")
		case urlProblem(ch.URL) != "":
			ps.add("channel.url", "an https:// release folder without user, query or fragment, e.g. https://releases.nixos.org/nixos/24.05/nixos-24.05.7376.b134951a4c9f", "%s", urlProblem(ch.URL))
		case p.Release.Version != "" && !strings.Contains(path.Base(u.Path), "nixos-"+p.Release.Version+"."):
			ps.add("channel.url", fmt.Sprintf("a release folder of NixOS %s (its name starts with nixos-%s.)", p.Release.Version, p.Release.Version),
				"%q is not a release of NixOS %s, the release host.nixos installs", clip(ch.URL), p.Release.Version)
		}
		switch {
		case ch.SHA256 == "":
			ps.add("channel.sha256", "the sha256 of the release's nixexprs.tar.xz (sha256sum nixexprs.tar.xz)", "missing; a pinned channel is checked against it before the install")
		case !sha256RE.MatchString(ch.SHA256):
			ps.add("channel.sha256", "64 lowercase hex digits, as printed by sha256sum", "%q is not a sha256 hash", clip(ch.SHA256))
		}
		p.Nixpkgs.ChannelURL = strings.TrimSuffix(ch.URL, "/")
		p.Nixpkgs.Pinned, p.Nixpkgs.SHA256 = true, ch.SHA256
	}
	if fl.NixpkgsRev != "" {
		if !gitRevRE.MatchString(fl.NixpkgsRev) {
			ps.add("flake.nixpkgs_rev", "the full 40-hex-digit nixpkgs commit of the release branch, e.g. from https://status.nixos.org", "%q is not a git revision", clip(fl.NixpkgsRev))
		} else {
			p.Nixpkgs.FlakeRev = fl.NixpkgsRev
		}
	}
}

// checkPlaceholders warns about values the spec still holds from `nixplan
// init`'s starter, which are documentation addresses that no server has.
// Documentation addresses in general stay legal: the examples use them.
func checkPlaceholders(ps *problems, spec *Spec, p *Plan) {
	if v4 := spec.Network.IPv4; v4 != nil {
		for _, c := range []struct{ key, value, placeholder string }{
			{"network.ipv4.address", v4.Address, StarterIPv4Address},
			{"network.ipv4.gateway", v4.Gateway, StarterIPv4Gateway},
		} {
			if c.value == c.placeholder {
				ps.warn(c.key, "put in the server's value from the provider's panel, or run nixplan init --facts on facts.sh's output",
					"%s is the starter spec's placeholder, not a server's address", c.value)
				p.Placeholders = append(p.Placeholders, fmt.Sprintf("%s = %q", c.key, c.value))
			}
		}
	}
}

// warnKernelNames warns of disks named by their kernel name without an
// identity: /dev/sda in the rescue system need not be /dev/sda in the
// installer (NVMe and SATA controllers probe in either order, and the two
// kernels differ), and kexec-install.sh would erase whatever disk has the
// name there.
func warnKernelNames(ps *problems, p *Plan) {
	identified := map[string]bool{}
	for _, id := range p.Storage.Identity {
		identified[id.Device] = true
	}
	for i, dev := range p.Storage.Disks {
		if strings.HasPrefix(dev, "/dev/disk/") || identified[dev] {
			continue
		}
		ps.warn(fmt.Sprintf("disks.devices[%d]", i),
			"pin it: run facts.sh in the rescue system, then nixplan init --facts facts.json (it names the disk by /dev/disk/by-id and pins its serial and size in [[disks.identity]]), or add [[disks.identity]] by hand",
			"%s is a kernel name, which can name another disk in the installer's kernel than in the rescue system's, and nothing pins which disk it is", dev)
	}
}
