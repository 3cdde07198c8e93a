package plan

import "testing"

// WithoutExchange makes Write move the old folder aside, as it does where
// folders cannot be exchanged, for the rest of the test.
func WithoutExchange(t *testing.T) {
	t.Cleanup(func() { exchangeDirs = exchange })
	exchangeDirs = func(a, b string) error { return errNoExchange }
}
