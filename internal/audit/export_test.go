package audit

import "context"

// PurgeOnce is one pass of Run.
func (l *Logger) PurgeOnce(ctx context.Context) { l.purgeOnce(ctx) }
