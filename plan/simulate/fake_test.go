package simulate_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nixplan/nixplan/plan/machine"
	"github.com/nixplan/nixplan/plan/simulate"
)

func fake(t *testing.T, name string) *simulate.FakeMachine {
	t.Helper()
	m, err := machine.Load("../../testdata/machines/" + name + ".json")
	if err != nil {
		t.Fatal(err)
	}
	return simulate.NewFakeMachine(m)
}

func play(t *testing.T, f *simulate.FakeMachine, argv ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := f.Exec(argv, &out, &errOut)
	return out.String() + errOut.String(), code
}

func TestFakeLsblkShowsRAIDHolders(t *testing.T) {
	f := fake(t, "kimsufi-raid1")
	got, code := play(t, f, "lsblk", "-nrpo", "NAME,TYPE", "/dev/sda")
	want := "/dev/sda disk\n/dev/sda1 part\n/dev/md1 raid1\n/dev/sda2 part\n/dev/md2 raid1\n"
	if code != 0 || got != want {
		t.Errorf("lsblk = %q (exit %d), want %q", got, code, want)
	}
	got, _ = play(t, f, "lsblk", "-nrpo", "NAME,FSTYPE", "/dev/sda")
	if !strings.Contains(got, "/dev/sda1 linux_raid_member\n") {
		t.Errorf("lsblk FSTYPE misses the RAID member: %q", got)
	}
	// Stopping md1 takes it off the tree.
	play(t, f, "mdadm", "--stop", "/dev/md1")
	got, _ = play(t, f, "lsblk", "-nrpo", "NAME,TYPE", "/dev/sda")
	if strings.Contains(got, "md1") || !strings.Contains(got, "md2") {
		t.Errorf("after mdadm --stop /dev/md1: %q", got)
	}
}

func TestFakePartedAndZpoolKeepState(t *testing.T) {
	f := fake(t, "ovh-seed")
	// The seed's disk holds the provider's old Debian; a new label drops it.
	if out, _ := play(t, f, "lsblk", "-nrpo", "NAME,FSTYPE", "/dev/sda"); !strings.Contains(out, "/dev/sda1 ") {
		t.Fatalf("the seed's disk has no old partitions: %q", out)
	}
	play(t, f, "parted", "--script", "/dev/sda", "--", "mklabel", "msdos")
	if out, _ := play(t, f, "lsblk", "-nrpo", "NAME", "/dev/sda"); out != "/dev/sda\n" {
		t.Errorf("after mklabel lsblk shows %q", out)
	}
	play(t, f, "parted", "--script", "/dev/sda", "--", "mkpart", "primary", "1MiB", "512MiB")
	play(t, f, "parted", "--script", "/dev/sda", "--", "mkpart", "primary", "512MiB", "100%")
	got, _ := play(t, f, "lsblk", "-nrpo", "NAME,TYPE", "/dev/sda")
	if diff := cmp.Diff("/dev/sda disk\n/dev/sda1 part\n/dev/sda2 part\n", got); diff != "" {
		t.Errorf("partitions after parted (-want +got):\n%s", diff)
	}
	if _, code := play(t, f, "zpool", "list", "-H", "-o", "name", "rpool"); code == 0 {
		t.Error("rpool exists before zpool create")
	}
	play(t, f, "zpool", "create", "-f", "-o", "ashift=12", "-O", "mountpoint=none", "rpool", "/dev/sda2")
	if out, code := play(t, f, "zpool", "list", "-H", "-o", "name", "rpool"); code != 0 || out != "rpool\n" {
		t.Errorf("zpool list after create = %q, %d", out, code)
	}
	play(t, f, "zpool", "export", "rpool")
	if _, code := play(t, f, "zpool", "list", "-H", "-o", "name", "rpool"); code == 0 {
		t.Error("rpool still imported after export")
	}
	play(t, f, "mount", "-t", "zfs", "rpool/root/nixos", "/mnt")
	play(t, f, "mount", "-t", "ext4", "/dev/sda1", "/mnt/boot")
	if !f.Mounted("/mnt/boot") {
		t.Error("/mnt/boot not mounted")
	}
	play(t, f, "umount", "-R", "/mnt")
	if f.Mounted("/mnt") || f.Mounted("/mnt/boot") {
		t.Error("umount -R /mnt left mounts")
	}
}

func TestFakeAnswersAddressAndIdentity(t *testing.T) {
	f := fake(t, "two-nic")
	got, _ := play(t, f, "ip", "-o", "-4", "addr", "show")
	if !strings.Contains(got, " inet ") {
		t.Errorf("ip -o -4 addr show = %q", got)
	}
	if _, code := play(t, f, "lsblk", "-dno", "TYPE", "/dev/nosuch"); code != 32 {
		t.Errorf("lsblk of a missing disk exits %d, want 32", code)
	}
	f.Faults.Offline = true
	if _, code := play(t, f, "curl", "--head", "https://cache.nixos.org/nix-cache-info"); code == 0 {
		t.Error("curl --head succeeds on an offline machine")
	}
}

