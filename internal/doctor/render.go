package doctor

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

var marks = map[Status]string{StatusOK: "✓", StatusFail: "✗", StatusSkip: "-"}

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
		mark := marks[c.Status]
		if c.Status == StatusFail && c.Advisory {
			mark = "!"
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
	fmt.Fprintf(b, "\n%s: %s\n", res, rep.Verdict)
	return b.Flush()
}

// WriteJSON prints the report as one JSON document.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(rep)
}
