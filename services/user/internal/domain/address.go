package domain

import "strings"

// Address is a postal address, every field trimmed. Country is an ISO
// 3166-1 alpha-2 code in upper case; only its shape is checked here (the
// carrier decides what it can deliver to).
type Address struct {
	name, line1, line2, city, postalCode, country string
}

// Address field limits, in characters.
const (
	maxAddressName   = 200
	maxAddressLine   = 200
	maxAddressCity   = 100
	maxAddressPostal = 20
)

// NewAddress validates the fields of an address, reporting every invalid
// one by its public name (name, line1, line2, city, postal_code, country).
func NewAddress(name, line1, line2, city, postalCode, country string) (Address, error) {
	var errs fieldErrors
	var a Address
	check := func(dst *string, field, v string, required bool, max int) {
		s, fe := text(field, v, required, max)
		if fe != nil {
			errs = append(errs, *fe)
			return
		}
		*dst = s
	}
	check(&a.name, "name", name, true, maxAddressName)
	check(&a.line1, "line1", line1, true, maxAddressLine)
	check(&a.line2, "line2", line2, false, maxAddressLine)
	check(&a.city, "city", city, true, maxAddressCity)
	check(&a.postalCode, "postal_code", postalCode, true, maxAddressPostal)
	c := strings.ToUpper(strings.TrimSpace(country))
	if len(c) != 2 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' {
		errs.add("country", "must be an ISO 3166-1 alpha-2 code")
	}
	a.country = c
	if err := errs.err(); err != nil {
		return Address{}, err
	}
	return a, nil
}

func (a Address) Name() string       { return a.name }
func (a Address) Line1() string      { return a.line1 }
func (a Address) Line2() string      { return a.line2 }
func (a Address) City() string       { return a.city }
func (a Address) PostalCode() string { return a.postalCode }
func (a Address) Country() string    { return a.country }
