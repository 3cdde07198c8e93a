package main

// The VM suite's images, built from Debian's packages and cached by their
// recipe (see vmRecipe): the kernel, the "rescue" root file system that runs
// from RAM like a provider's rescue system, and for each installer image of
// the capability table that a scenario uses, a test kexec tarball whose
// initrd is a stand-in for that NixOS installer.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/nixplan/nixplan/plan"
)

// vmSuite is the environment switch that runs the VM suite.
const vmSuite = "NIXPLAN_VM"

// vmImageFormat changes whenever the way images are put together changes in
// a way the recipe does not show.
const vmImageFormat = "nixplan-vm-images 4"

// vmSuiteName is the Debian release the images are built from.
const vmSuiteName = "bookworm"

// vmRescuePackages make the rescue system: Debian with what a provider's
// rescue system carries for this job (OVH's and Hetzner's have mdadm, parted,
// cpio and curl), udev for /dev/disk/by-id, and sshd.
var vmRescuePackages = []string{
	"systemd-sysv", "udev", "openssh-server", "iproute2", "kmod", "procps",
	"cpio", "curl", "mdadm", "parted", "gdisk", "e2fsprogs", "dosfstools",
	// The test kexec tarball's kexec is Debian's, linked against these
	// libraries (libxenctrl among them); nixos-images' is a static build.
	"kexec-tools",
}

// vmInstallerBase is what every NixOS system carries (nixpkgs
// nixos/modules/config/system-path.nix, corePackages and defaultPackages:
// bash, coreutils, util-linux, cpio, gawk, xz, zstd, procps, rsync, ...),
// with systemd, udev, sshd and iproute2, and jq, which the kexec images add
// (nixos-images nix/installer.nix). curl is the stand-in's own (see
// testdata/vm/installer/bin/curl). The partitioning tools come from the
// capability table (vmToolPackages).
var vmInstallerBase = []string{
	"systemd-sysv", "udev", "openssh-server", "iproute2", "kmod", "procps",
	"cpio", "gawk", "xz-utils", "zstd", "bzip2", "less", "rsync", "jq",
}

// vmToolPackages maps a tool of the capability table (plan.Image.Tools) to
// the Debian package that provides it; "" is util-linux, which every NixOS
// system has (system-path.nix) and Debian's essential set too, and "stub" is
// a command the stand-in fakes (ZFS: Debian's main has none). NixOS's
// util-linux carries sfdisk; Debian splits it into the fdisk package.
var vmToolPackages = map[string]string{
	"parted": "parted", "sgdisk": "gdisk", "mkfs.ext4": "e2fsprogs",
	"mkfs.vfat": "dosfstools", "mdadm": "mdadm", "efibootmgr": "efibootmgr",
	"mkswap": "", "wipefs": "", "lsblk": "", "blkid": "", "sfdisk": "fdisk",
	"cryptsetup": "cryptsetup-bin", "zpool": "stub", "zfs": "stub",
}

// vmFetchedCryptsetup is where a stand-in whose image lacks cryptsetup keeps
// Debian's, off PATH, as a store path: what `nix-build '<nixpkgs>' -A
// cryptsetup --out-link L` builds on the real installer (L then links to
// it; see testdata/vm/installer/bin/nix-build). The cryptsetup is real; only
// the build is not.
var vmFetchedCryptsetup = "/nix/store/" + nixStoreHash("cryptsetup") + "-cryptsetup"

// vmAbsentUnlessListed are tools the stand-in must not carry unless the
// table lists them: a stand-in richer than the image would pass where the
// server fails.
var vmAbsentUnlessListed = []string{"mdadm", "sgdisk", "efibootmgr", "cryptsetup", "lvm", "vgchange", "zpool", "zfs"}

