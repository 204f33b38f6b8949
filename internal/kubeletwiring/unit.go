package kubeletwiring

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// UnitDirs are systemd's system unit directories, highest priority first.
// /lib/systemd/system is where Debian without merged /usr keeps them.
var UnitDirs = []string{
	"/etc/systemd/system",
	"/run/systemd/system",
	"/usr/local/lib/systemd/system",
	"/usr/lib/systemd/system",
	"/lib/systemd/system",
}

// Setting is one Key=value line of a unit file, continuation lines joined.
type Setting struct {
	Section, Key, Value string
	File                string
	Line                int
}

func (s Setting) Where() string { return fmt.Sprintf("%s:%d", s.File, s.Line) }

// ParseUnit reads the settings of a systemd unit file or drop-in.
func ParseUnit(name string, data []byte) ([]Setting, error) {
	var out []Setting
	section := ""
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		lineNo := i + 1
		l := strings.TrimSpace(strings.TrimSuffix(lines[i], "\r"))
		if l == "" || l[0] == '#' || l[0] == ';' {
			continue
		}
		if l[0] == '[' {
			if !strings.HasSuffix(l, "]") {
				return nil, fmt.Errorf("%s:%d: section header %q has no closing ]", name, lineNo, l)
			}
			section = l[1 : len(l)-1]
			continue
		}
		// A trailing backslash continues the value on the next line;
		// comment lines inside a continuation are skipped, as systemd does.
		for strings.HasSuffix(l, "\\") && i+1 < len(lines) {
			i++
			next := strings.TrimSpace(strings.TrimSuffix(lines[i], "\r"))
			if next != "" && (next[0] == '#' || next[0] == ';') {
				continue
			}
			l = l[:len(l)-1] + " " + next
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: %q is not a Key=value Setting", name, lineNo, l)
		}
		out = append(out, Setting{Section: section, Key: strings.TrimSpace(k), Value: strings.TrimSpace(v), File: name, Line: lineNo})
	}
	return out, nil
}

