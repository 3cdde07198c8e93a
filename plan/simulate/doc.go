// Package simulate runs a rendered bundle's two scripts in mvdan.cc/sh's
// interpreter against a machine description and records, phase by phase,
// every command that would change the machine and every file written: what
// `nixplan simulate` prints.
//
// It holds the fake machine ([FakeMachine], which answers the commands the
// scripts read a machine with and keeps what the changing ones would have
// done), the emulated filters and the virtual file system the scripts see.
// A script that starts itself again detached from its session (setsid) is
// played as a run of its own on the same fake machine and file system, listed
// after the run that started it.
// The bash harness of package plan's tests plays the same FakeMachine behind
// real bash, so simulate and bash can be compared command for command.
//
// Its rules: it depends only on the pipeline's public API (plan.Plan,
// plan.Bundle and the script trees of plan.ScriptTree) and on package
// machine, never on spec validation. It never prints, never touches the
// host's files and never uses the network; the only real programs it starts
// are grep and awk, as pure filters from stdin to stdout.
// Package plan does not import it.
package simulate
