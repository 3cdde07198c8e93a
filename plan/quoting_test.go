package plan_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"

	"github.com/nixplan/nixplan/plan"
)

// hostilePayloads are free text that must stay data in every script and in Nix.
var hostilePayloads = []string{
	`it's`,
	`say "hi"`,
	`$(touch /tmp/nixplan-pwned)`,
	"`touch /tmp/nixplan-pwned`",
	`${HOME}`,
	`${PATH:-x}`,
	`$((6*7))`,
	`<(ls) >(ls)`,
	`back\slash\`,
	`a;reboot;b`,
	`x && rm -rf / || y`,
	`{a,b} *.toml ~root ?x [ab]`,
	`# not a comment`,
	`!! !$ %s %n`,
	`ünïcødé ✓ 日本語`,
	`'"$(x)"'`,
	`${builtins.abort "nix"}`,
	`''${x} ''\n`,
	`\${escaped}`,
	`" + builtins.abort "nix" + "`,
	`NIXPLAN_CONFIGURATION_NIX`,
	`USAGE`,
}

// ed25519Key returns a well-formed ed25519 public key line, distinct for each n.
func ed25519Key(n int) string {
	var blob []byte
	blob = binary.BigEndian.AppendUint32(blob, 11)
	blob = append(blob, "ssh-ed25519"...)
	blob = binary.BigEndian.AppendUint32(blob, 32)
	point := sha256.Sum256([]byte{byte(n)})
	blob = append(blob, point[:]...)
	return "ssh-ed25519 " + base64.StdEncoding.EncodeToString(blob)
}

// hostileSpec is the example spec with one key per payload, the payload as
// the key's comment, each tagged with a marker that the tests look for.
func hostileSpec(t *testing.T) (spec []byte, keys []string) {
	t.Helper()
	base, err := os.ReadFile("../examples/ovh-kimsufi.toml")
	if err != nil {
		t.Fatal(err)
	}
	var list strings.Builder
	list.WriteString("authorized_keys = [\n")
	for i, p := range hostilePayloads {
		k := fmt.Sprintf("%s MARK%02d %s", ed25519Key(i), i, p)
		keys = append(keys, k)
		// A TOML literal string where possible, else a basic string with escapes.
		q, _ := json.Marshal(k)
		fmt.Fprintf(&list, "  %s,\n", q)
	}
	list.WriteString("]\n")
	i := bytes.Index(base, []byte("authorized_keys = ["))
	if i < 0 {
		t.Fatal("example has no authorized_keys")
	}
	return append(base[:i:i], list.String()...), keys
}

func renderHostile(t *testing.T) (*plan.Bundle, []string) {
	t.Helper()
	data, keys := hostileSpec(t)
	_, b := renderText(t, "hostile.toml", string(data))
	return b, keys
}

// TestHostileValuesAreLiteralInScripts proves with mvdan.cc/sh's parser that
// no payload ends up inside a command, parameter, arithmetic or process
// expansion in either script, and that each key appears as one literal word
// (or, in kexec-install.sh, inside the quoted configuration heredoc).
func TestHostileValuesAreLiteralInScripts(t *testing.T) {
	b, keys := renderHostile(t)
	for _, name := range []string{plan.RescueBootstrapFile, plan.KexecInstallFile} {
		f, err := plan.ParseScript(name, b.File(name).Data)
		if err != nil {
			t.Fatal(err)
		}
		literals := map[string]bool{}
		var heredocs []string
		syntax.Walk(f, func(node syntax.Node) bool {
			switch n := node.(type) {
			case *syntax.CmdSubst, *syntax.ParamExp, *syntax.ArithmExp, *syntax.ProcSubst:
				var buf bytes.Buffer
				if err := syntax.NewPrinter().Print(&buf, n); err != nil {
					t.Fatal(err)
				}
				if strings.Contains(buf.String(), "MARK") {
					t.Errorf("%s: a value is inside an expansion: %s", name, buf.String())
				}
			case *syntax.Redirect:
				if n.Hdoc != nil {
					heredocs = append(heredocs, n.Hdoc.Lit())
				}
			case *syntax.Word:
				if isLiteralWord(n) {
					s, err := expand.Literal(nil, n)
					if err == nil {
						literals[s] = true
					}
				}
			}
			return true
		})
		for _, k := range keys {
			inHeredoc := false
			for _, h := range heredocs {
				inHeredoc = inHeredoc || strings.Contains(h, plan.NixString(k))
			}
			if !literals[k] && !inHeredoc {
				t.Errorf("%s: key %q is not one literal word", name, k)
			}
		}
	}
}

// isLiteralWord reports whether a word has no expansion of any kind.
func isLiteralWord(w *syntax.Word) bool {
	for _, part := range w.Parts {
		switch p := part.(type) {
		case *syntax.Lit, *syntax.SglQuoted:
		case *syntax.DblQuoted:
			for _, inner := range p.Parts {
				if _, ok := inner.(*syntax.Lit); !ok {
					return false
				}
			}
		default:
			return false
		}
	}
	return true
}

