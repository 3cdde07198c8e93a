package plan_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/nixplan/nixplan/plan"
	"github.com/nixplan/nixplan/plan/simulate"
)

// with2405 is the seed's spec with the nixos-24.05 image.
func with2405(t *testing.T, edits ...string) string {
	return exampleSpec(t, append([]string{"download/nixos-22.11/", "download/nixos-24.05/"}, edits...)...)
}

// TestKexecInstallProbesInstaller: an installer whose Nix or ZFS is not what
// the capability table says of the image, or cannot serve the pool's
// compatibility, stops in preflight before any command that changes the
// machine.
func TestKexecInstallProbesInstaller(t *testing.T) {
	for _, c := range []struct {
		name     string
		spec     string
		versions map[string]string
		message  string
	}{
		{name: "24.05 image with an old Nix", spec: with2405(t), versions: map[string]string{"nix": "2.11.1", "zfs": "2.2.6"},
			message: "this installer has Nix 2.11.1, but nixplan's table says the nixos-24.05 image ships Nix 2.18 to 2.24"},
		{name: "24.05 image with ZFS 2.1", spec: with2405(t), versions: map[string]string{"nix": "2.18.5", "zfs": "2.1.14"},
			message: "this installer has ZFS 2.1.14, but nixplan's table says the nixos-24.05 image ships ZFS 2.2 to 2.3"},
		{name: "24.05 image with ZFS 2.4", spec: with2405(t), versions: map[string]string{"nix": "2.24.10", "zfs": "2.4.0"},
			message: "this installer has ZFS 2.4.0, but nixplan's table says the nixos-24.05 image ships ZFS 2.2 to 2.3"},
		// The 22.11 image makes the pool without compatibility=, so a newer
		// ZFS there could make a pool 24.05 cannot import.
		{name: "22.11 image with ZFS 2.3", spec: exampleSpec(t), versions: map[string]string{"nix": "2.11.1", "zfs": "2.3.0"},
			message: "this installer has ZFS 2.3.0, but nixplan's table says the nixos-22.11 image ships ZFS 2.1"},
		{name: "unreadable Nix version", spec: exampleSpec(t), versions: map[string]string{"nix": "unknown", "zfs": "2.1.14"},
			message: "cannot read the Nix version from 'nix (Nix) unknown'"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := installerHarness(t, c.spec, nil)
			h.state.Fake.Versions = c.versions
			expectStop(t, h.run(plan.KexecInstallFile, "blog-demo\n"), c.message)
		})
	}
	// The versions the table allows pass, and the run says what it found.
	h := installerHarness(t, with2405(t), nil)
	h.state.Fake.Versions = map[string]string{"nix": "2.24.10", "zfs": "2.3.0"}
	r := h.run(plan.KexecInstallFile, "", "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "this installer has Nix 2.24.10") || !strings.Contains(r.stdout, "this installer has ZFS 2.3.0") {
		t.Errorf("exit %d, want the versions found:\n%s", r.code, r.output())
	}
}

// TestClearMDWithoutMdadm: the 24.05 image has no mdadm, so it assembles no
// array; with clear_existing the md members of the provider's RAID1 are
// cleared by wipefs, under bash and in simulate alike.
func TestClearMDWithoutMdadm(t *testing.T) {
	spec := with2405(t, `pool = "rpool"`, "pool = \"rpool\"\nclear_existing = true")
	p, _ := renderText(t, "host.toml", spec)
	m := simulate.InstallerMachine(loadFixture(t, "kimsufi-raid1"), p)
	if m.Tools["mdadm"] || len(m.MDArrays) > 0 {
		t.Fatalf("the 24.05 installer has mdadm %v and arrays %v", m.Tools["mdadm"], m.MDArrays)
	}
	h := newHarness(t, spec, m)
	r := h.run(plan.KexecInstallFile, "blog-demo\n")
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.output())
	}
	parted := r.firstIndex("parted")
	for _, want := range []string{"wipefs --all /dev/sda1", "wipefs --all /dev/sda2", "wipefs --all /dev/sda"} {
		if i := r.firstIndex(want); i < 0 || i > parted {
			t.Errorf("%q at %d, want before the first parted at %d:\n%s", want, i, parted, strings.Join(r.commands(), "\n"))
		}
	}
	if i := r.firstIndex("mdadm"); i >= 0 {
		t.Errorf("ran %q on an installer without mdadm", r.commands()[i])
	}
	if !strings.Contains(r.stdout, "no mdadm here: wipefs clears the md superblock of /dev/sda1") {
		t.Errorf("the run does not say how it clears the members:\n%s", r.stdout)
	}
	// simulate shows the same.
	_, b := renderText(t, "host.toml", spec)
	sim, err := simulate.Run(p, b, simulate.Options{Machine: loadFixture(t, "kimsufi-raid1")})
	if err != nil {
		t.Fatal(err)
	}
	if sim.ExitStatus != 0 {
		t.Fatalf("simulate stops: %s", sim.Message)
	}
	var partition []string
	// The partition phase runs in the install that the foreground run detached.
	for _, ph := range sim.Scripts[len(sim.Scripts)-1].Phases {
		if ph.Name == "partition" {
			for _, st := range ph.Steps {
				partition = append(partition, st.Command)
			}
		}
	}
	if !slices.Contains(partition, "wipefs --all /dev/sda1") || slices.ContainsFunc(partition, func(c string) bool { return strings.HasPrefix(c, "mdadm") }) {
		t.Errorf("simulate's partition phase:\n%s", strings.Join(partition, "\n"))
	}
}
