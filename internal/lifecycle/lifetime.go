package lifecycle

import "time"

// MaxLifetime is how long a capsule may live from its creation
// (Config.MaxLifetime): no create or timeout may take it further. Other
// dialects of the API check their own timeout fields against it so that
// their errors name the fields their clients sent.
func (s *Service) MaxLifetime() time.Duration { return s.cfg.MaxLifetime }
