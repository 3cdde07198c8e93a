package plan

import (
	"fmt"
	"sort"
	"strings"
)

// This file is the one place that knows what each kexec installer image can
// do, what each NixOS release needs, and what each provider offers. Every
// fact names its source beside it. A fact that is not known is not in the
// table: where only bounds are known the table holds the bounds, and the
// scripts probe the machine before the step that cannot be undone. The
// policy (validateCombinations): a wrong guess that locks the operator out
// after the kexec (routes, key types) is refused at check unless the table
// knows it; any other unknown is a warning at check and a probe before the
// disks are erased.
//
// Release assets of nixos-images are rebuilt from its main branch for every
// tag still in the build matrix and uploaded over the old ones
// (nixos-images d90e544^ .github/workflows/build.yml: on push to main;
// build-images.sh: `gh release upload --clobber`). So what an asset can do is
// what main could do when the tag left the matrix, not what the tag's name
// says.

// Bounds are the lowest and highest "major.minor" version a fact can have;
// Max is empty when no upper bound is known. Min == Max is a known version.
type Bounds struct{ Min, Max string }

// Known reports whether the version is known exactly.
func (b Bounds) Known() bool { return b.Min != "" && b.Min == b.Max }

func (b Bounds) String() string {
	switch {
	case b.Known():
		return b.Min
	case b.Max == "":
		return b.Min + " or later"
	}
	return b.Min + " to " + b.Max
}

// Contains reports whether version v lies within the bounds.
func (b Bounds) Contains(v string) bool {
	return !versionLess(v, b.Min) && (b.Max == "" || !versionLess(b.Max, v))
}

// Image is what one nixos-images kexec installer tag can do.
type Image struct {
	Tag string
	// NixOS is the release whose nixpkgs the asset was built from, Nix and ZFS
	// the versions it ships, as "major.minor" bounds.
	NixOS, Nix, ZFS Bounds
	// KeyPrefixes are the authorized_keys line prefixes kexec/run copies into
	// the installer; a key of another type does not survive the kexec.
	KeyPrefixes []string
	// ExtraFlags says whether kexec/run honours --kexec-extra-flags.
	ExtraFlags bool
	// RestoresOnLinkGateway: the installer restores a default route through
	// a gateway outside the address's prefix (GatewayOnLink). Without it a
	// server with such a gateway is unreachable after the kexec. True only
	// when known.
	RestoresOnLinkGateway bool
	// MinRAMMiB is the memory the image needs to boot and install.
	MinRAMMiB int
	// Tools the image is known to carry for partitioning and boot setup; a
	// tool not listed is known to be missing.
	Tools []string
	// Frozen images are no longer rebuilt, so a pinned sha256 stays valid.
	Frozen bool
	// Hostname is the installer's host name, which its shell prompt shows.
	Hostname string
	// LastLabel is the system.nixos.label of the last asset: the release,
	// the date and the revision of the nixpkgs its tree locked, as kexec/run's
	// init=/nix/store/…-nixos-system-HOSTNAME-LABEL/init shows it.
	LastLabel string
}

// utilLinux is in every NixOS system: nixpkgs nixos/modules/config/system-path.nix
// (6fc5ce2c, requiredPackages: util-linux, cpio, curl).
var utilLinux = []string{"wipefs", "mkswap", "lsblk", "blkid", "sfdisk"}

