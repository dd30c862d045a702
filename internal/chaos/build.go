package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// BuildBinary builds ./cmd/shopmesh of the module rooted at root into dir
// and returns the binary's path.
func BuildBinary(ctx context.Context, root, dir string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	bin := filepath.Join(dir, "shopmesh")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/shopmesh")
	cmd.Dir = root
	cmd.Env = os.Environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/shopmesh: %w\n%s", err, out)
	}
	return bin, nil
}
