package plan_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/nixplan/nixplan/plan"
)

// TestCheckRemembersOnlyBodies: Check skips parsing a script whose body (the
// text after its leading comment lines) parsed before, and only that.
func TestCheckRemembersOnlyBodies(t *testing.T) {
	good := diffTestBundle(t)
	if err := plan.Check(good); err != nil {
		t.Fatal(err)
	}
	edit := func(f func([]byte) []byte) *plan.Bundle {
		b := &plan.Bundle{Host: good.Host}
		for _, file := range good.Files {
			if file.Name == plan.FactsFile {
				file.Data = f(bytes.Clone(file.Data))
			}
			b.Files = append(b.Files, file)
		}
		return b
	}
	// Another header comment, the same body: still valid.
	reheaded := edit(func(d []byte) []byte {
		return bytes.Replace(d, []byte("# Code generated"), []byte("# Also generated"), 1)
	})
	if err := plan.Check(reheaded); err != nil {
		t.Errorf("a new header comment: %v", err)
	}
	// A broken body after the same header is parsed, and refused.
	broken := edit(func(d []byte) []byte { return append(d, "\nif then fi\n"...) })
	var ce *plan.CheckError
	if err := plan.Check(broken); !errors.As(err, &ce) || ce.File != plan.FactsFile {
		t.Errorf("a broken facts.sh: err %v, want a CheckError for %s", err, plan.FactsFile)
	}
	// A header line that swallows the body's first line changes the body.
	joined := edit(func(d []byte) []byte {
		i := bytes.Index(d, []byte("\n# Code generated"))
		j := bytes.IndexByte(d[i+1:], '\n') + i + 1
		return append(d[:j:j], append([]byte(" \\\n)"), d[j:]...)...)
	})
	if err := plan.Check(joined); !errors.As(err, &ce) {
		t.Errorf("a stray ) after the header: err %v, want a CheckError", err)
	}
}

// TestEmbeddedFactsScriptParses: a process takes facts.sh's embedded body as
// parsed without parsing it (see parsedBodies in check.go); this is where it
// is parsed, with the parser Check uses.
func TestEmbeddedFactsScriptParses(t *testing.T) {
	if _, err := plan.ParseScript(plan.FactsFile, []byte(plan.FactsScript())); err != nil {
		t.Fatalf("the embedded facts.sh does not parse: %v", err)
	}
}

// TestCheckKeepsTreesOfTheSameScriptOnly: the trees Check keeps for simulate
// answer only for the very same script; a changed one is parsed again.
func TestCheckKeepsTreesOfTheSameScriptOnly(t *testing.T) {
	good := diffTestBundle(t)
	if err := plan.Check(good); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{plan.RescueBootstrapFile, plan.KexecInstallFile} {
		b := &plan.Bundle{Host: good.Host}
		for _, file := range good.Files {
			if file.Name == name {
				file.Data = append(bytes.Clone(file.Data), "\nif then fi\n"...)
			}
			b.Files = append(b.Files, file)
		}
		var ce *plan.CheckError
		if err := plan.Check(b); !errors.As(err, &ce) || ce.File != name {
			t.Errorf("a broken %s after a good one: err %v, want a CheckError for it", name, err)
		}
	}
	if err := plan.Check(good); err != nil {
		t.Errorf("the good bundle again: %v", err)
	}
	// A bundle changed in place, after Check kept its trees.
	f := good.File(plan.KexecInstallFile)
	i := bytes.Index(f.Data, []byte("\nrun() {"))
	copy(f.Data[i+1:], "if() {")
	var ce *plan.CheckError
	if err := plan.Check(good); !errors.As(err, &ce) || ce.File != plan.KexecInstallFile {
		t.Errorf("kexec-install.sh broken in place: err %v, want a CheckError for it", err)
	}
}
