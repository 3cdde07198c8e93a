package plan

import (
	"fmt"
	"sort"
	"strings"
)

// This file is the one place that knows what each kexec installer image can
// do, what each NixOS release needs, and what each provider offers. Facts and
// their sources are in DOMAIN.md; a tag that is not here gets a warning, never
// a guess.

// Image is what one nixos-images kexec installer tag can do.
type Image struct {
	Tag string
	// Nix and ZFS are the versions the installer ships, as "major.minor".
	Nix, ZFS string
	// KeyPrefixes are the authorized_keys line prefixes kexec/run copies into
	// the installer; a key of another type does not survive the kexec.
	KeyPrefixes []string
	// ExtraFlags says whether kexec/run honours --kexec-extra-flags.
	ExtraFlags bool
	// RestoresOnLinkGateway: the installer restores a default route through
	// a gateway outside the address's prefix. Without it a server with such a
	// gateway is unreachable after the kexec.
	RestoresOnLinkGateway bool
	// MinRAMMiB is the memory the image needs to boot and install.
	MinRAMMiB int
	// Tools the image carries for partitioning and boot setup.
	Tools []string
	// Frozen images are no longer rebuilt, so a pinned sha256 stays valid.
	Frozen bool
}

var images = map[string]Image{
	// The seed's image, last built around June 2023.
	"nixos-22.11": {
		Tag: "nixos-22.11", Nix: "2.11", ZFS: "2.1",
		KeyPrefixes:           []string{"ssh-"},
		ExtraFlags:            false,
		RestoresOnLinkGateway: false,
		// Sources disagree (1.5 or 2.5 GB) for 22.11-era images; take the larger.
		MinRAMMiB: 2560,
		Tools:     []string{"parted", "mkfs.ext4", "mkfs.vfat", "mkswap", "mdadm", "zpool", "zfs", "wipefs"},
		Frozen:    true,
	},
	"nixos-24.05": {
		Tag: "nixos-24.05", Nix: "2.18", ZFS: "2.2",
		KeyPrefixes: []string{"ssh-", "ecdsa-sha2-", "sk-"},
		ExtraFlags:  true,
		// Built after June 2024, like the extra-flags option.
		RestoresOnLinkGateway: true,
		MinRAMMiB:             1536,
		Tools:                 []string{"parted", "sgdisk", "mkfs.ext4", "mkfs.vfat", "zpool", "zfs", "wipefs", "efibootmgr"},
		Frozen:                true,
	},
}

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
	// ZFS is the OpenZFS version the release ships, as "major.minor".
	ZFS string
	// OpenSSHSettings: services.openssh.settings.* (23.05 and later) rather
	// than services.openssh.permitRootLogin and friends.
	OpenSSHSettings bool
}

// HasSwraid: boot.swraid (enable, mdadmConf) exists from 23.11; from then on
// an md root needs boot.swraid.enable = true.
func (r Release) HasSwraid() bool { return !versionLess(r.Version, "23.11") }

var releases = map[string]Release{
	"22.11": {Version: "22.11", MinNix: "2.3", ZFS: "2.1", OpenSSHSettings: false},
	"23.05": {Version: "23.05", MinNix: "2.3", ZFS: "2.1", OpenSSHSettings: true},
	"23.11": {Version: "23.11", MinNix: "2.3", ZFS: "2.2", OpenSSHSettings: true},
	"24.05": {Version: "24.05", MinNix: "2.3", ZFS: "2.2", OpenSSHSettings: true},
	"24.11": {Version: "24.11", MinNix: "2.3", ZFS: "2.2", OpenSSHSettings: true},
	"25.05": {Version: "25.05", MinNix: "2.3", ZFS: "2.3", OpenSSHSettings: true},
	// nixpkgs requires Nix >= 2.18 since August 2025 (lib/minfeatures.nix).
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

// CanFlake reports whether the image's Nix can lock and install a flake.
func (img Image) CanFlake() bool { return !versionLess(img.Nix, minNixFlakes) }

// CanInstall reports whether an installer image can install a release, and
// why not.
func (img Image) CanInstall(r Release) (bool, string) {
	if versionLess(img.Nix, r.MinNix) {
		return false, fmt.Sprintf("NixOS %s needs Nix >= %s and the %s image ships Nix %s", r.Version, r.MinNix, img.Tag, img.Nix)
	}
	return true, ""
}

// PoolCompatibility is the `zpool create -o compatibility=` value for a pool
// built by this image for this release: set only when the installer's ZFS is
// newer than the target's, because an older installer does not know the
// newer names and refuses them.
func (img Image) PoolCompatibility(r Release) string {
	if versionLess(r.ZFS, img.ZFS) {
		return "openzfs-" + r.ZFS + "-linux"
	}
	return ""
}

// imageFor names an image that can install a release, for hints.
func imageFor(r Release) string {
	var tags []string
	for tag, img := range images {
		if ok, _ := img.CanInstall(r); ok {
			tags = append(tags, tag)
		}
	}
	sort.Strings(tags)
	if len(tags) == 0 {
		return ""
	}
	return tags[len(tags)-1]
}

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
