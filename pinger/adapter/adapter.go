// Package adapter measures rounds with external probe programs (httping, SCION's
// scmp and pingpong tools): one process per order per round, started from an argv (never a
// shell), in a process group of its own that is killed whole at the round's deadline, with
// what it printed until then read as the round's result.
//
// A probe is one small Tool: how to build the argv, and how to read the output.
package adapter

import (
	"time"
)

// Lost marks a ping without an answer in a round's RTTs.
const Lost time.Duration = -1

// Round is one round of an order, as a tool is asked to run it.
type Round struct {
	Pings    int           // pings (requests) in the round
	Interval time.Duration // between the starts of two pings
	Timeout  time.Duration // how long each ping waits for its answer
}

// Tool is one external probe program configured for one order.
type Tool interface {
	// Argv is the command line of one round: argv[0] is the program (a path, or a name
	// looked up in PATH), the rest its arguments, each one argument of the program.
	Argv(r Round) []string
	// Parse reads what the program printed on stdout during one round (all of it, or
	// what it printed before it was killed at the deadline) and returns one entry per
	// ping in send order: the round-trip time, or Lost. Missing and garbled lines are
	// lost pings; Parse never fails.
	Parse(stdout []byte, r Round) []time.Duration
}
