package contracts

import (
	"slices"
	"sync"
)

// passedGeneration bounds the bytes of payloads one generation of a passed
// set remembers; a set holds two generations, so at most twice this.
const passedGeneration = 1 << 20

// passed remembers payloads that passed their contracts, so that a process
// in which several consumers read one event (`serve all`: the order service,
// inventory, analytics, notification ... each get the same delivery body)
// checks it once instead of once per consumer. Whether a payload passes
// depends on nothing but its type and its bytes, so a remembered payload
// needs no second check; a payload that failed is never remembered (its
// problems are rendered again, which costs nothing on the common path).
//
// It is bounded by bytes, not by entries: when the current generation has
// remembered passedGeneration bytes it becomes the old one and the old one
// is dropped. Consumers of one event read it within moments of each other,
// so a generation covers the window that matters many times over.
type passed struct {
	limit int

	mu       sync.Mutex
	cur, old map[string][]*entry // payload -> the types it passed as
	curBytes int
}

func newPassed(limit int) *passed {
	return &passed{limit: limit, cur: map[string][]*entry{}, old: map[string][]*entry{}}
}

// has reports whether payload passed as e's type before.
func (p *passed) has(e *entry, payload []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	// The string conversions in the index expressions do not copy.
	return slices.Contains(p.cur[string(payload)], e) || slices.Contains(p.old[string(payload)], e)
}

// add remembers that payload passed as e's type. A payload larger than a
// generation is not remembered.
func (p *passed) add(e *entry, payload []byte) {
	if len(payload) > p.limit {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if types, ok := p.cur[string(payload)]; ok {
		if !slices.Contains(types, e) {
			p.cur[string(payload)] = append(types, e)
		}
		return
	}
	if p.curBytes+len(payload) > p.limit {
		p.old, p.cur, p.curBytes = p.cur, make(map[string][]*entry, len(p.cur)), 0
	}
	p.cur[string(payload)] = []*entry{e}
	p.curBytes += len(payload)
}
