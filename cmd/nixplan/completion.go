package main

import (
	"fmt"
	"io"
	"strings"

	"mvdan.cc/sh/v3/syntax"

	"github.com/nixplan/nixplan/plan"
)

// completion prints a completion script for bash, zsh or fish, written from
// the command table.
func (c *cli) completion(args []string) int {
	fs := c.flags("completion")
	if code, done := c.parse(fs, args); done {
		return code
	}
	if fs.NArg() != 1 {
		return c.usageError("completion: name one shell: %s", strings.Join(shells, ", "))
	}
	switch fs.Arg(0) {
	case "bash":
		writeBashCompletion(c.stdout)
	case "zsh":
		writeZshCompletion(c.stdout)
	case "fish":
		writeFishCompletion(c.stdout)
	default:
		return c.usageError("completion: %q is not a shell nixplan completes; name one of: %s", fs.Arg(0), strings.Join(shells, ", "))
	}
	return exitOK
}

// shq quotes s for bash and zsh, which share the quoting rules used here.
func shq(s string) string {
	q, err := syntax.Quote(s, syntax.LangBash)
	if err != nil {
		panic(err) // the table holds no NUL bytes
	}
	return q
}

// spellings lists a flag's spellings: --name, and -s where it has one.
func (f flagDef) spellings() []string {
	names := []string{"--" + f.name}
	if f.short != "" {
		names = append(names, "-"+f.short)
	}
	return names
}

// allFlags is a command's flags with --help.
func (cmd *command) allFlags() []flagDef {
	return append(append([]flagDef(nil), cmd.flags...), flagDef{name: "help", short: "h", usage: "print this help"})
}

func (cmd *command) operandWords() []string {
	switch cmd.operands {
	case commandName:
		return commandNames()
	case shellName:
		return shells
	}
	return nil
}

func writeBashCompletion(w io.Writer) {
	fmt.Fprintf(w, `# bash completion for nixplan %s; written by "nixplan completion bash".
# Load it with: source <(nixplan completion bash)
# It runs in bash 3.2 (macOS's /bin/bash) too: no mapfile.
_nixplan_words() { COMPREPLY=($(compgen -W "$1" -- "$cur")); }
# _nixplan_files GLOB: folders, to walk into, and files matching GLOB; one
# name a line, so names with spaces stay whole.
_nixplan_files() {
  local IFS=$'\n'
  COMPREPLY=($(compgen -d -- "$cur"; [ -n "$1" ] && compgen -f -X "!$1" -- "$cur"))
}
_nixplan() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
  COMPREPLY=()
  if ((COMP_CWORD == 1)); then
    _nixplan_words %s
    return
  fi
  case ${COMP_WORDS[1]} in
`, versionText(), shq(strings.Join(commandNames(), " ")))
	for _, cmd := range commands {
		fmt.Fprintf(w, "  %s)\n    case $prev in\n", cmd.name)
		for _, f := range cmd.flags {
			if f.value == "" {
				continue
			}
			fmt.Fprintf(w, "    %s)\n      %s\n      return ;;\n", strings.Join(f.spellings(), "|"), bashValues(f.words, f.glob, f.dir))
		}
		fmt.Fprintf(w, "    esac\n")
		var flags []string
		for _, f := range cmd.allFlags() {
			flags = append(flags, f.spellings()...)
		}
		fmt.Fprintf(w, "    if [[ $cur == -* ]]; then\n      _nixplan_words %s\n      return\n    fi\n", shq(strings.Join(flags, " ")))
		switch cmd.operands {
		case specOperands:
			fmt.Fprintf(w, "    %s\n", bashValues(nil, "*.toml", false))
		case specsThenDir:
			fmt.Fprintf(w, "    %s\n", bashValues(nil, "*.toml", true))
		case commandName, shellName:
			fmt.Fprintf(w, "    ((COMP_CWORD == 2)) && _nixplan_words %s\n", shq(strings.Join(cmd.operandWords(), " ")))
		}
		fmt.Fprintf(w, "    ;;\n")
	}
	fmt.Fprint(w, "  esac\n}\ncomplete -o filenames -F _nixplan nixplan\n")
}

// bashValues completes a value: from a word list, or files matching glob
// (and folders, to walk into), or folders alone.
func bashValues(words func() []string, glob string, dir bool) string {
	switch {
	case words != nil:
		return "_nixplan_words " + shq(strings.Join(words(), " "))
	case glob != "":
		return "_nixplan_files " + shq(glob)
	case dir:
		return "_nixplan_files ''"
	}
	return "_nixplan_files '*'"
}

