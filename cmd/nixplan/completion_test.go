package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// needShell returns the path of a shell, or skips the test with a message;
// with NIXPLAN_REQUIRE_TOOLS=1 (as in CI) a missing shell fails it.
func needShell(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := name + " is not installed (Debian package " + name + ": apt-get install " + name + ")"
	if os.Getenv("NIXPLAN_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s, and NIXPLAN_REQUIRE_TOOLS=1 requires it", msg)
	}
	t.Skip(msg)
	return ""
}

func completionScript(t *testing.T, shell string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"completion", shell}, &stdout, &stderr); code != 0 {
		t.Fatalf("nixplan completion %s: exit %d: %s", shell, code, stderr.String())
	}
	file := filepath.Join(t.TempDir(), "nixplan."+shell)
	if err := os.WriteFile(file, stdout.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// completionDir is a folder with a spec, a machine description, a key and a
// subfolder, for the shells to complete names in.
func completionDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"host.toml", "facts.json", "me.pub", "notes.txt", "my host.toml"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "bundles"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func sortedLines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

// TestBashCompletion loads the script into real bash and asks _nixplan, as
// bash's programmable completion does, for the words on a command line.
func TestBashCompletion(t *testing.T) {
	bash := needShell(t, "bash")
	script, dir := completionScript(t, "bash"), completionDir(t)
	// macOS's /bin/bash is 3.2, which has no mapfile.
	text, _ := os.ReadFile(script)
	for _, line := range strings.Split(string(text), "\n") {
		if strings.Contains(line, "mapfile") && !strings.HasPrefix(strings.TrimSpace(line), "#") {
			t.Errorf("the bash script uses mapfile, which bash 3.2 lacks: %q", line)
		}
	}
	for _, tc := range []struct {
		line string // the words typed; the last is the one being completed
		want []string
	}{
		{"nixplan ren", []string{"render"}},
		{"nixplan c", []string{"check", "completion"}},
		{"nixplan render -", []string{"--fleet", "--from", "--help", "--kexec-tarball", "--output", "--quiet", "-h", "-o", "-q"}},
		{"nixplan render -o ", []string{"bundles"}},
		{"nixplan check ", []string{"bundles", "host.toml", "my host.toml"}},
		{"nixplan check m", []string{"my host.toml"}},
		{"nixplan check --facts ", []string{"bundles", "facts.json"}},
		{"nixplan simulate --format ", []string{"json", "text"}},
		{"nixplan init --provider h", []string{"hetzner"}},
		{"nixplan init --ssh-key ", []string{"bundles", "me.pub"}},
		{"nixplan completion ", []string{"bash", "fish", "zsh"}},
		{"nixplan help si", []string{"simulate"}},
	} {
		t.Run(tc.line, func(t *testing.T) {
			cmd := exec.Command(bash, "--norc", "--noprofile", "-c",
				`source "$1"; read -ra COMP_WORDS <<<"$2"; [[ $2 == *" " ]] && COMP_WORDS+=(""); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _nixplan; printf '%s\n' "${COMPREPLY[@]}"`,
				"bash", script, tc.line)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("bash: %v\n%s", err, out)
			}
			if got := sortedLines(string(out)); !slices.Equal(got, tc.want) {
				t.Errorf("completing %q: got %q, want %q", tc.line, got, tc.want)
			}
		})
	}
}

// TestFishCompletion loads the script into real fish and asks it to complete
// command lines (complete -C).
func TestFishCompletion(t *testing.T) {
	fish := needShell(t, "fish")
	script, dir := completionScript(t, "fish"), completionDir(t)
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"nixplan ren", []string{"render"}},
		{"nixplan render --out", []string{"--output"}},
		{"nixplan check ", []string{"bundles/", "host.toml", "my host.toml"}},
		{"nixplan check ~/", []string{"~/bundles/", "~/host.toml", "~/my host.toml"}},
		{"nixplan check --facts ", []string{"bundles/", "facts.json"}},
		{"nixplan simulate --format ", []string{"json", "text"}},
		{"nixplan init --provider k", []string{"kimsufi"}},
		{"nixplan completion ", []string{"bash", "fish", "zsh"}},
	} {
		t.Run(tc.line, func(t *testing.T) {
			cmd := exec.Command(fish, "--no-config", "-c", `source $argv[1]; complete -C $argv[2] | string replace -r '\t.*' ''; or true`, script, tc.line)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "HOME="+dir)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("fish: %v\n%s", err, out)
			}
			if got := sortedLines(string(out)); !slices.Equal(got, tc.want) {
				t.Errorf("completing %q: got %q, want %q", tc.line, got, tc.want)
			}
		})
	}
}

// TestZshCompletion loads the script into real zsh after compinit and checks
// that it parses and registers _nixplan for nixplan, and that _nixplan
// knows every command. Driving zsh's completion widgets needs a terminal
// (zpty), which this test does without.
func TestZshCompletion(t *testing.T) {
	zsh := needShell(t, "zsh")
	script := completionScript(t, "zsh")
	if out, err := exec.Command(zsh, "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
	cmd := exec.Command(zsh, "-f", "-c", `autoload -U compinit && compinit -u -D && source $1 && print -r -- $_comps[nixplan] && functions _nixplan`, "zsh", script)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("zsh: %v\n%s", err, out)
	}
	lines := strings.SplitN(string(out), "\n", 2)
	if lines[0] != "_nixplan" {
		t.Fatalf("compdef registered %q for nixplan, want _nixplan:\n%s", lines[0], out)
	}
	for _, name := range commandNames() {
		if !strings.Contains(lines[1], "("+name+") _arguments") {
			t.Errorf("_nixplan has no case for %s:\n%s", name, lines[1])
		}
	}
}
