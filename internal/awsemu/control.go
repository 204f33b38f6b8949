package awsemu

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// FaultKind selects the error an error fault answers with.
type FaultKind string

const (
	// FaultThrottle: ECR ThrottlingException 400, STS Throttling 400, IMDS 429.
	FaultThrottle FaultKind = "throttle"
	// Fault5xx: 503 if Fault.Status is 503, else 500, in the target's error shape.
	Fault5xx FaultKind = "5xx"
	// FaultDenied: the AccessDenied error of the target, as if policy denied it.
	FaultDenied FaultKind = "denied"
)

// Fault misbehaviour of one target. Rates are fractions in [0,1]; 1 means
// every request. Which requests are hit is drawn from the seeded RNG.
type Fault struct {
	Latency   time.Duration // added before answering
	ErrorRate float64       // fraction answered with Kind
	Kind      FaultKind     // default FaultThrottle
	Status    int           // HTTP status for Fault5xx
	HangRate  float64       // fraction never answered until client or server goes away
}

// OpStats counts the requests of one operation.
type OpStats struct {
	Requests          int         `json:"requests"`
	Status            map[int]int `json:"status"`
	SignatureFailures int         `json:"signatureFailures"`
}

// Stats counts requests since the last reset.
type Stats struct {
	Requests int                `json:"requests"`
	InFlight int                `json:"inFlight"` // being served now (e.g. hung)
	Ops      map[string]OpStats `json:"ops"`      // by "target/operation"
}

// Op returns the counts of one operation, e.g. Op("ecr", "GetAuthorizationToken").
func (st Stats) Op(target, operation string) OpStats {
	return st.Ops[target+"/"+operation]
}

// Target sums the counts of all operations of a target.
func (st Stats) Target(target string) OpStats {
	sum := OpStats{Status: map[int]int{}}
	for k, o := range st.Ops {
		if len(k) > len(target) && k[:len(target)+1] == target+"/" {
			sum.Requests += o.Requests
			sum.SignatureFailures += o.SignatureFailures
			for code, n := range o.Status {
				sum.Status[code] += n
			}
		}
	}
	return sum
}

// Record is one logged request. Secrets never appear in it: web identity
// tokens only as a short SHA-256 prefix.
type Record struct {
	Time                   time.Time `json:"time"`
	Target                 string    `json:"target"`
	Operation              string    `json:"operation"`
	Region                 string    `json:"region,omitempty"`
	Principal              string    `json:"principal,omitempty"`
	AccessKeyID            string    `json:"accessKeyId,omitempty"`
	Status                 int       `json:"status"`
	Error                  string    `json:"error,omitempty"`
	WebIdentityTokenSHA256 string    `json:"webIdentityTokenSha256,omitempty"`
	// WebIdentitySubject and WebIdentityAudience are the verified sub and
	// aud of a web identity token (set once an OIDC provider is registered).
	WebIdentitySubject  string `json:"webIdentitySubject,omitempty"`
	WebIdentityAudience string `json:"webIdentityAudience,omitempty"`
}

// maxLog bounds the request log so long benchmarks don't grow memory.
const maxLog = 100000

func (s *Server) record(c *call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := c.rec.Target + "/" + c.rec.Operation
	o := s.stats[key]
	if o == nil {
		o = &OpStats{Status: map[int]int{}}
		s.stats[key] = o
	}
	s.total++
	s.inFlight--
	o.Requests++
	o.Status[c.rec.Status]++
	if c.sigFail {
		o.SignatureFailures++
	}
	if len(s.log) >= maxLog {
		s.log = s.log[1:]
	}
	s.log = append(s.log, c.rec)
}

// SetFault sets (replaces) the fault of target; a zero Fault clears it.
func (s *Server) SetFault(target string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == (Fault{}) {
		delete(s.faults, target)
		return
	}
	s.faults[target] = f
}

// ClearFaults removes all faults.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = map[string]Fault{}
}

// Deny makes action (e.g. "ecr:GetAuthorizationToken",
// "ecr-public:GetAuthorizationToken", "sts:GetCallerIdentity") fail with
// AccessDenied for principalARN, or for everyone when principalARN is "".
// For sts:AssumeRoleWithWebIdentity the principal is the assumed-role ARN the
// call would produce; RefuseRole is the simpler way to block a role.
func (s *Server) Deny(action, principalARN string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.denies[action] == nil {
		s.denies[action] = map[string]bool{}
	}
	s.denies[action][principalARN] = true
}

// Allow undoes Deny(action, principalARN).
func (s *Server) Allow(action, principalARN string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.denies[action], principalARN)
}

// RefuseRole makes STS refuse to assume roleARN (AccessDenied, as when the
// role's trust policy does not name the caller).
func (s *Server) RefuseRole(roleARN string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refused[roleARN] = true
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Requests: s.total, InFlight: s.inFlight, Ops: map[string]OpStats{}}
	for k, o := range s.stats {
		cp := *o
		cp.Status = map[int]int{}
		for code, n := range o.Status {
			cp.Status[code] = n
		}
		st.Ops[k] = cp
	}
	return st
}

