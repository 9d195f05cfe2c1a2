package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"nestbox.dev"
)

// WriteCredentials writes the credentials file in dataDir (empty:
// nestbox.DefaultDataDir), readable by its owner only. It replaces an existing
// file atomically.
func WriteCredentials(dataDir, url, key string) error {
	b, err := json.MarshalIndent(nestbox.Credentials{URL: url, APIKey: key}, "", "  ")
	if err != nil {
		return err
	}
	if err := writePrivate(nestbox.CredentialsPath(dataDir), append(b, '\n')); err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	return nil
}

// writePrivate writes data to path, readable by its owner only, replacing
// an existing file atomically (a temporary file, synced, then renamed).
func writePrivate(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*") // mode 0600
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// resolveConnection picks the URL and key as the SDK does
// (nestbox.LookupConnection: flags, then the environment, then the
// credentials file), with errors that name the CLI's flags.
func resolveConnection(flagURL, flagKey string, getenv func(string) string) (url, key string, err error) {
	url, key, fileErr := nestbox.LookupConnection(flagURL, flagKey, getenv)
	switch {
	case url != "" && key != "":
		return url, key, nil
	case url == "":
		err = errors.New("no control plane URL: pass --url, set NESTBOX_URL or run `nestbox up`")
	default:
		err = errors.New("no API key: pass --api-key, set NESTBOX_API_KEY or run `nestbox up`")
	}
	if fileErr != nil {
		err = fmt.Errorf("%w (%v)", err, fileErr)
	}
	return "", "", err
}

func firstOf(values ...string) string {
	for _, v := range values {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}
