package plan_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nixplan/nixplan/plan"
)

// onLinkSpec is the seed's host with a /32 and its gateway reached on-link,
// on the nixos-25.05 image, which restores such a route.
func onLinkSpec(t *testing.T, edits ...string) string {
	return exampleSpec(t, append([]string{"download/nixos-22.11/", "download/nixos-25.05/", "prefix = 24", "prefix = 32\ngateway_on_link = true"}, edits...)...)
}

// TestRescueBootstrapReadsImage: rescue-bootstrap.sh reads kexec/run of
// the verified tarball and stops before running it when the image
// contradicts what the spec depends on; a faithful tarball proceeds.
func TestRescueBootstrapReadsImage(t *testing.T) {
	const ecdsa = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV0U2w5WvFC5gjWCE+Cu4= ops@laptop"
	ecdsaOnly := func(t *testing.T) string {
		return onLinkSpec(t, "prefix = 32\ngateway_on_link = true", "prefix = 24",
			`"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHeVFQr7aj20GWUgd2JVHzu4yywDf+VA4xTtVkmOS+Rt operator@laptop"`, `"`+ecdsa+`"`)
	}
	for _, c := range []struct {
		name    string
		spec    string
		run     func(first string) string
		message string // empty: the run proceeds to kexec/run
	}{
		{name: "faithful 25.05 tarball, on-link gateway", spec: onLinkSpec(t)},
		{name: "route restorer without on-link support", spec: onLinkSpec(t),
			run: func(first string) string {
				return plan.StandInKexecRun(first, "nixos-installer", "24.11.20241202.f13a1a1", plan.KeyRuleAll, true)
			},
			message: "the image was built from nixpkgs of 20241202, before nixos-images b62eb6e (2025-01-21) made the installer restore on-link gateways"},
		{name: "no nixpkgs date in the init path", spec: onLinkSpec(t),
			run: func(first string) string {
				return strings.Replace(plan.StandInKexecRun(first, "nixos-installer", "25.05.20250606.70c74b0", plan.KeyRuleAll, true), "25.05.20250606.70c74b0", "custom", 1)
			},
			message: "kexec/run's init path names no nixpkgs date"},
		{name: "ssh-* keys only, ecdsa-only spec", spec: ecdsaOnly(t),
			run: func(first string) string {
				return plan.StandInKexecRun(first, "nixos", "22.11.20230607.51d9b86", plan.KeyRuleSSH, false)
			},
			message: "kexec/run copies only ssh-* keys into the installer and the spec has none: you would be locked out after the kexec"},
		{name: "faithful 25.05 tarball, ecdsa-only spec", spec: ecdsaOnly(t)},
		{name: "an unknown key rule", spec: onLinkSpec(t),
			run:     func(first string) string { return "#!/bin/sh\n" + first + "\ncp /root/.ssh/authorized_keys ssh/\n" },
			message: "kexec/run copies login keys by a rule nixplan does not know"},
		{name: "extra flags ignored", spec: onLinkSpec(t, `[kexec]`, "[kexec]\nextra_flags = \"--kexec-syscall-auto\""),
			run: func(first string) string {
				return plan.StandInKexecRun(first, "nixos-installer", "25.05.20250606.70c74b0", plan.KeyRuleAll, false)
			},
			message: "kexec/run does not parse --kexec-extra-flags"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, c.spec, seed(t, nil))
			h.kexecRun = c.run
			hash := h.withTarball()
			r := h.run(plan.RescueBootstrapFile, "", "--accept-hash", hash)
			if c.message != "" {
				expectStop(t, r, c.message)
				return
			}
			if r.code != 0 {
				t.Fatalf("exit %d:\n%s", r.code, r.output())
			}
			if got := r.commands(); len(got) != 1 || got[0] != "/root/kexec/run" {
				t.Errorf("recorded %q, want only /root/kexec/run", got)
			}
			if !strings.Contains(r.stdout, "kexec/run: NixOS 25.05, nixpkgs of 20250606; copies ssh-*, ecdsa-sha2-*, sk-* keys") {
				t.Errorf("the run does not say what kexec/run shows:\n%s", r.stdout)
			}
		})
	}
}

// TestShipTarballReadsImage: render --kexec-tarball reads the same facts on
// the laptop and refuses a tarball that contradicts the spec, or that lacks
// the kexec tarball's layout.
func TestShipTarballReadsImage(t *testing.T) {
	h := newHarness(t, onLinkSpec(t), seed(t, nil))
	h.kexecRun = func(first string) string {
		return plan.StandInKexecRun(first, "nixos-installer", "24.11.20241202.f13a1a1", plan.KeyRuleAll, true)
	}
	h.downloadTarball()
	_, err := plan.ShipTarball(h.plan, filepath.Join(h.dir, "download.tar.gz"))
	if err == nil || !strings.Contains(err.Error(), "before nixos-images b62eb6e (2025-01-21) made the installer restore on-link gateways") {
		t.Errorf("a 24.11-era tarball for an on-link spec: %v", err)
	}
	h.kexecRun = nil
	h.downloadTarball()
	if _, err := plan.ShipTarball(h.plan, filepath.Join(h.dir, "download.tar.gz")); err != nil {
		t.Errorf("a faithful tarball is refused: %v", err)
	}
	os.Remove(filepath.Join(h.dir, "tarball-src/kexec/initrd"))
	partial := filepath.Join(h.dir, "partial.tar.gz")
	if out, err := exec.Command("tar", "-C", filepath.Join(h.dir, "tarball-src"), "-czf", partial, "kexec").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	if _, err := plan.ShipTarball(h.plan, partial); err == nil || !strings.Contains(err.Error(), "it has no kexec/initrd") {
		t.Errorf("a tarball without kexec/initrd: %v", err)
	}
}
