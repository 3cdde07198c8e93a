package plan_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nixplan/nixplan/plan"
	"github.com/nixplan/nixplan/plan/simulate"
)

const (
	modulesExample = "../examples/ovh-modules.toml"
	flakeExample   = "../examples/hetzner-own-flake.toml"
)

// exampleHarness renders an example from its file, with the modules or the
// flake it names, and prepares the NixOS installer of its healthy machine
// (rescue is false) or the rescue system.
func exampleHarness(t *testing.T, file string, rescue bool) *harness {
	t.Helper()
	p, b := validateAndRender(t, loadSpec(t, file))
	m := simulate.HealthyMachine(p)
	if !rescue {
		m = simulate.InstallerMachine(m, p)
	}
	return bundleHarness(t, p, b, m)
}

// install runs kexec-install.sh of an example on its healthy installer to
// the end, answering the question before the erase.
func install(t *testing.T, file string) (*harness, result) {
	t.Helper()
	h := exampleHarness(t, file, false)
	r := h.run(plan.KexecInstallFile, h.plan.Host.Name+"\n")
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.output())
	}
	return h, r
}

// sameFile fails unless path holds exactly want.
func sameFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("%v", err)
		return
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the bundle's (%d bytes, want %d)", path, len(got), len(want))
	}
}

// parseNixTree runs nix-instantiate --parse on every .nix file under dir
// and returns how many it parsed.
func parseNixTree(t *testing.T, nix, dir string) int {
	t.Helper()
	n := 0
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || !strings.HasSuffix(p, ".nix") {
			return err
		}
		n++
		if out, err := exec.Command(nix, "--parse", p).CombinedOutput(); err != nil {
			t.Errorf("nix-instantiate --parse %s: %v\n%s", p, err, out)
		}
		return nil
	})
	return n
}

