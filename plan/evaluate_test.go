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

// TestEvaluationBeforeErase: kexec-install.sh gets nixpkgs and evaluates the
// target system in preflight; an evaluation that fails stops the install
// with nothing destructive recorded, and the passing path records the
// evaluation before the first wipe, from files that parse as Nix.
func TestEvaluationBeforeErase(t *testing.T) {
	h := installerHarness(t, exampleSpec(t), nil)
	h.state.Fail["nix-instantiate"] = 1
	r := h.run(plan.KexecInstallFile, "blog-demo\n")
	expectStop(t, r, "the system of blog-demo does not evaluate (see the error above); nothing was changed")
	if r.firstIndex("nix-instantiate") < 0 {
		t.Errorf("the evaluation did not run: %q", r.commands())
	}

	h = installerHarness(t, exampleSpec(t), nil)
	r = h.run(plan.KexecInstallFile, "blog-demo\n")
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.output())
	}
	eval, wipe := r.firstIndex("nix-instantiate <nixpkgs/nixos> -A system"), r.firstIndex("wipefs")
	if eval < 0 || wipe < 0 || eval > wipe || r.firstIndex("nix-channel --update") > eval {
		t.Errorf("evaluation at %d, first wipe at %d, want the channel, then the evaluation, then the wipe:\n%s", eval, wipe, strings.Join(r.commands(), "\n"))
	}
	// nixpkgs is fetched once: the install uses the channel the evaluation used.
	n := 0
	for _, c := range r.commands() {
		if strings.HasPrefix(c, "nix-channel --update") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("nix-channel --update ran %d times, want once:\n%s", n, strings.Join(r.commands(), "\n"))
	}
	hw, err := os.ReadFile(filepath.Join(h.dir, "root/nixplan-eval/hardware-configuration.nix"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"imports = [ ./hardware-generated.nix ];", `fileSystems."/" = { device = "rpool/root/nixos"; fsType = "zfs"; };`,
		`fileSystems."/boot" = { device = "/dev/sda1"; fsType = "ext4"; };`} {
		if !strings.Contains(string(hw), want) {
			t.Errorf("the provisional hardware-configuration.nix lacks %q:\n%s", want, hw)
		}
	}
	if nix, err := exec.LookPath("nix-instantiate"); err == nil {
		for _, f := range []string{"hardware-configuration.nix", "configuration.nix", "nixplan-network.nix"} {
			if out, err := exec.Command(nix, "--parse", filepath.Join(h.dir, "root/nixplan-eval", f)).CombinedOutput(); err != nil {
				t.Errorf("nix-instantiate --parse %s: %v\n%s", f, err, out)
			}
		}
	} else {
		requireOrSkip(t, "nix-instantiate is not installed (Debian package nix-bin)")
	}
}

// TestEvaluationMemory: below the memory the evaluation needs, the install
// says so and asks before it goes on without it.
func TestEvaluationMemory(t *testing.T) {
	small := func(m *machine.Machine) { m.RAMBytes = 3 << 30 } // MemAvailable 1.5 GiB
	h := installerHarness(t, exampleSpec(t), small)
	expectStop(t, h.run(plan.KexecInstallFile, "blog-demo\n"), "not enough memory to evaluate the system before the erase; nothing was changed")

	h = installerHarness(t, exampleSpec(t), small)
	r := h.run(plan.KexecInstallFile, "yes\nblog-demo\n")
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.output())
	}
	if !strings.Contains(r.stdout, "evaluating the system before the erase needs about 2048 MiB") || !strings.Contains(r.stdout, "going on without the evaluation") {
		t.Errorf("the run does not say why it skips the evaluation:\n%s", r.stdout)
	}
	if r.firstIndex("nix-instantiate") >= 0 {
		t.Errorf("evaluated after the operator chose not to: %q", r.commands())
	}
}
