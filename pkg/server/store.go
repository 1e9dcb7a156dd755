package server

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// storeFile is the bbolt database inside the data directory.
const storeFile = "license-server.db"

var (
	bucketMeta     = []byte("meta")
	bucketUsage    = []byte("usage")
	bucketLicenses = []byte("licenses")

	keyEpoch    = []byte("epoch")
	keyRevision = []byte("revision")
	keySettings = []byte("settings")
	keyAliases  = []byte("aliases")
)

// store keeps the durable state of a server: fencing epoch, revision,
// settings, aliases, usage statistics and the licence inventory. Checkouts
// are short-lived and live in memory only; snapshots carry them across
// members.
type store struct {
	db *bolt.DB
}

// durable is what a server restores on start.
type durable struct {
	epoch, revision uint64
	settings        Settings
	aliases         map[string]string
	usage           []UsageRecord
}

func openStore(dir string) (*store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dir, storeFile), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("opening store in %s: %w", dir, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketUsage, bucketLicenses} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("initialising store: %w", err)
	}
	return &store{db: db}, nil
}

func (s *store) close() error { return s.db.Close() }

func (s *store) load() (durable, error) {
	var d durable
	err := s.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		d.epoch = getUint(meta, keyEpoch)
		d.revision = getUint(meta, keyRevision)
		if v := meta.Get(keySettings); v != nil {
			if err := json.Unmarshal(v, &d.settings); err != nil {
				return fmt.Errorf("settings: %w", err)
			}
		}
		if v := meta.Get(keyAliases); v != nil {
			if err := json.Unmarshal(v, &d.aliases); err != nil {
				return fmt.Errorf("aliases: %w", err)
			}
		}
		return tx.Bucket(bucketUsage).ForEach(func(_, v []byte) error {
			var u UsageRecord
			if err := json.Unmarshal(v, &u); err != nil {
				return fmt.Errorf("usage: %w", err)
			}
			d.usage = append(d.usage, u)
			return nil
		})
	})
	if err != nil {
		return durable{}, fmt.Errorf("reading store: %w", err)
	}
	return d, nil
}

func getUint(b *bolt.Bucket, key []byte) uint64 {
	if v := b.Get(key); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func putUint(b *bolt.Bucket, key []byte, v uint64) error {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], v)
	return b.Put(key, buf[:])
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, data)
}

// write is one durable update; nil fields are left unchanged.
type write struct {
	epoch, revision *uint64
	settings        *Settings
	aliases         map[string]string
	usage           []UsageRecord // replaces all usage records when not nil
	licenses        []LicenseStatus
}

func (s *store) write(w write) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		// The epoch only grows: of two concurrent writers the one with the
		// older epoch may commit last, and must not take the epoch back.
		if w.epoch != nil && *w.epoch > getUint(meta, keyEpoch) {
			if err := putUint(meta, keyEpoch, *w.epoch); err != nil {
				return err
			}
		}
		if w.revision != nil {
			if err := putUint(meta, keyRevision, *w.revision); err != nil {
				return err
			}
		}
		if w.settings != nil {
			if err := putJSON(meta, keySettings, w.settings); err != nil {
				return err
			}
		}
		if w.aliases != nil {
			if err := putJSON(meta, keyAliases, w.aliases); err != nil {
				return err
			}
		}
		if w.usage != nil {
			if err := replaceBucket(tx, bucketUsage, len(w.usage), func(i int) ([]byte, any) {
				u := &w.usage[i]
				return []byte(u.Period + "\x00" + u.License + "\x00" + u.Printer), u
			}); err != nil {
				return err
			}
		}
		if w.licenses != nil {
			return replaceBucket(tx, bucketLicenses, len(w.licenses), func(i int) ([]byte, any) {
				return []byte(w.licenses[i].File), &w.licenses[i]
			})
		}
		return nil
	})
}

func replaceBucket(tx *bolt.Tx, name []byte, n int, item func(int) ([]byte, any)) error {
	if err := tx.DeleteBucket(name); err != nil {
		return err
	}
	b, err := tx.CreateBucket(name)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		k, v := item(i)
		if err := putJSON(b, k, v); err != nil {
			return err
		}
	}
	return nil
}

// inventory returns the licence inventory recorded by the last reload.
func (s *store) inventory() ([]LicenseStatus, error) {
	var out []LicenseStatus
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLicenses).ForEach(func(_, v []byte) error {
			var l LicenseStatus
			if err := json.Unmarshal(v, &l); err != nil {
				return err
			}
			out = append(out, l)
			return nil
		})
	})
	return out, err
}
