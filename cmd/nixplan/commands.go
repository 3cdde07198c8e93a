package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/nixplan/nixplan/plan"
)

// command is one of nixplan's commands. The table below is the one place that
// names the commands, their operands and their flags: running them, their
// help, the suggestion for a mistyped name and the completion scripts all
// read it, so none of them can drift from the others.
type command struct {
	name     string
	synopsis string // the usage line
	summary  string // one line, for completion menus
	notes    string // more for the command's help, such as its exit status
	operands operand
	flags    []flagDef
	run      func(c *cli, args []string) int
}

// operand says what a command's operands are, for completion.
type operand int

const (
	noOperands   operand = iota
	specOperands         // SPEC...
	specsThenDir         // SPEC... DIR
	commandName          // a command's name (help)
	shellName            // bash, zsh or fish (completion)
)

// flagDef is one flag. value names what the flag takes (DIR, FILE, ...); a
// flag without one is a switch. words lists the values it accepts when
// there are few; glob is the file pattern its value matches; dir is true
// when the value is a folder.
type flagDef struct {
	name, short string
	value       string
	def         string
	usage       string
	repeat      bool
	words       func() []string
	glob        string
	dir         bool
}

var shells = []string{"bash", "zsh", "fish"}

// The flags of the commands that take a fleet.
var (
	fromFlag  = flagDef{name: "from", value: "LIST", usage: "also the specs this file lists, one path a line; - reads the list from standard input"}
	fleetFlag = flagDef{name: "fleet", usage: "a fleet, even of one spec: its bundles are DIR/HOST"}
	quietFlag = flagDef{name: "quiet", short: "q", usage: "no progress line on a terminal"}
)

// commands is set in init: the commands' run functions read the table.
var commands []*command

func init() {
	commands = []*command{
		{name: "render", synopsis: "nixplan render SPEC|FOLDER... [--from LIST] [--fleet] -o DIR [--kexec-tarball FILE]",
			summary: "validate specs and write their bundles", operands: specOperands,
			notes: "A FOLDER stands for its *.toml specs. A fleet (--fleet, a FOLDER, a --from list,\nor several specs) writes DIR/HOST for each host; one spec writes into DIR.",
			flags: []flagDef{
				{name: "output", short: "o", value: "DIR", dir: true, usage: "the bundle folder (required)"},
				fromFlag, fleetFlag, quietFlag,
				{name: "kexec-tarball", value: "FILE", glob: "*.tar.gz", usage: "put this kexec installer tarball in the bundle and pin its sha256 (one spec)"},
			},
			run: (*cli).render},
		{name: "check", synopsis: "nixplan check SPEC|FOLDER... [--from LIST] [--facts FACTS] [--nix]",
			summary: "validate specs and print every problem", operands: specOperands,
			notes: "Exit status: 0 every spec is valid (and matches --facts), 1 a problem, 2 a wrong\ncommand line (or --nix without nix-instantiate).",
			flags: []flagDef{
				{name: "facts", value: "FACTS", glob: "*.json", usage: "also compare the specs with this machine description (facts.sh's output)"},
				fromFlag, quietFlag,
				{name: "nix", usage: "also parse every .nix file of the specs' modules and flakes with nix-instantiate --parse"},
			},
			run: (*cli).check},
		{name: "simulate", synopsis: "nixplan simulate SPEC [--machine FACTS] [--format text|json]",
			summary: "print every command the scripts would run", operands: specOperands,
			notes: "Exit status: 0 both scripts would finish, 1 they would stop (standard error says\nwhere and why), 2 a wrong command line.",
			flags: []flagDef{
				{name: "machine", value: "FACTS", glob: "*.json", usage: "a machine description (facts.sh's output) to run against; default: the healthy machine the spec describes"},
				{name: "format", value: "FORMAT", def: "text", words: func() []string { return []string{"text", "json"} },
					usage: "text, a transcript to review, or json, the plan for other tools"},
			},
			run: (*cli).simulate},
		{name: "diff", synopsis: "nixplan diff SPEC|FOLDER... [--from LIST] [--fleet] DIR",
			summary: "compare committed bundles with their specs", operands: specsThenDir,
			notes: "Exit status, as diff(1)'s: 0 every bundle matches its spec, 1 drift (a file changed,\nmissing or extra, a bundle no spec names), 2 trouble (a spec that does not\nvalidate, a bundle folder that cannot be read, a wrong command line).",
			flags: []flagDef{fromFlag, fleetFlag, quietFlag},
			run:   (*cli).diff},
		{name: "init", synopsis: "nixplan init [--provider PROVIDER] [--facts FACTS] [--ssh-key FILE]... > host.toml",
			summary: "print a starter spec, or one written from a machine's facts", operands: noOperands,
			flags: []flagDef{
				{name: "provider", value: "PROVIDER", words: plan.Providers, usage: "the hosting provider"},
				{name: "facts", value: "FACTS", glob: "*.json", usage: "write the spec from this machine description (facts.sh's output)"},
				{name: "ssh-key", value: "FILE", glob: "*.pub", repeat: true, usage: "a public key file whose keys may log in as root (repeatable)"},
			},
			run: (*cli).init},
		{name: "facts-script", synopsis: "nixplan facts-script > facts.sh",
			summary: "print the read-only facts script", operands: noOperands,
			run: (*cli).factsScript},
		{name: "help", synopsis: "nixplan help [COMMAND]",
			summary: "print the usage, or a command's", operands: commandName,
			run: (*cli).help},
		{name: "completion", synopsis: "nixplan completion bash|zsh|fish",
			summary: "print a shell completion script", operands: shellName,
			run: (*cli).completion},
		{name: "version", synopsis: "nixplan version",
			summary: "print the version", operands: noOperands,
			run: (*cli).version},
	}
}

