// Package templates holds the text templates of a nixplan bundle, one named
// file per bundle file. They only format: every value comes from plan.Plan,
// and every value that reaches a script goes through the `sh` function and
// every value that reaches Nix through `nix` (see plan/render.go).
//
// Rules for the script templates, so that `nixplan simulate` can run them in
// mvdan.cc/sh's interpreter against a machine description, and the tests can
// run them under bash with a recording PATH:
//   - bash only; file descriptors 0–2 only; traps on EXIT and ERR only;
//   - every command that changes the machine goes through `run`, a function
//     defined at the top level of the script, so that --dry-run shows it;
//   - the machine is read only through the commands simulate.FakeMachine answers
//     (lsblk, ip, id, uname, zpool list, lvs, curl --head) and through files
//     opened by redirection or tested with [ ] (/etc/os-release, /proc/meminfo,
//     /proc/mounts, /sys/class/net/*/address, /sys/firmware/efi): filters such
//     as grep, awk, tail and sha256sum read files as stdin (`grep x <file`),
//     never as operands;
//   - each phase starts by printing "==> NAME", which is how transcripts
//     group commands.
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
