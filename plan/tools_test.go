package plan_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nixplan/nixplan/plan"
)

// requireToolsEnv, when "1", turns a missing tool into a test failure
// instead of a skip. .ci/run sets it, so CI never skips these tests.
const requireToolsEnv = "NIXPLAN_REQUIRE_TOOLS"

// needTool returns the path of a tool, or skips (fails under
// NIXPLAN_REQUIRE_TOOLS=1) naming the Debian package that provides it.
func needTool(t *testing.T, tool, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err == nil {
		if tool == "nix-instantiate" {
			// The tests only parse and evaluate text: Nix's dummy store
			// needs neither root nor the daemon. As a user other than root,
			// Debian's nix-bin would otherwise try to set up /nix/var/nix,
			// or reach the daemon's socket, and fail with Permission denied.
			t.Setenv("NIX_REMOTE", "dummy://")
		}
		return path
	}
	msg := tool + " is not installed (Debian package " + pkg + ": apt-get install " + pkg + ")"
	if os.Getenv(requireToolsEnv) == "1" {
		t.Fatalf("%s, and %s=1 requires it", msg, requireToolsEnv)
	}
	t.Skip(msg)
	return ""
}

// writeBundle renders a spec into a temporary folder.
func writeBundle(t *testing.T, spec string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bundle")
	if err := plan.Write(renderFile(t, spec), dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func runTool(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

var scripts = []string{plan.RescueBootstrapFile, plan.KexecInstallFile}

func TestScriptsPassBash(t *testing.T) {
	bash := needTool(t, "bash", "bash")
	for _, spec := range examples(t) {
		dir := writeBundle(t, spec)
		for _, s := range scripts {
			runTool(t, dir, bash, "-n", s)
		}
	}
}

func TestScriptsPassShellcheck(t *testing.T) {
	shellcheck := needTool(t, "shellcheck", "shellcheck")
	for _, spec := range examples(t) {
		dir := writeBundle(t, spec)
		// Every severity, not only warnings: the scripts are meant to be clean.
		runTool(t, dir, shellcheck, append([]string{"--shell=bash", "--severity=style"}, scripts...)...)
	}
}

// install.sh runs on the operator's machine under a POSIX sh (dash, macOS's
// bash 3.2 as sh): shellcheck checks it as sh, and dash and posh parse it.
func TestDriverPassesShellcheckAndParses(t *testing.T) {
	shellcheck := needTool(t, "shellcheck", "shellcheck")
	dash := needTool(t, "dash", "dash")
	for _, spec := range examples(t) {
		dir := writeBundle(t, spec)
		runTool(t, dir, shellcheck, "--shell=sh", "--severity=style", plan.InstallFile)
		runTool(t, dir, dash, "-n", plan.InstallFile)
	}
}

// TestConfigurationParsesWithNix parses every .nix file of every example's
// bundle: configuration.nix, flake.nix, and the modules and flake the
// spec brings.
func TestConfigurationParsesWithNix(t *testing.T) {
	nix := needTool(t, "nix-instantiate", "nix-bin")
	for _, spec := range examples(t) {
		dir := writeBundle(t, spec)
		if n := parseNixTree(t, nix, dir); n == 0 {
			t.Errorf("%s: no .nix file in the bundle", spec)
		}
	}
}

func TestSHA256SUMSVerifies(t *testing.T) {
	sha256sum := needTool(t, "sha256sum", "coreutils")
	for _, spec := range examples(t) {
		dir := writeBundle(t, spec)
		out := runTool(t, dir, sha256sum, "--check", "--strict", plan.SumsFile)
		files := 0
		filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				files++
			}
			return err
		})
		if n := strings.Count(out, ": OK"); n != files-1 {
			t.Errorf("sha256sum verified %d files, want %d:\n%s", n, files-1, out)
		}
		// A changed byte must be caught.
		if err := os.WriteFile(filepath.Join(dir, plan.ConfigurationFile), []byte("{ }\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := exec.Command(sha256sum, "--check", "--quiet", plan.SumsFile).Run(); err == nil {
			t.Errorf("sha256sum --check passed on a changed configuration.nix")
		}
	}
}

// TestEmbeddedConfigurationByBash has real bash run the function that writes
// configuration.nix, with its output sent to stdout instead of /mnt, and
// compares what bash wrote with the bundle's configuration.nix.
func TestEmbeddedConfigurationByBash(t *testing.T) {
	bash := needTool(t, "bash", "bash")
	for _, spec := range examples(t) {
		b := renderFile(t, spec)
		script := string(b.File(plan.KexecInstallFile).Data)
		target := `>"$NIXOS_DIR/configuration.nix"`
		if strings.Count(script, target) != 1 {
			t.Fatalf("%s: want exactly one %q in kexec-install.sh", spec, target)
		}
		// Drop `main "$@"` so sourcing only defines the functions.
		script = strings.Replace(script, target, "", 1)
		script = sourceable(t, script)
		cmd := exec.Command(bash, "-c", `source /dev/stdin && write_configuration`)
		cmd.Stdin = strings.NewReader(script)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		got, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: bash: %v\n%s", spec, err, stderr.String())
		}
		if diff := cmp.Diff(string(b.File(plan.ConfigurationFile).Data), string(got)); diff != "" {
			t.Errorf("%s: what bash writes differs from configuration.nix (-file +bash):\n%s", spec, diff)
		}
	}
}

// sourceable drops a bundle script's last line, the call of its entry point
// (main or main_logged), so that bash can source it to define its functions
// and constants without running anything.
func sourceable(t *testing.T, script string) string {
	t.Helper()
	script = strings.TrimRight(script, "\n")
	i := strings.LastIndexByte(script, '\n')
	if last := script[i+1:]; !strings.HasPrefix(last, "main") {
		t.Fatalf("script does not end with its entry point: %q", last)
	}
	return script[:i+1]
}
