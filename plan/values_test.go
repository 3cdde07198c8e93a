package plan_test

import (
	"strings"
	"testing"

	"github.com/nixplan/nixplan/plan"
)

// TestKnownImageOnlyFromNixosImages: the capability table describes
// nix-community/nixos-images' own release assets; the same path on another
// host, or under another owner, is a tarball nixplan knows nothing about.
func TestKnownImageOnlyFromNixosImages(t *testing.T) {
	const asset = "/releases/download/nixos-24.05/nixos-kexec-installer-noninteractive-x86_64-linux.tar.gz"
	for _, tc := range []struct {
		url   string
		known bool
		warn  string
	}{
		{"https://github.com/nix-community/nixos-images" + asset, true, ""},
		{"https://mirror.example/nix-community/nixos-images" + asset, false,
			"kexec.url: mirror.example is not github.com, so this is not nixos-images' own release asset: the image's Nix, ZFS and key handling are not checked"},
		{"https://github.com.evil.example/nix-community/nixos-images" + asset, false, "github.com.evil.example is not github.com"},
		{"https://github.com/someone/nixos-images" + asset, false, "the URL names no nixos-images release tag"},
	} {
		text := exampleSpec(t, plan.KexecURL("nixos-22.11"), tc.url)
		spec, err := plan.Parse("host.toml", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		p, ps := plan.Validate(spec)
		if p == nil {
			t.Fatalf("%s: %v", tc.url, ps)
		}
		if p.Kexec.ImageKnown != tc.known {
			t.Errorf("%s: known = %v, want %v", tc.url, p.Kexec.ImageKnown, tc.known)
		}
		var kexec plan.Problems
		for _, w := range ps.Warnings() {
			if w.Key == "kexec.url" {
				kexec = append(kexec, w)
			}
		}
		if got := kexec.Error(); (tc.warn == "") != (got == "") || !strings.Contains(got, tc.warn) {
			t.Errorf("%s: kexec.url warnings %q, want %q", tc.url, got, tc.warn)
		}
	}
}
