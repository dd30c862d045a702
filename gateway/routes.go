package gateway

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Service names an upstream service the gateway forwards to.
type Service string

// The services behind the gateway.
const (
	User         Service = "user"
	Catalog      Service = "catalog"
	Cart         Service = "cart"
	Order        Service = "order"
	Inventory    Service = "inventory"
	Payment      Service = "payment"
	Shipping     Service = "shipping"
	Invoice      Service = "invoice"
	Notification Service = "notification"
	Customer     Service = "customer"
	Loyalty      Service = "loyalty"
	Analytics    Service = "analytics"
)

// Services lists every upstream, in a stable order.
func Services() []Service {
	return []Service{User, Catalog, Cart, Order, Inventory, Payment, Shipping, Invoice, Notification, Customer, Loyalty, Analytics}
}

// Access says who may call a route.
type Access int

const (
	// Public routes need no token. A valid one still identifies the caller
	// (and its rate-limit bucket); an invalid one is ignored, so an expired
	// token never breaks browsing.
	Public Access = iota
	// Authenticated routes need a valid bearer token.
	Authenticated
	// Admin routes need a valid bearer token with role admin.
	Admin
)

func (a Access) String() string {
	switch a {
	case Public:
		return "public"
	case Authenticated:
		return "authenticated"
	case Admin:
		return "admin"
	default:
		return "unknown"
	}
}

// Route is one public operation: a method and path pattern, the service
// that serves it under the same path, and who may call it. A pattern
// segment in braces ({id}) matches one path segment.
type Route struct {
	Method  string
	Pattern string
	Service Service
	Access  Access
}

// Routes is the public API: every operation the gateway forwards. The
// OpenAPI document (openapi.json) describes exactly these; a test keeps
// the two in step.
func Routes() []Route {
	const (
		get, post, put, patch, del = http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete
	)
	return []Route{
		{post, "/api/v1/auth/register", User, Public},
		{post, "/api/v1/auth/login", User, Public},
		{get, "/api/v1/me/address", User, Authenticated},
		{put, "/api/v1/me/address", User, Authenticated},
		{post, "/api/v1/admin/users/{id}/deactivate", User, Admin},

		{get, "/api/v1/products", Catalog, Public},
		{get, "/api/v1/products/{id}", Catalog, Public},
		{post, "/api/v1/admin/products", Catalog, Admin},
		{patch, "/api/v1/admin/products/{id}", Catalog, Admin},

		{post, "/api/v1/admin/products/{id}/stock", Inventory, Admin},
		{get, "/api/v1/admin/products/{id}/stock", Inventory, Admin},

		{get, "/api/v1/cart", Cart, Authenticated},
		{put, "/api/v1/cart/items/{product_id}", Cart, Authenticated},
		{del, "/api/v1/cart/items/{product_id}", Cart, Authenticated},
		{post, "/api/v1/cart/checkout", Cart, Authenticated},

		{get, "/api/v1/orders", Order, Authenticated},
		{get, "/api/v1/orders/{id}", Order, Authenticated},
		{post, "/api/v1/orders/{id}/cancel", Order, Authenticated},
		{get, "/api/v1/orders/{id}/payment", Payment, Authenticated},
		{get, "/api/v1/orders/{id}/shipment", Shipping, Authenticated},
		{get, "/api/v1/orders/{id}/invoice", Invoice, Authenticated},

		{get, "/api/v1/notifications", Notification, Authenticated},

		{get, "/api/v1/me", Customer, Authenticated},
		{get, "/api/v1/me/history", Customer, Authenticated},
		{get, "/api/v1/me/points", Loyalty, Authenticated},
		{get, "/api/v1/admin/reports/sales", Analytics, Admin},
		{get, "/api/v1/admin/reports/funnel", Analytics, Admin},
	}
}

// maxSegment bounds a path parameter; ids are UUIDs.
const maxSegment = 128

// router matches a request path against the route table. Its patterns are
// few, so a linear scan is cheaper than anything cleverer.
type router struct {
	patterns []*pattern
}

type pattern struct {
	text     string
	segments []string // "" for a parameter
	statics  int
	methods  map[string]Route
}

func newRouter(routes []Route) *router {
	byText := map[string]*pattern{}
	rt := &router{}
	for _, r := range routes {
		p := byText[r.Pattern]
		if p == nil {
			p = &pattern{text: r.Pattern, methods: map[string]Route{}}
			for _, s := range strings.Split(strings.TrimPrefix(r.Pattern, "/"), "/") {
				if strings.HasPrefix(s, "{") {
					s = ""
				} else {
					p.statics++
				}
				p.segments = append(p.segments, s)
			}
			byText[r.Pattern] = p
			rt.patterns = append(rt.patterns, p)
		}
		p.methods[r.Method] = r
	}
	return rt
}

// match finds the route for method and the request's escaped path. found
// reports whether any pattern matched the path; allow then lists the methods
// it accepts (HEAD wherever GET is routed).
func (rt *router) match(method string, u *url.URL) (route Route, ok, found bool, allow []string) {
	segs, valid := splitPath(u)
	if !valid {
		return Route{}, false, false, nil
	}
	var best *pattern
	for _, p := range rt.patterns {
		if p.matches(segs) && (best == nil || p.statics > best.statics) {
			best = p
		}
	}
	if best == nil {
		return Route{}, false, false, nil
	}
	lookup := method
	if method == http.MethodHead {
		lookup = http.MethodGet
	}
	if r, ok := best.methods[lookup]; ok {
		return r, true, true, nil
	}
	for m := range best.methods {
		allow = append(allow, m)
		if m == http.MethodGet {
			allow = append(allow, http.MethodHead)
		}
	}
	slices.Sort(allow)
	return Route{}, false, true, allow
}

func (p *pattern) matches(segs []string) bool {
	if len(segs) != len(p.segments) {
		return false
	}
	for i, s := range p.segments {
		if s != "" && s != segs[i] {
			return false
		}
	}
	return true
}

// splitPath returns the path's segments, or false for a path no route may
// match: not absolute, with empty, dot or dot-dot segments, or with a
// segment holding anything but URL-unreserved characters. The path is
// forwarded unchanged, so this keeps encoded slashes, traversal and
// lookalike paths from reaching a service under another route's authority.
func splitPath(u *url.URL) ([]string, bool) {
	path := u.EscapedPath()
	if !strings.HasPrefix(path, "/") {
		return nil, false
	}
	segs := strings.Split(path[1:], "/")
	for _, s := range segs {
		if s == "" || s == "." || s == ".." || len(s) > maxSegment {
			return nil, false
		}
		for i := 0; i < len(s); i++ {
			if !unreserved(s[i]) {
				return nil, false
			}
		}
	}
	return segs, true
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}
