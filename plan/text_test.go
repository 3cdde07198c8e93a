package plan_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"mvdan.cc/sh/v3/syntax"

	"github.com/nixplan/nixplan/plan"
)

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"plain.toml":        "plain.toml",
		"ünï ✓ 日本":          "ünï ✓ 日本",
		"a\nb":              `a\x0ab`,
		"a\r\tb\x1b[2J\x07": `a\x0d\x09b\x1b[2J\x07`,
		"nel\u0085":         `nel\u0085`,
		"ls\u2028ps\u2029":  `ls\u2028ps\u2029`,
		"rlo\u202egnp.sh":   `rlo\u202egnp.sh`,
		"bad\xffutf8":       `bad\xffutf8`,
		"del\x7f":           `del\x7f`,
		"$(x) `y` <!-- -->": "$(x) `y` <!-- -->",
	} {
		if got := plan.Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
	if got, want := plan.CommentText("a --> b\n"), `a --\x3e b\x0a`; got != want {
		t.Errorf("CommentText = %q, want %q", got, want)
	}
}

// cmark renders markdown with cmark-gfm and GitHub's extensions, raw HTML
// passed through (--unsafe), so that any tag a value smuggled in shows.
func cmark(t *testing.T, md string) string {
	t.Helper()
	bin := needTool(t, "cmark-gfm", "cmark-gfm")
	cmd := exec.Command(bin, "--unsafe", "-e", "table", "-e", "autolink", "-e", "strikethrough", "-e", "tagfilter", "-e", "tasklist")
	cmd.Stdin = strings.NewReader(md)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cmark-gfm: %v\n%s", err, stderr.String())
	}
	return string(out)
}

// htmlText is how cmark-gfm escapes text: &, <, > and ".
var htmlText = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace

// markdownPayloads are values that would render as something else than
// their text if they reached markdown raw.
var markdownPayloads = []string{
	"[x](https://evil.example)",
	"<b>bold</b> <img src=x onerror=alert(1)>",
	"<https://evil.example> https://evil.example/autolink www.evil.example",
	"**strong** _em_ ~~del~~ *em*",
	"a `code` b",
	"``double``",
	"`",
	"ends with `",
	" both ends spaced ",
	"| pipe | in | cell |",
	`back\slash \| \` + "`" + ` \\|`,
	"&amp; &lt;b&gt; &#60;",
	"<!-- comment --> -->",
	"# heading",
	"[ref]: https://evil.example",
	"![img](https://evil.example/x.png)",
}

// TestMarkdownCodeWithCmark renders every payload as a code span in a
// paragraph and in a table cell with the real CommonMark renderer: each
// comes out as exactly one <code> element holding its text.
func TestMarkdownCodeWithCmark(t *testing.T) {
	var md strings.Builder
	md.WriteString("| n | value |\n|---|---|\n")
	for i, p := range markdownPayloads {
		fmt.Fprintf(&md, "| %d | %s |\n", i, plan.MarkdownCell(p))
	}
	md.WriteString("\n")
	for i, p := range markdownPayloads {
		fmt.Fprintf(&md, "- [ ] item %d: %s.\n", i, plan.MarkdownCode(p))
	}
	html := cmark(t, md.String())
	for i, p := range markdownPayloads {
		cell := fmt.Sprintf("<td>%d</td>\n<td><code>%s</code></td>", i, htmlText(p))
		item := fmt.Sprintf("item %d: <code>%s</code>.</li>", i, htmlText(p))
		if !strings.Contains(html, cell) {
			t.Errorf("payload %d %q: the table cell is not one code span of its text:\n%s", i, p, html)
		}
		if !strings.Contains(html, item) {
			t.Errorf("payload %d %q: the list item is not one code span of its text:\n%s", i, p, html)
		}
	}
	if tags := htmlTags(html); !slices.Equal(tags, []string{"code", "input", "li", "table", "tbody", "td", "th", "thead", "tr", "ul"}) {
		t.Errorf("the payloads made tags of their own: %v\n%s", tags, html)
	}
}

var tagRE = regexp.MustCompile(`<(/?)([a-zA-Z][a-zA-Z0-9]*)`)

// htmlTags lists the distinct tag names in an HTML text.
func htmlTags(html string) []string {
	seen := map[string]bool{}
	for _, m := range tagRE.FindAllStringSubmatch(html, -1) {
		seen[strings.ToLower(m[2])] = true
	}
	var tags []string
	for tag := range seen {
		tags = append(tags, tag)
	}
	slices.Sort(tags)
	return tags
}

