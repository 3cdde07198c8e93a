package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

var update = flag.Bool("update", false, "rewrite the testscript files' expected output")

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"nixplan":              func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
		"nixplan-fleet-writer": fleetWriter,
	})
}

// TestScript runs the CLI tests in testdata/script, one file per feature.
// Each test gets a copy of the examples in $WORK/examples, of testdata/bad in
// $WORK/bad and of the machine fixtures in $WORK/machines.
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:           "testdata/script",
		UpdateScripts: *update,
		Setup: func(env *testscript.Env) error {
			for from, to := range map[string]string{"../../examples": "examples", "../../testdata/bad": "bad", "../../testdata/machines": "machines"} {
				if err := copyDir(from, env.WorkDir+"/"+to); err != nil {
					return err
				}
			}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"replace": cmdReplace,
		},
	})
}

// cmdReplace edits a file in place: replace OLD NEW FILE replaces every OLD
// with NEW and fails if OLD does not occur, so a test cannot silently edit
// nothing. A \n in NEW is a line break (testscript arguments are one line).
func cmdReplace(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: replace OLD NEW FILE")
	}
	file := ts.MkAbs(args[2])
	data := ts.ReadFile(args[2])
	if !strings.Contains(data, args[0]) {
		ts.Fatalf("replace: %q does not occur in %s", args[0], args[2])
	}
	ts.Check(os.WriteFile(file, []byte(strings.ReplaceAll(data, args[0], strings.ReplaceAll(args[1], `\n`, "\n"))), 0o644))
}

func copyDir(from, to string) error {
	entries, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := copyDir(from+"/"+e.Name(), to+"/"+e.Name()); err != nil {
				return err
			}
			continue
		}
		// Links stay links: bad specs are made of links that lead out.
		if e.Type()&os.ModeSymlink != 0 {
			target, err := os.Readlink(from + "/" + e.Name())
			if err == nil {
				err = os.Symlink(target, to+"/"+e.Name())
			}
			if err != nil {
				return err
			}
			continue
		}
		data, err := os.ReadFile(from + "/" + e.Name())
		if err != nil {
			return err
		}
		if err := os.WriteFile(to+"/"+e.Name(), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// TestBadScriptListsEverySpec keeps testdata/script/bad.txtar in step with
// testdata/bad: every bad spec must be run through nixplan check there.
func TestBadScriptListsEverySpec(t *testing.T) {
	script, err := os.ReadFile("testdata/script/bad.txtar")
	if err != nil {
		t.Fatal(err)
	}
	specs, _ := filepath.Glob("../../testdata/bad/*.toml")
	if len(specs) == 0 {
		t.Fatal("no bad specs found")
	}
	for _, s := range specs {
		name := "bad/" + filepath.Base(s)
		if !strings.Contains(string(script), "! exec nixplan check "+name+"\n") {
			t.Errorf("bad.txtar does not check %s", name)
		}
	}
}
