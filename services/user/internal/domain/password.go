package domain

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// HashParams are the argon2id costs of new password hashes. Existing hashes
// keep the costs they were made with (they are part of the hash string).
type HashParams struct {
	// MemoryKiB is the memory cost. Default 19456 (19 MiB, OWASP's minimum
	// recommendation for argon2id).
	MemoryKiB uint32
	// Iterations is the time cost. Default 2.
	Iterations uint32
	// Parallelism is the number of lanes. Default 1.
	Parallelism uint8
}

// DefaultHashParams returns the production costs.
func DefaultHashParams() HashParams {
	return HashParams{MemoryKiB: 19 * 1024, Iterations: 2, Parallelism: 1}
}

// Bounds on costs, for new hashes and for hashes read back: a corrupted or
// hostile hash must not make a login allocate gigabytes.
const (
	minMemoryKiB = 64
	maxMemoryKiB = 1 << 20 // 1 GiB
	maxTime      = 16
	saltLen      = 16
	keyLen       = 32
)

// Validate reports costs outside the accepted bounds.
func (p HashParams) Validate() error {
	var errs []error
	if p.MemoryKiB < minMemoryKiB || p.MemoryKiB > maxMemoryKiB {
		errs = append(errs, fmt.Errorf("argon2 memory %d KiB: must be within [%d, %d]", p.MemoryKiB, minMemoryKiB, maxMemoryKiB))
	}
	if p.Iterations < 1 || p.Iterations > maxTime {
		errs = append(errs, fmt.Errorf("argon2 iterations %d: must be within [1, %d]", p.Iterations, maxTime))
	}
	if p.Parallelism < 1 {
		errs = append(errs, errors.New("argon2 parallelism must be at least 1"))
	}
	return errors.Join(errs...)
}

// PasswordHash is an argon2id hash in the PHC string format:
// $argon2id$v=19$m=<KiB>,t=<iterations>,p=<lanes>$<salt>$<key>.
type PasswordHash string

type phc struct {
	params    HashParams
	salt, key []byte
}

// ParsePasswordHash accepts a well-formed argon2id hash string.
func ParsePasswordHash(s string) (PasswordHash, error) {
	if _, err := parsePHC(s); err != nil {
		return "", err
	}
	return PasswordHash(s), nil
}

func parsePHC(s string) (phc, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return phc{}, errors.New("password hash: not an argon2id v19 hash")
	}
	var h phc
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &h.params.MemoryKiB, &h.params.Iterations, &h.params.Parallelism); err != nil {
		return phc{}, fmt.Errorf("password hash: parameters: %w", err)
	}
	if err := h.params.Validate(); err != nil {
		return phc{}, fmt.Errorf("password hash: %w", err)
	}
	var err error
	if h.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(h.salt) < 8 {
		return phc{}, errors.New("password hash: bad salt")
	}
	if h.key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(h.key) < 16 {
		return phc{}, errors.New("password hash: bad key")
	}
	return h, nil
}

// Hasher hashes and verifies passwords with argon2id.
//
// Each hash holds MemoryKiB of memory while it runs, so a Hasher runs at
// most one per CPU at a time and the rest wait their turn: a burst of logins
// queues instead of multiplying the service's memory.
type Hasher struct {
	params HashParams
	slots  chan struct{}
	// dummy is verified against when there is no account, so that a login
	// for an unknown email costs what one for a known email does. It is made
	// at the first such login, not at start, so that an idle service does not
	// keep the memory one hash needed.
	dummyOnce sync.Once
	dummy     PasswordHash
}

// NewHasher returns a Hasher making new hashes with params.
func NewHasher(params HashParams) (*Hasher, error) {
	if err := params.Validate(); err != nil {
		return nil, err
	}
	return &Hasher{params: params, slots: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))}, nil
}

// idKey runs argon2id in one of the Hasher's slots.
func (h *Hasher) idKey(plain, salt []byte, p HashParams, keyLen uint32) []byte {
	h.slots <- struct{}{}
	defer func() { <-h.slots }()
	return argon2.IDKey(plain, salt, p.Iterations, p.MemoryKiB, p.Parallelism, keyLen)
}

// Hash returns a new salted hash of plain. Callers apply CheckPassword to
// new passwords first; Hash itself accepts any string.
func (h *Hasher) Hash(plain string) (PasswordHash, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	p := h.params
	key := h.idKey([]byte(plain), salt, p, keyLen)
	return PasswordHash(fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version,
		p.MemoryKiB, p.Iterations, p.Parallelism,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))), nil
}

// Verify reports whether plain matches hash, comparing in constant time.
// A malformed hash never matches.
func (h *Hasher) Verify(hash PasswordHash, plain string) bool {
	stored, err := parsePHC(string(hash))
	if err != nil {
		return false
	}
	p := stored.params
	key := h.idKey([]byte(plain), stored.salt, p, uint32(len(stored.key)))
	return subtle.ConstantTimeCompare(key, stored.key) == 1
}

// VerifyNone spends the time of one Verify and reports false: the answer
// for an email with no account.
func (h *Hasher) VerifyNone(plain string) bool {
	h.dummyOnce.Do(func() {
		h.dummy, _ = h.Hash(rand.Text()) // Hash fails only when rand does, which crashes instead
	})
	h.Verify(h.dummy, plain)
	return false
}
