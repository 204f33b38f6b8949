package providerconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode"

	yamlv2 "go.yaml.in/yaml/v2"
	"sigs.k8s.io/yaml"
)

// Config is a CredentialProviderConfig as the kubelet reads it from the
// path given to --image-credential-provider-config: one file, or (kubelet
// 1.34 and later) a directory whose *.json, *.yaml and *.yml files are read
// in lexical order and their providers concatenated.
type Config struct {
	// Path is the path as given.
	Path string
	// Dir is true when Path is a directory.
	Dir bool
	// Files are the files the kubelet reads, in its order.
	Files []*File
	// Skipped are directory entries the kubelet ignores although their
	// name looks like a config file to a person (such as "ecr.YAML").
	Skipped []string
}

// File is one config file, decoded the way the kubelet decodes it. Decoding
// facts whose verdict depends on the kubelet version (unknown fields are
// fatal only from 1.32, tokenAttributes exists only from 1.33) are recorded
// here and judged by Validate.
type File struct {
	Path string
	// JSON is true when the kubelet reads the file as JSON (its first
	// non-space byte is '{'); otherwise it is converted from YAML first.
	JSON bool
	// APIVersion and Kind are the file's type, read as the kubelet reads
	// them: field names matched case-insensitively, the last one wins.
	APIVersion string
	Kind       string
	// Config holds what the kubelet's decoder keeps: fields whose names
	// match exactly, with duplicates applied in order.
	Config CredentialProviderConfig
	// Err is set when the file cannot be read or parsed at all.
	Err error
	// TypeErrors are values of the wrong type (a number where a string
	// belongs, an unparsable duration): the kubelet's decoder fails on them.
	TypeErrors []FieldError
	// Unknown are paths of fields the kubelet's types do not have, or that
	// differ from a known field only in case.
	Unknown []string
	// Duplicates are repeated keys: paths for JSON, the YAML parser's
	// messages (with line numbers) for YAML.
	Duplicates []string
	// TokenAttributes and CacheTypes are the paths where these fields
	// appear: whether the kubelet knows them depends on its version (and,
	// for tokenAttributes, on the file's apiVersion).
	TokenAttributes []string
	CacheTypes      []string
	// ExtraDocuments counts non-empty YAML documents after the first, which
	// the kubelet never reads.
	ExtraDocuments int
}

// FieldError is a problem with the value at Field.
type FieldError struct {
	Field   string
	Message string
}

// Providers returns the providers of all files in the kubelet's order, each
// knowing its file and index there.
func (c *Config) Providers() []CredentialProvider {
	var out []CredentialProvider
	for _, f := range c.Files {
		out = append(out, f.Config.Providers...)
	}
	return out
}

// configExts are the extensions the kubelet reads from a config directory,
// compared case-sensitively as the kubelet does.
var configExts = []string{".json", ".yaml", ".yml"}

// Load reads path like the kubelet does. Its error is for a path that
// cannot be read at all; problems inside files are recorded on each File
// for Validate to report.
func Load(path string) (*Config, error) {
	if path == "" {
		return nil, errors.New("credential provider config path is empty")
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("unable to access path %q: %w", path, err)
	}
	c := &Config{Path: path, Dir: info.IsDir()}
	var files []string
	if c.Dir {
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("unable to read directory %q: %w", path, err)
		}
		for _, e := range entries {
			ext := filepath.Ext(e.Name())
			switch {
			case !e.IsDir() && contains(configExts, ext):
				files = append(files, filepath.Join(path, e.Name()))
			case !e.IsDir() && contains(configExts, strings.ToLower(ext)):
				c.Skipped = append(c.Skipped, filepath.Join(path, e.Name()))
			}
		}
		sort.Strings(files)
	} else {
		files = []string{path}
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			c.Files = append(c.Files, &File{Path: name, Err: fmt.Errorf("unable to read file: %w", err)})
			continue
		}
		c.Files = append(c.Files, Decode(name, data))
	}
	return c, nil
}

