package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestExpiryCountsDownAtScrape(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	expires := now.Add(6 * time.Hour)
	reg := prometheus.NewPedanticRegistry()
	New(reg, func() map[string]time.Time {
		return map[string]time.Time{"public.ecr.aws": expires}
	}, func() time.Time { return now })
	want := `
# HELP ecr_pull_secrets_token_expiry_seconds Seconds until the token held for the registry expires (negative once expired).
# TYPE ecr_pull_secrets_token_expiry_seconds gauge
ecr_pull_secrets_token_expiry_seconds{registry="public.ecr.aws"} 21600
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ecr_pull_secrets_token_expiry_seconds"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour)
	want = strings.Replace(want, "21600", "18000", 1)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ecr_pull_secrets_token_expiry_seconds"); err != nil {
		t.Fatal(err)
	}
}