// TestChecklistValuesRenderLiterally: key comments and a mountpoint that
// hold markdown links, HTML, emphasis, backticks and pipes render in
// checklist.md as their text, with no link or tag that the template did not
// write: the checklist of the hostile spec has exactly the tags of the
// example's.
func TestChecklistValuesRenderLiterally(t *testing.T) {
	base, err := os.ReadFile("../examples/ovh-kimsufi.toml")
	if err != nil {
		t.Fatal(err)
	}
	var keys strings.Builder
	keys.WriteString("authorized_keys = [\n")
	var lines []string
	for i, p := range markdownPayloads {
		line := fmt.Sprintf("%s MD%02d %s", ed25519Key(i), i, p)
		lines = append(lines, line)
		fmt.Fprintf(&keys, "  %s,\n", tomlBasic(line))
	}
	keys.WriteString("]\n")
	spec := string(base)
	i := strings.Index(spec, "authorized_keys = [")
	spec = spec[:i] + keys.String()
	mountpoint := "/srv/[x](https:evil)<b>y</b>|z`w`"
	spec = strings.Replace(spec, `mountpoint = "/home"`, "mountpoint = "+tomlBasic(mountpoint), 1)
	_, hostile := renderText(t, "hostile.toml", spec)
	_, benign := renderText(t, "ovh-kimsufi.toml", string(base))

	got := cmark(t, string(hostile.File(plan.ChecklistFile).Data))
	want := cmark(t, string(benign.File(plan.ChecklistFile).Data))
	if g, w := htmlTags(got), htmlTags(want); !slices.Equal(g, w) {
		t.Errorf("checklist.md of the hostile spec has the tags %v; the example's has %v", g, w)
	}
	if strings.Contains(got, "evil.example\"") || strings.Contains(got, "<a ") {
		t.Errorf("the hostile checklist has a link:\n%s", got)
	}
	for _, line := range lines {
		if !strings.Contains(got, "<code>"+htmlText(line)+"</code>") {
			t.Errorf("key %q is not shown as one code span", line)
		}
	}
	if !strings.Contains(got, "<code>"+htmlText(mountpoint)+"</code>") {
		t.Errorf("mountpoint %q is not shown as one code span", mountpoint)
	}
}