// vmModules are the kernel modules the VMs need (the Debian kernel builds
// these drivers as modules); their dependencies come along.
var vmModules = []string{
	"virtio_pci", "virtio_blk", "virtio_net", "e1000", "ahci", "sd_mod", "nvme",
	"ext4", "vfat", "nls_cp437", "nls_ascii", "nls_iso8859_1", "md_mod", "raid1",
	"efivarfs", "crc32c_generic",
	// LUKS2 with cryptsetup's default cipher, aes-xts-plain64 (AES itself
	// and SHA-256 are built in: CONFIG_CRYPTO_AES=y, CONFIG_CRYPTO_SHA256=y
	// in Debian's 6.1 config), and the kernel's crypto API for user space,
	// which cryptsetup uses for its keyslots.
	"dm_crypt", "xts", "ecb", "algif_skcipher",
}

// vmInstallerImage describes the stand-in of one nixos-images tag.
type vmInstallerImage struct {
	Tag   string
	Image plan.Image
	// Release is the NixOS release the image's system is built from, and
	// Date its nixpkgs date, as the init= store path shows them.
	Release, Date string
	// Host is the image's host name: "nixos", and "nixos-installer" from
	// nixos-images 8d35d4a (2024-04-16, nix/installer.nix) on.
	Host string
	// DefaultDHCP: the image runs networkd with networking.useNetworkd, so
	// nixpkgs adds 99-ethernet-default-dhcp.network (DHCP on every Ethernet
	// link no earlier unit matched). nixos-images e70ef61^ (the 22.11
	// asset) nix/installer.nix has only systemd.network.enable = true and
	// dhcpcd off: no such unit, and the restored IFNAME.network is all there
	// is. 8239d60 (2023-11-02) set networking.useNetworkd in
	// nix/installer.nix and made restore_routes.py name its units
	// 00-IFNAME.network, so they sort before the default; 8d35d4a moved the
	// setting to nix/networkd.nix, which bb49b89 (the last 24.05 asset)
	// imports in nix/kexec-installer/module.nix. A stand-in with the
	// default unit and the 22.11 names gives the static NIC DHCP, not its
	// address: richer than the image, and wrong.
	DefaultDHCP bool
	// The kexec/run of the asset (see testdata/vm/kexec-run.sh.tmpl).
	KeyPattern                                   string
	ExtraFlags, SyscallAuto, MachineID, DoasUser bool
	Notice                                       string
}

// vmInstallerImages are the stand-ins the scenarios use.
func vmInstallerImages(t *testing.T) []vmInstallerImage {
	get := func(tag string) plan.Image {
		img, ok := plan.LookupImage(tag)
		if !ok {
			t.Fatalf("the capability table has no image %s", tag)
		}
		return img
	}
	return []vmInstallerImage{
		{
			Tag: "nixos-22.11", Image: get("nixos-22.11"), Release: "22.11", Date: "20230611.08ff168", Host: "nixos",
			KeyPattern: `\(ssh-[^ ]* .*\)`, Notice: "machine will boot into nixos in in 6s...",
		},
		{
			Tag: "nixos-24.05", Image: get("nixos-24.05"), Release: "24.05", Date: "20241203.bb49b89", Host: "nixos-installer",
			DefaultDHCP: true,
			KeyPattern:  `\(\(ssh\|ecdsa\|sk\)-[^ ]* .*\)`, ExtraFlags: true, SyscallAuto: true, MachineID: true, DoasUser: true,
			Notice: "machine will boot into nixos in 6s...",
		},
	}
}

// storePath is the stand-in system's store path, named as nixpkgs names a
// system (nixos/modules/system/activation/top-level.nix:
// nixos-system-NAME-LABEL); the hash is the stand-in's own.
func (im vmInstallerImage) storePath() string {
	return "/nix/store/" + nixStoreHash(im.Tag) + "-nixos-system-" + im.Host + "-" + im.Release + "." + im.Date
}

// nixStoreHash is a store path's hash part, 32 characters of Nix's base32,
// made from s: the stand-in's own, not Nix's.
func nixStoreHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	const nixBase32 = "0123456789abcdfghijklmnpqrsvwxyz"
	var h strings.Builder
	for _, b := range sum[:32] {
		h.WriteByte(nixBase32[int(b)%32])
	}
	return h.String()
}

