// Package lazyregexp holds regular expressions that compile on first use.
//
// The plugin binary links every operator command, and Go initializes every
// linked package before main: a package-level regexp.MustCompile would cost
// each plugin call its compile, and even a sync.OnceValue runs code and
// allocates at start-up. A Regexp made by New is a static value instead: its
// package's init does nothing for it, so the pages of code around that init
// are never touched (and never counted in the plugin's RSS).
package lazyregexp

import (
	"regexp"
	"sync"
)

// Regexp is a regexp.Regexp compiled on the first call of one of its
// methods. It panics then if the expression does not compile, as
// regexp.MustCompile does.
type Regexp struct {
	expr string
	once sync.Once
	rx   *regexp.Regexp
}

// New returns expr to be compiled on first use. Call it only in a
// package-level var declaration with a constant expr, so that the compiler
// lays the value out statically.
func New(expr string) *Regexp { return &Regexp{expr: expr} }

func (r *Regexp) re() *regexp.Regexp {
	r.once.Do(func() { r.rx = regexp.MustCompile(r.expr) })
	return r.rx
}

// Regexp returns the compiled expression.
func (r *Regexp) Regexp() *regexp.Regexp { return r.re() }

// MatchString is regexp.Regexp.MatchString.
func (r *Regexp) MatchString(s string) bool { return r.re().MatchString(s) }

// FindStringSubmatch is regexp.Regexp.FindStringSubmatch.
func (r *Regexp) FindStringSubmatch(s string) []string { return r.re().FindStringSubmatch(s) }

// FindSubmatch is regexp.Regexp.FindSubmatch.
func (r *Regexp) FindSubmatch(b []byte) [][]byte { return r.re().FindSubmatch(b) }

// FindAllStringIndex is regexp.Regexp.FindAllStringIndex.
func (r *Regexp) FindAllStringIndex(s string, n int) [][]int { return r.re().FindAllStringIndex(s, n) }
