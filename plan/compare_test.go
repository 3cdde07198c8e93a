package plan_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nixplan/nixplan/plan"
	"github.com/nixplan/nixplan/plan/machine"
	"github.com/nixplan/nixplan/plan/simulate"
)

// TestSimulateMatchesBash runs the same scripts on the same machine
// descriptions twice, in simulate's interpreter and under real bash with the
// recording harness, and compares the commands that change the machine and
// where each run stopped: simulate must not drift from what bash does.
func TestSimulateMatchesBash(t *testing.T) {
	type tc struct {
		name    string
		spec    string // TOML text
		file    string // or a spec file, which may name modules or a flake
		machine string // fixture in testdata/machines; "" for the healthy machine the spec describes
		edit    func(m *machine.Machine)
		offline bool
	}
	seedSpec := exampleSpec(t)
	cases := []tc{
		{name: "seed on ovh-seed", spec: seedSpec, machine: "ovh-seed"},
		{name: "seed offline", spec: seedSpec, machine: "ovh-seed", offline: true},
		{name: "seed on kimsufi-raid1", spec: seedSpec, machine: "kimsufi-raid1"},
		{name: "cleared on kimsufi-raid1", spec: exampleSpec(t, `pool = "rpool"`, "pool = \"rpool\"\nclear_existing = true"), machine: "kimsufi-raid1"},
		// The 24.05 installer has no mdadm and assembles no array.
		{name: "24.05 cleared on kimsufi-raid1", spec: exampleSpec(t, "download/nixos-22.11/", "download/nixos-24.05/", `pool = "rpool"`, "pool = \"rpool\"\nclear_existing = true"), machine: "kimsufi-raid1"},
		{name: "seed on two-nic", spec: seedSpec, machine: "two-nic"},
		{name: "pinned on two-nic", spec: exampleSpec(t, `interface = "eth0"`, "interface = \"public\"\nmac = \"0c:c4:7a:ee:ff:11\""), machine: "two-nic"},
		{name: "seed on big-3tb", spec: seedSpec, machine: "big-3tb"},
		{name: "gpt on big-3tb", spec: exampleSpec(t, `label = "msdos"`, `label = "gpt"`), machine: "big-3tb"},
		{name: "seed on small-vps", spec: seedSpec, machine: "small-vps"},
		{name: "seed on hetzner-uefi", spec: seedSpec, machine: "hetzner-uefi"},
		// A pool named like the spec's that this install did not make: the
		// rescue system cannot tell without zpool, the installer stops.
		{name: "seed with a foreign rpool", spec: seedSpec, machine: "ovh-seed", edit: withPool("rpool")},
		{name: "seed with swap", spec: exampleSpec(t, `boot_size = "511MiB"`, "boot_size = \"511MiB\"\nswap_size = \"4GiB\""), machine: "ovh-seed"},
		{name: "one disk under two names", machine: "ovh-seed",
			spec: exampleSpec(t, `devices = ["/dev/sda"]`, `devices = ["/dev/sda", "/dev/disk/by-id/wwn-0x5000cca22cc2a1b2"]`+"\ntopology = \"mirror\"")},
	}
	for _, file := range examples(t) {
		cases = append(cases, tc{name: "example " + filepath.Base(file), file: file})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p *plan.Plan
			var b *plan.Bundle
			if c.file != "" {
				p, b = validateAndRender(t, loadSpec(t, c.file))
			} else {
				p, b = renderText(t, "host.toml", c.spec)
			}
			m := simulate.HealthyMachine(p)
			if c.machine != "" {
				m = loadFixture(t, c.machine)
			}
			if c.edit != nil {
				c.edit(m)
			}
			faults := simulate.Faults{Offline: c.offline}
			sim, err := simulate.Run(p, b, simulate.Options{Machine: m, Faults: faults})
			if err != nil {
				t.Fatalf("simulate: %v", err)
			}

			// rescue-bootstrap.sh under bash, downloading like the simulation.
			h := bundleHarness(t, p, b, m)
			hash := h.downloadTarball()
			var args []string
			if p.Kexec.SHA256 == "" {
				args = []string{"--accept-hash", hash}
			}
			rescue := h.run(plan.RescueBootstrapFile, "", args...)
			compareRun(t, plan.RescueBootstrapFile, sim.Scripts[0], rescue)
			if len(sim.Scripts) < 2 {
				if rescue.code == 0 {
					t.Errorf("simulate stopped in %s but bash went on", plan.RescueBootstrapFile)
				}
				return
			}

			// kexec-install.sh under bash on the installer the kexec boots:
			// the run in the foreground and the one it detaches, whose
			// commands the harness records after the first's.
			h = bundleHarness(t, p, b, simulate.InstallerMachine(m, p))
			h.state.Fake.Faults = faults
			install := h.run(plan.KexecInstallFile, simulate.OperatorInput(p))
			compareRun(t, plan.KexecInstallFile, joinRuns(sim.Scripts[1:]), install)
		})
	}
}

// joinRuns makes one run of a foreground run and the runs it detached: their
// commands in order, the exit status and message of the last.
func joinRuns(runs []simulate.ScriptRun) simulate.ScriptRun {
	joined := runs[len(runs)-1]
	joined.Phases = nil
	for _, r := range runs {
		joined.Phases = append(joined.Phases, r.Phases...)
	}
	return joined
}

func compareRun(t *testing.T, script string, sim simulate.ScriptRun, bash result) {
	t.Helper()
	want := sim.MachineCommands()
	// A finished install changes the machine many times: the comparison must
	// not pass on two empty lists.
	if script == plan.KexecInstallFile && sim.ExitStatus == 0 && len(want) < 10 {
		t.Errorf("%s: simulate recorded only %d commands for a finished install", script, len(want))
	}
	t.Logf("%s: %d commands, exit %d", script, len(want), sim.ExitStatus)
	if diff := cmp.Diff(want, bash.recorded); diff != "" {
		t.Errorf("%s: commands that change the machine differ (-simulate +bash):\n%s\nbash output:\n%s", script, diff, bash.output())
	}
	if (sim.ExitStatus == 0) != (bash.code == 0) {
		t.Errorf("%s: simulate exits %d (%s), bash %d:\n%s", script, sim.ExitStatus, sim.Message, bash.code, bash.output())
	}
	if sim.ExitStatus != 0 && sim.Message != "" && !strings.Contains(bash.output(), sim.Message) {
		t.Errorf("%s: bash does not stop with simulate's message %q:\n%s", script, sim.Message, bash.output())
	}
}
