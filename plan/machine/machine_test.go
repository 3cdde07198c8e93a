package machine

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// loadFixture reads a machine from testdata/machines.
func loadFixture(t *testing.T, name string) *Machine {
	t.Helper()
	m, err := Load(filepath.Join("..", "..", "testdata", "machines", name+".json"))
	if err != nil {
		t.Fatalf("loading %s: %v", name, err)
	}
	return m
}

func TestFixturesParse(t *testing.T) {
	files, err := filepath.Glob("../../testdata/machines/*.json")
	if err != nil || len(files) < 6 {
		t.Fatalf("want at least 6 fixtures in testdata/machines, got %d (%v)", len(files), err)
	}
	for _, f := range files {
		m, err := Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if len(m.Description) < 20 {
			t.Errorf("%s: want a description saying what it models, got %q", f, m.Description)
		}
		if len(m.InstallDisks()) == 0 || len(m.Interfaces) == 0 || m.RAMBytes <= 0 {
			t.Errorf("%s: want disks, interfaces and memory", f)
		}
	}
}

func TestParseMachineRefuses(t *testing.T) {
	good, err := os.ReadFile("../../testdata/machines/ovh-seed.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, data, want string
	}{
		{"unknown key", strings.Replace(string(good), `"ram_bytes"`, `"ram_byte": 1, "ram_bytes"`, 1), "m.json: ram_byte: unknown key"},
		{"other version", strings.Replace(string(good), `"version": 1`, `"version": 2`, 1), "m.json: version: version 2 is not one this nixplan reads (it reads 1)"},
		{"no version", `{"firmware": {"mode": "bios"}, "ram_bytes": 1}`, "m.json: version: missing"},
		{"cut short", string(good[:200]), "m.json: ends before the machine description does"},
		{"syntax", "{\n  \"version\": 1,,\n}", "m.json:2:16: invalid character ','"},
		{"wrong type", strings.Replace(string(good), `"ram_bytes": 16865296384`, `"ram_bytes": "16G"`, 1), "m.json:18:"},
		{"two values", string(good) + "{}", "m.json: more than one JSON value"},
		{"bad firmware", strings.Replace(string(good), `"mode": "bios"`, `"mode": "efi"`, 1), `m.json: firmware.mode: "efi" is neither "bios" nor "uefi"`},
		{"bad by-id", strings.Replace(string(good), `"/dev/disk/by-id/wwn-`, `"/dev/wwn-`, 1), "m.json: disks[0].by_id[1]: \"/dev/wwn-"},
		{"key twice", strings.Replace(string(good), `"ram_bytes": 16865296384`, `"ram_bytes": 16865296384, "ram_bytes": 1`, 1),
			"m.json:18:29: ram_bytes: is given twice in one object; the second would silently win"},
		{"key in capitals", strings.Replace(string(good), `"ram_bytes": 16865296384`, `"ram_bytes": 16865296384, "RAM_BYTES": 1`, 1),
			`m.json:18:29: RAM_BYTES: is not a key of the format; its keys are lowercase: "ram_bytes"`},
		{"key in capitals alone", strings.Replace(string(good), `"ram_bytes"`, `"Ram_Bytes"`, 1), `Ram_Bytes: is not a key of the format`},
		{"nested key twice", strings.Replace(string(good), `"serial": "PN2134P5G1TJWX"`, `"serial": "PN2134P5G1TJWX", "serial": "OTHER"`, 1),
			"disks[0].serial: is given twice in one object"},
		{"map key twice", strings.Replace(string(good), `"tools": {`, `"tools": {"cpio": false, "cpio": true, `, 1), "tools.cpio: is given twice in one object"},
		{"long value", strings.Replace(string(good), `"mode": "bios"`, `"mode": "`+strings.Repeat("b", 10000)+`"`, 1),
			`firmware.mode: "` + strings.Repeat("b", 160) + `"… (10000 bytes) is neither`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("m.json", []byte(tc.data))
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("want Problems, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestKeyFingerprint(t *testing.T) {
	// As printed by `ssh-keygen -lf` for the example's key.
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHeVFQr7aj20GWUgd2JVHzu4yywDf+VA4xTtVkmOS+Rt operator@laptop"
	got, err := KeyFingerprint(key)
	if err != nil || got != "SHA256:LNCSQRX1aIn/0awJUu71F8ifIFWurLkVdyTxMIrowiI" {
		t.Errorf("KeyFingerprint = %q, %v", got, err)
	}
	if _, err := KeyFingerprint("ssh-ed25519 not*base64"); err == nil {
		t.Error("want an error for a body that is not base64")
	}
}

func TestDiskLookupAndIdentity(t *testing.T) {
	m := loadFixture(t, "ovh-seed")
	byID := "/dev/disk/by-id/ata-HGST_HUS724020ALA640_PN2134P5G1TJWX"
	for _, path := range []string{"/dev/sda", byID, "/dev/disk/by-id/wwn-0x5000cca22cc2a1b2"} {
		if d := m.Disk(path); d == nil || d.Name != "sda" {
			t.Errorf("Disk(%q) = %v, want sda", path, d)
		}
	}
	if d := m.Disk("/dev/sdb"); d != nil {
		t.Errorf("Disk(/dev/sdb) = %v, want nil", d.Name)
	}
	d := m.Disk("/dev/sda")
	if got := d.StableID(); got != byID {
		t.Errorf("StableID = %q, want the model_serial link %q (not the wwn one)", got, byID)
	}
	if got, want := d.Identity(), "sda (2.0 TB, HGST HUS724020ALA640, serial PN2134P5G1TJWX)"; got != want {
		t.Errorf("Identity = %q, want %q", got, want)
	}
	if d.HeldBy() != nil || d.MountedAt() != nil || d.Memberships() != nil {
		t.Errorf("the seed's disk is free, got held %v mounted %v members %v", d.HeldBy(), d.MountedAt(), d.Memberships())
	}
}

func TestDiskBusy(t *testing.T) {
	m := loadFixture(t, "kimsufi-raid1")
	d := m.Disk("/dev/sdb")
	if got, want := strings.Join(d.HeldBy(), "; "), "sdb1 is held by md1; sdb2 is held by md2"; got != want {
		t.Errorf("HeldBy = %q, want %q", got, want)
	}
	if got := d.Memberships(); len(got) != 2 || !strings.Contains(got[0], "md RAID member") {
		t.Errorf("Memberships = %q", got)
	}
	d.Partitions[0].Mountpoints = []string{"/mnt/old data"}
	d.Partitions[1].Mountpoints = []string{"[SWAP]"}
	if got, want := strings.Join(d.MountedAt(), "; "), "sdb1 is mounted on /mnt/old data; sdb2 is in use as swap"; got != want {
		t.Errorf("MountedAt = %q, want %q", got, want)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{512: "512 B", 3000592982016: "3.0 TB", 42949672960: "42.9 GB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// The package has no golden files, but `go test ./... -update` passes the
// flag to every test binary: each must define it.
var _ = flag.Bool("update", false, "rewrite golden files (none in this package)")

// TestLoadRefusesSpecialFiles: a FIFO would block Load and /dev/zero never
// end; a file over MaxBytes is not read.
func TestLoadRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.json")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero.json")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.json")
	if err := os.WriteFile(big, nil, 0o644); err != nil || os.Truncate(big, MaxBytes+1) != nil {
		t.Fatal("cannot make a big file")
	}
	for path, want := range map[string]string{
		fifo: fifo + ": is a named pipe (FIFO), not a regular file",
		zero: zero + ": is a character device, not a regular file",
		big:  big + ": is 16777217 bytes, more than the 16 MiB nixplan reads here",
	} {
		if _, err := Load(path); err == nil || err.Error() != want {
			t.Errorf("Load(%s) = %v, want %s", filepath.Base(path), err, want)
		}
	}
}
