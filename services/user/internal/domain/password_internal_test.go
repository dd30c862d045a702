package domain

import (
	"testing"
	"time"
)

// With every slot taken a hash waits, and it runs as soon as one frees: at
// most one argon2id memory block per slot exists at a time.
func TestHasherBoundsConcurrentHashes(t *testing.T) {
	h, err := NewHasher(HashParams{MemoryKiB: 64, Iterations: 1, Parallelism: 1})
	if err != nil {
		t.Fatal(err)
	}
	for range cap(h.slots) {
		h.slots <- struct{}{}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = h.Hash("pw-0123456789")
	}()
	select {
	case <-done:
		t.Fatal("a hash ran while every slot was taken")
	case <-time.After(200 * time.Millisecond):
	}
	<-h.slots
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the hash did not run after a slot freed")
	}
}

// No hash is made before the first login for an unknown email needs one.
func TestHasherMakesTheDummyHashOnFirstUse(t *testing.T) {
	h, err := NewHasher(HashParams{MemoryKiB: 64, Iterations: 1, Parallelism: 1})
	if err != nil {
		t.Fatal(err)
	}
	if h.dummy != "" {
		t.Fatal("NewHasher made the dummy hash")
	}
	h.VerifyNone("pw-0123456789")
	if _, err := ParsePasswordHash(string(h.dummy)); err != nil {
		t.Fatalf("dummy after VerifyNone: %v", err)
	}
}