var images = map[string]Image{
	// The seed's image. nixos-images e70ef61 (2023-06-11) replaced the
	// nixos-2211 input by nixos-2305 and 1772007 (2023-06-11) the tag in the
	// build matrix: the last asset was built from e70ef61^, whose flake.lock
	// pins nixpkgs 51d9b86c (release-22.11, 2023-06-07).
	"nixos-22.11": {
		Tag: "nixos-22.11",
		// nixpkgs 22.11: nix 2.11 and zfs 2.1 are the release's defaults
		// (nixos-images e70ef61^ nix/noninteractive.nix ships pkgs.zfs).
		NixOS: Bounds{"22.11", "22.11"}, Nix: Bounds{"2.11", "2.11"}, ZFS: Bounds{"2.1", "2.1"},
		// e70ef61^ nix/kexec-installer/kexec-run.sh: grep -o '\(ssh-[^ ]* .*\)';
		// ecdsa and sk keys only since 7d89d7c (2023-11-08).
		KeyPrefixes: []string{"ssh-"},
		// --kexec-extra-flags came in e2fd329 (2024-06-05).
		ExtraFlags: false,
		// restore_routes.py writes GatewayOnLink only since b62eb6e (2025-01-21).
		RestoresOnLinkGateway: false,
		// Sources disagree (1.5 or 2.5 GB) for 22.11-era images; take the larger.
		MinRAMMiB: 2560,
		// e70ef61^ nix/noninteractive.nix: base.nix disabled (no gptfdisk, no
		// efibootmgr), defaultPackages parted and zfs, vfat among the
		// supported filesystems (dosfstools); e2fsprogs from
		// tasks/filesystems/ext.nix; mdadm: nixpkgs 22.11's
		// nixos/modules/tasks/swraid.nix adds it unconditionally (f4903d89;
		// the stateVersion < 23.11 default came with boot.swraid in 23.11).
		Tools:  append([]string{"parted", "mkfs.ext4", "mkfs.vfat", "mdadm", "zpool", "zfs"}, utilLinux...),
		Frozen: true,
		// e70ef61^ nix/installer.nix sets no host name: NixOS' default.
		Hostname: "nixos",
		// e70ef61^ flake.lock: nixos-2211 at 51d9b86c, lastModified 2023-06-07.
		LastLabel: "22.11.20230607.51d9b86",
	},
	// In the build matrix from 3e2e064 (2024-06-07) to d90e544 (2024-12-03).
	// From dd8cd9d (2024-11-19) on, its "stable" input was nixos-24.11, so the
	// last asset was built from 24.05 or 24.11; nix/installer.nix uses
	// pkgs.zfsUnstable since 077b2d2 (2024-08-16).
	"nixos-24.05": {
		Tag:   "nixos-24.05",
		NixOS: Bounds{"24.05", "24.11"},
		// Nix 2.18 is 24.05's default, 2.24 24.11's; zfsUnstable is 2.2 or
		// 2.3 on either. Unknown within these bounds: kexec-install.sh
		// probes both before it erases anything.
		Nix: Bounds{"2.18", "2.24"}, ZFS: Bounds{"2.2", "2.3"},
		// d90e544^ kexec-run.sh: grep -o '\(\(ssh\|ecdsa\|sk\)-[^ ]* .*\)',
		// and it parses --kexec-extra-flags.
		KeyPrefixes: []string{"ssh-", "ecdsa-sha2-", "sk-"},
		ExtraFlags:  true,
		// The tag left the matrix before b62eb6e (2025-01-21): no GatewayOnLink.
		RestoresOnLinkGateway: false,
		// nixos-images README.md (d756db3): "at least 1.5GB of physical RAM".
		MinRAMMiB: 1536,
		// d90e544^ nix/noninteractive.nix: base.nix disabled, defaultPackages
		// parted, gptfdisk, e2fsprogs and (nix/zfs-minimal.nix) zfs; vfat
		// among the supported filesystems. No mdadm: nix/installer.nix sets
		// system.stateVersion to the image's release, and nixpkgs'
		// nixos/modules/tasks/swraid.nix enables md only below 23.11. No
		// efibootmgr.
		Tools:  append([]string{"parted", "sgdisk", "mkfs.ext4", "mkfs.vfat", "zpool", "zfs"}, utilLinux...),
		Frozen: true,
		// nix/installer.nix: networking.hostName = mkDefault "nixos-installer"
		// since 8d35d4a (2024-04-16).
		Hostname: "nixos-installer",
		// d90e544^ flake.lock: nixos-stable (24.11) at f13a1a16, 2024-12-02.
		LastLabel: "24.11.20241202.f13a1a1",
	},
	// In the build matrix from 81d1748 (2025-05-28) to db8b190 (2025-12-25),
	// with the stable input nixos-25.05 throughout (db8b190^ flake.nix).
	"nixos-25.05": {
		Tag:   "nixos-25.05",
		NixOS: Bounds{"25.05", "25.05"},
		// Not read from nixpkgs here: no older than the 24.05 image's.
		Nix: Bounds{"2.18", ""}, ZFS: Bounds{"2.2", ""},
		// db8b190^ kexec-run.sh: ssh, ecdsa and sk keys; --kexec-extra-flags.
		KeyPrefixes: []string{"ssh-", "ecdsa-sha2-", "sk-"},
		ExtraFlags:  true,
		// db8b190^ restore_routes.py: GatewayOnLink (b62eb6e is an ancestor
		// of every tree this asset was built from).
		RestoresOnLinkGateway: true,
		MinRAMMiB:             1536,
		// db8b190^ nix/noninteractive.nix: as for nixos-24.05.
		Tools:  append([]string{"parted", "sgdisk", "mkfs.ext4", "mkfs.vfat", "zpool", "zfs"}, utilLinux...),
		Frozen: true,
		// db8b190^ nix/installer.nix: mkDefault "nixos-installer".
		Hostname: "nixos-installer",
		// db8b190^ flake.lock: nixos-stable (25.05) at 70c74b02, 2025-06-06.
		LastLabel: "25.05.20250606.70c74b0",
	},
}