// Decode decodes one file's content the way the kubelet's decoder does.
func Decode(name string, data []byte) *File {
	f := &File{Path: name, JSON: bytes.HasPrefix(bytes.TrimLeftFunc(data, unicode.IsSpace), []byte("{"))}
	jsonData := data
	if !f.JSON {
		// The kubelet converts YAML with sigs.k8s.io/yaml, which reads the
		// first document only and lets a repeated key win silently; the
		// strict conversion is what reports the repeat.
		var err error
		if jsonData, err = yaml.YAMLToJSON(data); err != nil {
			f.Err = fmt.Errorf("not valid YAML: %w", err)
			return f
		}
		if _, err := yaml.YAMLToJSONStrict(data); err != nil {
			f.Duplicates = append(f.Duplicates, yamlErrorLines(err)...)
		}
		f.ExtraDocuments = extraDocuments(data)
	}
	var typeMeta struct {
		APIVersion string `json:"apiVersion,omitempty"`
		Kind       string `json:"kind,omitempty"`
	}
	if err := json.Unmarshal(jsonData, &typeMeta); err != nil {
		f.Err = fmt.Errorf("couldn't get version/kind: %w", err)
		return f
	}
	f.APIVersion, f.Kind = typeMeta.APIVersion, typeMeta.Kind

	root, err := parseJSON(jsonData)
	if err != nil {
		f.Err = fmt.Errorf("not valid JSON: %w", err)
		return f
	}
	w := walker{f: f}
	kept := w.apply(root, configSchema, "")
	var buf bytes.Buffer
	kept.write(&buf)
	// Only exact-case known fields of the right type are left, so the
	// standard decoder now behaves like the kubelet's case-sensitive one,
	// including how repeated keys overwrite or merge.
	if err := json.Unmarshal(buf.Bytes(), &f.Config); err != nil {
		f.Err = fmt.Errorf("decoding: %w", err)
		return f
	}
	for i := range f.Config.Providers {
		f.Config.Providers[i].File, f.Config.Providers[i].Index = name, i
	}
	return f
}

func extraDocuments(data []byte) int {
	d := yamlv2.NewDecoder(bytes.NewReader(data))
	n := 0
	for i := 0; ; i++ {
		var v any
		if err := d.Decode(&v); err != nil {
			break
		}
		if i > 0 && v != nil {
			n++
		}
	}
	return n
}

// jnode is a parsed JSON value that keeps an object's keys in order,
// repeats included, so that the kubelet's treatment of repeats can be
// reproduced and reported.
type jnode struct {
	kind  byte // 'o' object, 'a' array, 's' string, 'n' number, 'b' bool, 'z' null
	str   string
	keys  []string
	vals  []*jnode
	elems []*jnode
}

func parseJSON(data []byte) (*jnode, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	n, err := parseValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("invalid character after top-level value")
	}
	return n, nil
}

func parseValue(dec *json.Decoder) (*jnode, error) {
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		if t == '{' {
			n := &jnode{kind: 'o'}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := parseValue(dec)
				if err != nil {
					return nil, err
				}
				n.keys, n.vals = append(n.keys, k.(string)), append(n.vals, v)
			}
			_, err := dec.Token()
			return n, err
		}
		n := &jnode{kind: 'a'}
		for dec.More() {
			v, err := parseValue(dec)
			if err != nil {
				return nil, err
			}
			n.elems = append(n.elems, v)
		}
		_, err := dec.Token()
		return n, err
	case string:
		return &jnode{kind: 's', str: t}, nil
	case json.Number:
		return &jnode{kind: 'n', str: string(t)}, nil
	case bool:
		return &jnode{kind: 'b', str: fmt.Sprint(t)}, nil
	default:
		return &jnode{kind: 'z'}, nil
	}
}

func (n *jnode) write(b *bytes.Buffer) {
	switch n.kind {
	case 'o':
		b.WriteByte('{')
		for i, k := range n.keys {
			if i > 0 {
				b.WriteByte(',')
			}
			q, _ := json.Marshal(k)
			b.Write(q)
			b.WriteByte(':')
			n.vals[i].write(b)
		}
		b.WriteByte('}')
	case 'a':
		b.WriteByte('[')
		for i, e := range n.elems {
			if i > 0 {
				b.WriteByte(',')
			}
			e.write(b)
		}
		b.WriteByte(']')
	case 's':
		q, _ := json.Marshal(n.str)
		b.Write(q)
	case 'n', 'b':
		b.WriteString(n.str)
	default:
		b.WriteString("null")
	}
}

func (n *jnode) describe() string {
	return map[byte]string{'o': "an object", 'a': "a list", 's': "a string", 'n': "a number", 'b': "a boolean", 'z': "null"}[n.kind]
}

