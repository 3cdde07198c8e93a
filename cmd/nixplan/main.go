// Command nixplan renders an auditable bundle of scripts and configuration
// that installs NixOS on a rented dedicated server from its rescue system.
package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/spf13/pflag"

	"github.com/nixplan/nixplan/plan"
)

const usageText = `nixplan turns a TOML host spec into a bundle that installs NixOS on a rented
server from its Debian rescue system: rescue-bootstrap.sh, kexec-install.sh,
configuration.nix, checklist.md and SHA256SUMS. It never uses the network and
never touches a server; review the bundle, commit it, then follow checklist.md.

Commands:
    render   Validate the specs and write their bundles. One spec writes its
             files straight into DIR; a fleet (several specs, a folder of
             specs, a --from list, or --fleet) writes DIR/HOST/ for each
             host. DIR is replaced only if it is empty or an earlier bundle.
    check    Validate the specs and print every problem. Exit 1 if any.
             With --facts, also compare them with the machine that facts.sh
             described: disks and their identity, label, address, gateway,
             firmware, memory, root's keys, disks held by RAID or mounts.
             With --nix, also parse the specs' modules and flakes with
             nix-instantiate.
    diff     Render the specs in memory and compare them with the bundle
             in DIR (DIR/HOST for several specs): print a unified diff of
             every changed file and name every missing or extra one.
    simulate Run the bundle's two scripts in a shell interpreter against a
             machine, the healthy one the spec describes or --machine's,
             and print phase by phase every command that changes the
             machine, with its script line, and every file written. Nothing
             runs for real.
    init     Print a commented starter spec to edit. With --facts, print a
             spec written from the machine's facts instead (its disks by
             identity, its addresses and gateways). Each --ssh-key public key
             file's keys may log in as root.
    facts-script
             Print facts.sh, a read-only POSIX sh script. Run it as root in
             the rescue system (sh facts.sh > facts.json): it prints the
             machine's disks, network, firmware, memory and tools as JSON,
             and changes nothing.
    help     Print this text, or a command's usage and flags.
    completion
             Print a completion script for bash, zsh or fish.
    version  Print the version.

Run "nixplan help COMMAND" for a command's flags.

Results go to standard output; errors, warnings and hints to standard error,
as "nixplan: error: FILE: KEY: ..." lines.

Exit status:
    0  fine: the specs are valid (and match --facts), the bundles are
       written, the scripts would finish, or (diff) nothing drifted
    1  a problem: an invalid spec, a mismatch with --facts, scripts that
       would stop, or (diff) a committed bundle that drifted
    2  the command line was wrong, or (diff) trouble: a spec that does not
       load or validate, a bundle that cannot be read
`

// usage is the whole usage: every command's synopsis from the command
// table, then usageText.
func usage() string {
	var b strings.Builder
	b.WriteString("Usage:\n")
	for _, cmd := range commands {
		fmt.Fprintf(&b, "    %s\n", cmd.synopsis)
	}
	b.WriteString("\n" + usageText)
	return b.String()
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// exit codes
const (
	exitOK      = 0
	exitProblem = 1
	exitUsage   = 2
	// exitTrouble is diff's status when it could not compare, as diff(1)'s 2.
	exitTrouble = 2
)

type cli struct {
	stdout, stderr io.Writer
	stdin          io.Reader // for --from -
	// isTerminal says whether progress may be drawn on stderr; tests stand
	// in another. quiet is --quiet.
	isTerminal func(io.Writer) bool
	quiet      bool
}

// errorf, warnf and hintf print one line each: plan.Printable escapes the
// line breaks and control characters a file name or a value may hold.
func (c *cli) errorf(format string, args ...any) {
	fmt.Fprintf(c.stderr, "nixplan: error: %s\n", plan.Printable(fmt.Sprintf(format, args...)))
}

func (c *cli) warnf(format string, args ...any) {
	fmt.Fprintf(c.stderr, "nixplan: warning: %s\n", plan.Printable(fmt.Sprintf(format, args...)))
}

func (c *cli) hintf(format string, args ...any) {
	fmt.Fprintf(c.stderr, "nixplan: hint: %s\n", plan.Printable(fmt.Sprintf(format, args...)))
}

// usageError reports a wrong command line.
func (c *cli) usageError(format string, args ...any) int {
	msg := fmt.Sprintf(format, args...)
	c.errorf("%s", msg)
	// Messages about one command start with its name: point to its help.
	if name, _, ok := strings.Cut(msg, ": "); ok && lookup(name) != nil {
		c.hintf(`run "nixplan help %s" for its usage and flags`, name)
	} else {
		c.hintf(`run "nixplan help" for usage`)
	}
	return exitUsage
}

func run(args []string, stdout, stderr io.Writer) int {
	return (&cli{stdout: stdout, stderr: stderr, stdin: os.Stdin, isTerminal: isTerminal}).run(args)
}

func (c *cli) run(args []string) int {
	stdout, stderr := c.stdout, c.stderr
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return exitUsage
	}
	switch args[0] {
	case "-h", "--help":
		fmt.Fprint(stdout, usage())
		return exitOK
	case "--version":
		return c.version(nil)
	}
	if cmd := lookup(args[0]); cmd != nil {
		return cmd.run(c, args[1:])
	}
	if strings.HasPrefix(args[0], "-") {
		return c.usageError("unknown flag %s before the command", args[0])
	}
	return c.unknownCommand(args[0])
}

