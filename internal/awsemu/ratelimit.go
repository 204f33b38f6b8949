package awsemu

import (
	"math"
	"net/http"
	"time"
)

// RateLimit is a token bucket in front of one target, as AWS meters an API
// per account and region: Burst requests at once, refilled at PerSecond.
// A request finding the bucket empty gets the target's throttling error.
type RateLimit struct {
	PerSecond float64
	Burst     int
}

type bucket struct {
	RateLimit
	tokens float64
	last   time.Time
}

// SetRateLimit puts a token bucket in front of target (only ECR and ECR
// Public honour it); a zero RateLimit removes it.
func (s *Server) SetRateLimit(target string, rl RateLimit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.limits == nil {
		s.limits = map[string]*bucket{}
	}
	if rl.PerSecond <= 0 || rl.Burst <= 0 {
		delete(s.limits, target)
		return
	}
	s.limits[target] = &bucket{RateLimit: rl, tokens: float64(rl.Burst), last: time.Now()}
}

// rateLimited takes a token for the call's target and answers with
// ThrottlingException when there is none.
func (c *call) rateLimited() bool {
	s := c.s
	s.mu.Lock()
	b := s.limits[c.rec.Target]
	ok := true
	if b != nil {
		now := time.Now()
		b.tokens = math.Min(float64(b.Burst), b.tokens+now.Sub(b.last).Seconds()*b.PerSecond)
		b.last = now
		if b.tokens >= 1 {
			b.tokens--
		} else {
			ok = false
		}
	}
	s.mu.Unlock()
	if !ok {
		c.jsonError(http.StatusBadRequest, "ThrottlingException", "Rate exceeded (emulated token bucket)")
	}
	return !ok
}
