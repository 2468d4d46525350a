package harness

import (
	"fmt"
	"io"
	"strings"
)

// Row of a result table.
type Row struct {
	Measure, Value, Target string
}

// Table collects rows and prints them as markdown.
type Table struct {
	Rows []Row
}

// Add appends a row.
func (t *Table) Add(measure, value, target string) {
	t.Rows = append(t.Rows, Row{measure, value, target})
}

// Insert puts a row at index i (rows from i on move down), for a measure
// whose repetitions finish after later measures ran.
func (t *Table) Insert(i int, measure, value, target string) {
	t.Rows = append(t.Rows, Row{})
	copy(t.Rows[i+1:], t.Rows[i:])
	t.Rows[i] = Row{measure, value, target}
}

// Header is the markdown table header, printed once by bench/run.sh when
// it combines several programs' rows.
const Header = "| measure | value | target |\n|---|---|---|\n"

// Print writes the rows as markdown, with the header if asked.
func (t *Table) Print(w io.Writer, header bool) {
	if header {
		io.WriteString(w, Header)
	}
	for _, r := range t.Rows {
		fmt.Fprintf(w, "| %s | %s | %s |\n", cell(r.Measure), cell(r.Value), cell(r.Target))
	}
}

func cell(s string) string {
	if s == "" {
		return ""
	}
	return strings.ReplaceAll(s, "|", `\|`)
}