func TestChangesMachine(t *testing.T) {
	for _, c := range []struct {
		argv []string
		want bool
	}{
		{[]string{"zpool", "list", "rpool"}, false},
		{[]string{"zpool", "create", "rpool", "/dev/sda2"}, true},
		{[]string{"curl", "--head", "https://x"}, false},
		{[]string{"curl", "--output", "f", "https://x"}, true},
		{[]string{"/root/kexec/run"}, true},
		{[]string{"lsblk", "/dev/sda"}, false},
		{[]string{"wipefs", "--all", "/dev/sda"}, true},
		{[]string{"zpool", "get", "-H", "-o", "value", "comment", "rpool"}, false},
		{[]string{"zpool", "import"}, false},
		{[]string{"zpool", "import", "-d", "/dev/sda2"}, false},
		{[]string{"zpool", "import", "-f", "-N", "1234"}, true},
		{[]string{"swapon", "/dev/sda2"}, true},
	} {
		if got := simulate.ChangesMachine(c.argv); got != c.want {
			t.Errorf("ChangesMachine(%q) = %v, want %v", c.argv, got, c.want)
		}
	}
}

// TestFakePoolComments: a pool's comment, set at zpool create, shows in
// zpool get while it is imported and in zpool import's listing once it is
// exported; the listing is limited to a device with -d, and a pool is
// imported by its numeric id.
func TestFakePoolComments(t *testing.T) {
	f := fake(t, "ovh-seed")
	play(t, f, "parted", "--script", "/dev/sda", "--", "mklabel", "msdos")
	play(t, f, "parted", "--script", "/dev/sda", "--", "mkpart", "primary", "1MiB", "512MiB")
	play(t, f, "parted", "--script", "/dev/sda", "--", "mkpart", "primary", "512MiB", "100%")
	if out, _ := play(t, f, "zpool", "import"); out != "no pools available to import\n" {
		t.Errorf("zpool import before create = %q", out)
	}
	play(t, f, "zpool", "create", "-f", "-o", "ashift=12", "-o", "comment=nixplan-0123", "-O", "mountpoint=none", "rpool", "/dev/sda2")
	if out, code := play(t, f, "zpool", "get", "-H", "-o", "value", "comment", "rpool"); code != 0 || out != "nixplan-0123\n" {
		t.Errorf("zpool get comment = %q, %d", out, code)
	}
	play(t, f, "zpool", "export", "rpool")
	if _, code := play(t, f, "zpool", "get", "-H", "-o", "value", "comment", "rpool"); code == 0 {
		t.Error("zpool get answers for an exported pool")
	}
	listing, _ := play(t, f, "zpool", "import")
	for _, want := range []string{"   pool: rpool\n", "     id: ", " action: The pool can be imported", "comment: nixplan-0123\n", " config:\n"} {
		if !strings.Contains(listing, want) {
			t.Errorf("zpool import does not print %q:\n%s", want, listing)
		}
	}
	if out, _ := play(t, f, "zpool", "import", "-d", "/dev/sda1"); strings.Contains(out, "pool: rpool") {
		t.Errorf("zpool import -d /dev/sda1 lists rpool, whose device is /dev/sda2:\n%s", out)
	}
	if out, _ := play(t, f, "zpool", "import", "-d", "/dev/sda2"); !strings.Contains(out, "comment: nixplan-0123") {
		t.Errorf("zpool import -d /dev/sda2 misses rpool:\n%s", out)
	}
	id := listing[strings.Index(listing, "id: ")+4:]
	id = id[:strings.Index(id, "\n")]
	if _, code := play(t, f, "zpool", "import", "-f", "-N", id); code != 0 {
		t.Fatalf("zpool import by id %s failed", id)
	}
	if out, code := play(t, f, "zpool", "list", "-H", "-o", "name", "rpool"); code != 0 || out != "rpool\n" {
		t.Errorf("after import by id zpool list = %q, %d", out, code)
	}

	// A pool on the description's disks has the comment a test gives it.
	f = fake(t, "ovh-seed")
	f.Machine.Disks[0].Partitions[1].Signatures = []machine.Signature{{Type: "zfs_member", Label: "rpool"}}
	if out, _ := play(t, f, "zpool", "import", "-d", "/dev/sda2"); !strings.Contains(out, "pool: rpool") || strings.Contains(out, "comment:") {
		t.Errorf("a pool without a comment: %q", out)
	}
	f.PoolComments["rpool"] = "made elsewhere"
	if out, _ := play(t, f, "zpool", "import", "-d", "/dev/sda2"); !strings.Contains(out, "comment: made elsewhere\n") {
		t.Errorf("a pool with a comment: %q", out)
	}
}
