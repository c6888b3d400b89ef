// Command junitsum summarises a ginkgo JUnit report of a critest run.
//
//	junitsum [-skip-list FILE] [-o SUMMARY] REPORT.xml
//	junitsum -skip-regex FILE
//
// It prints every failed spec, then a last line exactly
// `N passed, N failed, N skipped`, and exits 1 when a spec failed that
// the skip list does not name (a listed spec that ran and failed is
// reported as an expected failure), 2 when the report cannot be read.
// With -skip-regex it prints the skip list as one ginkgo regex.
package main

import (
	"bufio"
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

type testsuites struct {
	Suites []testsuite `xml:"testsuite"`
}

type testsuite struct {
	Name  string     `xml:"name,attr"`
	Cases []testcase `xml:"testcase"`
}

type testcase struct {
	Name    string   `xml:"name,attr"`
	Status  string   `xml:"status,attr"`
	Time    float64  `xml:"time,attr"`
	Failure *message `xml:"failure"`
	Error   *message `xml:"error"`
	Skipped *message `xml:"skipped"`
}

type message struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

func main() {
	skipList := flag.String("skip-list", "", "skip list file: one regex per line, # comments")
	skipRegex := flag.String("skip-regex", "", "print the skip list FILE as one regex and exit")
	out := flag.String("o", "", "also write the summary (failed specs and counts) to this file")
	flag.Parse()

	if *skipRegex != "" {
		res, err := readSkipList(*skipRegex)
		if err != nil {
			fatal(err)
		}
		fmt.Println(joinRegex(res))
		return
	}
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: junitsum [-skip-list FILE] [-o SUMMARY] REPORT.xml")
		os.Exit(2)
	}
	var skips []*regexp.Regexp
	if *skipList != "" {
		res, err := readSkipList(*skipList)
		if err != nil {
			fatal(err)
		}
		for _, re := range res {
			skips = append(skips, regexp.MustCompile(re))
		}
	}
	f, err := os.Open(flag.Arg(0))
	if err != nil {
		fatal(err)
	}
	defer f.Close()
	suites, err := parse(f)
	if err != nil {
		fatal(fmt.Errorf("%s: %w", flag.Arg(0), err))
	}

	var passed, failed, skipped int
	var unexpected, expected []string
	var slow []testcase
	for _, s := range suites.Suites {
		for _, c := range s.Cases {
			isSpec := strings.HasPrefix(c.Name, "[It]")
			switch classify(c) {
			case "passed":
				if isSpec {
					passed++
					slow = append(slow, c)
				}
			case "skipped":
				if isSpec {
					skipped++
				}
			case "failed":
				failed++
				name := strings.TrimSpace(strings.TrimPrefix(c.Name, "[It]"))
				if matchesAny(skips, name) {
					expected = append(expected, name)
				} else {
					unexpected = append(unexpected, name+reason(c))
				}
			}
		}
	}

	var b strings.Builder
	sort.Slice(slow, func(i, j int) bool { return slow[i].Time > slow[j].Time })
	if len(slow) > 0 {
		fmt.Fprintln(&b, "slowest passed specs:")
		for _, c := range slow[:min(5, len(slow))] {
			fmt.Fprintf(&b, "  %6.1fs %s\n", c.Time, strings.TrimSpace(strings.TrimPrefix(c.Name, "[It]")))
		}
	}
	for _, n := range expected {
		fmt.Fprintf(&b, "EXPECTED FAILURE (skip list): %s\n", n)
	}
	for _, n := range unexpected {
		fmt.Fprintf(&b, "FAILED: %s\n", n)
	}
	fmt.Fprintf(&b, "%d passed, %d failed, %d skipped\n", passed, failed, skipped)
	fmt.Print(b.String())
	if *out != "" {
		if err := os.WriteFile(*out, []byte(b.String()), 0o644); err != nil {
			fatal(err)
		}
	}
	if len(unexpected) > 0 {
		os.Exit(1)
	}
}

func parse(r io.Reader) (*testsuites, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var ss testsuites
	if err := xml.Unmarshal(data, &ss); err == nil && len(ss.Suites) > 0 {
		return &ss, nil
	}
	// A report of a single <testsuite>.
	var s testsuite
	if err := xml.Unmarshal(data, &s); err != nil {
		return nil, err
	}
	return &testsuites{Suites: []testsuite{s}}, nil
}

// classify maps ginkgo's JUnit statuses (passed, skipped, pending,
// failed, panicked, interrupted, timedout, aborted) to three outcomes.
func classify(c testcase) string {
	switch c.Status {
	case "passed":
		return "passed"
	case "skipped", "pending":
		return "skipped"
	case "":
		switch {
		case c.Failure != nil || c.Error != nil:
			return "failed"
		case c.Skipped != nil:
			return "skipped"
		default:
			return "passed"
		}
	default:
		return "failed"
	}
}

func reason(c testcase) string {
	m := c.Failure
	if m == nil {
		m = c.Error
	}
	if m == nil || m.Message == "" {
		return ""
	}
	msg := strings.Join(strings.Fields(m.Message), " ")
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	return "\n    " + msg
}

func matchesAny(res []*regexp.Regexp, s string) bool {
	for _, re := range res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

// readSkipList reads one regex per line; blank lines and lines starting
// with # are comments. Each regex must compile.
func readSkipList(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var res []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if _, err := regexp.Compile(line); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		res = append(res, line)
	}
	return res, sc.Err()
}

func joinRegex(res []string) string {
	if len(res) == 0 {
		return ""
	}
	parts := make([]string, len(res))
	for i, re := range res {
		parts[i] = "(" + re + ")"
	}
	return strings.Join(parts, "|")
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "junitsum:", err)
	os.Exit(2)
}
