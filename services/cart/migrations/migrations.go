// Package migrations embeds the cart database's goose migrations, the SQL
// files beside this one, at the root of FS.
package migrations

import "embed"

// FS holds the migrations.
//
//go:embed *.sql
var FS embed.FS