// packages is the stand-in's Debian package list.
func (im vmInstallerImage) packages() ([]string, error) {
	pkgs := append([]string(nil), vmInstallerBase...)
	// Every stand-in carries Debian's cryptsetup: on PATH when the table
	// lists it for the image, else off PATH for nix-build to "fetch".
	pkgs = append(pkgs, "cryptsetup-bin")
	for _, tool := range im.Image.Tools {
		p, ok := vmToolPackages[tool]
		if !ok {
			return nil, fmt.Errorf("the capability table gives %s the tool %s, which the VM suite cannot provide: add it to vmToolPackages", im.Tag, tool)
		}
		if p != "" && p != "stub" {
			pkgs = append(pkgs, p)
		}
	}
	sort.Strings(pkgs)
	return compactStrings(pkgs), nil
}

func compactStrings(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// vmImages is what the scenarios boot.
type vmImages struct {
	Dir      string
	Kernel   string            // the Debian kernel (bzImage)
	Rescue   string            // the rescue system's initramfs
	Tarballs map[string]string // image tag: the test kexec tarball
	// ClientKey is the operator's private key; ClientPub its public line.
	ClientKey, ClientPub string
	// HostKeys are the rescue system's public host keys ("TYPE BASE64").
	HostKeys []string
	Built    time.Duration // 0 when the images came from the cache
}

var (
	vmImagesOnce sync.Once
	vmImagesVal  *vmImages
	vmImagesErr  error
)

// buildVMImages builds the images once per run, or takes them from the
// cache when their recipe has not changed.
func buildVMImages(t *testing.T) *vmImages {
	t.Helper()
	vmImagesOnce.Do(func() { vmImagesVal, vmImagesErr = buildVMImagesOnce(t) })
	if vmImagesErr != nil {
		t.Fatalf("building the VM images: %v", vmImagesErr)
	}
	return vmImagesVal
}

func vmCacheDir() (string, error) {
	if d := os.Getenv("NIXPLAN_VM_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "nixplan-vm"), nil
}

// vmRecipe is everything an image is made of; its hash names the cache.
type vmRecipe struct {
	Format     string
	Suite      string
	Sources    string
	Kernel     string // package=version
	Modules    []string
	Rescue     []string
	Installers map[string][]string
	Images     map[string]vmInstallerImage
	FileHashes map[string]string // testdata/vm
}

func buildVMImagesOnce(t *testing.T) (*vmImages, error) {
	for _, tool := range []string{"qemu-system-x86_64", "mmdebstrap", "apt-get", "apt-cache", "dpkg-deb", "depmod", "modprobe", "cpio", "tar", "ssh", "scp", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s is missing: the VM suite needs qemu-system-x86, ovmf, mmdebstrap, kmod, cpio and openssh-client (.ci/run installs them)", tool)
		}
	}
	if _, err := os.Stat(ovmfCode); err != nil {
		return nil, fmt.Errorf("%s is missing: apt-get install ovmf", ovmfCode)
	}
	sources, err := vmSources()
	if err != nil {
		return nil, err
	}
	srcBytes, err := os.ReadFile(sources)
	if err != nil {
		return nil, err
	}
	kernelPkg, err := aptDependency("linux-image-amd64")
	if err != nil {
		return nil, err
	}
	kernelVer, err := aptVersion(kernelPkg)
	if err != nil {
		return nil, err
	}
	r := vmRecipe{
		Format: vmImageFormat, Suite: vmSuiteName, Sources: string(srcBytes),
		Kernel:  kernelPkg + "=" + kernelVer,
		Modules: vmModules, Rescue: vmRescuePackages,
		Installers: map[string][]string{}, Images: map[string]vmInstallerImage{},
		FileHashes: map[string]string{},
	}
	for _, im := range vmInstallerImages(t) {
		pkgs, err := im.packages()
		if err != nil {
			return nil, err
		}
		r.Installers[im.Tag] = pkgs
		r.Images[im.Tag] = im
	}
	err = filepath.Walk("testdata/vm", func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		r.FileHashes[path] = hex.EncodeToString(sum[:]) + fmt.Sprintf(" %o", info.Mode().Perm())
		return nil
	})
	if err != nil {
		return nil, err
	}
	recipe, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(recipe)
	key := hex.EncodeToString(sum[:])[:16]
	base, err := vmCacheDir()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(base, key)
	imgs := &vmImages{
		Dir: dir, Kernel: filepath.Join(dir, "bzImage"), Rescue: filepath.Join(dir, "rescue.cpio"),
		Tarballs: map[string]string{}, ClientKey: filepath.Join(dir, "operator_ed25519"),
	}
	for tag := range r.Installers {
		imgs.Tarballs[tag] = filepath.Join(dir, tag+".tar.gz")
	}
	if _, err := os.Stat(filepath.Join(dir, "complete")); err != nil {
		start := time.Now()
		t.Logf("building the VM images in %s (recipe %s)", dir, key)
		if err := buildImages(t, base, dir, r); err != nil {
			return nil, err
		}
		imgs.Built = time.Since(start)
		t.Logf("VM images built in %s", imgs.Built.Round(time.Second))
	} else {
		t.Logf("VM images from the cache: %s", dir)
	}
	pub, err := os.ReadFile(imgs.ClientKey + ".pub")
	if err != nil {
		return nil, err
	}
	imgs.ClientPub = strings.TrimSpace(string(pub))
	keys, err := filepath.Glob(filepath.Join(dir, "hostkeys", "*.pub"))
	if err != nil || len(keys) == 0 {
		return nil, fmt.Errorf("no rescue host keys in %s", dir)
	}
	for _, k := range keys {
		data, err := os.ReadFile(k)
		if err != nil {
			return nil, err
		}
		f := strings.Fields(string(data))
		imgs.HostKeys = append(imgs.HostKeys, f[0]+" "+f[1])
	}
	return imgs, nil
}

