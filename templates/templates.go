// Package templates holds the text templates of a nixplan bundle, one named
// file per bundle file. They only format: every value comes from plan.Plan,
// and every value that reaches a script goes through the `sh` function and
// every value that reaches Nix through `nix` (see plan/render.go).
//
// install.sh runs on the operator's machine, not the server: it is POSIX sh
// (no bash), only ssh and scp reach the server, and simulate does not run it
// (its --dry-run prints every ssh and scp command instead). The rules below
// are for the server's scripts.
//
// Rules for the script templates, so that `nixplan simulate` can run them in
// mvdan.cc/sh's interpreter against a machine description, and the tests can
// run them under bash with a recording PATH:
//   - bash only; file descriptors 0–2 only; traps on EXIT and ERR only (and
//     only at the top level: the interpreter runs none in subshells); no
//     $BASH_COMMAND, disown, kill or $! (a run that must outlive the session
//     starts the script again under `setsid --fork bash -p`, which simulate
//     plays as a run of its own);
//   - every command that changes the machine goes through `run`, a function
//     defined at the top level of the script, so that --dry-run shows it;
//   - the machine is read only through the commands simulate.FakeMachine answers
//     (lsblk, ip, id, uname, zpool list, get and import, lvs, curl --head,
//     nix --version, zfs version, nixos-generate-config --show-hardware-config)
//     and through files opened by redirection or tested with [ ] (/etc/os-release,
//     /proc/meminfo, /proc/mounts, /proc/swaps, /proc/self/environ,
//     /sys/class/net/*/address, /sys/firmware/efi): filters such as grep, awk,
//     tail, wc and sha256sum read files as stdin (`grep x <file`), never as
//     operands;
//   - each phase starts with printf '==> %s\n' NAME (begin_phase), which is
//     how transcripts group commands;
//   - $BASHPID and date are the run's PID and time; simulate gives each run a
//     stand-in of its own.
package templates

import "embed"

// FS holds the templates.
//
//go:embed *.tmpl
var FS embed.FS

// FactsScript is facts.sh, the read-only script that describes a machine.
//
//go:embed facts.sh
var FactsScript string
