// Command shopmesh is the only shopmesh binary: it runs one service, several,
// or all of them with the gateway (`serve`), and carries the operator's
// commands (migrate, status, dead letters, replay). It parses flags and the
// environment and calls into the packages; it holds no business logic.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "shopmesh:", err)
		os.Exit(1)
	}
}

// run executes the command line args with the environment getenv.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	level := slog.LevelInfo
	if getenv("SHOPMESH_LOG_LEVEL") == "debug" {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	root := newRootCommand(&app{env: loadEnv(getenv), logger: logger, stdout: stdout})
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.ExecuteContext(ctx)
}
