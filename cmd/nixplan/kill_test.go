package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nixplan/nixplan/plan"
)

// TestFleetWriteSurvivesSIGKILL renders a fleet of 1,000 specs over an
// earlier render of the same fleet and kills nixplan with SIGKILL at points
// spread over its writing. After every kill each host must have a whole
// bundle, the old one or the new one: SHA256SUMS matches every file, and its
// header names one of the two specs. A render afterwards must leave nothing
// beside the bundles, and diff must find every bundle up to date and no
// host that is not one.
func TestFleetWriteSurvivesSIGKILL(t *testing.T) {
	nixplan, err := exec.LookPath("nixplan") // the test binary, as testscript installs it
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	versions := [2][]string{
		writeFleet(t, filepath.Join(dir, "a"), fleetSize),
		writeFleet(t, filepath.Join(dir, "b"), fleetSize),
	}
	// The second version differs in a value every file of a bundle holds
	// (the header's spec hash) and in configuration.nix's resolvers.
	for _, spec := range versions[1] {
		data, err := os.ReadFile(spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(spec, bytes.Replace(data, []byte(`"8.8.8.8"`), []byte(`"8.8.4.4"`), 1), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "bundles")
	render := func(v int) *exec.Cmd {
		cmd := exec.Command(nixplan, append([]string{"render", "-o", out}, versions[v]...)...)
		cmd.Stdout, cmd.Stderr = nil, nil
		return cmd
	}

	// The first render writes every folder, and tells how long writing
	// takes: from the first change of the bundles folder to the end.
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	writing, err := runUntilWriting(render(0), out, nil)
	if err != nil {
		t.Fatal(err)
	}
	writeTime := time.Since(start) - writing
	t.Logf("a render of %d hosts: %v rendering, %v writing", fleetSize, writing.Round(time.Millisecond), writeTime.Round(time.Millisecond))

	const kills = 8
	for k := range kills {
		// Alternate versions, so that every run replaces bundles.
		delay := writeTime * time.Duration(2*k+1) / (2 * kills)
		if _, err := runUntilWriting(render(1-k%2), out, &delay); err != nil {
			t.Fatal(err)
		}
		checkEveryHostWhole(t, out, versions)
		if t.Failed() {
			t.Fatalf("after the kill %v into writing, a host has no whole bundle", delay)
		}
	}

	// A render cleans up after the killed ones.
	if outText, err := render(1).CombinedOutput(); err != nil {
		t.Fatalf("render: %v\n%.2000s", err, outText)
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != fleetSize {
		var extra []string
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), "web") {
				extra = append(extra, e.Name())
			}
		}
		t.Errorf("%d entries in the bundles folder after a render, want %d: %v", len(entries), fleetSize, extra)
	}
	diff := exec.Command(nixplan, append(append([]string{"diff"}, versions[1]...), out)...)
	var stderr bytes.Buffer
	diff.Stderr = &stderr
	// The specs' own warnings (the seed's /dev/sda) may come; no error, and
	// no leftover warned about.
	if err := diff.Run(); err != nil || strings.Contains(stderr.String(), "nixplan: error:") || strings.Contains(stderr.String(), "interrupted render") {
		t.Errorf("diff after the render: %v\n%.2000s", err, stderr.String())
	}
}

// runUntilWriting starts a render and returns how long it took to begin
// writing, seen as the first change of the bundles folder. With a delay it
// kills the render with SIGKILL that long after; without one it waits for
// it to finish.
func runUntilWriting(cmd *exec.Cmd, out string, delay *time.Duration) (time.Duration, error) {
	before, err := os.Stat(out)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case err := <-done:
			if err != nil {
				return 0, fmt.Errorf("render ended before writing: %w", err)
			}
			return 0, fmt.Errorf("render ended without changing %s", out)
		default:
		}
		if fi, err := os.Stat(out); err == nil && !fi.ModTime().Equal(before.ModTime()) {
			break
		}
		time.Sleep(200 * time.Microsecond)
	}
	writing := time.Since(start)
	if delay == nil {
		if err := <-done; err != nil {
			return 0, fmt.Errorf("render: %w", err)
		}
		return writing, nil
	}
	time.Sleep(*delay)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
	return writing, nil
}

// checkEveryHostWhole requires each host's folder to hold a whole bundle
// of one of the spec versions.
func checkEveryHostWhole(t *testing.T, out string, versions [2][]string) {
	t.Helper()
	forEach(fleetSize, func(i int) {
		host := strings.TrimSuffix(filepath.Base(versions[0][i]), ".toml")
		dir := filepath.Join(out, host)
		if !plan.IsBundle(dir) {
			t.Errorf("%s: not a whole bundle", dir)
			return
		}
		sums, err := os.ReadFile(filepath.Join(dir, plan.SumsFile))
		if err != nil {
			t.Error(err)
			return
		}
		sc := bufio.NewScanner(bytes.NewReader(sums))
		sc.Scan()
		header := sc.Text()
		known := false
		for _, v := range versions {
			data, err := os.ReadFile(v[i])
			if err != nil {
				t.Error(err)
				return
			}
			sum := sha256.Sum256(data)
			known = known || strings.Contains(header, "(sha256 "+hex.EncodeToString(sum[:])+")")
		}
		if !known {
			t.Errorf("%s: SHA256SUMS names neither spec: %s", dir, header)
		}
		files := 0
		for sc.Scan() {
			want, name, _ := strings.Cut(sc.Text(), "  ")
			data, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Errorf("%s: %v", dir, err)
				continue
			}
			if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != want {
				t.Errorf("%s/%s: does not match SHA256SUMS", dir, name)
			}
			files++
		}
		if files != 5 {
			t.Errorf("%s: SHA256SUMS lists %d files, want 5", dir, files)
		}
	})
}