// nixEval evaluates a Nix expression strictly and returns what it prints.
func nixEval(t *testing.T, nix, expr string) string {
	t.Helper()
	out, err := exec.Command(nix, "--eval", "--strict", "-E", expr).CombinedOutput()
	if err != nil {
		t.Errorf("nix-instantiate --eval %s: %v\n%s", expr, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestModulesInstalled runs kexec-install.sh of the modules example under
// bash: the modules it writes into the evaluation and into the new system
// are byte for byte the bundle's and the example's, every one is evaluated
// before the first wipe, configuration.nix imports each of them from where
// it is written, the folder's relative imports find their files, and every
// .nix file written parses.
func TestModulesInstalled(t *testing.T) {
	nix := needTool(t, "nix-instantiate", "nix-bin")
	h, r := install(t, modulesExample)
	eval, wipe := r.firstIndex("nix-instantiate <nixpkgs/nixos> -A system"), r.firstIndex("wipefs")
	if eval < 0 || wipe < 0 || eval > wipe {
		t.Errorf("evaluation at %d, first wipe at %d, want the evaluation first:\n%s", eval, wipe, strings.Join(r.commands(), "\n"))
	}
	etc := filepath.Join(h.dir, "mnt/etc/nixos")
	evalDir := filepath.Join(h.dir, "root/nixplan-eval")
	files := h.plan.BundledFiles()
	if len(files) != 4 {
		t.Fatalf("the example brings %d files, want users.nix and the three of web/", len(files))
	}
	sums := string(h.bundle.File(plan.SumsFile).Data)
	for _, f := range files {
		source, err := os.ReadFile(filepath.Join("../examples", f.Name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(source, h.bundle.File(f.Name).Data) {
			t.Errorf("the bundle's %s is not the example's file", f.Name)
		}
		if !strings.Contains(sums, f.SHA256+"  "+f.Name+"\n") {
			t.Errorf("SHA256SUMS does not list %s with its sha256", f.Name)
		}
		sameFile(t, filepath.Join(etc, f.Name), source)
		sameFile(t, filepath.Join(evalDir, f.Name), source)
	}
	// configuration.nix imports every module from where it was written,
	// and the folder's default.nix finds ./nginx.nix, which finds ./site.
	args := "{ config = { }; lib = { }; pkgs = { }; }"
	if got := nixEval(t, nix, "map builtins.pathExists (import "+etc+"/configuration.nix "+args+").imports"); got != "[ true true true true ]" {
		t.Errorf("configuration.nix's imports exist: %s, want all four", got)
	}
	for _, want := range []string{"./modules/users.nix", "./modules/web\n"} {
		if !strings.Contains(string(h.bundle.File(plan.ConfigurationFile).Data), want) {
			t.Errorf("configuration.nix does not import %q", want)
		}
	}
	web := "(import " + etc + "/modules/web " + args + ")"
	if got := nixEval(t, nix, "map builtins.pathExists "+web+".imports"); got != "[ true ]" {
		t.Errorf("the web folder's ./nginx.nix exists: %s", got)
	}
	site := `(import ` + etc + `/modules/web/nginx.nix ` + args + `).services.nginx.virtualHosts."web-demo.example.org".root`
	if got := nixEval(t, nix, "builtins.pathExists ("+site+" + \"/index.html\")"); got != "true" {
		t.Errorf("nginx.nix's ./site/index.html exists: %s", got)
	}
	if n := parseNixTree(t, nix, etc); n != 6 {
		t.Errorf("parsed %d .nix files in /mnt/etc/nixos, want 6 (3 generated, 3 modules)", n)
	}
	parseNixTree(t, nix, evalDir)
}

// TestOwnFlakeInstalled runs kexec-install.sh of the flake example under
// bash: it fetches every input flake.lock pins and evaluates the flake's
// system before the first wipe, writes the flake byte for byte to
// /etc/nixos with nixplan's files in nixplan/HOST/, and installs with
// nixos-install --flake. The flake's own nixosConfigurations, evaluated with
// a stand-in for nixpkgs' nixosSystem, import nixplan's module from where
// the install wrote it, and that module's imports exist beside it.
func TestOwnFlakeInstalled(t *testing.T) {
	nix := needTool(t, "nix-instantiate", "nix-bin")
	h, r := install(t, flakeExample)
	archive := r.firstIndex("nix --extra-experimental-features nix-command flakes flake archive --no-update-lock-file path:/root/nixplan-eval")
	eval := r.firstIndex(`nix --extra-experimental-features nix-command flakes eval --no-update-lock-file --raw path:/root/nixplan-eval#nixosConfigurations."hz-own".config.system.build.toplevel.drvPath`)
	wipe := r.firstIndex("wipefs")
	install := r.firstIndex("nixos-install --root /mnt --no-root-passwd --no-channel-copy --flake /mnt/etc/nixos#hz-own")
	if archive < 0 || eval < archive || wipe < eval || install < wipe {
		t.Errorf("archive at %d, evaluation at %d, first wipe at %d, install at %d; want them in this order:\n%s",
			archive, eval, wipe, install, strings.Join(r.commands(), "\n"))
	}
	if r.firstIndex("nix-channel") >= 0 || r.firstIndex("nix --extra-experimental-features nix-command flakes flake lock") >= 0 {
		t.Errorf("a channel or a new lock for the operator's flake:\n%s", strings.Join(r.commands(), "\n"))
	}
	if !strings.Contains(r.stdout, "site: git+ssh://git@github.com/example-org/site-config?rev=0123456789abcdef0123456789abcdef01234567") {
		t.Errorf("preflight does not name the SSH input it fetches:\n%s", r.stdout)
	}
	etc := filepath.Join(h.dir, "mnt/etc/nixos")
	for _, f := range h.plan.BundledFiles() {
		source, err := os.ReadFile(filepath.Join("../examples/own-flake", strings.TrimPrefix(f.Name, "flake/")))
		if err != nil {
			t.Fatal(err)
		}
		sameFile(t, filepath.Join(etc, f.Target), source)
		sameFile(t, filepath.Join(h.dir, "root/nixplan-eval", f.Target), source)
	}
	sameFile(t, filepath.Join(etc, "nixplan/hz-own/configuration.nix"), h.bundle.File(plan.ConfigurationFile).Data)
	for _, f := range []string{"hardware-configuration.nix", "nixplan-network.nix"} {
		if _, err := os.Stat(filepath.Join(etc, "nixplan/hz-own", f)); err != nil {
			t.Errorf("the install wrote no %s into the flake: %v", f, err)
		}
	}
	flake := `let
	  flake = import ` + etc + `/flake.nix;
	  nixpkgs = { lib.nixosSystem = args: args; };
	  out = flake.outputs (builtins.mapAttrs (name: _: if name == "nixpkgs" then nixpkgs else null) (builtins.functionArgs flake.outputs));
	in map toString out.nixosConfigurations."hz-own".modules`
	want := `[ "` + etc + `/nixplan/hz-own/configuration.nix" "` + etc + `/hosts/hz-own.nix" ]`
	if got := nixEval(t, nix, flake); got != want {
		t.Errorf("the flake's modules are %s, want %s", got, want)
	}
	module := "(import " + etc + "/nixplan/hz-own/configuration.nix { config = { }; lib = { }; pkgs = { }; }).imports"
	if got := nixEval(t, nix, "map builtins.pathExists "+module); got != "[ true true ]" {
		t.Errorf("nixplan's module's imports exist: %s", got)
	}
	if n := parseNixTree(t, nix, etc); n != 5 {
		t.Errorf("parsed %d .nix files in /mnt/etc/nixos, want 5 (flake.nix, hosts/hz-own.nix, nixplan's three)", n)
	}
	recipient := ageRecipientOf(t, needTool(t, "age-keygen", "age"), harnessHostSeed[:])
	for _, want := range []string{"agenix, in secrets.nix, the host key itself: \"ssh-ed25519 ", "sops-nix, in .sops.yaml, its age recipient: " + recipient + "\n",
		"The install wrote nixplan's files into the flake: /etc/nixos/nixplan/hz-own/"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the finish phase does not say %q:\n%s", want, r.stdout)
		}
	}
}

// TestBundledFileEdited: a module or flake file changed after the render
// stops rescue-bootstrap.sh and kexec-install.sh on SHA256SUMS; without
// SHA256SUMS, kexec-install.sh stops on the sums it carries itself; a
// missing one stops it too. None of them changes the machine.
func TestBundledFileEdited(t *testing.T) {
	for _, c := range []struct {
		example, file string
	}{{modulesExample, "modules/web/nginx.nix"}, {flakeExample, "flake/hosts/hz-own.nix"}} {
		t.Run(filepath.Base(c.example), func(t *testing.T) {
			edit := func(h *harness) {
				name := filepath.Join(h.dir, "root", c.file)
				data, err := os.ReadFile(name)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(name, append(data, "# edited after the render\n"...), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			h := exampleHarness(t, c.example, true)
			hash := h.downloadTarball()
			edit(h)
			r := h.run(plan.RescueBootstrapFile, "", "--accept-hash", hash)
			expectStop(t, r, "the bundle beside this script does not match its SHA256SUMS")
			if len(r.recorded) > 0 {
				t.Errorf("rescue-bootstrap.sh changed the machine: %q", r.commands())
			}

			h = exampleHarness(t, c.example, false)
			edit(h)
			r = h.run(plan.KexecInstallFile, h.plan.Host.Name+"\n")
			expectStop(t, r, "the bundle beside this script does not match its SHA256SUMS")
			if !strings.Contains(r.output(), c.file+": FAILED") {
				t.Errorf("sha256sum does not name %s:\n%s", c.file, r.output())
			}

			os.Remove(filepath.Join(h.dir, "root", plan.SumsFile))
			r = h.run(plan.KexecInstallFile, h.plan.Host.Name+"\n")
			expectStop(t, r, "beside this script are not the bundle's (the lines above name the files)")
			if !strings.Contains(r.output(), c.file+": FAILED") {
				t.Errorf("the script's own check does not name %s:\n%s", c.file, r.output())
			}

			os.Remove(filepath.Join(h.dir, "root", c.file))
			r = h.run(plan.KexecInstallFile, h.plan.Host.Name+"\n")
			expectStop(t, r, "beside this script are not the bundle's")
			if !strings.Contains(r.output(), c.file) {
				t.Errorf("the missing file is not named:\n%s", r.output())
			}
		})
	}
}

// TestBundledEvaluationErrors: a module or flake whose system does not
// evaluate, or a flake input that cannot be fetched, stops the install
// with nothing destructive recorded.
func TestBundledEvaluationErrors(t *testing.T) {
	for _, c := range []struct {
		name, example, fail, message string
	}{
		{"module", modulesExample, "nix-instantiate", "the system of web-demo does not evaluate (see the error above); nothing was changed"},
		{"flake", flakeExample, "nix:eval", "the system of hz-own does not evaluate (see the error above); nothing was changed"},
		{"flake input", flakeExample, "nix:archive", "cannot fetch every source of the flake (see the error above); nothing was changed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := exampleHarness(t, c.example, false)
			h.state.Fail[c.fail] = 1
			r := h.run(plan.KexecInstallFile, h.plan.Host.Name+"\n")
			expectStop(t, r, c.message)
			if r.firstIndex("wipefs") >= 0 || r.firstIndex("parted") >= 0 {
				t.Errorf("destructive commands ran: %q", r.commands())
			}
			if c.fail == "nix:archive" {
				if !strings.Contains(r.output(), "site is fetched over SSH from github.com: log in with ssh -A so the installer can use your agent's key, and ssh-keyscan github.com >> /root/.ssh/known_hosts") {
					t.Errorf("no hint for the SSH input:\n%s", r.output())
				}
				if r.firstIndex("nix --extra-experimental-features nix-command flakes eval") >= 0 {
					t.Errorf("evaluated a flake whose inputs could not be fetched: %q", r.commands())
				}
			}
		})
	}
}

// TestBundledFilesNoSpec: a spec parsed from text cannot have read the
// files it names, and says so instead of rendering without them.
func TestBundledFilesNoSpec(t *testing.T) {
	spec, err := plan.Parse("host.toml", []byte(strings.Replace(exampleSpec(t), `provider = "ovh"`, "provider = \"ovh\"\nmodules = [\"users.nix\"]", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if p, ps := plan.Validate(spec); p != nil || !strings.Contains(ps.Error(), "modules: the spec names files that were not read") {
		t.Errorf("validated a spec whose modules were never read: %v", ps)
	}
}

// TestBundledFileBounds: what testdata/bad cannot hold in git is refused
// as clearly, in a folder made here: a FIFO (read, it would block), a file
// over the per-file cap, a folder over the file-count cap, a link to a
// folder that holds it.
func TestBundledFileBounds(t *testing.T) {
	spec := strings.Replace(exampleSpec(t), `provider = "ovh"`, "provider = \"ovh\"\nmodules = [\"big\"]", 1)
	for _, c := range []struct {
		name string
		make func(t *testing.T, dir string)
		want string
	}{
		{"fifo", func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, "pipe.nix"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "modules[0]: big/pipe.nix is a named pipe (FIFO), not a regular file"},
		{"large file", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "hosts.nix"), strings.Repeat("# a line of 32 bytes, and again\n", plan.MaxModuleFileBytes/32+1))
		}, fmt.Sprintf("modules[0]: big/hosts.nix is %d bytes, more than the 1 MiB nixplan reads here", plan.MaxModuleFileBytes+32)},
		{"many files", func(t *testing.T, dir string) {
			for i := range plan.MaxModuleFiles {
				writeFile(t, filepath.Join(dir, fmt.Sprintf("m%04d.nix", i)), "{ }\n")
			}
		}, fmt.Sprintf("modules[0]: big/m%04d.nix brings the spec's modules and flake over %d files", plan.MaxModuleFiles-1, plan.MaxModuleFiles)},
		{"age identity", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "keys.txt"), "# created: 2025-01-01\nAGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQS3290GG\n")
		}, "modules[0]: big/keys.txt:2 holds private key material"},
		{"link to its folder", func(t *testing.T, dir string) {
			if err := os.Symlink(".", filepath.Join(dir, "again")); err != nil {
				t.Fatal(err)
			}
		}, "modules[0]: big/again links to a folder that holds it"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "host.toml"), spec)
			writeFile(t, filepath.Join(dir, "big/default.nix"), "{ ... }: { }\n")
			c.make(t, filepath.Join(dir, "big"))
			_, err := plan.Load(filepath.Join(dir, "host.toml"))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Load: %v, want %q", err, c.want)
			}
		})
	}
}