// TestHostileValuesWithBash has real bash read the keys back out of
// rescue-bootstrap.sh, and checks that nothing ran.
func TestHostileValuesWithBash(t *testing.T) {
	bash := needTool(t, "bash", "bash")
	b, keys := renderHostile(t)
	script := string(b.File(plan.RescueBootstrapFile).Data)
	script = sourceable(t, script)
	cmd := exec.Command(bash, "-c", `source /dev/stdin && printf '%s\0' "${AUTHORIZED_KEYS[@]}"`)
	cmd.Stdin = strings.NewReader(script)
	cmd.Dir = t.TempDir()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bash: %v", err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if diff := cmp.Diff(keys, got); diff != "" {
		t.Errorf("bash reads different keys (-spec +bash):\n%s", diff)
	}
	if _, err := os.Stat("/tmp/nixplan-pwned"); err == nil {
		t.Errorf("a payload ran: /tmp/nixplan-pwned exists")
	}
}

// TestHostileValuesWithShellcheck: the hostile bundle's scripts pass
// shellcheck -S warning. Below that, SC2016 and SC1003 only remark that
// single quotes keep "$(...)" and backslashes literal, which is the point.
func TestHostileValuesWithShellcheck(t *testing.T) {
	shellcheck := needTool(t, "shellcheck", "shellcheck")
	b, _ := renderHostile(t)
	dir := t.TempDir()
	if err := plan.Write(b, filepath.Join(dir, "b")); err != nil {
		t.Fatal(err)
	}
	runTool(t, filepath.Join(dir, "b"), shellcheck, append([]string{"--shell=bash", "--severity=warning"}, scripts...)...)
}

// TestHostileValuesWithNix evaluates the keys with the real nix-instantiate,
// both from configuration.nix and from the copy real bash writes out of
// kexec-install.sh, and compares them with the spec's.
func TestHostileValuesWithNix(t *testing.T) {
	nix := needTool(t, "nix-instantiate", "nix-bin")
	bash := needTool(t, "bash", "bash")
	b, keys := renderHostile(t)
	dir := t.TempDir()
	standalone := filepath.Join(dir, "configuration.nix")
	if err := os.WriteFile(standalone, b.File(plan.ConfigurationFile).Data, 0o644); err != nil {
		t.Fatal(err)
	}
	// The embedded copy, as bash writes it.
	script := strings.Replace(string(b.File(plan.KexecInstallFile).Data), ">\"$NIXOS_DIR/configuration.nix\"", "", 1)
	script = sourceable(t, script)
	cmd := exec.Command(bash, "-c", `source /dev/stdin && write_configuration`)
	cmd.Stdin = strings.NewReader(script)
	embedded, err := cmd.Output()
	if err != nil {
		t.Fatalf("bash: %v", err)
	}
	embeddedPath := filepath.Join(dir, "embedded.nix")
	if err := os.WriteFile(embeddedPath, embedded, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{standalone, embeddedPath} {
		expr := fmt.Sprintf(`(import %s { config = {}; lib = {}; pkgs = {}; }).users.users.root.openssh.authorizedKeys.keys`, file)
		out := nixEvalJSON(t, nix, expr)
		var got []string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("nix output %q: %v", out, err)
		}
		if diff := cmp.Diff(keys, got); diff != "" {
			t.Errorf("%s: Nix evaluates different keys (-spec +nix):\n%s", filepath.Base(file), diff)
		}
	}
}

// TestNixString checks the escaper against the real evaluator with
// every character class that means something in a Nix string.
func TestNixString(t *testing.T) {
	nix := needTool(t, "nix-instantiate", "nix-bin")
	in := []string{"", "plain", `"`, `\`, "$", "${x}", "$${x}", `\${x}`, "''", "a\nb\tc\rd", "ünï ✓", `$\`, "${", "}"}
	var exprs []string
	for _, s := range in {
		exprs = append(exprs, plan.NixString(s))
	}
	out := nixEvalJSON(t, nix, "[ "+strings.Join(exprs, " ")+" ]")
	var got []string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, got); diff != "" {
		t.Errorf("NixString round trip (-in +nix):\n%s", diff)
	}
}

// nixEvalJSON evaluates expr with nix-instantiate and returns the JSON it
// prints on standard output. Warnings go to standard error and are kept out:
// Debian's nix-bin warns there when the nixbld group is missing, as on a
// fresh machine.
func nixEvalJSON(t *testing.T, nix, expr string) []byte {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(nix, "--eval", "--strict", "--json", "-E", expr)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nix-instantiate --eval: %v\n%s", err, stderr.Bytes())
	}
	return out
}