// knownKeyPrefixes are the key types every version of kexec/run copies
// (nixos-images c0fb626 to HEAD: the ssh-* rule was never narrowed): what an
// image outside the table is trusted to copy.
var knownKeyPrefixes = []string{"ssh-"}

// onLinkSince is the first nixpkgs date (YYYYMMDD, from the image's
// init=/nix/store/…-nixos-system-…-RELEASE.DATE.REV path) that proves the
// image was built from a nixos-images tree with GatewayOnLink: b62eb6e
// (2025-01-21) came right after the lock of b62eb6e^, whose newest nixpkgs
// input is dated 2025-01-19; no tree without it locks a later nixpkgs.
const onLinkSince = "20250120"

// LookupImage returns the capabilities of a kexec image tag.
func LookupImage(tag string) (Image, bool) {
	img, ok := images[tag]
	return img, ok
}

// Copies reports whether the image's kexec/run carries a key of this type
// into the installer.
func (img Image) Copies(keyType string) bool {
	for _, p := range img.KeyPrefixes {
		if strings.HasPrefix(keyType, p) {
			return true
		}
	}
	return false
}

// Release is what one NixOS release needs and provides.
type Release struct {
	Version string // "24.05"
	// MinNix is the oldest Nix that can evaluate and install this release.
	MinNix string
	// ZFS is the oldest OpenZFS the release may ship, as "major.minor": a
	// pool limited to it (compatibility=openzfs-ZFS-linux) imports on the
	// release whatever its exact version. Not read from each release's
	// pkgs/os-specific/linux/zfs here; a release never ships an older ZFS
	// than the one before it, so a low guess only costs pool features.
	ZFS string
	// OpenSSHSettings: services.openssh.settings.* (23.05 and later) rather
	// than services.openssh.permitRootLogin and friends.
	OpenSSHSettings bool
}

// HasSwraid: boot.swraid (enable, mdadmConf) exists from 23.11; from then on
// an md root needs boot.swraid.enable = true (nixpkgs
// nixos/modules/tasks/swraid.nix: default = versionOlder stateVersion "23.11").
func (r Release) HasSwraid() bool { return !versionLess(r.Version, "23.11") }

// initrdSSHRelease is the first release whose systemd initrd runs SSH and
// networkd, which the unlock of an encrypted root needs: nixpkgs PR #169116,
// merged into the tree tagged 23.11-beta (the sources and what was not read:
// plan/encryption.go, "The release floor").
const initrdSSHRelease = "23.11"

