package election

import (
	"context"
	"strconv"
	"sync"
)

// MemoryLeaseStore is a linearizable in-memory LeaseStore for tests.
type MemoryLeaseStore struct {
	mu      sync.Mutex
	rec     LeaseRecord
	exists  bool
	version int
}

// Get implements LeaseStore.
func (s *MemoryLeaseStore) Get(ctx context.Context) (LeaseRecord, error) {
	if err := ctx.Err(); err != nil {
		return LeaseRecord{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.exists {
		return LeaseRecord{}, ErrNotFound
	}
	return s.rec, nil
}

// Create implements LeaseStore.
func (s *MemoryLeaseStore) Create(ctx context.Context, rec LeaseRecord) (LeaseRecord, error) {
	if err := ctx.Err(); err != nil {
		return LeaseRecord{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exists {
		return LeaseRecord{}, ErrConflict
	}
	return s.store(rec), nil
}

// Update implements LeaseStore.
func (s *MemoryLeaseStore) Update(ctx context.Context, rec LeaseRecord) (LeaseRecord, error) {
	if err := ctx.Err(); err != nil {
		return LeaseRecord{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.exists:
		return LeaseRecord{}, ErrNotFound
	case rec.Version != s.rec.Version:
		return LeaseRecord{}, ErrConflict
	}
	return s.store(rec), nil
}

func (s *MemoryLeaseStore) store(rec LeaseRecord) LeaseRecord {
	s.version++
	rec.Version = strconv.Itoa(s.version)
	s.rec, s.exists = rec, true
	return rec
}
