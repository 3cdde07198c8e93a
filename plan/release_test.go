package plan_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixplan/nixplan/plan"
)

// TestOpenSSHOptionsPerRelease renders the seed with NixOS 22.11 and 24.05:
// OpenSSH's options were renamed in 23.05, and each configuration must use
// its release's names and parse with the real nix-instantiate.
func TestOpenSSHOptionsPerRelease(t *testing.T) {
	nix := needNix(t)
	for _, c := range []struct {
		release   string
		want, not []string
	}{
		{"22.11", []string{"services.openssh.permitRootLogin = \"prohibit-password\";", "services.openssh.passwordAuthentication = false;"},
			[]string{"services.openssh.settings."}},
		{"24.05", []string{"services.openssh.settings.PermitRootLogin = \"prohibit-password\";", "services.openssh.settings.PasswordAuthentication = false;"},
			[]string{"services.openssh.permitRootLogin", "services.openssh.passwordAuthentication"}},
	} {
		_, b := renderText(t, "host.toml", exampleSpec(t, `nixos = "24.05"`, `nixos = "`+c.release+`"`))
		config := string(b.File(plan.ConfigurationFile).Data)
		for _, w := range c.want {
			if !strings.Contains(config, w) {
				t.Errorf("NixOS %s: configuration.nix lacks %q", c.release, w)
			}
		}
		for _, n := range c.not {
			if strings.Contains(config, n) {
				t.Errorf("NixOS %s: configuration.nix has %q", c.release, n)
			}
		}
		if !strings.Contains(config, `system.stateVersion = "`+c.release+`";`) {
			t.Errorf("NixOS %s: stateVersion is not the release first installed", c.release)
		}
		file := filepath.Join(t.TempDir(), "configuration.nix")
		os.WriteFile(file, []byte(config), 0o644)
		if out, err := exec.Command(nix, "--parse", file).CombinedOutput(); err != nil {
			t.Errorf("NixOS %s: nix-instantiate --parse: %v\n%s", c.release, err, out)
		}
	}
}

// TestFlakeNeedsNixWithFlakes: an image whose Nix predates flakes cannot
// lock or install one; the images in the table can.
func TestFlakeNeedsNixWithFlakes(t *testing.T) {
	if (plan.Image{Tag: "old", Nix: "2.3"}).CanFlake() {
		t.Error("Nix 2.3 can flake")
	}
	for _, tag := range []string{"nixos-22.11", "nixos-24.05"} {
		img, ok := plan.LookupImage(tag)
		if !ok || !img.CanFlake() {
			t.Errorf("%s cannot flake", tag)
		}
	}
}

// TestFlakeBundle: the flake example's bundle carries flake.nix, embedded in
// kexec-install.sh byte for byte, and installs with nixos-install --flake.
func TestFlakeBundle(t *testing.T) {
	b := renderFile(t, "../examples/hetzner-flake.toml")
	flake := b.File(plan.FlakeFile)
	if flake == nil {
		t.Fatal("no flake.nix in the bundle")
	}
	if !strings.Contains(string(flake.Data), `inputs.nixpkgs.url = "github:NixOS/nixpkgs/5e4fbfb6b3de1aa2872b76d49fafc942626e2add";`) {
		t.Errorf("flake.nix does not pin nixpkgs:\n%s", flake.Data)
	}
	script := string(b.File(plan.KexecInstallFile).Data)
	for _, want := range []string{`nixos-install --root /mnt --no-root-passwd --no-channel-copy --flake "/mnt/etc/nixos#$HOST_NAME"`,
		"flake lock /mnt/etc/nixos", "<<'" + plan.FlakeHeredocDelimiter + "'"} {
		if !strings.Contains(script, want) {
			t.Errorf("kexec-install.sh lacks %q", want)
		}
	}
	if strings.Contains(script, "nix-channel --add") {
		t.Error("a flake install adds a channel")
	}
}