func writeZshCompletion(w io.Writer) {
	fmt.Fprintf(w, `#compdef nixplan
# zsh completion for nixplan %s; written by "nixplan completion zsh".
# Load it with: source <(nixplan completion zsh), after compinit; or save it
# as _nixplan in a folder of $fpath.
_nixplan() {
  local -a cmds
  cmds=(
`, versionText())
	for _, cmd := range commands {
		fmt.Fprintf(w, "    %s\n", shq(cmd.name+":"+cmd.summary))
	}
	fmt.Fprint(w, "  )\n  if ((CURRENT == 2)); then\n    _describe -t commands 'nixplan command' cmds\n    return\n  fi\n  words=(\"${(@)words[2,-1]}\")\n  ((CURRENT--))\n  case $words[1] in\n")
	for _, cmd := range commands {
		var specs []string
		for _, f := range cmd.allFlags() {
			desc := zshEscape(f.usage)
			action := ""
			if f.value != "" {
				action = ":" + strings.ToLower(f.value) + ":" + zshAction(f.words, f.glob, f.dir)
			}
			prefix := ""
			if f.repeat {
				prefix = "*"
			}
			if f.short != "" {
				excl := "(-" + f.short + " --" + f.name + ")"
				if f.repeat {
					excl = ""
				}
				specs = append(specs, shq(excl+prefix+"-"+f.short+"["+desc+"]"+action), shq(excl+prefix+"--"+f.name+"["+desc+"]"+action))
			} else {
				specs = append(specs, shq(prefix+"--"+f.name+"["+desc+"]"+action))
			}
		}
		switch cmd.operands {
		case specOperands:
			specs = append(specs, shq("*:spec:_files -g '*.toml'"))
		case specsThenDir:
			specs = append(specs, shq("*:spec or bundle folder:_files -g '*.toml'"))
		case commandName, shellName:
			what := map[operand]string{commandName: "command", shellName: "shell"}[cmd.operands]
			specs = append(specs, shq("1:"+what+":("+strings.Join(cmd.operandWords(), " ")+")"))
		}
		fmt.Fprintf(w, "  %s)\n    _arguments -s \\\n      %s\n    ;;\n", cmd.name, strings.Join(specs, " \\\n      "))
	}
	fmt.Fprint(w, `  esac
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  _nixplan "$@"
else
  compdef _nixplan nixplan
fi
`)
}

// zshEscape escapes what _arguments reads in a description.
func zshEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `[`, `\[`, `]`, `\]`, `:`, `\:`).Replace(s)
}

func zshAction(words func() []string, glob string, dir bool) string {
	switch {
	case words != nil:
		return "(" + strings.Join(words(), " ") + ")"
	case glob != "":
		return "_files -g '" + glob + "'"
	case dir:
		return "_files -/"
	}
	return "_files"
}

func writeFishCompletion(w io.Writer) {
	fmt.Fprintf(w, "# fish completion for nixplan %s; written by \"nixplan completion fish\".\n", versionText())
	fmt.Fprint(w, "# Load it with: nixplan completion fish | source\n# or save it as ~/.config/fish/completions/nixplan.fish\n")
	fmt.Fprint(w, "complete -c nixplan -f\n")
	fmt.Fprint(w, `function __nixplan_using
    set -l words (commandline -opc)
    test (count $words) -ge 2; and test $words[2] = $argv[1]
end
function __nixplan_files --description 'folders, and files whose name ends in $argv[1]'
    set -l tok (commandline -ct)
    set -l home ''
    if string match -q -- '~*' $tok
        # ~/... as typed: look under $HOME, show it as ~ again
        set home $HOME
        set tok (string sub -s 2 -- $tok)
    end
    for f in $home$tok*
        set -l shown $f
        if test -n "$home"
            set shown '~'(string sub -s (math (string length -- $home) + 1) -- $f)
        end
        if test -d $f
            echo $shown/
        else if string match -q -- "*$argv[1]" $f
            echo $shown
        end
    end
end
`)
	for _, cmd := range commands {
		fmt.Fprintf(w, "complete -c nixplan -n __fish_use_subcommand -a %s -d %s\n", fishq(cmd.name), fishq(cmd.summary))
	}
	for _, cmd := range commands {
		cond := fishq("__nixplan_using " + cmd.name)
		for _, f := range cmd.allFlags() {
			line := fmt.Sprintf("complete -c nixplan -n %s -l %s", cond, f.name)
			if f.short != "" {
				line += " -s " + f.short
			}
			switch {
			case f.words != nil:
				line += " -x -a " + fishq(strings.Join(f.words(), " "))
			case f.glob != "":
				line += " -x -a " + fishq("(__nixplan_files "+strings.TrimPrefix(f.glob, "*")+")")
			case f.dir:
				line += " -x -a " + fishq("(__fish_complete_directories)")
			}
			fmt.Fprintf(w, "%s -d %s\n", line, fishq(f.usage))
		}
		switch cmd.operands {
		case specOperands, specsThenDir:
			fmt.Fprintf(w, "complete -c nixplan -n %s -a %s\n", cond, fishq("(__nixplan_files .toml)"))
			if cmd.operands == specsThenDir {
				fmt.Fprintf(w, "complete -c nixplan -n %s -a %s\n", cond, fishq("(__fish_complete_directories)"))
			}
		case commandName, shellName:
			fmt.Fprintf(w, "complete -c nixplan -n %s -a %s\n", cond, fishq(strings.Join(cmd.operandWords(), " ")))
		}
	}
}

// fishq quotes s for fish: single quotes, in which only \ and ' are special.
func fishq(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func versionText() string { return plan.Version }
