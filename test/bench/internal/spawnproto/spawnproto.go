// Package spawnproto is the wire format between the benchmark harness and
// its process spawner (test/bench/spawn): the harness writes one JSON
// array of Call, the spawner starts them all at once and answers with one
// Reply.
package spawnproto

// Call is one process to run.
type Call struct {
	Path  string   `json:"path"`
	Env   []string `json:"env"`
	Stdin string   `json:"stdin"`
}

// Outcome is what one process cost and said.
type Outcome struct {
	WallNs    int64  `json:"wallNs"`
	UserNs    int64  `json:"userNs"`
	SysNs     int64  `json:"sysNs"`
	MaxRSSKiB int64  `json:"maxRssKiB"` // rusage Maxrss
	Code      int    `json:"code"`
	Stdout    string `json:"stdout"`
	Stderr    string `json:"stderr"`
	Err       string `json:"err,omitempty"` // the process could not be run
}

// Reply answers one array of calls, in order.
type Reply struct {
	Outcomes []Outcome `json:"outcomes"`
	// SelfMaxRSSKiB is the spawner's own peak RSS (VmHWM), below which no
	// child's Maxrss can read.
	SelfMaxRSSKiB int64 `json:"selfMaxRssKiB"`
}
