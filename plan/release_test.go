package plan_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nixplan/nixplan/plan"
)

// TestOpenSSHOptionsPerRelease renders the seed with NixOS 22.11 and 24.05:
// OpenSSH's options were renamed in 23.05, and each configuration must use
// its release's names and parse with the real nix-instantiate.
func TestOpenSSHOptionsPerRelease(t *testing.T) {
	nix := needTool(t, "nix-instantiate", "nix-bin")
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
	if (plan.Image{Tag: "old", Nix: plan.Bounds{Min: "2.3", Max: "2.3"}}).CanFlake() {
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

// TestImageTable: what the table says of the images matches what their
// sources say (see plan/capability.go), and check applies its policy.
func TestImageTable(t *testing.T) {
	for _, c := range []struct {
		name   string
		edits  []string
		errors []string // keys of the errors
	}{
		// mkswap is util-linux, in every NixOS system.
		{name: "swap with 24.05", edits: []string{"download/nixos-22.11/", "download/nixos-24.05/", `pool = "rpool"`, "pool = \"rpool\"\nswap_size = \"4GiB\""}},
		{name: "swap with 22.11", edits: []string{`pool = "rpool"`, "pool = \"rpool\"\nswap_size = \"4GiB\""}},
		// Neither asset restores an on-link default route after the kexec.
		{name: "on-link with 22.11", edits: []string{`gateway = "203.0.113.254"`, "gateway = \"198.51.100.1\"\ngateway_on_link = true"},
			errors: []string{"network.ipv4.gateway_on_link"}},
		{name: "on-link with 24.05", edits: []string{"download/nixos-22.11/", "download/nixos-24.05/", `gateway = "203.0.113.254"`, "gateway = \"198.51.100.1\"\ngateway_on_link = true"},
			errors: []string{"network.ipv4.gateway_on_link"}},
		{name: "on-link with 25.05", edits: []string{"download/nixos-22.11/", "download/nixos-25.05/", `gateway = "203.0.113.254"`, "gateway = \"198.51.100.1\"\ngateway_on_link = true"}},
		// An image outside the table: unknown is not yes.
		{name: "on-link with an unknown image", edits: []string{"download/nixos-22.11/", "download/nixos-99.11/", `gateway = "203.0.113.254"`, "gateway = \"198.51.100.1\"\ngateway_on_link = true"},
			errors: []string{"network.ipv4.gateway_on_link"}},
		// 25.11 needs Nix 2.18, which the 22.11 image does not have.
		{name: "25.11 with 22.11", edits: []string{`nixos = "24.05"`, `nixos = "25.11"`}, errors: []string{"host.nixos"}},
		{name: "25.11 with 24.05", edits: []string{"download/nixos-22.11/", "download/nixos-24.05/", `nixos = "24.05"`, `nixos = "25.11"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec, err := plan.Parse("host.toml", []byte(exampleSpec(t, c.edits...)))
			if err != nil {
				t.Fatal(err)
			}
			_, ps := plan.Validate(spec)
			var got []string
			for _, p := range ps.Errors() {
				got = append(got, p.Key)
			}
			if strings.Join(got, ",") != strings.Join(c.errors, ",") {
				t.Errorf("errors %v, want %v:\n%v", got, c.errors, ps)
			}
		})
	}
	img, _ := plan.LookupImage("nixos-24.05")
	if slices.Contains(img.Tools, "mdadm") || !slices.Contains(img.Tools, "mkswap") {
		t.Errorf("nixos-24.05 tools %v: no mdadm (stateVersion >= 23.11), mkswap from util-linux", img.Tools)
	}
	if img.Nix.Known() || img.ZFS.Known() {
		t.Errorf("nixos-24.05 was last built from 24.05 or 24.11: Nix %s and ZFS %s cannot be known exactly", img.Nix, img.ZFS)
	}
}
