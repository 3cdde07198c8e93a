package main

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

var update = flag.Bool("update", false, "rewrite the testscript files' expected output")

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"nixplan": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// TestScript runs the CLI tests in testdata/script, one file per feature.
// Each test gets a copy of the examples in $WORK/examples.
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:           "testdata/script",
		UpdateScripts: *update,
		Setup: func(env *testscript.Env) error {
			return copyDir("../../examples", env.WorkDir+"/examples")
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"replace": cmdReplace,
		},
	})
}

// cmdReplace edits a file in place: replace OLD NEW FILE replaces every OLD
// with NEW and fails if OLD does not occur, so a test cannot silently edit nothing.
func cmdReplace(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: replace OLD NEW FILE")
	}
	file := ts.MkAbs(args[2])
	data := ts.ReadFile(args[2])
	if !strings.Contains(data, args[0]) {
		ts.Fatalf("replace: %q does not occur in %s", args[0], args[2])
	}
	ts.Check(os.WriteFile(file, []byte(strings.ReplaceAll(data, args[0], args[1])), 0o644))
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
