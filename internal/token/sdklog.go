package token

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/smithy-go/logging"
)

// sdkLogger hands the SDK's own log lines (such as its IMDSv1 fallback
// warning) to the caller's logger. The SDK's default prints them raw on
// stderr, where they break the plugin's one-line error and the doctor's
// report.
type sdkLogger struct{ l *slog.Logger }

func (s sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	level := slog.LevelDebug
	if c == logging.Warn {
		level = slog.LevelWarn
	}
	s.l.Log(context.Background(), level, "aws-sdk: "+fmt.Sprintf(format, v...))
}