// HasInitrdSSH reports whether the release's systemd initrd runs SSH and
// networkd, so that an encrypted root can be unlocked over SSH.
func (r Release) HasInitrdSSH() bool { return !versionLess(r.Version, initrdSSHRelease) }

// RemovedHardwareOptions are options nixos-generate-config of an older
// installer may write that this release removed: hardware-configuration.nix
// must not keep them, or the evaluation fails after the disks are erased.
func (r Release) RemovedHardwareOptions() []string {
	var out []string
	for _, o := range removedHardwareOptions {
		if !versionLess(r.Version, o.since) {
			out = append(out, o.option)
		}
	}
	return out
}

var removedHardwareOptions = []struct{ option, since string }{
	// The 22.11 generator writes `hardware.video.hidpi.enable = lib.mkDefault
	// true;` on a framebuffer wider than 1920 (nixos-generate-config.pl);
	// nixpkgs nixos/modules/config/fonts/fontconfig.nix removes it from 23.05
	// (mkRemovedOptionModule [ "hardware" "video" "hidpi" "enable" ]).
	{"hardware.video.hidpi.enable", "23.05"},
}

var releases = map[string]Release{
	"22.11": {Version: "22.11", MinNix: "2.3", ZFS: "2.1", OpenSSHSettings: false},
	"23.05": {Version: "23.05", MinNix: "2.3", ZFS: "2.1", OpenSSHSettings: true},
	"23.11": {Version: "23.11", MinNix: "2.3", ZFS: "2.2", OpenSSHSettings: true},
	"24.05": {Version: "24.05", MinNix: "2.3", ZFS: "2.2", OpenSSHSettings: true},
	"24.11": {Version: "24.11", MinNix: "2.3", ZFS: "2.2", OpenSSHSettings: true},
	"25.05": {Version: "25.05", MinNix: "2.3", ZFS: "2.3", OpenSSHSettings: true},
	// nixpkgs lib/minfeatures.nix (18d54ee8): builtins.nixVersion >= 2.18,
	// since August 2025, so from the 25.11 branch on.
	"25.11": {Version: "25.11", MinNix: "2.18", ZFS: "2.3", OpenSSHSettings: true},
	"26.05": {Version: "26.05", MinNix: "2.18", ZFS: "2.3", OpenSSHSettings: true},
}

// LookupRelease returns what a NixOS release needs.
func LookupRelease(version string) (Release, bool) {
	r, ok := releases[version]
	return r, ok
}

// ChannelURL is the channel the installed system follows.
func (r Release) ChannelURL() string { return "https://nixos.org/channels/nixos-" + r.Version }

// knownReleases lists the releases in the table, oldest first.
func knownReleases() []string {
	var vs []string
	for v := range releases {
		vs = append(vs, v)
	}
	sort.Strings(vs)
	return vs
}

// minNixFlakes is the first Nix with `nix flake lock` and nixos-install --flake.
const minNixFlakes = "2.4"

// CanFlake reports whether the image's Nix can lock and install a flake,
// whichever version within its bounds it ships.
func (img Image) CanFlake() bool { return !versionLess(img.Nix.Min, minNixFlakes) }

// CanInstall reports whether an installer image can install a release:
// ok when every Nix within its bounds can, unsure when only some can (the
// installer's Nix is then probed), and why when not ok.
func (img Image) CanInstall(r Release) (ok, unsure bool, why string) {
	switch {
	case !versionLess(img.Nix.Min, r.MinNix):
		return true, false, ""
	case img.Nix.Max != "" && versionLess(img.Nix.Max, r.MinNix):
		return false, false, fmt.Sprintf("NixOS %s needs Nix >= %s and the %s image ships Nix %s", r.Version, r.MinNix, img.Tag, img.Nix)
	}
	return true, true, fmt.Sprintf("NixOS %s needs Nix >= %s and the %s image ships Nix %s", r.Version, r.MinNix, img.Tag, img.Nix)
}

