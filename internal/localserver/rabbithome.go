package localserver

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// trimmedRabbitHome returns a RABBITMQ_HOME with copies of the installed
// server scripts and links to only the applications the rabbit application
// depends on, building it on first use.
func trimmedRabbitHome() (string, error) {
	script, err := filepath.EvalSymlinks(rabbitScript)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", rabbitScript, err)
	}
	stock := filepath.Dir(filepath.Dir(script)) // .../rabbitmq_server-<version>
	cacheRoot, err := os.UserCacheDir()
	if err != nil {
		cacheRoot = os.TempDir()
	}
	home := filepath.Join(cacheRoot, "shopmesh", "rabbitmq-home", filepath.Base(stock))
	done := filepath.Join(home, ".complete")
	if _, err := os.Stat(done); err == nil {
		return home, nil
	}
	if err := os.MkdirAll(filepath.Dir(home), 0o755); err != nil {
		return "", fmt.Errorf("create cache directory: %w", err)
	}
	// Build beside the final place and rename, so concurrent test binaries
	// never see a half-built home.
	tmp, err := os.MkdirTemp(filepath.Dir(home), ".build-")
	if err != nil {
		return "", fmt.Errorf("create build directory: %w", err)
	}
	if err := buildRabbitHome(stock, tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		_ = os.RemoveAll(tmp)
		return "", fmt.Errorf("mark home complete: %w", err)
	}
	if err := os.Rename(tmp, home); err != nil {
		_ = os.RemoveAll(tmp)
		if _, statErr := os.Stat(done); statErr == nil {
			return home, nil // another test binary won the race
		}
		return "", fmt.Errorf("install trimmed home: %w", err)
	}
	return home, nil
}

func buildRabbitHome(stock, dst string) error {
	appsRE := regexp.MustCompile(`\{\s*applications\s*,\s*\[([^\]]*)\]`) // an .app file's dependencies
	// The scripts locate RABBITMQ_HOME from their own resolved path, so they
	// are copied, not linked.
	if err := os.MkdirAll(filepath.Join(dst, "sbin"), 0o755); err != nil {
		return err
	}
	scripts, err := os.ReadDir(filepath.Join(stock, "sbin"))
	if err != nil {
		return fmt.Errorf("list scripts: %w", err)
	}
	for _, e := range scripts {
		if err := copyFile(filepath.Join(stock, "sbin", e.Name()), filepath.Join(dst, "sbin", e.Name()), 0o755); err != nil {
			return err
		}
	}
	if err := os.Symlink(filepath.Join(stock, "escript"), filepath.Join(dst, "escript")); err != nil {
		return fmt.Errorf("link escript: %w", err)
	}
	entries, err := os.ReadDir(filepath.Join(stock, "plugins"))
	if err != nil {
		return fmt.Errorf("list plugins: %w", err)
	}
	dirs := map[string]string{} // application name -> directory name
	for _, e := range entries {
		if i := strings.LastIndex(e.Name(), "-"); e.IsDir() && i > 0 {
			dirs[e.Name()[:i]] = e.Name()
		}
	}
	if err := os.MkdirAll(filepath.Join(dst, "plugins"), 0o755); err != nil {
		return err
	}
	seen := map[string]bool{}
	queue := []string{"rabbit", "rabbitmq_prelaunch"}
	for len(queue) > 0 {
		app := queue[0]
		queue = queue[1:]
		d, ok := dirs[app]
		if seen[app] || !ok { // not a plugin directory: part of Erlang/OTP
			continue
		}
		seen[app] = true
		if err := os.Symlink(filepath.Join(stock, "plugins", d), filepath.Join(dst, "plugins", d)); err != nil {
			return fmt.Errorf("link %s: %w", d, err)
		}
		spec, err := os.ReadFile(filepath.Join(stock, "plugins", d, "ebin", app+".app"))
		if err != nil {
			return fmt.Errorf("read %s.app: %w", app, err)
		}
		m := appsRE.FindSubmatch(spec)
		if m == nil {
			return fmt.Errorf("no applications list in %s.app", app)
		}
		for _, dep := range strings.Split(string(m[1]), ",") {
			if dep = strings.TrimSpace(dep); dep != "" {
				queue = append(queue, dep)
			}
		}
	}
	if !seen["rabbit"] || !seen["rabbit_common"] {
		return errors.New("rabbit applications not found among the installed plugins")
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}
