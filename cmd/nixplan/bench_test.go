package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The fleet benchmarks render and diff 1,000 generated specs: in-process
// (with -benchmem for allocations) and as a built nixplan process, which
// reports its wall time and peak RSS. They measure; they assert nothing
// about time or memory. Run them with
//
//	go test ./cmd/nixplan -run '^$' -bench Fleet -benchmem

const fleetSize = 1000

// writeFleet writes n specs, each the example with its own host name, host
// id and address, into dir/hosts and returns their paths in order.
func writeFleet(tb testing.TB, dir string, n int) []string {
	tb.Helper()
	example, err := os.ReadFile("../../examples/ovh-kimsufi.toml")
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "hosts"), 0o755); err != nil {
		tb.Fatal(err)
	}
	specs := make([]string, n)
	for i := range n {
		host := fmt.Sprintf("web%04d", i)
		// 10.x.y.10/24 with gateway 10.x.y.254: a subnet per host.
		net := fmt.Sprintf("10.%d.%d.", i/250, i%250)
		spec := strings.NewReplacer(
			`name = "blog-demo"`, `name = "`+host+`"`,
			`host_id = "12345678"`, fmt.Sprintf(`host_id = "%08x"`, 0x10000000+i),
			`"203.0.113.10"`, `"`+net+`10"`,
			`"203.0.113.254"`, `"`+net+`254"`,
		).Replace(string(example))
		specs[i] = filepath.Join(dir, "hosts", host+".toml")
		if err := os.WriteFile(specs[i], []byte(spec), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return specs
}

// fleetSizes are the fleets BenchmarkFleetProcess renders:
// NIXPLAN_FLEET_SIZES=1000,10000 measures both in one run.
func fleetSizes(b *testing.B) []int {
	env := os.Getenv("NIXPLAN_FLEET_SIZES")
	if env == "" {
		return []int{fleetSize}
	}
	var sizes []int
	for _, f := range strings.Split(env, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.Fatalf("NIXPLAN_FLEET_SIZES=%q: want sizes such as 1000,10000", env)
		}
		sizes = append(sizes, n)
	}
	return sizes
}

// BenchmarkFleetProcess builds nixplan and runs it as a whole process on
// generated fleets (1,000 specs, or NIXPLAN_FLEET_SIZES), given as a --from
// list, reporting each command's wall time (ns/op), its CPU time (user and
// system) per host (CPU-ms/host) and its peak resident set size
// (peak-RSS-MB, the largest over the runs, from the child's rusage). cp-r
// copies the rendered bundles with cp -r: the cost of writing the bytes alone.
//
// Linux starts a child of a Go program on its parent's memory (vfork), so the
// child's peak is at least the parent's: this benchmark comes first, while
// the test process is small, and reports that floor as parent-RSS-MB.
func BenchmarkFleetProcess(b *testing.B) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		b.Skip("go is not on PATH to build nixplan")
	}
	dir := b.TempDir()
	bin := filepath.Join(dir, "nixplan")
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	for _, n := range fleetSizes(b) {
		fleet := filepath.Join(dir, strconv.Itoa(n))
		specs := writeFleet(b, fleet, n)
		list := filepath.Join(fleet, "hosts.list")
		if err := os.WriteFile(list, []byte(strings.Join(specs, "\n")+"\n"), 0o644); err != nil {
			b.Fatal(err)
		}
		out, copied := filepath.Join(fleet, "out"), filepath.Join(fleet, "copy")
		for _, c := range []struct {
			name string
			bin  string
			args []string
		}{
			{"render", bin, []string{"render", "--from", list, "-o", out}},
			{"diff", bin, []string{"diff", "--from", list, out}},
			{"cp-r", "sh", []string{"-c", `rm -rf "$2" && cp -r "$1" "$2"`, "sh", out, copied}},
		} {
			b.Run(fmt.Sprintf("%s/hosts=%d", c.name, n), func(b *testing.B) {
				var peak int64
				var cpu time.Duration
				runs := 0
				for b.Loop() {
					cmd := exec.Command(c.bin, c.args...)
					var stderr strings.Builder
					cmd.Stderr = &stderr
					if err := cmd.Run(); err != nil {
						b.Fatalf("%s %s: %v\n%s", c.bin, c.name, err, stderr.String())
					}
					peak = max(peak, peakRSS(cmd.ProcessState))
					cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
					runs++
				}
				b.ReportMetric(float64(cpu.Microseconds())/1000/float64(runs*n), "CPU-ms/host")
				if peak > 0 {
					b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MB")
					b.ReportMetric(float64(selfPeakRSS())/(1<<20), "parent-RSS-MB")
				}
			})
		}
	}
}

// BenchmarkFleet runs nixplan render and nixplan diff in process on
// generated fleets (1,000 specs, or NIXPLAN_FLEET_SIZES): load, validate,
// render and check every spec, then write every bundle (render) or compare
// it with the bundle on disk (diff).
func BenchmarkFleet(b *testing.B) {
	for _, n := range fleetSizes(b) {
		dir := b.TempDir()
		specs := writeFleet(b, dir, n)
		list := filepath.Join(dir, "hosts.list")
		if err := os.WriteFile(list, []byte(strings.Join(specs, "\n")+"\n"), 0o644); err != nil {
			b.Fatal(err)
		}
		out := filepath.Join(dir, "out")
		runOK := func(b *testing.B, args ...string) {
			var stderr strings.Builder
			if code := run(args, io.Discard, &stderr); code != exitOK {
				b.Fatalf("nixplan %s: exit %d\n%s", args[0], code, stderr.String())
			}
		}
		b.Run(fmt.Sprintf("render/hosts=%d", n), func(b *testing.B) {
			for b.Loop() {
				runOK(b, "render", "--from", list, "-o", out)
			}
		})
		b.Run(fmt.Sprintf("diff/hosts=%d", n), func(b *testing.B) {
			for b.Loop() {
				runOK(b, "diff", "--from", list, out)
			}
		})
	}
}