// PoolCompatibility is the `zpool create -o compatibility=` value for a pool
// built by this image for this release: set when the installer's ZFS may be
// newer than the target's, and only when every ZFS within the image's
// bounds knows the name (an older installer refuses newer names: ZFS 2.1 has
// no openzfs-2.2-linux). unsure: the installer may be newer than the target
// but might not know the name; the installer's ZFS is then probed.
func (img Image) PoolCompatibility(r Release) (compat string, unsure bool) {
	newer := img.ZFS.Max == "" || versionLess(r.ZFS, img.ZFS.Max)
	switch {
	case !newer:
		return "", false
	case !versionLess(img.ZFS.Min, r.ZFS):
		return "openzfs-" + r.ZFS + "-linux", false
	}
	return "", true
}

// imageFor names the image to propose for a release, for init and hints:
// one that certainly can install it (and restores on-link gateways when
// onLink), preferring one whose pool compatibility is certain, then the
// newest.
func imageFor(r Release, onLink bool) string {
	best, bestSure := "", false
	for _, tag := range imageTags() {
		img := images[tag]
		if ok, unsure, _ := img.CanInstall(r); !ok || unsure || (onLink && !img.RestoresOnLinkGateway) {
			continue
		}
		_, zfsUnsure := img.PoolCompatibility(r)
		// Later tags are newer: take one unless it is less certain.
		if best == "" || !zfsUnsure || !bestSure {
			best, bestSure = tag, !zfsUnsure
		}
	}
	return best
}

// VersionLess compares "major.minor" versions numerically.
func VersionLess(a, b string) bool { return versionLess(a, b) }

// versionLess compares "major.minor" versions numerically.
func versionLess(a, b string) bool {
	var amaj, amin, bmaj, bmin int
	fmt.Sscanf(a, "%d.%d", &amaj, &amin)
	fmt.Sscanf(b, "%d.%d", &bmaj, &bmin)
	if amaj != bmaj {
		return amaj < bmaj
	}
	return amin < bmin
}

// KexecURL is the download address of a nixos-images x86_64 installer tag.
func KexecURL(tag string) string {
	return "https://github.com/nix-community/nixos-images/releases/download/" + tag +
		"/nixos-kexec-installer-noninteractive-x86_64-linux.tar.gz"
}

// Provider holds what the checklist says about one hosting provider.
type Provider struct {
	ID          string   // spec value: "ovh"
	Name        string   // "OVHcloud"
	Panel       string   // where the operator clicks
	Nameservers []string // the provider's resolvers, the default for network.nameservers
	// RescueSteps set the next boot to the provider's Debian rescue system
	// with the operator's SSH key.
	RescueSteps []string
	// DiskBootSteps set the next boot back to the installed disk.
	DiskBootSteps []string
	// KVMSteps open the graphical console.
	KVMSteps []string
	// RebootStep restarts the server from the panel.
	RebootStep string
	// EFIBootPathStep tells UEFI servers which EFI file the provider must boot.
	EFIBootPathStep string
	// RescuePrompt is what the rescue system's shell prompt looks like.
	RescuePrompt string
	// OVHFamily: OVH's network rules apply (IPv4 gateway .254, IPv6 gateway
	// outside the /64).
	OVHFamily bool
}

var ovhRescue = []string{
	"In the OVHcloud Control Panel open Bare Metal Cloud → Dedicated servers → your server → General information.",
	"Under Boot, click Edit (the ⋯ button next to the current boot), choose **Boot in rescue mode** (rescue-customer, Debian).",
	"Choose SSH-key authentication and paste the same public key as in this spec, then confirm.",
}

var ovhDiskBoot = []string{
	"In the same Boot section click Edit, choose **Boot from the hard disk**, and confirm.",
}

var ovhKVM = []string{
	"In the control panel open the server's **IPMI** tab and click **From a Java applet (KVM)**; it downloads a `.jnlp` file.",
	"Open it with IcedTea-Web: on Debian or Ubuntu `apt install icedtea-netx` then `javaws ~/Downloads/*.jnlp`; with Nix `nix-shell -p adoptopenjdk-icedtea-web --run 'javaws ~/Downloads/*.jnlp'`.",
	"On an Apple Silicon Mac the vendor's iKVM jar does not run: use a Linux VM (then the command above), OpenWebStart, or the HTML5 KVM / Serial-over-LAN where the panel offers it. CheerpJ-style web wrappers do not work.",
}