// SplitWords splits a unit setting's value into words the way systemd
// does for ExecStart= and Environment=: blanks separate words, single and
// double quotes group, a backslash escapes the next character, and "%%" is
// a literal '%'.
func SplitWords(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			w.WriteByte(cEscape(s[i]))
			inWord = true
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				w.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote, inWord = c, true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case c == '%' && i+1 < len(s) && s[i+1] == '%':
			i++
			w.WriteByte('%')
			inWord = true
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("quote %c is never closed", quote)
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

func cEscape(c byte) byte {
	switch c {
	case 'n':
		return '\n'
	case 't':
		return '\t'
	case 'r':
		return '\r'
	}
	return c
}

// Unit is a systemd service as systemd loads it: the main file followed by
// its drop-ins in the order systemd applies them.
type Unit struct {
	Name     string
	Files    []string
	Settings []Setting
}

// LoadUnit finds a unit and its drop-ins below the root. skip names a
// drop-in to leave out: install's own, so that what it computes does not
// depend on what an earlier install wrote. A unit that is not there comes
// back with no Files and no error.
func LoadUnit(fsys FS, name, skip string) (*Unit, error) {
	u := &Unit{Name: name}
	for _, d := range UnitDirs {
		p := path.Join(d, name)
		if fsys.Readlink(p) == "/dev/null" {
			return nil, fmt.Errorf("%s is masked (%s links to /dev/null): unmask it first", name, p)
		}
		if !fsys.Exists(p) {
			continue
		}
		data, _, err := fsys.ReadFile(p)
		if err != nil {
			return nil, err
		}
		if len(data) == 0 {
			return nil, fmt.Errorf("%s is empty (masked?): the %s service cannot run", p, name)
		}
		u.Files = append(u.Files, p)
		break
	}
	if len(u.Files) == 0 {
		return u, nil
	}
	// A drop-in in a higher-priority directory hides one of the same name
	// in a lower one; the survivors apply in file name order.
	dropIns := map[string]string{}
	for i := len(UnitDirs) - 1; i >= 0; i-- {
		dir := path.Join(UnitDirs[i], name+".d")
		names, err := fsys.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		for _, f := range names {
			if strings.HasSuffix(f, ".conf") {
				dropIns[f] = path.Join(dir, f)
			}
		}
	}
	var names []string
	for f, p := range dropIns {
		if p != skip {
			names = append(names, f)
		}
	}
	sort.Strings(names)
	for _, f := range names {
		u.Files = append(u.Files, dropIns[f])
	}
	for _, p := range u.Files {
		data, _, err := fsys.ReadFile(p)
		if err != nil {
			return nil, err
		}
		ss, err := ParseUnit(p, data)
		if err != nil {
			return nil, err
		}
		u.Settings = append(u.Settings, ss...)
	}
	return u, nil
}

// service returns the [Service] settings named key, in load order; an
// empty assignment resets the list, as it does in systemd.
func (u *Unit) Service(key string) []Setting {
	var out []Setting
	for _, s := range u.Settings {
		if s.Section != "Service" || s.Key != key {
			continue
		}
		if s.Value == "" {
			out = nil
			continue
		}
		out = append(out, s)
	}
	return out
}

// ExecStart is the command line the service runs: the last ExecStart=.
func (u *Unit) ExecStart() (Setting, []string, error) {
	ss := u.Service("ExecStart")
	if len(ss) == 0 {
		return Setting{}, nil, fmt.Errorf("%s has no ExecStart= in %s", u.Name, strings.Join(u.Files, ", "))
	}
	s := ss[len(ss)-1]
	words, err := SplitWords(s.Value)
	if err != nil {
		return s, nil, fmt.Errorf("%s: ExecStart: %v", s.Where(), err)
	}
	if len(words) > 0 {
		words[0] = strings.TrimLeft(words[0], "@-:+!|")
	}
	return s, words, nil
}

// EnvValue is one variable's value and where it was set.
type EnvValue struct {
	Value string
	From  string // file:line
	File  string // the EnvironmentFile, when it came from one
}

// environment computes the variables the service's command line sees:
// Environment= in order, then EnvironmentFile= files in order, which
// override Environment= whatever their position (systemd.exec(5)).
func (u *Unit) Environment(fsys FS) (map[string]EnvValue, []EnvFileRef, error) {
	env := map[string]EnvValue{}
	for _, s := range u.Service("Environment") {
		words, err := SplitWords(s.Value)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: Environment: %v", s.Where(), err)
		}
		for _, w := range words {
			k, v, ok := strings.Cut(w, "=")
			if !ok || !envKeyRe.MatchString(k) {
				continue
			}
			env[k] = EnvValue{Value: v, From: s.Where()}
		}
	}
	var files []EnvFileRef
	for _, s := range u.Service("EnvironmentFile") {
		ref := EnvFileRef{Path: s.Value, From: s.Where()}
		if strings.HasPrefix(ref.Path, "-") {
			ref.Path, ref.Optional = ref.Path[1:], true
		}
		files = append(files, ref)
		if !path.IsAbs(ref.Path) || strings.ContainsAny(ref.Path, "*?[%") {
			continue
		}
		data, ok, err := fsys.ReadFile(ref.Path)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			continue
		}
		as, err := ParseEnvFile(ref.Path, data)
		if err != nil {
			return nil, nil, err
		}
		for _, a := range as {
			env[a.Key] = EnvValue{Value: a.Value, From: fmt.Sprintf("%s:%d", ref.Path, a.Line), File: ref.Path}
		}
	}
	return env, files, nil
}

// EnvFileRef is one EnvironmentFile= of the unit.
type EnvFileRef struct {
	Path     string
	Optional bool
	From     string
}

// ExpandedWord is one argument of the service's command line after systemd
// substituted the environment, and where it came from.
type ExpandedWord struct {
	Word string
	From string
	Var  string // the variable it came from, if any
}

// expand substitutes variables in ExecStart's words as systemd does: a word
// that is exactly $NAME becomes the value split on blanks; ${NAME} anywhere
// is replaced by the value as it is, inside the one word.
func Expand(words []string, env map[string]EnvValue, execFrom string) []ExpandedWord {
	var out []ExpandedWord
	for _, w := range words {
		if name, ok := strings.CutPrefix(w, "$"); ok && envKeyRe.MatchString(name) {
			v := env[name]
			for _, f := range strings.Fields(v.Value) {
				out = append(out, ExpandedWord{Word: f, From: v.From, Var: name})
			}
			continue
		}
		from, varName := execFrom, ""
		for {
			i := strings.Index(w, "${")
			if i < 0 {
				break
			}
			j := strings.IndexByte(w[i:], '}')
			if j < 0 {
				break
			}
			name := w[i+2 : i+j]
			w = w[:i] + env[name].Value + w[i+j+1:]
			from, varName = env[name].From, name
		}
		out = append(out, ExpandedWord{Word: w, From: from, Var: varName})
	}
	return out
}

// references reports how ExecStart's words use a variable: as $NAME (split
// into words) or as ${NAME} (one word).
func References(words []string, name string) (split, whole bool) {
	for _, w := range words {
		if w == "$"+name {
			split = true
		}
		if strings.Contains(w, "${"+name+"}") {
			whole = true
		}
	}
	return split, whole
}
