package ids

import "testing"

func TestCanonical(t *testing.T) {
	for in, want := range map[string]string{
		"0190B8C2-7A3E-7C4D-8E9F-0123456789AB": "0190b8c2-7a3e-7c4d-8e9f-0123456789ab",
		"0190b8c2-7a3e-7c4d-8e9f-0123456789ab": "0190b8c2-7a3e-7c4d-8e9f-0123456789ab",
	} {
		if got, ok := Canonical(in); !ok || got != want {
			t.Errorf("Canonical(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "x", "0190b8c20x7a3e-7c4d-8e9f-0123456789ab", "0190b8c27a3e7c4d8e9f0123456789ab",
		"{0190b8c2-7a3e-7c4d-8e9f-0123456789ab}", "urn:uuid:0190b8c2-7a3e-7c4d-8e9f-0123456789ab"} {
		if got, ok := Canonical(in); ok {
			t.Errorf("Canonical(%q) = %q, true; want refused", in, got)
		}
	}
}