// vmSources is apt's configured list of mirrors, which mmdebstrap pastes
// into the images' sources.
func vmSources() (string, error) {
	for _, f := range []string{"/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"} {
		if st, err := os.Stat(f); err == nil && st.Size() > 0 {
			return f, nil
		}
	}
	return "", fmt.Errorf("no apt sources (/etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list)")
}

func aptDependency(meta string) (string, error) {
	out, err := exec.Command("apt-cache", "depends", "--no-recommends", "--no-suggests", meta).Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache depends %s: %v (run apt-get update)", meta, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], "linux-image-") {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("apt-cache depends %s names no kernel package", meta)
}

func aptVersion(pkg string) (string, error) {
	out, err := exec.Command("apt-cache", "show", "--no-all-versions", pkg).Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache show %s: %v (run apt-get update)", pkg, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "Version: "); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("apt-cache show %s gives no version", pkg)
}

// runLogged runs a build command; its output goes to the build log and, on
// failure, into the error.
func runLogged(log *os.File, dir, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	fmt.Fprintf(log, "$ %s %s\n", name, strings.Join(args, " "))
	err := cmd.Run()
	log.Write(out.Bytes())
	if err != nil {
		tail := out.String()
		if len(tail) > 3000 {
			tail = "…" + tail[len(tail)-3000:]
		}
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tail)
	}
	return nil
}

