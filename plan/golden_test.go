package plan_test

import (
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nixplan/nixplan/plan"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// examples returns every spec in examples/.
func examples(t testing.TB) []string {
	t.Helper()
	specs, err := filepath.Glob("../examples/*.toml")
	if err != nil || len(specs) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	return specs
}

func exampleName(spec string) string {
	return strings.TrimSuffix(filepath.Base(spec), ".toml")
}

func loadSpec(t testing.TB, file string) *plan.Spec {
	t.Helper()
	spec, err := plan.Load(file)
	if err != nil {
		t.Fatalf("load %s: %v", file, err)
	}
	return spec
}

// renderFile loads, validates and renders one spec, failing the test on any problem.
func renderFile(t testing.TB, file string) *plan.Bundle {
	t.Helper()
	spec, err := plan.Load(file)
	if err != nil {
		t.Fatalf("load %s: %v", file, err)
	}
	_, b := validateAndRender(t, spec)
	return b
}

// renderText parses, validates and renders spec text named name.
func renderText(t testing.TB, name, text string) (*plan.Plan, *plan.Bundle) {
	t.Helper()
	spec, err := plan.Parse(name, []byte(text))
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	return validateAndRender(t, spec)
}

func validateAndRender(t testing.TB, spec *plan.Spec) (*plan.Plan, *plan.Bundle) {
	t.Helper()
	p, ps := plan.Validate(spec)
	if p == nil {
		t.Fatalf("validate %s:\n%v", spec.File, ps)
	}
	b, err := plan.Render(p)
	if err != nil {
		t.Fatalf("render %s: %v", spec.File, err)
	}
	return p, b
}

// TestGolden compares every example's bundle with testdata/golden/NAME/.
// Run `go test ./... -update` to rewrite them, then review the diff.
func TestGolden(t *testing.T) {
	for _, spec := range examples(t) {
		name := exampleName(spec)
		t.Run(name, func(t *testing.T) {
			b := renderFile(t, spec)
			dir := filepath.Join("..", "testdata", "golden", name)
			if *update {
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
				if err := plan.Write(b, dir); err != nil {
					t.Fatal(err)
				}
				return
			}
			if _, err := os.Stat(dir); err != nil {
				t.Fatalf("%v (run go test ./... -update to create the golden files)", err)
			}
			// Every file, in the folders of the spec's modules and flake too.
			n := 0
			filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					n++
				}
				return err
			})
			if n != len(b.Files) {
				t.Errorf("golden %s has %d files, the bundle %d", dir, n, len(b.Files))
			}
			for _, f := range b.Files {
				want, err := os.ReadFile(filepath.Join(dir, f.Name))
				if err != nil {
					t.Errorf("%v", err)
					continue
				}
				if diff := cmp.Diff(string(want), string(f.Data)); diff != "" {
					t.Errorf("%s/%s differs from the golden file (-golden +rendered):\n%s", name, f.Name, diff)
				}
			}
		})
	}
}

// TestRenderedTextReadsCleanly looks, in every example's configuration.nix
// and checklist.md, for the glitches a template's whitespace trimming or an
// empty value makes: a comment glued to code ("];#"), two comments on one
// line, an empty provider name "(the provider)" and an on-link note for a
// gateway inside the prefix.
func TestRenderedTextReadsCleanly(t *testing.T) {
	twoComments := regexp.MustCompile(`;\s*#[^"\n]*\s#\s`)
	for _, spec := range examples(t) {
		p, b := validateAndRender(t, loadSpec(t, spec))
		for _, name := range []string{plan.ConfigurationFile, plan.ChecklistFile} {
			text := string(b.File(name).Data)
			for _, bad := range []string{"];#", "(the provider)"} {
				if strings.Contains(text, bad) {
					t.Errorf("%s %s holds %q", exampleName(spec), name, bad)
				}
			}
			if m := twoComments.FindString(text); m != "" {
				t.Errorf("%s %s has two comments on one line: %q", exampleName(spec), name, m)
			}
		}
		if onLink := strings.Contains(string(b.File(plan.ConfigurationFile).Data), "adds an on-link route"); onLink != p.Network.IPv4.OnLink {
			t.Errorf("%s: the on-link note is there: %v; the IPv4 gateway is on-link: %v", exampleName(spec), onLink, p.Network.IPv4.OnLink)
		}
	}
	// No example has an on-link IPv4 gateway: a Hetzner /32 has one.
	text := strings.NewReplacer("prefix = 26", "prefix = 32\ngateway_on_link = true",
		"nixos-images/releases/download/nixos-24.05/", "nixos-images/releases/download/nixos-25.05/").Replace(exampleText(t, "hetzner-nvme-uefi"))
	p, b := renderText(t, "onlink.toml", text)
	if !p.Network.IPv4.OnLink || !strings.Contains(string(b.File(plan.ConfigurationFile).Data), "adds an on-link route") {
		t.Errorf("an on-link IPv4 gateway (%v) gets no on-link note:\n%s", p.Network.IPv4.OnLink, b.File(plan.ConfigurationFile).Data)
	}
}

