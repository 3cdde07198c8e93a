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
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nixplan/nixplan/plan"
)

// fleetWriter is a command of the test binary (see TestMain): "SPEC OUT N"
// renders SPEC once and writes it as the bundles of N hosts web0000… into
// OUT/HOST through render's own write path, writeBundles. A real fleet
// spends seconds rendering before it writes; this one starts writing at
// once, so that a test can kill it at many points of its writing cheaply.
func fleetWriter() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: nixplan-fleet-writer SPEC OUT N")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	p, ps := loadOne(os.Args[1])
	if p == nil {
		fmt.Fprintln(os.Stderr, ps)
		os.Exit(1)
	}
	b, err := plan.Render(p)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bundles, dirs := make([]*plan.Bundle, n), make([]string, n)
	for i := range n {
		bundles[i], dirs[i] = b, filepath.Join(os.Args[2], fmt.Sprintf("web%04d", i))
	}
	for _, err := range writeBundles(bundles, dirs) {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

// TestFleetWriteSurvivesSIGKILL writes the bundles of 1,000 hosts over an
// earlier write of them and kills the writer with SIGKILL at points spread
// over its writing. After every kill each host must have a whole bundle, the
// old one or the new one: SHA256SUMS matches every file, and its header
// names one of the two specs. Then a real render of the fleet's 1,000 specs
// over them must leave nothing beside the bundles, and diff must find every
// bundle up to date and no host that is not one.
func TestFleetWriteSurvivesSIGKILL(t *testing.T) {
	nixplan, err := exec.LookPath("nixplan") // the test binary, as testscript installs it
	if err != nil {
		t.Fatal(err)
	}
	writer, err := exec.LookPath("nixplan-fleet-writer")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	specs := writeFleet(t, dir, fleetSize)
	// Two versions of one spec, differing in every file of the bundle (the
	// header's spec hash) and in configuration.nix's resolvers.
	example, err := os.ReadFile(specs[0])
	if err != nil {
		t.Fatal(err)
	}
	versions := [2]string{filepath.Join(dir, "a.toml"), filepath.Join(dir, "b.toml")}
	sums := make([]string, 2)
	for i, text := range [][]byte{example, bytes.Replace(example, []byte(`"8.8.8.8"`), []byte(`"8.8.4.4"`), 1)} {
		if err := os.WriteFile(versions[i], text, 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(text)
		sums[i] = hex.EncodeToString(sum[:])
	}
	out := filepath.Join(dir, "bundles")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(v int) *exec.Cmd { return exec.Command(writer, versions[v], out, strconv.Itoa(fleetSize)) }

	// The first write makes every folder and tells how long writing takes.
	start := time.Now()
	if _, err := runUntilWriting(write(0), out, nil); err != nil {
		t.Fatal(err)
	}
	writeTime := time.Since(start)
	t.Logf("writing %d bundles: %v", fleetSize, writeTime.Round(time.Millisecond))

	const kills = 12
	for k := range kills {
		// Alternate versions, so that every write replaces bundles.
		delay := writeTime * time.Duration(2*k+1) / (2 * kills)
		if _, err := runUntilWriting(write(1-k%2), out, &delay); err != nil {
			t.Fatal(err)
		}
		checkEveryHostWhole(t, out, sums)
		if t.Failed() {
			t.Fatalf("after the kill %v into writing, a host has no whole bundle", delay)
		}
	}

	// A real render of the fleet cleans up after the killed writes.
	if outText, err := exec.Command(nixplan, append([]string{"render", "-o", out}, specs...)...).CombinedOutput(); err != nil {
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
	diff := exec.Command(nixplan, append(append([]string{"diff"}, specs...), out)...)
	var stderr bytes.Buffer
	diff.Stderr = &stderr
	// The specs' own warnings (the seed's /dev/sda) may come; no error, and
	// no leftover warned about.
	if err := diff.Run(); err != nil || strings.Contains(stderr.String(), "nixplan: error:") || strings.Contains(stderr.String(), "interrupted render") {
		t.Errorf("diff after the render: %v\n%.2000s", err, stderr.String())
	}
}

// runUntilWriting starts a writer and returns how long it took to begin
// writing, seen as the first change of the bundles folder. With a delay it
// kills it with SIGKILL that long after; without one it waits for it to
// finish.
func runUntilWriting(cmd *exec.Cmd, out string, delay *time.Duration) (time.Duration, error) {
	before, err := os.Stat(out)
	if err != nil {
		return 0, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
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
				return 0, fmt.Errorf("%v before writing: %s", err, stderr.String())
			}
			return 0, fmt.Errorf("ended without changing %s", out)
		default:
		}
		if fi, err := os.Stat(out); err == nil && !fi.ModTime().Equal(before.ModTime()) {
			break
		}
		time.Sleep(100 * time.Microsecond)
	}
	writing := time.Since(start)
	if delay == nil {
		if err := <-done; err != nil {
			return 0, fmt.Errorf("%v: %s", err, stderr.String())
		}
		return writing, nil
	}
	time.Sleep(*delay)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
	return writing, nil
}

// checkEveryHostWhole requires each host's folder to hold a whole bundle
// of the spec with one of the given sha256s.
func checkEveryHostWhole(t *testing.T, out string, specSums []string) {
	t.Helper()
	forEach(fleetSize, func(i int) {
		dir := filepath.Join(out, fmt.Sprintf("web%04d", i))
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
		if !strings.Contains(header, "(sha256 "+specSums[0]+")") && !strings.Contains(header, "(sha256 "+specSums[1]+")") {
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
		if files != 6 {
			t.Errorf("%s: SHA256SUMS lists %d files, want 6", dir, files)
		}
	})
}
