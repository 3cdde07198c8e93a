package plan

import (
	"bytes"
	"fmt"
	"strings"
)

// StarterRelease is the release `nixplan init` proposes: the current stable.
const StarterRelease = "26.05"

// The starter's placeholder address and gateway, from TEST-NET-1 (RFC 5737),
// which no server has; check and render warn while a spec still holds them.
// The examples use TEST-NET-3 (203.0.113.0/24), as real values would stand.
const (
	StarterIPv4Address = "192.0.2.10"
	StarterIPv4Gateway = "192.0.2.254"
)

// starterHostName is the starter's host name, which check refuses in any
// case: lowercased it would be a valid name.
const starterHostName = "FILL-IN"

// Providers lists the provider ids a spec may name.
func Providers() []string { return knownProviders() }

// StarterSpec returns the commented spec `nixplan init` prints, with the
// given public keys as root's authorized_keys.
func StarterSpec(provider string, authorizedKeys []string) (string, error) {
	prov, ok := LookupProvider(provider)
	if !ok {
		return "", fmt.Errorf("unknown provider %q", provider)
	}
	release := releases[StarterRelease]
	tag := imageFor(release, false)
	data := map[string]any{
		"Provider":  prov,
		"Providers": "one of: " + strings.Join(knownProviders(), ", "),
		"Release":   StarterRelease,
		"Keys":      authorizedKeys,
		"Address":   StarterIPv4Address,
		"Gateway":   StarterIPv4Gateway,
		"KexecURL":  KexecURL(tag),
		"KexecWhy": fmt.Sprintf("%s ships Nix %s, enough for NixOS %s (which needs Nix >= %s); the seed's nixos-22.11 image can install at most 25.05. For a gateway outside the prefix use an image that restores it (nixos-25.05).",
			tag, images[tag].Nix, release.Version, release.MinNix),
	}
	var buf bytes.Buffer
	if err := tmpl.ExecuteTemplate(&buf, "spec.toml.tmpl", data); err != nil {
		return "", err
	}
	return buf.String(), nil
}
