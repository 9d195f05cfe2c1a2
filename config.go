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

// fileCredentials is the JSON of the credentials file `nestbox up` writes
// (readable by its owner only) for clients on the same machine.
type fileCredentials struct {
	URL    string `json:"url"`
	APIKey string `json:"api_key"`
}

// resolveConnection picks the URL and the API key the way the CLI does:
// the Config first, then $NESTBOX_URL and $NESTBOX_API_KEY, then the
// credentials file of `nestbox up` in $NESTBOX_DATA_DIR (default
// DefaultDataDir). The file's key is used only with the file's URL, so a
// key meant for the local control plane is never sent to another one.
func resolveConnection(cfgURL, cfgKey string, getenv func(string) string) (url, key string, err error) {
	url, key = firstNonEmpty(cfgURL, getenv(EnvURL)), firstNonEmpty(cfgKey, getenv(EnvAPIKey))
	if url != "" && key != "" {
		return url, key, nil
	}
	dir := firstNonEmpty(getenv(EnvDataDir), DefaultDataDir)
	path := filepath.Join(dir, "credentials.json")
	fileURL, fileKey, fileErr := readCredentials(path)
	if url == "" {
		url = fileURL
	}
	if key == "" && fileKey != "" && sameBaseURL(url, fileURL) {
		key = fileKey
	}
	switch {
	case url != "" && key != "":
		return url, key, nil
	case url == "":
		err = fmt.Errorf("%w: no URL: set Config.URL or $%s, or run `nestbox up` on this machine (%s)", ErrInvalid, EnvURL, path)
	default:
		err = fmt.Errorf("%w: no API key: set Config.APIKey or $%s", ErrInvalid, EnvAPIKey)
	}
	if fileErr != nil && !errors.Is(fileErr, fs.ErrNotExist) {
		err = fmt.Errorf("%w (%v)", err, fileErr)
	}
	return "", "", err
}

func readCredentials(path string) (url, key string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("read credentials: %w", err)
	}
	var c fileCredentials
	if err := json.Unmarshal(b, &c); err != nil {
		return "", "", fmt.Errorf("read credentials %s: %w", path, err)
	}
	return strings.TrimSpace(c.URL), strings.TrimSpace(c.APIKey), nil
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
	return strings.TrimSuffix(a, "/") == strings.TrimSuffix(b, "/")
}
