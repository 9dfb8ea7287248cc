package bolt

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/orchestrix/orchestrix/pii"
)

// BenchmarkErase measures one erasure (Delete: tombstones, then one pass
// zeroing the key's copies), the same erasure done the old way (a full
// compaction and zeroing of the old file), and a batch of 100 subjects
// with DeleteMany, in key files of 10k, 100k and 1M subjects. It reports
// the latency per erasure call, the bytes the process wrote per call
// (wchar of /proc/self/io: every pwrite, fsyncs aside) and the file size.
//
//	go test -run XXX -bench Erase -benchtime 3x ./pii/bolt/
func BenchmarkErase(b *testing.B) {
	sizes := []int{10_000, 100_000, 1_000_000}
	if testing.Short() {
		sizes = sizes[:2]
	}
	for _, n := range sizes {
		path := filepath.Join(b.TempDir(), "keys.db")
		fill(b, path, n)
		s, err := Open(path, Config{})
		if err != nil {
			b.Fatal(err)
		}
		next := 0
		subject := func() string {
			next++
			return fmt.Sprintf("subject-%07d", (next*7919)%n)
		}
		for _, mode := range []string{"delete", "batch100", "compact"} {
			b.Run(fmt.Sprintf("subjects=%d/%s", n, mode), func(b *testing.B) {
				ctx := context.Background()
				w0 := writtenBytes(b)
				for range b.N {
					var err error
					switch mode {
					case "delete":
						err = s.Delete(ctx, subject())
					case "compact":
						err = s.eraseByCompaction(subject())
					case "batch100":
						batch := make([]string, 100)
						for i := range batch {
							batch[i] = subject()
						}
						err = s.DeleteMany(ctx, batch)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(writtenBytes(b)-w0)/float64(b.N)/(1<<20), "MiB-written/call")
				if info, err := os.Stat(path); err == nil {
					b.ReportMetric(float64(info.Size())/(1<<20), "MiB-file")
				}
			})
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// eraseByCompaction is the erasure as it was before DeleteMany: the
// tombstones, then a compaction into a fresh file and the old one zeroed.
func (s *Store) eraseByCompaction(subject string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.db.Update(func(tx *bbolt.Tx) error {
		subjects, keys := tx.Bucket([]byte(SubjectsBucket)), tx.Bucket([]byte(KeysBucket))
		if id := subjects.Get([]byte(subject)); id != nil && !bytes.Equal(id, tombstone) {
			if err := keys.Put(bytes.Clone(id), tombstone); err != nil {
				return err
			}
		}
		return subjects.Put([]byte(subject), tombstone)
	})
	if err != nil {
		return err
	}
	return s.compact()
}

// fill writes n subjects with their keys into a new key file at path.
func fill(b *testing.B, path string, n int) {
	b.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const perTx = 50_000
	for lo := 0; lo < n; lo += perTx {
		err := db.Update(func(tx *bbolt.Tx) error {
			subjects, err := tx.CreateBucketIfNotExists([]byte(SubjectsBucket))
			if err != nil {
				return err
			}
			keys, err := tx.CreateBucketIfNotExists([]byte(KeysBucket))
			if err != nil {
				return err
			}
			for i := lo; i < min(lo+perTx, n); i++ {
				k := pii.NewKey()
				if err := keys.Put([]byte(k.ID), k.Material); err != nil {
					return err
				}
				if err := subjects.Put([]byte(fmt.Sprintf("subject-%07d", i)), []byte(k.ID)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Sync(); err != nil {
		b.Fatal(err)
	}
}

// writtenBytes returns the bytes this process has written (wchar).
func writtenBytes(b *testing.B) int64 {
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Skipf("no /proc/self/io: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Skip("no wchar in /proc/self/io")
	return 0
}
