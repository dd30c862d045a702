package chaos

import (
	"context"

	"github.com/shopmesh/shopmesh/internal/sysrun"
)

// BuildBinary builds ./cmd/shopmesh of the module rooted at root into dir
// and returns the binary's path.
func BuildBinary(ctx context.Context, root, dir string) (string, error) {
	return sysrun.BuildBinary(ctx, root, dir)
}
