package kubeletwiring

import (
	"fmt"
	"strings"

	"github.com/kubecred/ecr-credential-provider/internal/lazyregexp"
)

// EnvAssign is one KEY=VALUE assignment of a systemd EnvironmentFile, with
// the byte span it takes in the file so an edit can leave every other byte
// alone.
type EnvAssign struct {
	Key   string
	Value string // as systemd decodes it
	Line  int    // 1-based line of the key
	Start int    // offset of the line the key is on
	End   int    // offset after the assignment's last newline (or len)
}

// Regexps compile on first use: this package is linked into the plugin,
// whose every call would otherwise pay for compiling them at start-up.
var envKeyRe = lazyregexp.New(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ParseEnvFile reads a file in the syntax systemd's EnvironmentFile= takes
// (the state machine of systemd's parse_env_file_internal): KEY=VALUE lines,
// '#' and ';' comments, single quotes taken literally, double quotes with
// backslash escapes of \ " ` $, unquoted values with backslash escapes and
// trailing blanks trimmed, and a backslash before a newline continuing the
// value. systemd skips what it cannot read with a warning; we refuse it
// instead, since editing a file we misread could change what the kubelet
// gets.
func ParseEnvFile(name string, data []byte) ([]EnvAssign, error) {
	const (
		preKey = iota
		key
		preValue
		value
		valueEscape
		singleQuote
		doubleQuote
		doubleQuoteEscape
		comment
		commentEscape
	)
	var (
		out       []EnvAssign
		state     = preKey
		line      = 1
		k, v      strings.Builder
		keyLine   int
		lineStart int
		start     int
		trimTo    = -1 // length of v before its trailing blanks
		quoteLine int
	)
	push := func(end int) error {
		ks := strings.TrimRight(k.String(), " \t")
		vs := v.String()
		if trimTo >= 0 {
			vs = vs[:trimTo]
		}
		if !envKeyRe.MatchString(ks) {
			return fmt.Errorf("%s:%d: %q is not a valid environment variable name", name, keyLine, ks)
		}
		out = append(out, EnvAssign{Key: ks, Value: vs, Line: keyLine, Start: start, End: end})
		k.Reset()
		v.Reset()
		trimTo = -1
		return nil
	}
	for i := 0; i < len(data); i++ {
		c := data[i]
		// A CRLF line end is one newline: systemd reads '\r' as a newline of
		// its own, which would end the line twice and misplace where the
		// assignment ends (an edit would then leave a blank line behind).
		if c == '\r' && i+1 < len(data) && data[i+1] == '\n' && (state == preKey || state == key || state == preValue || state == value || state == comment) {
			i++
			c = '\n'
		}
		nl := c == '\n' || c == '\r'
		blank := c == ' ' || c == '\t' || nl
		switch state {
		case preKey:
			switch {
			case c == '#' || c == ';':
				state = comment
			case !blank:
				state, keyLine, start = key, line, lineStart
				k.WriteByte(c)
			}
		case key:
			switch {
			case nl:
				return nil, fmt.Errorf("%s:%d: line has no '=' (expected KEY=VALUE)", name, line)
			case c == '=':
				state = preValue
			default:
				k.WriteByte(c)
			}
		case preValue:
			switch {
			case nl:
				if err := push(i + 1); err != nil {
					return nil, err
				}
				state = preKey
			case c == '\'':
				state, quoteLine = singleQuote, line
			case c == '"':
				state, quoteLine = doubleQuote, line
			case c == '\\':
				state = valueEscape
			case !blank:
				state = value
				v.WriteByte(c)
			}
		case value:
			switch {
			case nl:
				if err := push(i + 1); err != nil {
					return nil, err
				}
				state = preKey
			case c == '\\':
				state, trimTo = valueEscape, -1
			default:
				if c == ' ' || c == '\t' {
					if trimTo < 0 {
						trimTo = v.Len()
					}
				} else {
					trimTo = -1
				}
				v.WriteByte(c)
			}
		case valueEscape:
			state = value
			if !nl {
				v.WriteByte(c)
			}
		case singleQuote:
			if c == '\'' {
				state = preValue
			} else {
				v.WriteByte(c)
			}
		case doubleQuote:
			switch c {
			case '"':
				state = preValue
			case '\\':
				state = doubleQuoteEscape
			default:
				v.WriteByte(c)
			}
		case doubleQuoteEscape:
			state = doubleQuote
			switch {
			case strings.IndexByte("\"\\`$", c) >= 0:
				v.WriteByte(c)
			case c == '\n':
			default:
				v.WriteByte('\\')
				v.WriteByte(c)
			}
		case comment:
			if c == '\\' {
				state = commentEscape
			} else if nl {
				state = preKey
			}
		case commentEscape:
			state = comment
		}
		if c == '\n' {
			line++
		}
		if (c == '\n' || c == '\r') && state == preKey {
			lineStart = i + 1 // a lone '\r' ends a line for systemd too
		}
	}
	switch state {
	case key:
		return nil, fmt.Errorf("%s:%d: line has no '=' (expected KEY=VALUE)", name, line)
	case singleQuote, doubleQuote, doubleQuoteEscape:
		return nil, fmt.Errorf("%s:%d: quote opened here is never closed", name, quoteLine)
	case preValue, value, valueEscape:
		if err := push(len(data)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// LookupEnv returns the last assignment of key, which is the one that counts.
func LookupEnv(as []EnvAssign, key string) (EnvAssign, bool) {
	for i := len(as) - 1; i >= 0; i-- {
		if as[i].Key == key {
			return as[i], true
		}
	}
	return EnvAssign{}, false
}
