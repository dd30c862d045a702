package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shopmesh/shopmesh/contracts"
)

// newContractsCommand groups the event-contract tools: the AsyncAPI
// document and the compatibility gate. The current schemas are those of
// the registry compiled into the binary; the checked-in document and the
// release snapshot are read from the source tree (--dir), so run them from
// the repository root as `go run ./cmd/shopmesh contracts ...`.
func newContractsCommand(a *app) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "contracts",
		Short: "Event contracts: the AsyncAPI document and the compatibility gate",
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", "contracts", "the contracts directory of the source tree")

	var out string
	asyncapi := &cobra.Command{
		Use:   "asyncapi",
		Short: "Print the AsyncAPI 3.0 document generated from the registry, or write it with --out",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			doc, err := contracts.AsyncAPI()
			if err != nil {
				return err
			}
			if out == "" {
				_, err := a.stdout.Write(doc)
				return err
			}
			if err := os.WriteFile(out, doc, 0o644); err != nil {
				return fmt.Errorf("write AsyncAPI document: %w", err)
			}
			fmt.Fprintf(a.stdout, "wrote %s\n", out)
			return nil
		},
	}
	asyncapi.Flags().StringVarP(&out, "out", "o", "", "write the document to this file instead of standard output")

	check := &cobra.Command{
		Use:   "check",
		Short: "Check that the checked-in AsyncAPI document is up to date and that no schema broke its released version",
		Long: `check fails when <dir>/asyncapi.json differs from the document the registry
generates, or when the compatibility gate finds a breaking change between a
type's released schema (<dir>/released/<type>.json) and its current one: a
removed or retyped field, a new required field, a narrowed enum, a tightened
constraint, a removed type. A breaking change needs a new version of the type.
Warnings (a widened enum or range) are printed and pass.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var failed []string
			doc, err := contracts.AsyncAPI()
			if err != nil {
				return err
			}
			path := filepath.Join(dir, "asyncapi.json")
			switch onDisk, err := os.ReadFile(path); {
			case err != nil:
				return fmt.Errorf("read checked-in AsyncAPI document: %w", err)
			case !bytes.Equal(onDisk, doc):
				failed = append(failed, fmt.Sprintf("%s is out of date: run `go run ./cmd/shopmesh contracts asyncapi --out %s`", path, path))
			default:
				fmt.Fprintf(a.stdout, "%s is up to date\n", path)
			}
			breaking, err := contractsGate(a.stdout, dir, false)
			if err != nil {
				return err
			}
			if breaking > 0 {
				failed = append(failed, fmt.Sprintf("%d breaking changes to released schemas: publish them as a new version of the type instead", breaking))
			}
			if len(failed) > 0 {
				return errors.New(strings.Join(failed, "\n"))
			}
			return nil
		},
	}

	release := &cobra.Command{
		Use:   "release",
		Short: "Copy the current schemas into the release snapshot, if the compatibility gate passes",
		Long: `release runs the compatibility gate and, when it passes, writes every current
schema to <dir>/released/<type>.json, making it the baseline later changes are
checked against. Release when the schemas are published: merged to main, or
deployed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			breaking, err := contractsGate(a.stdout, dir, true)
			if err != nil {
				return err
			}
			if breaking > 0 {
				return fmt.Errorf("not released: %d breaking changes to released schemas", breaking)
			}
			releasedDir := filepath.Join(dir, "released")
			if err := os.MkdirAll(releasedDir, 0o755); err != nil {
				return err
			}
			current := contracts.Current()
			written := 0
			for _, name := range slices.Sorted(maps.Keys(current)) {
				path := filepath.Join(releasedDir, name+".json")
				if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, current[name]) {
					continue
				}
				if err := os.WriteFile(path, current[name], 0o644); err != nil {
					return fmt.Errorf("release %s: %w", name, err)
				}
				fmt.Fprintf(a.stdout, "released %s\n", name)
				written++
			}
			fmt.Fprintf(a.stdout, "%d schemas released, %d unchanged\n", written, len(current)-written)
			return nil
		},
	}

	cmd.AddCommand(asyncapi, check, release)
	return cmd
}

// contractsGate runs the compatibility gate between the release snapshot
// in dir and the registry, prints every change and every type not yet
// released, and returns the number of breaking changes. An empty snapshot
// is an error unless first is set: the first release has nothing to check.
func contractsGate(w io.Writer, dir string, first bool) (int, error) {
	releasedDir := filepath.Join(dir, "released")
	released, err := contracts.ReadReleased(os.DirFS(releasedDir))
	if err != nil && !(first && errors.Is(err, fs.ErrNotExist)) {
		return 0, fmt.Errorf("read release snapshot: %w", err)
	}
	if len(released) == 0 && !first {
		return 0, fmt.Errorf("no release snapshot in %s: run `go run ./cmd/shopmesh contracts release` once", releasedDir)
	}
	current := contracts.Current()
	changes, err := contracts.CheckCompatibility(released, current)
	if err != nil {
		return 0, err
	}
	for _, c := range changes {
		level := "warning"
		if c.Kind.Breaking() {
			level = "BREAKING"
		}
		fmt.Fprintf(w, "%s: %s\n", level, c)
	}
	for _, name := range slices.Sorted(maps.Keys(current)) {
		if _, ok := released[name]; !ok {
			fmt.Fprintf(w, "not yet released: %s\n", name)
		}
	}
	breaking := len(contracts.Breaking(changes))
	if breaking == 0 {
		fmt.Fprintf(w, "compatibility gate passed: %d released types checked\n", len(released))
	}
	return breaking, nil
}