func lookup(name string) *command {
	for _, cmd := range commands {
		if cmd.name == name {
			return cmd
		}
	}
	return nil
}

func commandNames() []string {
	names := make([]string, len(commands))
	for i, cmd := range commands {
		names[i] = cmd.name
	}
	return names
}

// flags returns the command's flag set, with --help, whose usage prints the
// command's own help.
func (c *cli) flags(name string) *pflag.FlagSet {
	cmd := lookup(name)
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, f := range cmd.flags {
		switch {
		case f.value == "":
			fs.BoolP(f.name, f.short, false, f.usage)
		case f.repeat:
			fs.StringArrayP(f.name, f.short, nil, f.usage)
		default:
			fs.StringP(f.name, f.short, f.def, f.usage)
		}
	}
	fs.BoolP("help", "h", false, "print this help")
	fs.Usage = func() { writeCommandHelp(c.stdout, cmd) }
	return fs
}

// writeCommandHelp prints a command's usage line and its flags, one a line:
// the flag, the name of its value, what it does, the values it takes and
// its default.
func writeCommandHelp(w io.Writer, cmd *command) {
	fmt.Fprintf(w, "Usage:\n    %s\n\n%s.\n", cmd.synopsis, capitalize(cmd.summary))
	if cmd.notes != "" {
		fmt.Fprintf(w, "\n%s\n", cmd.notes)
	}
	defs := append(append([]flagDef(nil), cmd.flags...), flagDef{name: "help", short: "h", usage: "print this help"})
	left := make([]string, len(defs))
	width := 0
	for i, f := range defs {
		s := "    "
		if f.short != "" {
			s = "-" + f.short + ", "
		}
		s += "--" + f.name
		if f.value != "" {
			s += " " + f.value
		}
		left[i] = s
		width = max(width, len(s))
	}
	fmt.Fprintf(w, "\nFlags:\n")
	for i, f := range defs {
		usage := f.usage
		if f.words != nil && !mentionsAny(usage, f.words()) {
			usage += ": " + strings.Join(f.words(), ", ")
		}
		if f.def != "" {
			usage += fmt.Sprintf(" (default %s)", f.def)
		}
		fmt.Fprintf(w, "  %-*s  %s\n", width, left[i], usage)
	}
}

// mentionsAny reports whether usage already names one of words.
func mentionsAny(usage string, words []string) bool {
	for _, w := range words {
		if strings.Contains(usage, w) {
			return true
		}
	}
	return false
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// suggest returns the commands a mistyped name most likely meant: those
// within two edits of it, or that it is a prefix of, nearest first.
func suggest(name string) []string {
	type near struct {
		name string
		dist int
	}
	var found []near
	for _, cmd := range commands {
		d := plan.EditDistance(name, cmd.name)
		if len(name) >= 2 && strings.HasPrefix(cmd.name, name) {
			d = 0
		}
		if d <= 2 && d < len(name) {
			found = append(found, near{cmd.name, d})
		}
	}
	sort.SliceStable(found, func(i, j int) bool { return found[i].dist < found[j].dist })
	out := make([]string, len(found))
	for i, f := range found {
		out[i] = f.name
	}
	return out
}

// help prints the usage, or one command's help.
func (c *cli) help(args []string) int {
	fs := c.flags("help")
	if code, done := c.parse(fs, args); done {
		return code
	}
	switch fs.NArg() {
	case 0:
		fmt.Fprint(c.stdout, usage())
		return exitOK
	case 1:
		if cmd := lookup(fs.Arg(0)); cmd != nil {
			writeCommandHelp(c.stdout, cmd)
			return exitOK
		}
		return c.unknownCommand(fs.Arg(0))
	}
	return c.usageError("help: one command at a time, not %d", fs.NArg())
}

func (c *cli) version(args []string) int {
	fs := c.flags("version")
	if code, done := c.parse(fs, args); done {
		return code
	}
	if fs.NArg() > 0 {
		return c.usageError("version: unexpected argument %q", fs.Arg(0))
	}
	fmt.Fprintf(c.stdout, "nixplan %s\n", plan.Version)
	return exitOK
}

// unknownCommand reports a command name nixplan does not have, with the
// names it may have meant.
func (c *cli) unknownCommand(name string) int {
	c.errorf("unknown command %q", name)
	if s := suggest(name); len(s) > 0 {
		c.hintf("did you mean %q?", s[0])
	} else {
		c.hintf("the commands are: %s", strings.Join(commandNames(), ", "))
	}
	return exitUsage
}