// TestRenderDeterministic renders every example twice and compares the bytes.
// (The CLI test determinism.txtar does the same across time zones and locales.)
func TestRenderDeterministic(t *testing.T) {
	for _, spec := range examples(t) {
		a, b := renderFile(t, spec), renderFile(t, spec)
		if diff := cmp.Diff(a, b); diff != "" {
			t.Errorf("%s renders differently twice:\n%s", spec, diff)
		}
	}
}

// TestBundleFiles checks the shape every bundle must have: the seven files
// (eight with flake.nix), each starting with the generated-by header, then
// the files of the spec's modules or flake as they are, and SHA256SUMS
// covering all the rest.
func TestBundleFiles(t *testing.T) {
	for _, spec := range examples(t) {
		p, b := validateAndRender(t, loadSpec(t, spec))
		own := map[string]bool{}
		for _, f := range p.BundledFiles() {
			own[f.Name] = true
		}
		var names []string
		for _, f := range b.Files {
			if !own[f.Name] {
				names = append(names, f.Name)
			}
		}
		want := []string{"checklist.md", "configuration.nix", "facts.sh", "install.sh", "kexec-install.sh", "rescue-bootstrap.sh", "SHA256SUMS"}
		if b.File(plan.FlakeFile) != nil {
			want = []string{"checklist.md", "configuration.nix", "facts.sh", "flake.nix", "install.sh", "kexec-install.sh", "rescue-bootstrap.sh", "SHA256SUMS"}
		}
		if diff := cmp.Diff(want, names); diff != "" {
			t.Errorf("%s: bundle files (-want +got):\n%s", spec, diff)
		}
		for _, f := range b.Files {
			if own[f.Name] {
				continue
			}
			head := string(f.Data)
			if strings.HasPrefix(head, "#!") {
				head = head[strings.IndexByte(head, '\n')+1:]
			}
			first := head[:strings.IndexByte(head, '\n')]
			if !strings.Contains(first, "Code generated by nixplan "+plan.Version+" from "+filepath.Base(spec)+" (sha256 ") {
				t.Errorf("%s: %s does not start with the generated-by header: %q", spec, f.Name, first)
			}
		}
		sums := string(b.File(plan.SumsFile).Data)
		for _, f := range b.Files[:len(b.Files)-1] {
			if !strings.Contains(sums, "  "+f.Name+"\n") {
				t.Errorf("%s: SHA256SUMS does not list %s", spec, f.Name)
			}
		}
	}
}

// TestEmbeddedConfigurationIdentical reads the configuration heredoc out of
// kexec-install.sh with mvdan.cc/sh's parser and compares it byte for byte
// with configuration.nix. tools_test.go does the same with real bash.
func TestEmbeddedConfigurationIdentical(t *testing.T) {
	for _, spec := range examples(t) {
		b := renderFile(t, spec)
		got, err := plan.EmbeddedConfiguration(b.File(plan.KexecInstallFile).Data)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(b.File(plan.ConfigurationFile).Data), got); diff != "" {
			t.Errorf("%s: embedded configuration differs (-file +embedded):\n%s", spec, diff)
		}
	}
}

// TestChecklistWithoutConsole: every checklist says what to do without a KVM
// console, whether the console can log in, and, when the tarball's sha256
// is not pinned, how to compute one on the laptop.
func TestChecklistWithoutConsole(t *testing.T) {
	for _, spec := range examples(t) {
		p, b := validateAndRender(t, loadSpec(t, spec))
		text := string(b.File(plan.ChecklistFile).Data)
		want := []string{"**No KVM console?**", "the provider's\n      rescue mode is your console"}
		if p.ConsolePassword {
			want = append(want, "gets a root password for this console")
		} else {
			want = append(want, "has **no root password**", "ssh.console_password = true")
		}
		if p.Kexec.SHA256 == "" {
			want = append(want, "`curl -fLo kexec.tar.gz "+p.Kexec.URL+"`", "`shasum -a 256 kexec.tar.gz`", "--kexec-tarball kexec.tar.gz")
		}
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("%s checklist.md lacks %q", exampleName(spec), w)
			}
		}
	}
}
