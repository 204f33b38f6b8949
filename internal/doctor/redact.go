package doctor

import (
	"strings"
	"sync"
)

// redactor remembers every secret the run has seen (registry passwords,
// bearer tokens, presigned URLs, provider env values) and blanks them out of
// anything printed, as a last line of defence behind never formatting them.
type redactor struct {
	mu      sync.Mutex
	secrets []string
}

const redacted = "<redacted>"

// minSecret keeps short values (a "1", an "AWS") from blanking ordinary
// words.
const minSecret = 8

func (r *redactor) add(s string) {
	if len(s) < minSecret {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secrets = append(r.secrets, s)
}

func (r *redactor) redact(s string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, redacted)
	}
	return s
}

func (r *redactor) report(rep *Report) {
	rep.Verdict = r.redact(rep.Verdict)
	for i := range rep.Checks {
		c := &rep.Checks[i]
		c.Summary = r.redact(c.Summary)
		c.Remedy = r.redact(c.Remedy)
		c.Policy = r.redact(c.Policy)
		for j := range c.Notes {
			c.Notes[j] = r.redact(c.Notes[j])
		}
		for k, v := range c.Facts {
			c.Facts[k] = r.redact(v)
		}
	}
}