// parse parses flags; done is true when the command should return code.
func (c *cli) parse(fs *pflag.FlagSet, args []string) (code int, done bool) {
	if err := fs.Parse(args); err != nil {
		return c.usageError("%s: %v", fs.Name(), err), true
	}
	if help, _ := fs.GetBool("help"); help {
		fs.Usage()
		return exitOK, true
	}
	if fs.Lookup("quiet") != nil {
		c.quiet, _ = fs.GetBool("quiet")
	}
	return 0, false
}

// stringFlag returns the value of a string flag of the command table.
func stringFlag(fs *pflag.FlagSet, name string) *string {
	v, err := fs.GetString(name)
	if err != nil {
		panic(err) // a name missing from the command table
	}
	return &v
}

// validLine is check's result for a valid spec.
func validLine(p *plan.Plan) string {
	return fmt.Sprintf("valid: host %s, NixOS %s", p.Host.Name, p.Release.Version)
}

// loaded is one spec that passed validation.
type loaded struct {
	file string
	plan *plan.Plan
}

func loadOne(file string) (*plan.Plan, plan.Problems) {
	spec, err := plan.Load(file)
	if err != nil {
		var ps plan.Problems
		if errors.As(err, &ps) {
			return nil, ps
		}
		return nil, plan.Problems{{File: file, Msg: err.Error()}}
	}
	return plan.Validate(spec)
}

func (c *cli) report(ps plan.Problems) {
	for _, p := range ps {
		if p.Warning {
			c.warnf("%s", p.Error())
		} else {
			c.errorf("%s", p.Error())
		}
		if p.Hint != "" {
			c.hintf("%s", p.Hint)
		}
	}
}

// fleetMemoryLimit is render's and diff's soft memory limit: above their
// live heap for a fleet of 10,000 hosts (README, Performance), so that the
// larger heap goal they set does not grow a large fleet's memory.
const fleetMemoryLimit = 120 << 20

// softMemoryLimit sets fleetMemoryLimit unless GOMEMLIMIT is set, and
// returns what puts the limit back.
func softMemoryLimit() (restore func()) {
	if debug.SetMemoryLimit(-1) != math.MaxInt64 {
		return func() {}
	}
	old := debug.SetMemoryLimit(fleetMemoryLimit)
	return func() { debug.SetMemoryLimit(old) }
}