func buildImages(t *testing.T, base, dir string, r vmRecipe) error {
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	log, err := os.Create(filepath.Join(tmp, "build.log"))
	if err != nil {
		return err
	}
	defer log.Close()
	step := func(what string, f func() error) error {
		start := time.Now()
		err := f()
		t.Logf("  %s: %s", what, time.Since(start).Round(100*time.Millisecond))
		if err != nil {
			return fmt.Errorf("%s: %w (build log: %s)", what, err, log.Name())
		}
		return nil
	}
	work := filepath.Join(tmp, "work")
	kernelPkg, _, _ := strings.Cut(r.Kernel, "=")
	var kver string
	modules := filepath.Join(work, "modules")
	if err := step("kernel from Debian's package", func() error {
		if err := os.MkdirAll(filepath.Join(work, "debs"), 0o755); err != nil {
			return err
		}
		if err := runLogged(log, filepath.Join(work, "debs"), "apt-get", "download", kernelPkg); err != nil {
			return err
		}
		debs, _ := filepath.Glob(filepath.Join(work, "debs", "*.deb"))
		for _, d := range debs {
			if err := runLogged(log, work, "dpkg-deb", "-x", d, filepath.Join(work, "pkg")); err != nil {
				return err
			}
		}
		vers, _ := filepath.Glob(filepath.Join(work, "pkg", "lib", "modules", "*"))
		if len(vers) != 1 {
			return fmt.Errorf("the kernel package has %d module trees", len(vers))
		}
		kver = filepath.Base(vers[0])
		if err := copyFile(filepath.Join(work, "pkg", "boot", "vmlinuz-"+kver), filepath.Join(tmp, "bzImage"), 0o644); err != nil {
			return err
		}
		return kernelModules(log, filepath.Join(work, "pkg"), modules, kver)
	}); err != nil {
		return err
	}
	if err := step("operator key", func() error {
		return runLogged(log, tmp, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "operator@nixplan-vm", "-f", filepath.Join(tmp, "operator_ed25519"))
	}); err != nil {
		return err
	}
	sources, _ := vmSources()
	rescue := filepath.Join(work, "rescue")
	tags := make([]string, 0, len(r.Installers))
	for tag := range r.Installers {
		tags = append(tags, tag)
	}
	sort.Strings(tags)
	// The roots are built at once: mmdebstrap waits on downloads and on dpkg
	// much of the time.
	if err := step("the roots (mmdebstrap, "+strconv.Itoa(1+len(tags))+" at once)", func() error {
		roots := map[string][]string{rescue: r.Rescue}
		for _, tag := range tags {
			roots[filepath.Join(work, tag)] = r.Installers[tag]
		}
		errs := make(chan error, len(roots))
		for root, pkgs := range roots {
			go func() {
				l, err := os.Create(root + ".log")
				if err != nil {
					errs <- err
					return
				}
				defer l.Close()
				err = mmdebstrap(l, root, sources, pkgs)
				if err != nil {
					err = fmt.Errorf("%s: %w (log: %s)", filepath.Base(root), err, l.Name())
				}
				errs <- err
			}()
		}
		var first error
		for range roots {
			if err := <-errs; err != nil && first == nil {
				first = err
			}
		}
		return first
	}); err != nil {
		return err
	}
	if err := step("rescue image", func() error {
		return customizeRescue(log, tmp, rescue, modules, kver)
	}); err != nil {
		return err
	}
	for _, tag := range tags {
		im := r.Images[tag]
		root := filepath.Join(work, tag)
		if err := step(tag+" stand-in and its kexec tarball", func() error {
			if err := customizeInstaller(log, root, modules, kver, im); err != nil {
				return err
			}
			return kexecTarball(log, work, tmp, root, im)
		}); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(work); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "complete"), nil, 0o644); err != nil {
		return err
	}
	// Older recipes' images are of no use any more.
	old, _ := filepath.Glob(filepath.Join(base, "*"))
	for _, o := range old {
		if o != tmp && o != dir && !strings.HasSuffix(o, "logs") {
			os.RemoveAll(o)
		}
	}
	os.RemoveAll(dir)
	return os.Rename(tmp, dir)
}

func mmdebstrap(log *os.File, root, sources string, pkgs []string) error {
	err := runLogged(log, "", "mmdebstrap", "--variant=apt", "--include="+strings.Join(pkgs, ","), vmSuiteName, root, sources)
	if err != nil {
		return err
	}
	// What a system running from RAM does without. Removed afterwards:
	// mmdebstrap's --dpkgopt=path-exclude filters every package through
	// mmtarfilter, which made the build half as slow again.
	for _, dir := range []string{"usr/share/man", "usr/share/doc", "usr/share/info", "usr/share/locale"} {
		if err := os.RemoveAll(filepath.Join(root, dir)); err != nil {
			return err
		}
	}
	return nil
}

