package awsemu

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"
)

// policyDocument is the part of IAM's policy grammar a web identity trust
// policy uses: Effect, Principal.Federated, Action and string conditions.
type policyDocument struct {
	Version   string
	Statement []policyStatement
}

type policyStatement struct {
	Sid       string
	Effect    string
	Principal struct {
		Federated stringList
	}
	Action    stringList
	Condition map[string]map[string]stringList
}

// stringList is IAM's "a string or a list of strings".
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = stringList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("want a string or a list of strings, got %s", b)
	}
	*l = many
	return nil
}

// conditionOperators are the operators the emulator evaluates. IAM has more;
// a policy using another one is refused at registration rather than judged
// wrongly.
var conditionOperators = map[string]bool{
	"StringEquals": true, "StringLike": true, "StringNotEquals": true, "StringNotLike": true,
}

// parsePolicy parses and checks a trust policy document.
func parsePolicy(doc string) (*policyDocument, error) {
	var p policyDocument
	d := json.NewDecoder(strings.NewReader(doc))
	d.DisallowUnknownFields()
	if err := d.Decode(&p); err != nil {
		return nil, fmt.Errorf("trust policy is not a policy document: %w", err)
	}
	if len(p.Statement) == 0 {
		return nil, fmt.Errorf("trust policy has no Statement")
	}
	for i, st := range p.Statement {
		if st.Effect != "Allow" && st.Effect != "Deny" {
			return nil, fmt.Errorf("statement %d: Effect %q, want Allow or Deny", i, st.Effect)
		}
		for op := range st.Condition {
			if !conditionOperators[op] {
				return nil, fmt.Errorf("statement %d: condition operator %q is not emulated (use StringEquals, StringLike or their Not forms)", i, op)
			}
		}
	}
	return &p, nil
}

// allows reports whether the policy lets id assume the role: an Allow
// statement matches and no Deny statement does.
func (p *policyDocument) allows(providerARN string, id *identity) bool {
	allowed := false
	for _, st := range p.Statement {
		if !st.matches(providerARN, id) {
			continue
		}
		if st.Effect == "Deny" {
			return false
		}
		allowed = true
	}
	return allowed
}

func (st *policyStatement) matches(providerARN string, id *identity) bool {
	if !anyLike(st.Principal.Federated, providerARN) || !anyLike(st.Action, "sts:AssumeRoleWithWebIdentity") {
		return false
	}
	// Condition keys are the provider's host/path with :sub or :aud.
	values := map[string]string{
		id.provider.hostPath + ":sub": id.sub,
		id.provider.hostPath + ":aud": id.aud,
	}
	for op, conds := range st.Condition {
		for key, want := range conds {
			got, present := values[key]
			switch op {
			case "StringEquals":
				if !present || !anyEqual(want, got) {
					return false
				}
			case "StringLike":
				if !present || !anyLike(want, got) {
					return false
				}
			case "StringNotEquals":
				if present && anyEqual(want, got) {
					return false
				}
			case "StringNotLike":
				if present && anyLike(want, got) {
					return false
				}
			}
		}
	}
	return true
}

func anyEqual(patterns []string, s string) bool {
	for _, p := range patterns {
		if p == s {
			return true
		}
	}
	return false
}

// anyLike matches IAM's wildcards: * any run of characters, ? any one.
func anyLike(patterns []string, s string) bool {
	for _, p := range patterns {
		if globMatch(p, s) {
			return true
		}
	}
	return false
}

// globMatch is IAM's StringLike: unlike path.Match, * also spans '/'.
func globMatch(pattern, s string) bool {
	if !strings.ContainsAny(pattern, "*?") {
		return pattern == s
	}
	// path.Match treats '/' as a separator and '[' and '\\' as special:
	// escape those and match segment-free by replacing '/' on both sides.
	r := strings.NewReplacer("/", "\x00", "[", `\[`, `\`, `\\`)
	ok, err := path.Match(r.Replace(pattern), strings.ReplaceAll(s, "/", "\x00"))
	return err == nil && ok
}
