package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DefaultDataDir is the data directory when NESTBOX_DATA_DIR is not set.
const DefaultDataDir = "/var/lib/nestbox"

// credentialsName is the credentials file's name in the data directory.
const credentialsName = "credentials.json"

// credentials is the JSON of the credentials file that `nestbox up`
// writes for the CLI on the same machine.
type credentials struct {
	URL    string `json:"url"`
	APIKey string `json:"api_key"`
}

// CredentialsPath returns where the credentials file of dataDir lives
// (empty: DefaultDataDir).
func CredentialsPath(dataDir string) string {
	if dataDir == "" {
		dataDir = DefaultDataDir
	}
	return filepath.Join(dataDir, credentialsName)
}

// LoadCredentials reads the control plane's URL and an API key from the
// credentials file in dataDir (empty: DefaultDataDir). A missing file is
// an error that matches fs.ErrNotExist.
func LoadCredentials(dataDir string) (url, key string, err error) {
	path := CredentialsPath(dataDir)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("read credentials: %w", err)
	}
	var c credentials
	if err := json.Unmarshal(b, &c); err != nil {
		return "", "", fmt.Errorf("read credentials %s: %w", path, err)
	}
	return c.URL, c.APIKey, nil
}

// WriteCredentials writes the credentials file in dataDir (empty:
// DefaultDataDir), readable by its owner only. It replaces an existing
// file atomically.
func WriteCredentials(dataDir, url, key string) error {
	path := CredentialsPath(dataDir)
	b, err := json.MarshalIndent(credentials{URL: url, APIKey: key}, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	f, err := os.CreateTemp(dir, ".credentials-*.json") // mode 0600
	if err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write credentials: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write credentials: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write credentials: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write credentials: %w", err)
	}
	return nil
}

// resolveConnection picks the URL and key: flags first, then the
// environment, then the credentials file. The file's key is used only
// with the file's URL, so that a key meant for the local control plane is
// never sent to another one.
func resolveConnection(flagURL, flagKey string, getenv func(string) string) (url, key string, err error) {
	url, key = firstOf(flagURL, getenv("NESTBOX_URL")), firstOf(flagKey, getenv("NESTBOX_API_KEY"))
	if url != "" && key != "" {
		return url, key, nil
	}
	fileURL, fileKey, fileErr := LoadCredentials(getenv("NESTBOX_DATA_DIR"))
	if url == "" {
		url = fileURL
	}
	if key == "" && fileKey != "" && sameURL(url, fileURL) {
		key = fileKey
	}
	switch {
	case url != "" && key != "":
		return url, key, nil
	case url == "":
		err = errors.New("no control plane URL: pass --url, set NESTBOX_URL or run `nestbox up`")
	default:
		err = errors.New("no API key: pass --api-key, set NESTBOX_API_KEY or run `nestbox up`")
	}
	if fileErr != nil && !errors.Is(fileErr, fs.ErrNotExist) {
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

func sameURL(a, b string) bool {
	return strings.TrimSuffix(strings.TrimSpace(a), "/") == strings.TrimSuffix(strings.TrimSpace(b), "/")
}