// kernelModules copies the modules the VMs need, with their dependencies,
// into a tree to put into each root.
func kernelModules(log *os.File, pkg, out, kver string) error {
	if err := runLogged(log, "", "depmod", "-b", pkg, kver); err != nil {
		return err
	}
	need := map[string]bool{}
	for _, m := range vmModules {
		outp, err := exec.Command("modprobe", "-d", pkg, "-S", kver, "--show-depends", m).CombinedOutput()
		if err != nil {
			return fmt.Errorf("modprobe --show-depends %s: %v\n%s", m, err, outp)
		}
		for _, line := range strings.Split(string(outp), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "insmod" {
				need[f[1]] = true
			}
		}
	}
	for path := range need {
		rel, err := filepath.Rel(pkg, path)
		if err != nil {
			return err
		}
		if err := copyFile(path, filepath.Join(out, "usr", rel), 0o644); err != nil {
			return err
		}
	}
	for _, f := range []string{"modules.order", "modules.builtin", "modules.builtin.modinfo"} {
		if err := copyFile(filepath.Join(pkg, "lib", "modules", kver, f), filepath.Join(out, "usr", "lib", "modules", kver, f), 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(log, "modules: %d files\n", len(need))
	return nil
}

func copyFile(from, to string, mode os.FileMode) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	return os.WriteFile(to, data, mode)
}

// copyTree copies a folder's files into another, keeping their modes.
func copyTree(from, to string) error {
	return filepath.Walk(from, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		return copyFile(path, filepath.Join(to, rel), info.Mode().Perm())
	})
}

// commonRoot does what both images need: the kernel modules, the ready
// marker and networkd.
func commonRoot(log *os.File, root, modules, kver, role string) error {
	if err := copyTree(modules, root); err != nil {
		return err
	}
	if err := runLogged(log, "", "depmod", "-b", root, kver); err != nil {
		return err
	}
	if err := writeFiles(root, map[string]string{
		"etc/nixplan-vm/role": role + "\n",
	}); err != nil {
		return err
	}
	if err := copyFile("testdata/vm/common/nixplan-vm-ready.service", filepath.Join(root, "etc/systemd/system/nixplan-vm-ready.service"), 0o644); err != nil {
		return err
	}
	return runLogged(log, "", "chroot", root, "systemctl", "enable", "nixplan-vm-ready.service", "systemd-networkd.service")
}

