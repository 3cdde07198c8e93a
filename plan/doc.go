// Package plan turns a nixplan host spec into an install bundle.
//
// The pipeline is
//
//	host.toml ──Load──▶ Spec ──Validate──▶ Plan ──Render──▶ Bundle ──Check──▶ Write ──▶ bundle/
//
// Load reads strict TOML (unknown keys and wrong types are problems with a
// position). Validate reports every problem in the spec at once and resolves
// what the spec left out (provider defaults, the derived host id, partition
// paths) into a Plan, the only thing templates read. Render executes the
// embedded templates into memory, Check parses every rendered script with
// mvdan.cc/sh and checks the bundle's invariants, and Write puts the files on
// disk atomically with SHA256SUMS beside them.
//
// Nothing in this package prints or touches the network. Every value that
// reaches a shell script passes through [ShellQuote]; every value that reaches
// Nix passes through [NixString].
//
// Two parts with rules of their own live in packages beside it:
// plan/machine reads machine descriptions (facts.sh's output) and imports
// nothing from this project; plan/simulate runs a bundle's scripts against a
// machine and imports this package's public API and plan/machine. The checks
// of a spec against a machine ([CheckMachine], `check --facts`) and the spec
// written from one ([SpecFromMachine], `init --facts`) read the spec, the
// capability table and the providers' rules, so they live here, in facts.go,
// the one file of this package that imports plan/machine. Spec loading,
// validation and rendering read no machine, and nothing here imports
// plan/simulate; TestPackageRooms holds these rules.
package plan

// Version is the nixplan version named in every generated file's header.
const Version = "0.1.0"
