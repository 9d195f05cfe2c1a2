package envd

import "nestbox.dev/internal/envd/settings"

func settingsUpdateToken(tok string) settings.Update { return settings.Update{AccessToken: &tok} }
