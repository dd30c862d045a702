package e2e

import (
	"os"
	"testing"

	"github.com/shopmesh/shopmesh/tests/system"
)

// TestMain removes the shopmesh binary the package's systems ran from.
func TestMain(m *testing.M) { os.Exit(system.Run(m)) }