// tomlBasic writes s as a TOML basic string: JSON's escapes are TOML's.
func tomlBasic(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// TestSpecFileNameWithControlCharacters: a spec named with a line break and
// a command, or with any other character that could end the header's
// comment line, is refused before it is read, and the message shows the
// name escaped.
func TestSpecFileNameWithControlCharacters(t *testing.T) {
	example, err := os.ReadFile("../examples/ovh-kimsufi.toml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, what := range map[string]string{
		"fn\nreboot #.toml":                  "a line break (U+000A)",
		"fn\rreboot #.toml":                  "a line break (U+000D)",
		"esc\x1b[2J.toml":                    "the control character U+001B",
		"nel\u0085reboot.toml":               "the control character U+0085",
		"ls\u2028assert false; #.toml":       "the character U+2028",
		"rlo\u202elmot.sh.toml":              "the character U+202E",
		"latin1-\xe9.toml":                   "the byte 0xe9, which is not UTF-8",
		"x\n\"; builtins.abort \"x\" #.toml": "a line break (U+000A)",
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, example, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := plan.Load(path)
		var ps plan.Problems
		if !errors.As(err, &ps) || len(ps) != 1 {
			t.Errorf("%q: Load = %v, want one problem", name, err)
			continue
		}
		want := plan.Printable(path) + ": the file name holds " + what + "; nixplan writes the spec's name into the header of every bundle file"
		if got := ps[0].Error(); got != want {
			t.Errorf("%q:\n got %s\nwant %s", name, got, want)
		}
		if strings.ContainsAny(ps[0].Error(), "\n\r\x1b") {
			t.Errorf("%q: the message is not printable: %q", name, ps[0].Error())
		}
	}
}

// hostileFileNames are spec names that are printable but mean something to
// bash, Nix or markdown: they render, and must stay inside the headers'
// comments.
var hostileFileNames = []string{
	"$(touch PWNED).toml",
	"`touch PWNED`.toml",
	"'; touch PWNED; '.toml",
	"${builtins.trace \"PWNED\" 1}.toml",
	"x --> <b>PWNED<b> <!-- [l](https:PWNED).toml",
	"* PWNED *.toml",
}

// TestSpecFileNameStaysInComments renders specs whose file names are code
// in bash, Nix and markdown, and proves with mvdan.cc/sh's parser, real
// bash (tracing every command it runs), nix-instantiate and cmark-gfm that
// the name became no code anywhere: it is only in the header comments and,
// in checklist.md, in code spans, with the check command shell-quoted.
func TestSpecFileNameStaysInComments(t *testing.T) {
	bash := needTool(t, "bash", "bash")
	nix := needTool(t, "nix-instantiate", "nix-bin")
	example, err := os.ReadFile("../examples/ovh-kimsufi.toml")
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range hostileFileNames {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			// Not t.TempDir: its path holds the test's name, and the
			// name must reach the bundle only through the spec's file name.
			dir, err := os.MkdirTemp("", "nixplan-names-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, example, 0o644); err != nil {
				t.Fatal(err)
			}
			spec, err := plan.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			p, b := validateAndRender(t, spec)
			header := p.Header()
			if !strings.Contains(header, plan.CommentText(name)) || strings.Contains(header, "-->") {
				t.Fatalf("header %q does not name %q as comment text", header, name)
			}
			out := filepath.Join(dir, "bundle")
			if err := plan.Write(b, out); err != nil {
				t.Fatal(err)
			}

			// mvdan.cc/sh: the name is in comments only, and the first
			// command of each script is still set -euo pipefail.
			for _, script := range []string{plan.RescueBootstrapFile, plan.KexecInstallFile, plan.FactsFile} {
				f, err := plan.ParseScript(script, b.File(script).Data)
				if err != nil {
					t.Fatal(err)
				}
				var first bytes.Buffer
				syntax.NewPrinter().Print(&first, f.Stmts[0].Cmd)
				if script != plan.FactsFile && first.String() != "set -euo pipefail" {
					t.Errorf("%s: the first command is %q", script, first.String())
				}
				syntax.Walk(f, func(n syntax.Node) bool {
					if r, ok := n.(*syntax.Redirect); ok && r.Hdoc != nil {
						// configuration.nix, in a quoted heredoc: checked with Nix below.
						return false
					}
					if w, ok := n.(*syntax.Word); ok {
						var buf bytes.Buffer
						syntax.NewPrinter().Print(&buf, w)
						if strings.Contains(buf.String(), "PWNED") {
							t.Errorf("%s: the file name is in a word: %s", script, buf.String())
						}
					}
					return true
				})
				if !strings.Contains(string(b.File(script).Data), "\n# "+header+"\n") {
					t.Errorf("%s: the header is not one comment line", script)
				}
			}

			// Real bash: run both scripts' --help with every command traced.
			for _, script := range []string{plan.RescueBootstrapFile, plan.KexecInstallFile} {
				cmd := exec.Command(bash, "-x", filepath.Join(out, script), "--help")
				cmd.Dir = dir
				var trace bytes.Buffer
				cmd.Stderr = &trace
				if err := cmd.Run(); err != nil {
					t.Errorf("bash %s --help: %v\n%s", script, err, trace.String())
				}
				if strings.Contains(trace.String(), "PWNED") {
					t.Errorf("bash ran a command naming the file:\n%s", trace.String())
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "PWNED")); err == nil {
				t.Errorf("the file name ran: PWNED exists")
			}

			// Nix: configuration.nix evaluates to the host, traces nothing,
			// and its parse (comments dropped) never names the file.
			config := filepath.Join(out, plan.ConfigurationFile)
			eval := exec.Command(nix, "--eval", "--strict", "-E",
				fmt.Sprintf(`(import %s { config = {}; lib = {}; pkgs = {}; }).networking.hostName`, plan.NixString(config)))
			var stderr bytes.Buffer
			eval.Stderr = &stderr
			host, err := eval.Output()
			if err != nil || string(host) != plan.NixString(p.Host.Name)+"\n" || strings.Contains(stderr.String(), "trace") {
				t.Errorf("nix-instantiate --eval: %v: host %s, stderr %q", err, host, stderr.String())
			}
			parsed, err := exec.Command(nix, "--parse", config).Output()
			if err != nil {
				t.Fatalf("nix-instantiate --parse: %v", err)
			}
			if bytes.Contains(parsed, []byte("PWNED")) {
				t.Errorf("configuration.nix holds the file name outside its comments:\n%s", parsed)
			}

			// cmark-gfm: the header is one HTML comment that ends where the
			// template ends it, and the name is shown only in code spans.
			html := cmark(t, string(b.File(plan.ChecklistFile).Data))
			first, rest, _ := strings.Cut(html, "\n")
			if first != "<!-- "+header+" -->" {
				t.Errorf("checklist.md's header renders as %q", first)
			}
			shown := regexp.MustCompile(`<code>[^<]*</code>`).ReplaceAllString(rest, "")
			if strings.Contains(shown, "PWNED") {
				t.Errorf("checklist.md shows the file name outside code spans:\n%s", rest)
			}
			quoted, _ := plan.ShellQuote(name)
			if !strings.Contains(rest, "<code>"+htmlText("nixplan check --facts facts.json "+quoted)+"</code>") {
				t.Errorf("checklist.md's check command does not quote the file name %s:\n%s", quoted, rest)
			}
		})
	}
}