// Requests returns a copy of the request log, oldest first.
func (s *Server) Requests() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Record(nil), s.log...)
}

// ResetStats clears the counters and the request log.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats, s.total, s.log = map[string]*OpStats{}, 0, nil
}

// Reset returns to a fresh state: counters, log, faults, denies and refused
// roles are cleared. Issued credentials, OIDC providers and registered roles
// stay, as IAM configuration would.
func (s *Server) Reset() {
	s.ResetStats()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults, s.denies, s.refused = map[string]Fault{}, map[string]map[string]bool{}, map[string]bool{}
}

// controlRequest is the JSON body of POST /_emu/fault and /_emu/deny.
type controlRequest struct {
	Target     string    `json:"target"`
	Latency    string    `json:"latency"`
	ErrorRate  float64   `json:"errorRate"`
	Kind       FaultKind `json:"kind"`
	Status     int       `json:"status"`
	HangRate   float64   `json:"hangRate"`
	Action     string    `json:"action"`
	Principal  string    `json:"principal"`
	Allow      bool      `json:"allow"`
	RefuseRole string    `json:"refuseRole"`
}

var targets = []string{TargetIMDS, TargetECR, TargetECRPublic, TargetSTS}

func (s *Server) control(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, format string, args ...any) {
		http.Error(w, fmt.Sprintf(format, args...), status)
	}
	// Registrations take their own body shapes.
	decode := func(v any) bool {
		if err := json.NewDecoder(r.Body).Decode(v); err != nil {
			fail(http.StatusBadRequest, "awsemu: bad JSON body: %v", err)
			return false
		}
		return true
	}
	answer := func(err error, ok any) {
		if err != nil {
			fail(http.StatusBadRequest, "%v", err)
			return
		}
		writeJSON(w, ok)
	}
	switch r.Method + " " + r.URL.Path {
	case "POST /_emu/oidc-provider":
		var p OIDCProvider
		if decode(&p) {
			answer(s.RegisterOIDCProvider(p), map[string]string{"arn": s.OIDCProviderARN(p.URL)})
		}
		return
	case "POST /_emu/role":
		var role Role
		if decode(&role) {
			answer(s.RegisterRole(role), map[string]bool{"ok": true})
		}
		return
	}
	var req controlRequest
	if r.Method == http.MethodPost {
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil && r.URL.Path != "/_emu/reset" {
			fail(http.StatusBadRequest, "awsemu: bad JSON body: %v", err)
			return
		}
	}
	switch r.Method + " " + r.URL.Path {
	case "GET /_emu/stats":
		writeJSON(w, s.Stats())
	case "GET /_emu/requests":
		writeJSON(w, s.Requests())
	case "GET /_emu/password":
		q := r.URL.Query()
		if q.Has("token") {
			n, err := strconv.Atoi(q.Get("token"))
			if err != nil || n < 1 {
				fail(http.StatusBadRequest, "awsemu: bad token number %q: want 1 for the first token, 2 for the next, ...", q.Get("token"))
				return
			}
			writeJSON(w, map[string]string{"password": s.TokenPassword(q.Get("principal"), q.Get("region"), n)})
			return
		}
		writeJSON(w, map[string]string{"password": s.PasswordIn(q.Get("principal"), q.Get("region"))})
	case "POST /_emu/reset":
		s.Reset()
		writeJSON(w, map[string]bool{"ok": true})
	case "POST /_emu/fault":
		if !slices.Contains(targets, req.Target) {
			fail(http.StatusBadRequest, "awsemu: unknown target %q; want one of %v", req.Target, targets)
			return
		}
		f := Fault{ErrorRate: req.ErrorRate, Kind: req.Kind, Status: req.Status, HangRate: req.HangRate}
		if req.Latency != "" {
			d, err := time.ParseDuration(req.Latency)
			if err != nil {
				fail(http.StatusBadRequest, "awsemu: bad latency %q: %v (use Go durations like 200ms)", req.Latency, err)
				return
			}
			f.Latency = d
		}
		switch f.Kind {
		case "", FaultThrottle, Fault5xx, FaultDenied:
		default:
			fail(http.StatusBadRequest, "awsemu: unknown fault kind %q; want throttle, 5xx or denied", f.Kind)
			return
		}
		s.SetFault(req.Target, f)
		writeJSON(w, map[string]bool{"ok": true})
	case "POST /_emu/deny":
		switch {
		case req.RefuseRole != "":
			s.RefuseRole(req.RefuseRole)
		case req.Action == "":
			fail(http.StatusBadRequest, `awsemu: deny needs "action" (e.g. ecr:GetAuthorizationToken) or "refuseRole"`)
			return
		case req.Allow:
			s.Allow(req.Action, req.Principal)
		default:
			s.Deny(req.Action, req.Principal)
		}
		writeJSON(w, map[string]bool{"ok": true})
	default:
		fail(http.StatusNotFound, "awsemu: unknown control endpoint %s %s", r.Method, r.URL.Path)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(mustJSON(v)) //nolint:errcheck // the client may be gone.
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own plain structs are marshalled
	}
	return b
}
