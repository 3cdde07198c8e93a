package plan_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixplan/nixplan/plan"
	"github.com/nixplan/nixplan/plan/machine"
)

// loopDevice attaches a sparse file of size MiB as a loop device with
// partition scanning (losetup -fP) and detaches it when the test ends.
func loopDevice(t *testing.T, mib int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		requireOrSkip(t, "loop devices need root")
	}
	for _, tool := range []string{"losetup", "parted", "wipefs", "mkfs.ext4", "blkid"} {
		if _, err := exec.LookPath(tool); err != nil {
			requireOrSkip(t, tool+" is not installed (Debian packages util-linux, parted, e2fsprogs)")
		}
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, int64(mib)<<20); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "-fP", "--show", img).CombinedOutput()
	if err != nil {
		requireOrSkip(t, "losetup -fP failed: "+strings.TrimSpace(string(out)))
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// oldInstall leaves what a provider's install leaves on a disk: a partition
// table and an ext4 filesystem labelled "olddata" on its second partition,
// which starts at startMiB, where the new pool partition will start: without
// wipefs, the new partition would show the old filesystem.
func oldInstall(t *testing.T, dev string, startMiB string) {
	sh(t, "parted", "--script", dev, "--", "mklabel", "msdos", "mkpart", "primary", "1MiB", startMiB, "mkpart", "primary", startMiB, "100%")
	waitFor(t, plan.PartitionPath(dev, 2))
	sh(t, "mkfs.ext4", "-q", "-F", "-L", "olddata", plan.PartitionPath(dev, 2))
}

func waitFor(t *testing.T, dev string) {
	for i := 0; i < 50; i++ {
		if _, err := os.Stat(dev); err == nil {
			return
		}
		exec.Command("sleep", "0.1").Run()
	}
	t.Fatalf("%s did not appear", dev)
}

// TestPartitionAndFormatOnLoopDevice runs kexec-install.sh with the real
// parted, wipefs, mkfs.ext4, lsblk and ext4 mount against a loop device that
// holds an old install, for each partition label. This kernel has no ZFS, no
// md and no udev: zpool, zfs and mdadm are stubbed (recorded), and udevadm is
// absent, as the script allows.
func TestPartitionAndFormatOnLoopDevice(t *testing.T) {
	for _, c := range []struct {
		label, poolStart string
		// want is `parted -m print` per partition: number:start:end:size:fs:name:flags
		want []string
	}{
		{"msdos", "512MiB", []string{"1:1.00MiB:512MiB:511MiB:ext4::;", "2:512MiB:1025MiB:513MiB:::;"}},
		{"gpt", "513MiB", []string{"1:1.00MiB:2.00MiB:1.00MiB::bios_grub:bios_grub;", "2:2.00MiB:513MiB:511MiB:ext4:boot:;", "3:513MiB:1024MiB:511MiB::rpool:;"}},
	} {
		t.Run(c.label, func(t *testing.T) {
			dev := loopDevice(t, 1025)
			oldInstall(t, dev, c.poolStart)
			spec := exampleSpec(t, `devices = ["/dev/sda"]`, `devices = ["`+dev+`"]`, `label = "msdos"`, `label = "`+c.label+`"`)
			h := installerHarness(t, spec, nil)
			r := h.runMode(true, plan.KexecInstallFile, "blog-demo\n")
			if r.code != 0 {
				t.Fatalf("exit %d:\n%s", r.code, r.output())
			}
			print := sh(t, "parted", "--script", "--machine", dev, "unit", "MiB", "print")
			lines := strings.Split(strings.TrimSpace(print), "\n")
			if !strings.Contains(lines[1], ":"+c.label+":") {
				t.Errorf("partition table is not %s:\n%s", c.label, print)
			}
			got := lines[2:]
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("partitions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
			boot := plan.PartitionPath(dev, len(c.want)-1)
			if got := strings.TrimSpace(sh(t, "blkid", "-p", "-o", "value", "-s", "LABEL", boot)); got != "boot" {
				t.Errorf("%s has label %q, want boot", boot, got)
			}
			// blkid -p probes the device itself; lsblk needs udev for FSTYPE, and this kernel has none.
			if got := strings.TrimSpace(sh(t, "blkid", "-p", "-o", "value", "-s", "TYPE", boot)); got != "ext4" {
				t.Errorf("%s is %q, want ext4", boot, got)
			}
			// The old ext4 is gone: wipefs cleared it and the pool partition carries no filesystem.
			pool := plan.PartitionPath(dev, len(c.want))
			if out, _ := exec.Command("blkid", "-p", "-o", "value", "-s", "TYPE", pool).CombinedOutput(); strings.TrimSpace(string(out)) != "" {
				t.Errorf("%s still has a filesystem: %s", pool, out)
			}
			// ZFS is stubbed: the pool was recorded on the right partition.
			if r.firstIndex("zpool create -f -o ashift=12 -o comment="+h.plan.Storage.PoolComment+" -O mountpoint=none rpool "+pool) < 0 {
				t.Errorf("zpool create on %s not recorded: %q", pool, r.commands())
			}
			// /boot was really mounted and got the log and unmounted again.
			if strings.Contains(sh(t, "cat", "/proc/mounts"), boot) {
				t.Errorf("%s is still mounted", boot)
			}
		})
	}
}

// TestUEFIAndMdadmOnLoopDevices: GPT with an EFI system partition made by
// the real mkfs.vfat (this kernel cannot mount vfat, so blkid checks it), and
// the mdadm layout over two loop devices with mdadm stubbed (this kernel has
// no md): the real parted and mkfs.ext4 make both disks' partitions and
// /boot filesystems, and the RAID1 is created over the right partitions.
func TestUEFIAndMdadmOnLoopDevices(t *testing.T) {
	t.Run("uefi-esp", func(t *testing.T) {
		dev := loopDevice(t, 1025)
		spec := exampleSpec(t, `devices = ["/dev/sda"]`, `devices = ["`+dev+`"]`, `label = "msdos"`, `label = "gpt"`,
			`nixos = "24.05"`, "nixos = \"24.05\"\nfirmware = \"uefi\"")
		h := installerHarness(t, spec, func(m *machine.Machine) { m.Firmware.Mode = machine.FirmwareUEFI })
		r := h.runMode(true, plan.KexecInstallFile, "blog-demo\n")
		if r.code != 0 {
			t.Fatalf("exit %d:\n%s", r.code, r.output())
		}
		print := sh(t, "parted", "--script", "--machine", dev, "unit", "MiB", "print")
		if !strings.Contains(print, "1:1.00MiB:512MiB:511MiB:fat32:ESP:boot, esp;") {
			t.Errorf("no ESP as partition 1:\n%s", print)
		}
		esp := plan.PartitionPath(dev, 1)
		if got := strings.TrimSpace(sh(t, "blkid", "-p", "-o", "value", "-s", "TYPE", esp)); got != "vfat" {
			t.Errorf("%s is %q, want vfat", esp, got)
		}
		if got := strings.TrimSpace(sh(t, "blkid", "-p", "-o", "value", "-s", "LABEL", esp)); got != "EFI" {
			t.Errorf("%s has label %q, want EFI", esp, got)
		}
		if r.firstIndex("mount -t vfat "+esp+" /mnt/boot") < 0 {
			t.Errorf("the ESP is not mounted on /boot: %q", r.commands())
		}
	})
	t.Run("mdadm-two-disks", func(t *testing.T) {
		a, b := loopDevice(t, 1025), loopDevice(t, 1025)
		spec := exampleSpec(t, `devices = ["/dev/sda"]`, `devices = ["`+a+`", "`+b+`"]`, `label = "msdos"`, `label = "gpt"`,
			`layout = "zfs"`, "layout = \"mdadm\"\nboot = \"all\"", `pool = "rpool"`, ``)
		spec = spec[:strings.Index(spec, "[[disks.datasets]]")] + spec[strings.Index(spec, "[ssh]"):]
		h := installerHarness(t, spec, nil)
		r := h.runMode(true, plan.KexecInstallFile, "blog-demo\n")
		if r.code != 0 {
			t.Fatalf("exit %d:\n%s", r.code, r.output())
		}
		for i, dev := range []string{a, b} {
			print := sh(t, "parted", "--script", "--machine", dev, "unit", "MiB", "print")
			if !strings.HasSuffix(strings.TrimSpace(print), ":raid;") || !strings.Contains(print, "bios_grub") {
				t.Errorf("%s lacks the bios_grub or RAID member partition:\n%s", dev, print)
			}
			boot := plan.PartitionPath(dev, 2)
			want := []string{"boot", "boot2"}[i]
			if got := strings.TrimSpace(sh(t, "blkid", "-p", "-o", "value", "-s", "LABEL", boot)); got != want {
				t.Errorf("%s has label %q, want %q", boot, got, want)
			}
		}
		create := "mdadm --create /dev/md/root --run --level=1 --metadata=1.2 --raid-devices=2 " + plan.PartitionPath(a, 3) + " " + plan.PartitionPath(b, 3)
		if r.firstIndex(create) < 0 || r.firstIndex("mkfs.ext4 -F -L root /dev/md/root") < r.firstIndex(create) {
			t.Errorf("want %q then mkfs.ext4 on /dev/md/root, got:\n%s", create, strings.Join(r.commands(), "\n"))
		}
	})
}
