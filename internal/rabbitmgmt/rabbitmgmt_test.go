package rabbitmgmt

import "testing"

func TestOnlyNodePIDWaitsForANewNodesFirstStatistics(t *testing.T) {
	for _, tc := range []struct {
		name      string
		nodes     []Node
		pid       int
		known, ok bool
	}{
		{name: "reported", nodes: []Node{{Name: "n@h", OSPid: "4242"}}, pid: 4242, known: true, ok: true},
		{name: "not yet reported", nodes: []Node{{Name: "n@h"}}, ok: true},
		{name: "not a number", nodes: []Node{{Name: "n@h", OSPid: "x1"}}},
		{name: "no node", nodes: nil},
		{name: "two nodes", nodes: []Node{{Name: "a@h", OSPid: "1"}, {Name: "b@h", OSPid: "2"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pid, known, err := onlyNodePID(tc.nodes)
			if pid != tc.pid || known != tc.known || (err == nil) != tc.ok {
				t.Errorf("onlyNodePID = %d, %v, %v; want %d, %v, error %v", pid, known, err, tc.pid, tc.known, !tc.ok)
			}
		})
	}
}