// schema describes a field's expected JSON shape.
type schema struct {
	kind   byte // 's' string, 'b' bool, 'd' duration, 'S' list of strings, 'o' object, 'l' list of objects
	fields map[string]*schema
}

var (
	strS   = &schema{kind: 's'}
	envS   = &schema{kind: 'l', fields: map[string]*schema{"name": strS, "value": strS}}
	cacheS = &schema{kind: 's'}
	tokS   = &schema{kind: 'o', fields: map[string]*schema{"serviceAccountTokenAudience": strS, "cacheType": cacheS, "requireServiceAccount": {kind: 'b'}, "requiredServiceAccountAnnotationKeys": {kind: 'S'}, "optionalServiceAccountAnnotationKeys": {kind: 'S'}}}
	provS  = &schema{kind: 'l', fields: map[string]*schema{"name": strS, "matchImages": {kind: 'S'}, "defaultCacheDuration": {kind: 'd'}, "apiVersion": strS, "args": {kind: 'S'}, "env": envS, "tokenAttributes": tokS}}

	configSchema = &schema{kind: 'o', fields: map[string]*schema{"apiVersion": strS, "kind": strS, "providers": provS}}
)

type walker struct{ f *File }

func (w *walker) typeError(path, want string, got *jnode) {
	w.f.TypeErrors = append(w.f.TypeErrors, FieldError{path, fmt.Sprintf("must be %s, not %s", want, got.describe())})
}

// apply checks n against s and returns the part the kubelet's decoder
// would use, or nil to drop n.
func (w *walker) apply(n *jnode, s *schema, path string) *jnode {
	if n.kind == 'z' {
		return n
	}
	switch s.kind {
	case 's':
		if n.kind != 's' {
			w.typeError(path, "a string", n)
			return nil
		}
	case 'b':
		if n.kind != 'b' {
			w.typeError(path, "true or false", n)
			return nil
		}
	case 'd':
		if n.kind != 's' {
			w.typeError(path, `a duration string such as "12h"`, n)
			return nil
		}
		if _, err := time.ParseDuration(n.str); err != nil {
			w.f.TypeErrors = append(w.f.TypeErrors, FieldError{path, fmt.Sprintf(`%q is not a duration such as "12h" or "90m"`, n.str)})
			return nil
		}
	case 'S', 'l':
		if n.kind != 'a' {
			w.typeError(path, "a list", n)
			return nil
		}
		out := &jnode{kind: 'a'}
		for i, e := range n.elems {
			p := fmt.Sprintf("%s[%d]", path, i)
			var k *jnode
			if s.kind == 'S' {
				k = w.apply(e, strS, p)
			} else {
				k = w.apply(e, &schema{kind: 'o', fields: s.fields}, p)
			}
			if k == nil {
				k = &jnode{kind: 'z'}
			}
			out.elems = append(out.elems, k)
		}
		return out
	case 'o':
		if n.kind != 'o' {
			w.typeError(path, "an object", n)
			return nil
		}
		out := &jnode{kind: 'o'}
		seen := map[string]bool{}
		for i, k := range n.keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			fs, ok := s.fields[k]
			if !ok {
				w.f.Unknown = append(w.f.Unknown, p)
				continue
			}
			if seen[k] {
				w.f.Duplicates = append(w.f.Duplicates, p)
			}
			seen[k] = true
			switch fs {
			case tokS:
				w.f.TokenAttributes = append(w.f.TokenAttributes, p)
			case cacheS:
				w.f.CacheTypes = append(w.f.CacheTypes, p)
			}
			if v := w.apply(n.vals[i], fs, p); v != nil {
				out.keys, out.vals = append(out.keys, k), append(out.vals, v)
			}
		}
		return out
	}
	return n
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// yamlErrorLines turns the YAML parser's multi-line error ("yaml:
// unmarshal errors:\n  line 8: key \"name\" already set in map") into one
// line per problem.
func yamlErrorLines(err error) []string {
	var out []string
	for _, l := range strings.Split(err.Error(), "\n") {
		l = strings.TrimSpace(l)
		l = strings.TrimPrefix(l, "error converting YAML to JSON: ")
		if l != "" && !strings.HasSuffix(l, "unmarshal errors:") {
			out = append(out, l)
		}
	}
	return out
}
