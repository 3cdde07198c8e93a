package plan_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixplan/nixplan/plan"
)

// bashFunction sources a rendered script without running it, then runs
// the shell text given, and returns what it printed.
func bashFunction(t *testing.T, script, run string) string {
	t.Helper()
	bash := needTool(t, "bash", "bash")
	cmd := exec.Command(bash, "-c", "source /dev/stdin && "+run)
	cmd.Stdin = strings.NewReader(sourceable(t, script))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash %s: %v\n%s", run, err, out)
	}
	return string(out)
}

// TestNetworkNixLinks: the MAC-pinned example's nixplan-network.nix, as
// real bash writes it from kexec-install.sh, names the NIC with a systemd
// .link unit matched on the permanent MAC, and parses with nix-instantiate.
func TestNetworkNixLinks(t *testing.T) {
	nix := needTool(t, "nix-instantiate", "nix-bin")
	b := renderFile(t, "../examples/kimsufi-mirror.toml")
	out := bashFunction(t, string(b.File(plan.KexecInstallFile).Data), "PUBLIC_IFACE=eth1; network_nix 0c:c4:7a:aa:bb:01")
	for _, want := range []string{`systemd.network.links."10-wan0" = {`, `matchConfig.PermanentMACAddress = "0c:c4:7a:aa:bb:01";`, `linkConfig.Name = "wan0";`} {
		if !strings.Contains(out, want) {
			t.Errorf("nixplan-network.nix lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "extraRules") {
		t.Errorf("nixplan-network.nix still renames by a udev rule:\n%s", out)
	}
	file := filepath.Join(t.TempDir(), "nixplan-network.nix")
	os.WriteFile(file, []byte(out), 0o644)
	if out, err := exec.Command(nix, "--parse", file).CombinedOutput(); err != nil {
		t.Errorf("nix-instantiate --parse nixplan-network.nix: %v\n%s", err, out)
	}
	// A kernel name is not renamed at all.
	b = renderFile(t, "../examples/ovh-kimsufi.toml")
	if out := bashFunction(t, string(b.File(plan.KexecInstallFile).Data), "PUBLIC_IFACE=eth0; network_nix 0c:c4:7a:12:34:56"); strings.Contains(out, "links") {
		t.Errorf("an eth0 spec renames the NIC:\n%s", out)
	}
}

// TestHardwareConfigurationFitsRelease: the 22.11 generator's
// hardware.video.hidpi.enable, removed in 23.05, is dropped for a 24.05
// target and kept for a 22.11 one.
func TestHardwareConfigurationFitsRelease(t *testing.T) {
	hw := "{ lib, ... }:\n{\n  boot.initrd.availableKernelModules = [ \"ahci\" ];\n  hardware.video.hidpi.enable = lib.mkDefault true;\n}\n"
	for _, c := range []struct {
		release string
		kept    bool
	}{{"24.05", false}, {"22.11", true}} {
		b := renderFile(t, "../examples/ovh-kimsufi.toml")
		if c.release != "24.05" {
			_, b = renderText(t, "host.toml", exampleSpec(t, `nixos = "24.05"`, `nixos = "`+c.release+`"`))
		}
		file := filepath.Join(t.TempDir(), "hardware-configuration.nix")
		os.WriteFile(file, []byte(hw), 0o644)
		bashFunction(t, string(b.File(plan.KexecInstallFile).Data), "fit_hardware_configuration "+file)
		got, _ := os.ReadFile(file)
		if kept := strings.Contains(string(got), "hidpi"); kept != c.kept {
			t.Errorf("NixOS %s: hidpi kept %v, want %v:\n%s", c.release, kept, c.kept, got)
		}
		if !strings.Contains(string(got), `boot.initrd.availableKernelModules = [ "ahci" ];`) {
			t.Errorf("NixOS %s: other lines lost:\n%s", c.release, got)
		}
	}
}

// TestMultiDiskBootsNofail: every example with a boot filesystem on each
// disk makes each of them nofail; the md example starts a degraded array
// with the systemd stage 1.
func TestMultiDiskBootsNofail(t *testing.T) {
	nix := needTool(t, "nix-instantiate", "nix-bin")
	n := 0
	for _, spec := range examples(t) {
		s, err := plan.Load(spec)
		if err != nil {
			t.Fatal(err)
		}
		p, b := validateAndRender(t, s)
		config := string(b.File(plan.ConfigurationFile).Data)
		if len(p.Storage.Disks) > 1 && p.Storage.MirroredBoots {
			n++
			for _, boot := range p.Storage.Boots {
				want := `fileSystems."` + boot.Path + `".options = [ "nofail" "x-systemd.device-timeout=5s" ];`
				if !strings.Contains(config, want) {
					t.Errorf("%s: configuration.nix lacks %q", spec, want)
				}
			}
		} else if strings.Contains(config, "nofail") {
			t.Errorf("%s: one boot disk, yet nofail", spec)
		}
		// The systemd stage 1 for an md root and for the unlock over SSH.
		if sd := strings.Count(config, "boot.initrd.systemd.enable = true;"); sd != 0 != (p.Storage.Layout == "mdadm" || p.Encryption != nil) || sd > 1 {
			t.Errorf("%s: systemd stage 1 set %d times for layout %s (encrypted: %v)", spec, sd, p.Storage.Layout, p.Encryption != nil)
		}
		file := filepath.Join(t.TempDir(), "configuration.nix")
		os.WriteFile(file, []byte(config), 0o644)
		if out, err := exec.Command(nix, "--parse", file).CombinedOutput(); err != nil {
			t.Errorf("%s: nix-instantiate --parse: %v\n%s", spec, err, out)
		}
	}
	if n < 4 {
		t.Errorf("%d multi-disk examples, want the 4 with boot = \"all\"", n)
	}
}
