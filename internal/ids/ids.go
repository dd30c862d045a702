// Package ids reads the identifiers shopmesh hands out: UUIDs, accepted
// only in their 36-character form and returned canonical (lower-case), so
// that one entity has exactly one spelling in URLs, rows and events.
package ids

import "github.com/google/uuid"

// Canonical returns the canonical form of s and true when s is a UUID in
// its 36-character form (either case); otherwise "" and false.
func Canonical(s string) (string, bool) {
	if len(s) != 36 {
		return "", false
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return "", false
	}
	return u.String(), true
}