// ovhEFIStep: OVH's UEFI servers netboot and then start the EFI file the
// manager names (efiBootloaderPath); nixplan installs GRUB as the removable one.
const ovhEFIStep = "UEFI server: in the control panel (Boot → Edit, or the API's `efiBootloaderPath`) set the EFI boot loader path to `\\efi\\boot\\bootx64.efi`, the file GRUB was installed as."

// ovhFamily is a preset of OVHcloud or one of its brands: one panel, one
// rescue system, one set of network rules.
func ovhFamily(id, name, panel string) Provider {
	return Provider{
		ID: id, Name: name, Panel: panel,
		Nameservers: []string{"213.186.33.99"},
		RescueSteps: ovhRescue, DiskBootSteps: ovhDiskBoot, KVMSteps: ovhKVM,
		RebootStep:      "Click **Restart** (⋯ → Restart) in the server's General information tab and confirm.",
		EFIBootPathStep: ovhEFIStep,
		OVHFamily:       true,
		RescuePrompt:    "root@rescue-customer-eu",
	}
}

var providers = map[string]Provider{
	"ovh": ovhFamily("ovh", "OVHcloud", "OVHcloud Control Panel"),
	"kimsufi": ovhFamily("kimsufi", "Kimsufi (OVHcloud)",
		"OVHcloud Control Panel (Kimsufi servers are managed there; the old Kimsufi panel calls rescue NetBoot → Rescue → rescue64-pro)"),
	"soyoustart": ovhFamily("soyoustart", "So you Start (OVHcloud)", "So you Start / OVHcloud Control Panel"),
	"hetzner": {
		ID: "hetzner", Name: "Hetzner", Panel: "Hetzner Robot", RescuePrompt: "root@rescue",
		Nameservers: []string{"185.12.64.1", "185.12.64.2"},
		RescueSteps: []string{
			"In Robot open **Server** → your server → **Rescue**, choose operating system **Linux**, architecture **64 bit**, select your SSH key, and click **Activate rescue system**.",
			"The rescue system is armed for the next boot only and expires after 60 minutes: do the reset now.",
		},
		RebootStep: "Open the **Reset** tab, choose **Execute an automatic hardware reset**, and click **Send**.",
		DiskBootSteps: []string{
			"Nothing to switch back: the rescue system was armed for one boot only, so the next reset boots from the disks.",
		},
		KVMSteps: []string{
			"Hetzner has no Java applet: request a KVM console (LARA) in Robot → **Support** → **Remote console**; it is connected for a few hours at no cost.",
			"Ask for it before you start: the install takes longer than the rescue's 60 minutes to arrange a console otherwise.",
		},
	},
	"generic": {
		ID: "generic", Name: "the provider", Panel: "the provider's control panel",
		RescueSteps: []string{
			"Boot the server into the provider's Debian-like rescue system with your SSH key for root (the control panel's rescue or recovery mode).",
		},
		RebootStep: "Restart the server from the control panel.",
		DiskBootSteps: []string{
			"Set the server to boot from its disks again, if the control panel keeps the rescue system for more than one boot.",
		},
		KVMSteps: []string{
			"Open the provider's remote console (KVM, IPMI, serial or HTML5 console), so you can watch the reboots.",
		},
	},
}

// LookupProvider returns a provider preset.
func LookupProvider(id string) (Provider, bool) {
	p, ok := providers[id]
	return p, ok
}

func knownProviders() []string {
	var ids []string
	for id := range providers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// imageTags lists the tags in the table, oldest first.
func imageTags() []string {
	tags := make([]string, 0, len(images))
	for tag := range images {
		tags = append(tags, tag)
	}
	sort.Strings(tags)
	return tags
}
