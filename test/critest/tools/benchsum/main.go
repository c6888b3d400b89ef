// Command benchsum summarises the JSON files `critest -benchmark
// -benchmarking-output-dir DIR` writes: for every benchmark and
// operation, the number of samples and the median, minimum and maximum
// latency in milliseconds.
//
//	benchsum DIR
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// resultsSet is cri-tools' pkg/benchmark LifecycleBenchmarksResultsSet.
type resultsSet struct {
	OperationsNames []string `json:"operationsNames"`
	NumParallel     int      `json:"numParallel"`
	Datapoints      []struct {
		OperationsDurationsNs []int64 `json:"operationsDurationsNs"`
	} `json:"datapoints"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: benchsum DIR")
		os.Exit(2)
	}
	// critest writes each benchmark's results as NAME_data.json, beside
	// ginkgo's own report.
	files, err := filepath.Glob(filepath.Join(os.Args[1], "*_data.json"))
	if err != nil || len(files) == 0 {
		fmt.Fprintf(os.Stderr, "benchsum: no *_data.json in %s\n", os.Args[1])
		os.Exit(1)
	}
	sort.Strings(files)
	fmt.Printf("%-36s %-28s %7s %10s %10s %10s\n", "benchmark", "operation", "samples", "median_ms", "min_ms", "max_ms")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchsum:", err)
			os.Exit(1)
		}
		var rs resultsSet
		if err := json.Unmarshal(data, &rs); err != nil {
			fmt.Fprintf(os.Stderr, "benchsum: %s: %v\n", file, err)
			continue
		}
		bench := strings.TrimSuffix(filepath.Base(file), "_data.json")
		for i, op := range rs.OperationsNames {
			var ds []int64
			for _, dp := range rs.Datapoints {
				if i < len(dp.OperationsDurationsNs) && dp.OperationsDurationsNs[i] > 0 {
					ds = append(ds, dp.OperationsDurationsNs[i])
				}
			}
			if len(ds) == 0 {
				fmt.Printf("%-36s %-28s %7d %10s %10s %10s\n", bench, op, 0, "-", "-", "-")
				continue
			}
			sort.Slice(ds, func(a, b int) bool { return ds[a] < ds[b] })
			fmt.Printf("%-36s %-28s %7d %10.1f %10.1f %10.1f\n", bench, op, len(ds),
				ms(median(ds)), ms(ds[0]), ms(ds[len(ds)-1]))
		}
	}
}

func median(s []int64) float64 {
	n := len(s)
	if n%2 == 1 {
		return float64(s[n/2])
	}
	return (float64(s[n/2-1]) + float64(s[n/2])) / 2
}

func ms[T int64 | float64](ns T) float64 { return float64(ns) / 1e6 }