// TestModulesThroughIncludes: a fleet shares modules through an include;
// its modules are relative to the include, come before the spec's own, and
// a module two includes both list is brought once.
func TestModulesThroughIncludes(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "shared/common.toml"), "modules = [\"modules/users.nix\"]\n")
	writeFile(t, filepath.Join(dir, "shared/again.toml"), "modules = [\"modules/users.nix\", \"modules/ssh\"]\n")
	writeFile(t, filepath.Join(dir, "shared/modules/users.nix"), "{ ... }: { users.users.admin.isNormalUser = true; }\n")
	writeFile(t, filepath.Join(dir, "shared/modules/ssh/default.nix"), "{ ... }: { imports = [ ./hardening.nix ]; }\n")
	writeFile(t, filepath.Join(dir, "shared/modules/ssh/hardening.nix"), "{ ... }: { services.openssh.settings.X11Forwarding = false; }\n")
	writeFile(t, filepath.Join(dir, "hosts/web.nix"), "{ ... }: { services.nginx.enable = true; }\n")
	spec := strings.Replace(exampleSpec(t), `provider = "ovh"`,
		"include = [\"../shared/common.toml\", \"../shared/again.toml\"]\nmodules = [\"web.nix\"]\nprovider = \"ovh\"", 1)
	writeFile(t, filepath.Join(dir, "hosts/web1.toml"), spec)
	p, b := validateAndRender(t, loadSpec(t, filepath.Join(dir, "hosts/web1.toml")))
	var imports []string
	for _, m := range p.Modules {
		imports = append(imports, m.Import())
	}
	if got := strings.Join(imports, " "); got != "./modules/users.nix ./modules/ssh ./modules/web.nix" {
		t.Errorf("imports %s, want the includes' modules in order, then the spec's own", got)
	}
	for _, name := range []string{"modules/users.nix", "modules/ssh/default.nix", "modules/ssh/hardening.nix", "modules/web.nix"} {
		if b.File(name) == nil {
			t.Errorf("the bundle lacks %s", name)
		}
	}
}

// TestCheckManifest: Check refuses a bundle whose modules differ from the
// list of files and sums kexec-install.sh checks them against.
func TestCheckManifest(t *testing.T) {
	_, b := validateAndRender(t, loadSpec(t, modulesExample))
	if err := plan.Check(b); err != nil {
		t.Fatal(err)
	}
	f := b.File("modules/users.nix")
	f.Data = append(bytes.Clone(f.Data), "# changed after the render\n"...)
	if err := plan.Check(b); err == nil || !strings.Contains(err.Error(), "its list of the files of modules/ and flake/ differs from the bundle's files") {
		t.Errorf("Check of a bundle whose module changed: %v", err)
	}
}
