package nestbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// EnvDataDir names the data directory of `nestbox up` on this machine,
// where a zero Config finds the credentials file; unset means
// DefaultDataDir.
const EnvDataDir = "NESTBOX_DATA_DIR"

// DefaultDataDir is where `nestbox up` keeps its state, credentials.json
// among it, when NESTBOX_DATA_DIR is not set.
const DefaultDataDir = "/var/lib/nestbox"

// Credentials is the JSON of the credentials file `nestbox up` writes
// (readable by its owner only) for clients on the same machine.
type Credentials struct {
	URL    string `json:"url"`
	APIKey string `json:"api_key"`
}

// CredentialsPath is where the credentials file of dataDir lives (empty:
// DefaultDataDir).
func CredentialsPath(dataDir string) string {
	if dataDir == "" {
		dataDir = DefaultDataDir
	}
	return filepath.Join(dataDir, "credentials.json")
}

// LoadCredentials reads the URL and API key from the credentials file in
// dataDir (empty: DefaultDataDir). A missing file is an error that matches
// fs.ErrNotExist.
func LoadCredentials(dataDir string) (url, key string, err error) {
	path := CredentialsPath(dataDir)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("read credentials: %w", err)
	}
	var c Credentials
	if err := json.Unmarshal(b, &c); err != nil {
		return "", "", fmt.Errorf("read credentials %s: %w", path, err)
	}
	return strings.TrimSpace(c.URL), strings.TrimSpace(c.APIKey), nil
}

// LookupConnection is how the SDK and the CLI find the control plane:
// the given values first, then $NESTBOX_URL and $NESTBOX_API_KEY, then
// the credentials file of `nestbox up` in $NESTBOX_DATA_DIR. The file's
// key is used only with the file's URL, so that a key meant for the local
// control plane is never sent to another one. What is not found is
// returned empty; fileErr is the file's error if it exists but could not
// be read (a missing file is not an error), for the caller's message.
func LookupConnection(url, key string, getenv func(string) string) (gotURL, gotKey string, fileErr error) {
	url, key = firstNonEmpty(url, getenv(EnvURL)), firstNonEmpty(key, getenv(EnvAPIKey))
	if url != "" && key != "" {
		return url, key, nil
	}
	fileURL, fileKey, err := LoadCredentials(getenv(EnvDataDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		fileErr = err
	}
	if url == "" {
		url = fileURL
	}
	if key == "" && fileKey != "" && sameBaseURL(url, fileURL) {
		key = fileKey
	}
	return url, key, fileErr
}

// resolveConnection is LookupConnection for New: a missing URL or key is
// an ErrInvalid that says where it was looked for.
func resolveConnection(cfgURL, cfgKey string, getenv func(string) string) (url, key string, err error) {
	url, key, fileErr := LookupConnection(cfgURL, cfgKey, getenv)
	switch {
	case url != "" && key != "":
		return url, key, nil
	case url == "":
		err = fmt.Errorf("%w: no URL: set Config.URL or $%s, or run `nestbox up` on this machine (%s)", ErrInvalid, EnvURL, CredentialsPath(getenv(EnvDataDir)))
	default:
		err = fmt.Errorf("%w: no API key: set Config.APIKey or $%s", ErrInvalid, EnvAPIKey)
	}
	if fileErr != nil {
		err = fmt.Errorf("%w (%v)", err, fileErr)
	}
	return "", "", err
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}

func sameBaseURL(a, b string) bool {
	return strings.TrimSuffix(strings.TrimSpace(a), "/") == strings.TrimSuffix(strings.TrimSpace(b), "/")
}
