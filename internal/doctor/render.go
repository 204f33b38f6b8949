package doctor

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// The marks of a check's line, and what each means: the report's legend
// and the README's list are this table.
const (
	markOK       = "✓"
	markFail     = "✗"
	markAdvisory = "!"
	markSkip     = "-"
)

// Legend explains every mark WriteText uses, in one line.
const Legend = markOK + " passed   " + markFail + " failed: a pull fails because of it   " +
	markAdvisory + " failed, but a pull still works without it   " + markSkip + " skipped: the reason follows"

// statusMark is the mark of a status (a switch: a map would be built at
// every plugin start).
func statusMark(st Status) string {
	switch st {
	case StatusOK:
		return markOK
	case StatusFail:
		return markFail
	case StatusSkip:
		return markSkip
	}
	return ""
}

// WriteText prints the report for a person: one line per check, a fix
// under each failure, then the verdict.
func (rep *Report) WriteText(w io.Writer) error {
	b := bufio.NewWriter(w)
	width := 0
	for _, c := range rep.Checks {
		width = max(width, len(c.Title))
	}
	fmt.Fprintf(b, "doctor: %s\n", rep.Image)
	for _, c := range rep.Checks {
		summary := c.Summary
		if c.Status == StatusSkip {
			summary = "skipped: " + summary
		}
		mark := statusMark(c.Status)
		if c.Status == StatusFail && c.Advisory {
			mark = markAdvisory
		}
		fmt.Fprintf(b, "%s %-*s  %s\n", mark, width, c.Title, summary)
		if c.Remedy != "" && c.Status == StatusFail {
			fmt.Fprintf(b, "    fix: %s\n", c.Remedy)
		}
		if c.Policy != "" {
			b.WriteString("    policy:\n")
			for _, l := range strings.Split(c.Policy, "\n") {
				fmt.Fprintf(b, "      %s\n", l)
			}
		}
		for _, n := range c.Notes {
			fmt.Fprintf(b, "    note: %s\n", n)
		}
	}
	res := "FAIL"
	if rep.OK {
		res = "OK"
	}
	fmt.Fprintf(b, "\n%s: %s\n(%s)\n", res, rep.Verdict, Legend)
	return b.Flush()
}

// WriteJSON prints the report as one JSON document.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(rep)
}
