package simulate_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nixplan/nixplan/plan"
	"github.com/nixplan/nixplan/plan/machine"
	"github.com/nixplan/nixplan/plan/simulate"
)

// simulateSpec validates and renders spec text and simulates it against a
// machine description (nil for the healthy machine the spec describes).
func simulateSpec(t *testing.T, name string, text []byte, machineName string, faults simulate.Faults) *simulate.Simulation {
	t.Helper()
	p, b := renderText(t, name, string(text))
	opts := simulate.Options{Faults: faults}
	if machineName != "" {
		m, err := machine.Load("../../testdata/machines/" + machineName + ".json")
		if err != nil {
			t.Fatal(err)
		}
		opts.Machine = m
	}
	sim, err := simulate.Run(p, b, opts)
	if err != nil {
		t.Fatalf("simulate %s on %s: %v", name, machineName, err)
	}
	return sim
}

func readExample(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile("../../examples/" + name + ".toml")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// edit replaces text in a spec and fails if the text is not there, so a
// changed example cannot make a case test something else silently.
func edit(t *testing.T, spec []byte, pairs ...string) []byte {
	t.Helper()
	s := string(spec)
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("the example has no %q to replace", pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return []byte(s)
}

// TestSimulateGolden compares every example's simulation on its healthy
// machine with testdata/simulate/NAME.txt and NAME.json, so a template change
// shows up in review as a change of commands. `go test ./... -update`
// rewrites them.
func TestSimulateGolden(t *testing.T) {
	for _, spec := range examples(t) {
		name := exampleName(spec)
		t.Run(name, func(t *testing.T) {
			// Loaded from its file: an example may name modules or a flake.
			p, b := renderFile(t, spec)
			sim, err := simulate.Run(p, b, simulate.Options{})
			if err != nil {
				t.Fatalf("simulate %s: %v", name, err)
			}
			if sim.ExitStatus != 0 {
				t.Errorf("the healthy machine of %s stops: %s", name, sim.Message)
			}
			var text bytes.Buffer
			if err := sim.Transcript(&text); err != nil {
				t.Fatal(err)
			}
			js, err := json.MarshalIndent(sim, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			js = append(js, '\n')
			for _, g := range []struct {
				file string
				got  []byte
			}{{name + ".txt", text.Bytes()}, {name + ".json", js}} {
				file := filepath.Join("..", "..", "testdata", "simulate", g.file)
				if *update {
					if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(file, g.got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(file)
				if err != nil {
					t.Fatalf("%v (run go test ./... -update to create the golden files)", err)
				}
				if diff := cmp.Diff(string(want), string(g.got)); diff != "" {
					t.Errorf("%s differs from the golden file (-golden +simulated):\n%s", g.file, diff)
				}
			}
		})
	}
}

// TestSimulateDeterministic: the same simulation twice gives the same bytes,
// although pipelines run concurrently.
func TestSimulateDeterministic(t *testing.T) {
	var first []byte
	for i := range 5 {
		sim := simulateSpec(t, "ovh-kimsufi.toml", readExample(t, "ovh-kimsufi"), "ovh-seed", simulate.Faults{})
		js, err := json.Marshal(sim)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = js
		} else if !bytes.Equal(first, js) {
			t.Fatalf("run %d differs from the first:\n%s", i, cmp.Diff(string(first), string(js)))
		}
	}
}

// TestSimulateSharesABundle: simulations of one bundle at once share its
// bytes and the parsed trees Check kept, and each gives what one alone gives
// (run with -race, they also show that nothing they share is written).
func TestSimulateSharesABundle(t *testing.T) {
	p, b := renderText(t, "ovh-kimsufi.toml", string(readExample(t, "ovh-kimsufi")))
	simulate := func() ([]byte, error) {
		sim, err := simulate.Run(p, b, simulate.Options{})
		if err != nil {
			return nil, err
		}
		return json.Marshal(sim)
	}
	alone, err := simulate()
	if err != nil {
		t.Fatal(err)
	}
	results := make([][]byte, 4)
	errs := make([]error, len(results))
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() { results[i], errs[i] = simulate() })
	}
	wg.Wait()
	for i, js := range results {
		if errs[i] != nil {
			t.Fatalf("simulation %d: %v", i, errs[i])
		}
		if !bytes.Equal(alone, js) {
			t.Fatalf("simulation %d differs from one alone:\n%s", i, cmp.Diff(string(alone), string(js)))
		}
	}
}

// TestSimulateSeedSequence: on the seed's machine, the commands that change
// it come in the seed's order (seed/installing-nixos-on-ovh.md), with the
// checks and clean-up nixplan adds around them.
func TestSimulateSeedSequence(t *testing.T) {
	sim := simulateSpec(t, "ovh-kimsufi.toml", readExample(t, "ovh-kimsufi"), "ovh-seed", simulate.Faults{})
	if sim.ExitStatus != 0 {
		t.Fatalf("the seed's machine stops: %s", sim.Message)
	}
	seed := [][]string{
		{"curl", "--fail"},
		{"/root/kexec/run"},
		// The seed adds the channel after nixos-generate-config; nixplan
		// fetches it before the erase, to evaluate the system first.
		{"nix-channel", "--add", "https://nixos.org/channels/nixos-24.05", "nixos"},
		{"nix-channel", "--update"},
		{"nix-instantiate", "<nixpkgs/nixos>", "-A", "system"},
		{"parted", "--script", "/dev/sda", "--", "mklabel", "msdos"},
		{"parted", "--script", "/dev/sda", "--", "mkpart", "primary", "1MiB", "512MiB"},
		{"parted", "--script", "/dev/sda", "--", "mkpart", "primary", "512MiB", "100%"},
		{"mkfs.ext4", "-F", "-L", "boot", "/dev/sda1"},
		{"zpool", "create"},
		{"zfs", "create", "-o", "mountpoint=legacy", "rpool/root"},
		{"zfs", "create", "-o", "mountpoint=legacy", "rpool/root/nixos"},
		{"zfs", "create", "-o", "mountpoint=legacy", "rpool/home"},
		{"mount", "-t", "zfs", "rpool/root/nixos", "/mnt"},
		{"mount", "-t", "ext4", "/dev/sda1", "/mnt/boot"},
		{"mount", "-t", "zfs", "rpool/home", "/mnt/home"},
		{"nixos-generate-config", "--root", "/mnt"},
		{"nixos-install", "--root", "/mnt"},
		{"umount", "-R", "/mnt"},
		{"zpool", "export", "rpool"},
	}
	cmds := sim.MachineCommands()
	i := 0
	for _, c := range cmds {
		if i < len(seed) && len(c) >= len(seed[i]) && slices.Equal(c[:len(seed[i])], seed[i]) {
			i++
		}
	}
	if i < len(seed) {
		var got []string
		for _, c := range cmds {
			got = append(got, strings.Join(c, " "))
		}
		t.Errorf("the seed's step %q is missing or out of order; the commands:\n%s", seed[i], strings.Join(got, "\n"))
	}
}

// harmlessInRescue are the commands rescue-bootstrap.sh may run that change
// the machine without touching a disk: the rescue system runs from memory,
// and these install a package, download the tarball, or start the installer.
// Everything else that simulate.ChangesMachine lists, and everything kexec-install.sh
// runs through it before its partition phase (that is, before the operator
// typed the host name), counts as destructive here.
var harmlessInRescue = []string{"apt-get", "curl", "wget", "run", "kexec"}

// checkNothingDestructiveEarly checks principle 1 of DESIGN.md on a simulation:
// nothing destructive before every check that could stop it.
func checkNothingDestructiveEarly(t *testing.T, sim *simulate.Simulation) {
	t.Helper()
	for _, r := range sim.Scripts {
		consented := false
		for _, ph := range r.Phases {
			if r.Script == plan.KexecInstallFile && ph.Name != "" && ph.Name != "preflight" {
				consented = true
			}
			for _, st := range ph.Steps {
				if st.OutsideRun {
					t.Errorf("%s:%d: %s changes the machine without going through run", r.Script, st.Line, st.Command)
				}
				if !st.ChangesMachine {
					continue
				}
				switch {
				case r.Script == plan.RescueBootstrapFile && !slices.Contains(harmlessInRescue, path.Base(st.Argv[0])):
					t.Errorf("%s:%d: %s in the rescue system", r.Script, st.Line, st.Command)
				case r.Script == plan.KexecInstallFile && !consented && !simulate.PreErase(st.Argv):
					t.Errorf("%s:%d: %s before the operator consented", r.Script, st.Line, st.Command)
				}
			}
		}
	}
}

// TestSimulateMachines runs every machine in testdata/machines against the
// example spec and against specs adjusted to it, and checks how and where
// each run ends, and that nothing destructive comes before the stop.
func TestSimulateMachines(t *testing.T) {
	example := readExample(t, "ovh-kimsufi")
	kimsufiCleared := edit(t, example, `devices = ["/dev/sda"]`, `devices = ["/dev/sda"]`+"\nclear_existing = true")
	cases := []struct {
		name    string
		machine string
		spec    []byte
		faults  simulate.Faults
		// where the run must stop: "" when both scripts finish.
		script, phase string
		message       string
	}{
		{name: "seed", machine: "ovh-seed", spec: example},
		{name: "seed offline", machine: "ovh-seed", spec: example, faults: simulate.Faults{Offline: true},
			script: plan.KexecInstallFile, phase: "preflight", message: "cannot reach https://nixos.org/channels/nixos-24.05; nixos-install would fail after the erase"},
		{name: "hetzner, wrong server", machine: "hetzner-uefi", spec: example,
			script: plan.RescueBootstrapFile, phase: "preflight", message: "no interface of this machine has 203.0.113.10"},
		{name: "hetzner, BIOS spec", machine: "hetzner-uefi",
			spec: edit(t, example, `address = "203.0.113.10"`, `address = "198.51.100.70"`, `prefix = 24`, `prefix = 26`,
				`gateway = "203.0.113.254"`, `gateway = "198.51.100.65"`, `interface = "eth0"`, `interface = "enp7s0"`, `"/dev/sda"`, `"/dev/nvme0n1"`),
			script: plan.RescueBootstrapFile, phase: "preflight", message: "this machine booted UEFI, but the spec installs a legacy BIOS boot loader"},
		{name: "kimsufi RAID1", machine: "kimsufi-raid1", spec: example,
			script: plan.RescueBootstrapFile, phase: "preflight", message: "/dev/sda holds RAID, LVM or ZFS members"},
		{name: "kimsufi RAID1 cleared", machine: "kimsufi-raid1", spec: kimsufiCleared},
		{name: "small VPS, wrong server", machine: "small-vps", spec: example,
			script: plan.RescueBootstrapFile, phase: "preflight", message: "no interface of this machine has 203.0.113.10"},
		{name: "small VPS without cpio", machine: "small-vps",
			spec: edit(t, example, `address = "203.0.113.10"`, `address = "192.0.2.20"`, `gateway = "203.0.113.254"`, `gateway = "192.0.2.1"`,
				`interface = "eth0"`, `interface = "ens3"`, `"/dev/sda"`, `"/dev/vda"`, "download/nixos-22.11/", "download/nixos-24.05/"),
			script: plan.RescueBootstrapFile, phase: "preflight", message: "cpio is missing; kexec/run needs it"},
		{name: "two NICs, wrong MAC pinned", machine: "two-nic",
			spec:   edit(t, example, `interface = "eth0"`, `interface = "public"`+"\n"+`mac = "0c:c4:7a:ee:ff:10"`),
			script: plan.RescueBootstrapFile, phase: "preflight", message: "203.0.113.10 is on eth1 with MAC '0c:c4:7a:ee:ff:11', but the spec pins 0c:c4:7a:ee:ff:10"},
		{name: "two NICs, pinned", machine: "two-nic",
			spec: edit(t, example, `interface = "eth0"`, `interface = "public"`+"\n"+`mac = "0c:c4:7a:ee:ff:11"`)},
		// eth0 is whichever NIC probes first: with two, an unpinned eth0 is
		// refused in the installer, before anything is erased.
		{name: "two NICs, unpinned", machine: "two-nic", spec: example,
			script: plan.KexecInstallFile, phase: "", message: "203.0.113.10 is on eth1 and this machine has 2 NICs: eth0 may not be the NIC with the address"},
		{name: "3 TB disk, gpt", machine: "big-3tb", spec: edit(t, example, `label = "msdos"`, `label = "gpt"`)},
		// An msdos label cannot hold a 3 TB disk: stopped before the kexec.
		{name: "3 TB disk, msdos", machine: "big-3tb", spec: example,
			script: plan.RescueBootstrapFile, phase: "preflight", message: "/dev/sda is larger than 2 TiB, which an msdos partition table cannot address"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sim := simulateSpec(t, "ovh-kimsufi.toml", c.spec, c.machine, c.faults)
			if c.script == "" {
				if sim.ExitStatus != 0 {
					t.Fatalf("stopped with exit status %d: %s", sim.ExitStatus, sim.Message)
				}
				// rescue-bootstrap.sh, kexec-install.sh in the foreground, and
				// the kexec-install.sh it detached.
				if got := len(sim.Scripts); got != 3 || !sim.Scripts[2].Detached {
					t.Fatalf("%d scripts ran, want 3, the last detached", got)
				}
				if got := sim.Scripts[2].StoppedIn(); got != "finish" {
					t.Errorf("kexec-install.sh ended in %q, want finish", got)
				}
				checkNothingDestructiveEarly(t, sim)
				return
			}
			last := sim.Scripts[len(sim.Scripts)-1]
			if sim.ExitStatus == 0 || last.Script != c.script || last.StoppedIn() != c.phase {
				t.Fatalf("ended in %s %s with exit status %d (%s); want a stop in %s %s",
					last.Script, last.StoppedIn(), sim.ExitStatus, sim.Message, c.script, c.phase)
			}
			if !strings.Contains(sim.Message, c.message) {
				t.Errorf("message %q does not say %q", sim.Message, c.message)
			}
			checkNothingDestructiveEarly(t, sim)
			if c.script == plan.RescueBootstrapFile {
				// A stop in the rescue system's preflight changed nothing at
				// all, but for the run's lock in /run (memory).
				for _, ph := range last.Phases {
					for _, st := range ph.Steps {
						if st.Wrote == nil || !strings.HasPrefix(st.Wrote.Path, "/run/nixplan/") {
							t.Errorf("rescue-bootstrap.sh ran %+v before it stopped", st)
						}
					}
				}
			} else if cmds := last.MachineCommands(); len(cmds) > 0 {
				t.Errorf("kexec-install.sh changed the machine before it stopped: %q", cmds)
			}
		})
	}
}

// TestSimulateClearsRAID: with clear_existing, the md arrays are stopped and
// their members cleared in the partition phase, after the consent.
func TestSimulateClearsRAID(t *testing.T) {
	spec := edit(t, readExample(t, "ovh-kimsufi"), `devices = ["/dev/sda"]`, `devices = ["/dev/sda"]`+"\nclear_existing = true")
	sim := simulateSpec(t, "ovh-kimsufi.toml", spec, "kimsufi-raid1", simulate.Faults{})
	var partition []string
	for _, ph := range sim.Scripts[len(sim.Scripts)-1].Phases {
		if ph.Name == "partition" {
			for _, st := range ph.Steps {
				partition = append(partition, st.Command)
			}
		}
	}
	for _, want := range []string{"mdadm --stop /dev/md1", "mdadm --stop /dev/md2", "mdadm --zero-superblock /dev/sda1", "mdadm --zero-superblock /dev/sda2", "wipefs --all /dev/sda"} {
		if !slices.Contains(partition, want) {
			t.Errorf("the partition phase does not run %q:\n%s", want, strings.Join(partition, "\n"))
		}
	}
}

// TestSimulateRefusesWhatItCannotPlay: a filter given a file operand, or a
// command the simulation does not know, stops the simulation with the
// script line, so templates and simulation cannot drift apart silently.
func TestSimulateRefusesWhatItCannotPlay(t *testing.T) {
	spec, err := plan.Load("../../examples/ovh-kimsufi.toml")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := plan.Validate(spec)
	for _, c := range []struct{ line, want string }{
		{"grep -q x /etc/os-release", "grep has a file operand"},
		{"frobnicate --all", "frobnicate is a command the simulation does not know"},
		{"awk '{ print > \"/tmp/x\" }' </proc/meminfo", "could open files"},
	} {
		b, err := plan.Render(p)
		if err != nil {
			t.Fatal(err)
		}
		f := b.File(plan.RescueBootstrapFile)
		f.Data = bytes.Replace(f.Data, []byte("set -euo pipefail\n"), []byte("set -euo pipefail\n"+c.line+"\n"), 1)
		line := bytes.Count(f.Data[:bytes.Index(f.Data, []byte(c.line))], []byte("\n")) + 1
		_, err = simulate.Run(p, b, simulate.Options{})
		var se *simulate.Error
		if !errors.As(err, &se) {
			t.Errorf("%s: Simulate returned %v, want a Error", c.line, err)
			continue
		}
		if se.Script != plan.RescueBootstrapFile || se.Line != line || !strings.Contains(se.Msg, c.want) {
			t.Errorf("%s: error %q, want line %d and %q", c.line, err, line, c.want)
		}
	}
}

// TestHealthyMachineMatchesSpec: the default machine passes check --facts.
func TestHealthyMachineMatchesSpec(t *testing.T) {
	for _, spec := range examples(t) {
		s, err := plan.Load(spec)
		if err != nil {
			t.Fatal(err)
		}
		p, ps := plan.Validate(s)
		if p == nil {
			t.Errorf("validate %s:\n%v", spec, ps)
			continue
		}
		m := simulate.HealthyMachine(p)
		data, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := machine.Parse("healthy.json", data); err != nil {
			t.Errorf("%s: the healthy machine is not a valid description: %v", spec, err)
		}
	}
}

// TestSimulateNeedsTopLevelRun: simulate tells the commands that change the
// machine apart by the script's run function; a script without one is
// refused, not played with every command counted as outside run.
func TestSimulateNeedsTopLevelRun(t *testing.T) {
	p, b := renderText(t, "ovh-kimsufi.toml", string(readExample(t, "ovh-kimsufi")))
	f := b.File(plan.RescueBootstrapFile)
	f.Data = bytes.Replace(f.Data, []byte("\nrun() {"), []byte("\nrun_here() {"), 1)
	_, err := simulate.Run(p, b, simulate.Options{})
	var se *simulate.Error
	if !errors.As(err, &se) || se.Script != plan.RescueBootstrapFile || !strings.Contains(se.Msg, "no run function") {
		t.Fatalf("err %v, want a Error for %s naming the missing run function", err, plan.RescueBootstrapFile)
	}
}