func (c *cli) render(args []string) int {
	fs := c.flags("render")
	if code, done := c.parse(fs, args); done {
		return code
	}
	out, tarball := stringFlag(fs, "output"), stringFlag(fs, "kexec-tarball")
	if fs.NArg() == 0 && *stringFlag(fs, "from") == "" {
		return c.usageError("render: no spec given")
	}
	if *out == "" {
		return c.usageError("render: -o DIR is required")
	}
	files, fleet, err := c.specInputs(fs, fs.Args())
	if err != nil {
		c.errorf("render: %v", err)
		return exitProblem
	}
	if *tarball != "" && len(files) > 1 {
		return c.usageError("render: --kexec-tarball takes one spec, not %d", len(files))
	}
	// Each bundle is staged beside its folder as soon as it renders, and
	// dropped from memory: a fleet's memory stays flat in its hosts. They are
	// published only when every spec has rendered and passed the fleet
	// check; otherwise every staged bundle is removed and nothing changes.
	// What stays is each spec's plan and problems, for the fleet check and
	// the report: a larger heap goal than the default saves collections, and
	// a soft memory limit (unless GOMEMLIMIT is set) bounds what that goal
	// costs on a large fleet.
	defer debug.SetGCPercent(debug.SetGCPercent(200))
	defer softMemoryLimit()()
	dirOf := func(b *plan.Bundle) string {
		if fleet {
			return filepath.Join(*out, b.Host)
		}
		return *out
	}
	parent := *out
	if !fleet {
		parent = filepath.Dir(*out)
	}
	st := newStager(len(files), parent)
	dirs, counts := make([]string, len(files)), make([]int, len(files))
	specs, ok := c.renderAll(files, func(i int, p *plan.Plan, b *plan.Bundle) {
		if *tarball != "" {
			shipped, err := plan.ShipTarball(p, *tarball)
			if err != nil {
				st.errs[i] = fmt.Errorf("--kexec-tarball: %w", err)
				return
			}
			b = shipped
		}
		dirs[i], counts[i] = dirOf(b), len(b.Files)
		if b.Shipped != nil {
			counts[i]++
		}
		st.stage(i, b, dirs[i])
	})
	for i, s := range specs {
		if st.errs[i] != nil {
			c.errorf("%s: %v", s.file, st.errs[i])
			ok = false
		}
	}
	if !ok {
		st.discard()
		return exitProblem
	}
	code := exitOK
	for i, err := range st.publish() {
		if err != nil {
			c.errorf("%s: %v", specs[i].file, err)
			code = exitProblem
			continue
		}
		fmt.Fprintf(c.stdout, "%s: wrote %d files to %s\n", specs[i].file, counts[i], dirs[i])
	}
	return code
}

func (c *cli) check(args []string) int {
	fs := c.flags("check")
	if code, done := c.parse(fs, args); done {
		return code
	}
	facts := stringFlag(fs, "facts")
	withNix, _ := fs.GetBool("nix")
	if fs.NArg() == 0 && *stringFlag(fs, "from") == "" {
		return c.usageError("check: no spec given")
	}
	// --nix parses with the local Nix, so only then do results depend on
	// the machine; without it check needs no Nix.
	var nix string
	if withNix {
		var err error
		if nix, err = exec.LookPath("nix-instantiate"); err != nil {
			c.errorf("check --nix: nix-instantiate is not on PATH")
			c.hintf("install Nix, or check without --nix (the install evaluates the system before it erases anything)")
			return exitUsage
		}
	}
	files, _, err := c.specInputs(fs, fs.Args())
	if err != nil {
		c.errorf("check: %v", err)
		return exitProblem
	}
	// The bundles are rendered and checked, then dropped: check writes nothing.
	rs, ok := c.renderAll(files, func(int, *plan.Plan, *plan.Bundle) {})
	var specs []loaded
	for _, r := range rs {
		if r.plan == nil || r.err != nil || r.clash {
			continue
		}
		if nix != "" {
			if ps := plan.ParseNix(r.plan, nix); len(ps) > 0 {
				c.report(ps)
				ok = false
				continue
			}
		}
		specs = append(specs, loaded{file: r.file, plan: r.plan})
	}
	// With --facts a spec's result line waits for the comparison: a spec
	// that does not match the machine is not reported valid.
	if *facts != "" {
		if !c.checkFacts(*facts, specs) {
			ok = false
		}
	} else {
		for _, s := range specs {
			fmt.Fprintf(c.stdout, "%s: %s\n", s.file, validLine(s.plan))
		}
	}
	if !ok {
		return exitProblem
	}
	return exitOK
}

func (c *cli) init(args []string) int {
	fs := c.flags("init")
	if code, done := c.parse(fs, args); done {
		return code
	}
	provider, facts := *stringFlag(fs, "provider"), *stringFlag(fs, "facts")
	keyFiles, _ := fs.GetStringArray("ssh-key")
	if fs.NArg() > 0 {
		return c.usageError("init: unexpected argument %q", fs.Arg(0))
	}
	if provider != "" {
		if _, ok := plan.LookupProvider(provider); !ok {
			c.errorf("init: unknown provider %q", provider)
			c.hintf("--provider is one of: %s", strings.Join(plan.Providers(), ", "))
			return exitUsage
		}
	}
	keys, ok := c.readKeyFiles(keyFiles)
	if !ok {
		return exitProblem
	}
	if facts != "" {
		return c.initFacts(facts, provider, keys)
	}
	if provider == "" {
		provider = "ovh"
	}
	text, err := plan.StarterSpec(provider, keys)
	if err != nil {
		c.errorf("init: %v", err)
		return exitProblem
	}
	fmt.Fprint(c.stdout, text)
	return exitOK
}
