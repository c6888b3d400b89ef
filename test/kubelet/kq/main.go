// Command kq turns what kubelet's read-only API answers into lines that
// test/kubelet/run.sh reads with awk (the test must not depend on jq).
//
//	kq pods    < /pods           one line per pod and per container
//	kq summary < /stats/summary  one line per pod and per container
//
// pods:
//
//	pod NAME UID PHASE READY
//	ctr POD init|app NAME READY RESTARTS STATE EXIT LASTEXIT STARTED FINISHED
//
// STATE is running, waiting (with its reason: waiting:CrashLoopBackOff) or
// terminated; EXIT is the exit code of the terminated state and LASTEXIT
// that of lastState (- when absent); STARTED and FINISHED are Unix seconds
// of the current state (0 when absent).
//
// summary:
//
//	pod NAME UID NANOCORES CORENANOSECONDS WORKINGSET
//	ctr POD NAME NANOCORES CORENANOSECONDS WORKINGSET
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"
)

type terminated struct {
	ExitCode   int32     `json:"exitCode"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`
}

type state struct {
	Running *struct {
		StartedAt time.Time `json:"startedAt"`
	} `json:"running"`
	Waiting *struct {
		Reason string `json:"reason"`
	} `json:"waiting"`
	Terminated *terminated `json:"terminated"`
}

type containerStatus struct {
	Name         string `json:"name"`
	Ready        bool   `json:"ready"`
	RestartCount int32  `json:"restartCount"`
	State        state  `json:"state"`
	LastState    state  `json:"lastState"`
}

type podList struct {
	Items []struct {
		Metadata struct {
			Name string `json:"name"`
			UID  string `json:"uid"`
		} `json:"metadata"`
		Status struct {
			Phase      string `json:"phase"`
			Conditions []struct {
				Type   string `json:"type"`
				Status string `json:"status"`
			} `json:"conditions"`
			InitContainerStatuses []containerStatus `json:"initContainerStatuses"`
			ContainerStatuses     []containerStatus `json:"containerStatuses"`
		} `json:"status"`
	} `json:"items"`
}

type usage struct {
	CPU *struct {
		UsageNanoCores       *uint64 `json:"usageNanoCores"`
		UsageCoreNanoSeconds *uint64 `json:"usageCoreNanoSeconds"`
	} `json:"cpu"`
	Memory *struct {
		WorkingSetBytes *uint64 `json:"workingSetBytes"`
	} `json:"memory"`
}

func (u usage) String() string {
	var nc, cns, ws uint64
	if u.CPU != nil && u.CPU.UsageNanoCores != nil {
		nc = *u.CPU.UsageNanoCores
	}
	if u.CPU != nil && u.CPU.UsageCoreNanoSeconds != nil {
		cns = *u.CPU.UsageCoreNanoSeconds
	}
	if u.Memory != nil && u.Memory.WorkingSetBytes != nil {
		ws = *u.Memory.WorkingSetBytes
	}
	return fmt.Sprintf("%d %d %d", nc, cns, ws)
}

type summary struct {
	Pods []struct {
		PodRef struct {
			Name string `json:"name"`
			UID  string `json:"uid"`
		} `json:"podRef"`
		usage
		Containers []struct {
			Name string `json:"name"`
			usage
		} `json:"containers"`
	} `json:"pods"`
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func code(t *terminated) string {
	if t == nil {
		return "-"
	}
	return strconv.Itoa(int(t.ExitCode))
}

func ctrLine(pod, kind string, c containerStatus) string {
	st, started, finished := "unknown", int64(0), int64(0)
	switch s := c.State; {
	case s.Running != nil:
		st, started = "running", unix(s.Running.StartedAt)
	case s.Terminated != nil:
		st, started, finished = "terminated", unix(s.Terminated.StartedAt), unix(s.Terminated.FinishedAt)
	case s.Waiting != nil:
		st = "waiting:" + s.Waiting.Reason
	}
	return fmt.Sprintf("ctr %s %s %s %t %d %s %s %s %d %d", pod, kind, c.Name, c.Ready, c.RestartCount,
		st, code(c.State.Terminated), code(c.LastState.Terminated), started, finished)
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: kq pods|summary < JSON")
		os.Exit(2)
	}
	dec := json.NewDecoder(os.Stdin)
	switch os.Args[1] {
	case "pods":
		var l podList
		if err := dec.Decode(&l); err != nil {
			fmt.Fprintln(os.Stderr, "kq:", err)
			os.Exit(1)
		}
		for _, p := range l.Items {
			ready := "False"
			for _, c := range p.Status.Conditions {
				if c.Type == "Ready" {
					ready = c.Status
				}
			}
			phase := p.Status.Phase
			if phase == "" {
				phase = "-"
			}
			fmt.Printf("pod %s %s %s %s\n", p.Metadata.Name, p.Metadata.UID, phase, ready)
			for _, c := range p.Status.InitContainerStatuses {
				fmt.Println(ctrLine(p.Metadata.Name, "init", c))
			}
			for _, c := range p.Status.ContainerStatuses {
				fmt.Println(ctrLine(p.Metadata.Name, "app", c))
			}
		}
	case "summary":
		var s summary
		if err := dec.Decode(&s); err != nil {
			fmt.Fprintln(os.Stderr, "kq:", err)
			os.Exit(1)
		}
		for _, p := range s.Pods {
			fmt.Printf("pod %s %s %s\n", p.PodRef.Name, p.PodRef.UID, p.usage)
			for _, c := range p.Containers {
				fmt.Printf("ctr %s %s %s\n", p.PodRef.Name, c.Name, c.usage)
			}
		}
	default:
		fmt.Fprintln(os.Stderr, "usage: kq pods|summary < JSON")
		os.Exit(2)
	}
}