func writeFiles(root string, files map[string]string) error {
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// packCPIO writes a root file system as an uncompressed initramfs: under
// software emulation the kernel unpacks it far faster than a compressed one
// (22 s against 47 s to sshd for the rescue image, measured here).
func packCPIO(log *os.File, root, out string) error {
	return runLogged(log, root, "sh", "-c", "find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet >"+shellQuote(out))
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// customizeRescue makes the rescue system: it runs from RAM (systemd is the
// initramfs's /init), root's authorized_keys holds the operator's key as the
// provider's panel puts it there, the network comes from the kernel command
// line (systemd-network-generator reads ip=), and its host keys are kept for
// the operator's known_hosts.
func customizeRescue(log *os.File, out, root, modules, kver string) error {
	if err := commonRoot(log, root, modules, kver, "rescue"); err != nil {
		return err
	}
	pub, err := os.ReadFile(filepath.Join(out, "operator_ed25519.pub"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(root, "root/.ssh"), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "root/.ssh/authorized_keys"), pub, 0o600); err != nil {
		return err
	}
	if err := writeFiles(root, map[string]string{
		"etc/hostname": "rescue-customer-eu\n",
		// Debian's kexec-tools would load a kernel at every reboot.
		"etc/default/kexec": "LOAD_KEXEC=false\n",
	}); err != nil {
		return err
	}
	if err := runLogged(log, "", "chroot", root, "systemctl", "enable", "systemd-network-generator.service"); err != nil {
		return err
	}
	if err := os.Symlink("/lib/systemd/systemd", filepath.Join(root, "init")); err != nil {
		return err
	}
	keys, _ := filepath.Glob(filepath.Join(root, "etc/ssh/ssh_host_*_key.pub"))
	if len(keys) == 0 {
		return fmt.Errorf("openssh-server made no host keys in the rescue root")
	}
	for _, k := range keys {
		if err := copyFile(k, filepath.Join(out, "hostkeys", filepath.Base(k)), 0o644); err != nil {
			return err
		}
	}
	return packCPIO(log, root, filepath.Join(out, "rescue.cpio"))
}

// customizeInstaller makes the stand-in NixOS installer of one image: its
// os-release, host name, stubs, the restore of keys and network kexec/run
// carried over, and no host keys of its own.
func customizeInstaller(log *os.File, root, modules, kver string, im vmInstallerImage) error {
	if err := commonRoot(log, root, modules, kver, "installer"); err != nil {
		return err
	}
	// nixpkgs' os-release (nixos/modules/misc/version.nix): ID=nixos; the
	// installer images set VARIANT_ID=installer.
	if err := os.Remove(filepath.Join(root, "etc/os-release")); err != nil {
		return err
	}
	codename := map[string]string{"22.11": "Raccoon", "24.05": "Uakari"}[im.Release]
	files := map[string]string{
		"etc/os-release": fmt.Sprintf("BUILD_ID=%q\nID=nixos\nNAME=NixOS\nPRETTY_NAME=\"NixOS %s (%s)\"\nVARIANT_ID=installer\nVERSION=\"%s (%s)\"\nVERSION_CODENAME=%s\nVERSION_ID=%q\n",
			im.Release+"."+im.Date, im.Release, codename, im.Release, codename, strings.ToLower(codename), im.Release),
		"etc/hostname":                     im.Host + "\n",
		"etc/machine-id":                   "",
		"etc/nixplan-vm/restore-variant":   im.Tag + "\n",
		"etc/nixplan-vm/nix-version":       im.Image.Nix.Min + ".0\n",
		"etc/nixplan-vm/zfs-version":       im.Image.ZFS.Min + "\n",
		"etc/nixplan-vm/tag":               im.Tag + "\n",
		"var/log/nixplan-vm/calls":         "",
		"etc/systemd/network/.placeholder": "",
	}
	if err := writeFiles(root, files); err != nil {
		return err
	}
	bin := filepath.Join(root, "usr/local/bin")
	if err := copyTree("testdata/vm/installer/bin", bin); err != nil {
		return err
	}
	os.Remove(filepath.Join(bin, "not-emulated"))
	stubbed := []string{"nixos-enter", "nix-env", "nix-store", "nix-shell"}
	if !slices.Contains(im.Image.Tools, "cryptsetup") {
		if err := offPath(root, "cryptsetup", vmFetchedCryptsetup); err != nil {
			return err
		}
		if err := writeFiles(root, map[string]string{"etc/nixplan-vm/cryptsetup": vmFetchedCryptsetup + "\n"}); err != nil {
			return err
		}
	}
	if slices.Contains(im.Image.Tools, "zfs") {
		stubbed = append(stubbed, "zfs")
	} else {
		os.Remove(filepath.Join(bin, "zpool"))
	}
	for _, name := range stubbed {
		if err := copyFile("testdata/vm/installer/bin/not-emulated", filepath.Join(bin, name), 0o755); err != nil {
			return err
		}
	}
	for from, to := range map[string]string{
		"restore-network":                  "usr/local/bin/restore-network",
		"init":                             "init",
		"system-init":                      strings.TrimPrefix(im.storePath(), "/") + "/init",
		"restore-network.service":          "etc/systemd/system/restore-network.service",
		"ssh-host-keys.service":            "etc/systemd/system/ssh-host-keys.service",
		"99-ethernet-default-dhcp.network": "etc/systemd/network/99-ethernet-default-dhcp.network",
	} {
		if from == "99-ethernet-default-dhcp.network" && !im.DefaultDHCP {
			continue
		}
		src := filepath.Join("testdata/vm/installer", from)
		st, err := os.Stat(src)
		if err != nil {
			return err
		}
		if err := copyFile(src, filepath.Join(root, to), st.Mode().Perm()); err != nil {
			return err
		}
	}
	os.Remove(filepath.Join(root, "etc/systemd/network/.placeholder"))
	if err := runLogged(log, "", "chroot", root, "systemctl", "enable", "restore-network.service", "ssh-host-keys.service"); err != nil {
		return err
	}
	keys, _ := filepath.Glob(filepath.Join(root, "etc/ssh/ssh_host_*"))
	for _, k := range keys {
		if err := os.Remove(k); err != nil {
			return err
		}
	}
	return checkStandInTools(root, im)
}

// offPath moves a tool of the root into a store path of its own, so that it
// is on no PATH until something links to it.
func offPath(root, tool, store string) error {
	for _, d := range []string{"usr/sbin", "usr/bin"} {
		from := filepath.Join(root, d, tool)
		if _, err := os.Lstat(from); err != nil {
			continue
		}
		to := filepath.Join(root, strings.TrimPrefix(store, "/"), "bin", tool)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		return os.Rename(from, to)
	}
	return fmt.Errorf("the stand-in root has no %s to move off PATH", tool)
}

// checkStandInTools holds the stand-in to the capability table: every tool
// the table lists is there, and none of those it must lack.
func checkStandInTools(root string, im vmInstallerImage) error {
	has := func(tool string) bool {
		for _, d := range []string{"usr/local/bin", "usr/local/sbin", "usr/sbin", "usr/bin", "sbin", "bin"} {
			if _, err := os.Lstat(filepath.Join(root, d, tool)); err == nil {
				return true
			}
		}
		return false
	}
	for _, tool := range im.Image.Tools {
		if !has(tool) {
			return fmt.Errorf("the %s stand-in lacks %s, which the capability table lists", im.Tag, tool)
		}
	}
	for _, tool := range vmAbsentUnlessListed {
		if has(tool) && !slices.Contains(im.Image.Tools, tool) {
			return fmt.Errorf("the %s stand-in has %s, which the capability table does not list: a stand-in richer than the image passes where the server fails", im.Tag, tool)
		}
	}
	return nil
}

// kexecTarball packs the test kexec tarball with the layout of nixos-images'
// (nix/kexec-installer/module.nix, kexecInstallerTarball): kexec/run, bzImage,
// initrd, kexec and ip, as tar -czf of the kexec folder. kexec and ip are
// Debian's, linked against the rescue system's libraries (the real ones are
// static builds).
func kexecTarball(log *os.File, work, out, root string, im vmInstallerImage) error {
	dir := filepath.Join(work, "tarball-"+im.Tag, "kexec")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmpl, err := template.ParseFiles("testdata/vm/kexec-run.sh.tmpl")
	if err != nil {
		return err
	}
	var run bytes.Buffer
	data := struct {
		vmInstallerImage
		Init, KernelParams string
	}{im, im.storePath() + "/init", "console=tty0 console=ttyS0,115200 panic=-1"}
	if err := tmpl.Execute(&run, data); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "run"), run.Bytes(), 0o755); err != nil {
		return err
	}
	if err := copyFile(filepath.Join(out, "bzImage"), filepath.Join(dir, "bzImage"), 0o644); err != nil {
		return err
	}
	if err := copyFile(filepath.Join(work, "rescue", "usr/sbin/kexec"), filepath.Join(dir, "kexec"), 0o755); err != nil {
		return err
	}
	if err := copyFile(filepath.Join(root, "usr/bin/ip"), filepath.Join(dir, "ip"), 0o755); err != nil {
		return err
	}
	if err := packCPIO(log, root, filepath.Join(dir, "initrd")); err != nil {
		return err
	}
	// gzip as tar -z does; -1, since the level only changes the build time.
	return runLogged(log, filepath.Dir(dir), "sh", "-c", "tar -cf - kexec | gzip -1 >"+shellQuote(filepath.Join(out, im.Tag+".tar.gz")))
}
