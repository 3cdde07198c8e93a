package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckNix: check --nix parses the modules and the flake with the local
// nix-instantiate and names the file, line and column of a syntax error;
// without --nix, check needs no Nix and does not parse them; --nix without
// nix-instantiate on PATH is refused before any work.
func TestCheckNix(t *testing.T) {
	// Debian's nix-bin needs a store even to parse; the dummy one does.
	t.Setenv("NIX_REMOTE", "dummy://")
	if _, err := exec.LookPath("nix-instantiate"); err != nil {
		msg := "nix-instantiate is not installed (Debian package nix-bin: apt-get install nix-bin)"
		if os.Getenv("NIXPLAN_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s, and NIXPLAN_REQUIRE_TOOLS=1 requires it", msg)
		}
		t.Skip(msg)
	}
	check := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"check"}, args...), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	for _, spec := range []string{"../../examples/ovh-modules.toml", "../../examples/hetzner-own-flake.toml"} {
		if code, stdout, stderr := check("--nix", spec); code != 0 || !strings.Contains(stdout, ": valid: host ") {
			t.Errorf("check --nix %s: exit %d\n%s%s", spec, code, stdout, stderr)
		}
	}

	dir := t.TempDir()
	example, err := os.ReadFile("../../examples/ovh-modules.toml")
	if err != nil {
		t.Fatal(err)
	}
	spec := strings.Replace(string(example), `modules = ["modules/users.nix", "modules/web"]`, `modules = ["ok.nix", "web"]`, 1)
	for name, text := range map[string]string{
		"host.toml":       spec,
		"ok.nix":          "{ ... }: { }\n",
		"web/default.nix": "{ ... }:\n{\n  services.nginx.enable = true\n}\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	host := filepath.Join(dir, "host.toml")
	code, stdout, stderr := check("--nix", host)
	want := "nixplan: error: " + host + ": modules[1]: web/default.nix:4:1: syntax error, unexpected '}'"
	if code != exitProblem || stdout != "" || !strings.Contains(stderr, want) {
		t.Errorf("check --nix of a broken module: exit %d, stdout %q, stderr:\n%s\nwant %q", code, stdout, stderr, want)
	}
	if !strings.Contains(stderr, "nixplan: hint: run nix-instantiate --parse on the file to see the line in context") {
		t.Errorf("no hint:\n%s", stderr)
	}
	if code, _, stderr := check(host); code != exitOK {
		t.Errorf("check without --nix parsed the module: exit %d\n%s", code, stderr)
	}

	// No nix-instantiate on PATH: refused, and nothing else is done.
	t.Setenv("PATH", t.TempDir())
	code, stdout, stderr = check("--nix", host)
	if code != exitUsage || stdout != "" || stderr != "nixplan: error: check --nix: nix-instantiate is not on PATH\n"+
		"nixplan: hint: install Nix, or check without --nix (the install evaluates the system before it erases anything)\n" {
		t.Errorf("check --nix without Nix: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
}
