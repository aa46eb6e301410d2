package school

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// InstanceChain is the SchoolID of the audit chain for instance-wide
// (operator) actions that belong to no school.
const InstanceChain = ""

// AuditEntry is one record of the append-only, per-school audit log. Each
// entry carries the SHA-256 hash of its predecessor, so a changed, removed
// or reordered entry breaks the chain.
//
// Entries refer to people by id only (ActorID, SubjectID) and must not put
// personal data in Detail: erasing a pupil erases the id's mapping, not the
// entry, so the chain stays verifiable after erasure.
type AuditEntry struct {
	SchoolID  string
	Seq       int64 // 1, 2, 3 … per school; assigned by the store
	Time      time.Time
	ActorID   string // staff id, "system", "sync", "guardian:<id>", "pupil:<id>"
	ActorRole string
	Action    string // e.g. "pupil.create", "sync.apply"
	SubjectID string // the record acted on, e.g. a pupil id
	Detail    string // free text or JSON without personal data
	Remote    string // client address, where there is one
	PrevHash  []byte
	Hash      []byte
}

// ComputeHash returns the hash an entry must carry: SHA-256 over the
// previous hash and every field, each length-prefixed so that no two
// different entries encode alike.
func (e AuditEntry) ComputeHash() []byte {
	h := sha256.New()
	var n [8]byte
	put := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	put(e.PrevHash)
	put([]byte(e.SchoolID))
	binary.BigEndian.PutUint64(n[:], uint64(e.Seq))
	h.Write(n[:])
	binary.BigEndian.PutUint64(n[:], uint64(e.Time.UnixMicro()))
	h.Write(n[:])
	for _, s := range []string{e.ActorID, e.ActorRole, e.Action, e.SubjectID, e.Detail, e.Remote} {
		put([]byte(s))
	}
	return h.Sum(nil)
}

// ErrChainBroken is returned (wrapped) by VerifyChain for a tampered log.
var ErrChainBroken = errors.New("audit chain broken")

// ChainHead is the store's record of the last entry of a school's chain,
// kept apart from the entries so that deleting the newest entries is
// detected too.
type ChainHead struct {
	Seq  int64
	Hash []byte
}

// VerifyChain checks entries (in Seq order, starting at 1) against each
// other and against head. It returns nil for an intact chain and an error
// wrapping ErrChainBroken that names the first bad sequence number.
func VerifyChain(entries []AuditEntry, head ChainHead) error {
	var prev []byte
	for i, e := range entries {
		want := int64(i + 1)
		if e.Seq != want {
			return fmt.Errorf("%w: entry %d missing (found %d)", ErrChainBroken, want, e.Seq)
		}
		if !bytes.Equal(e.PrevHash, prev) {
			return fmt.Errorf("%w: entry %d does not follow entry %d", ErrChainBroken, e.Seq, e.Seq-1)
		}
		if !bytes.Equal(e.ComputeHash(), e.Hash) {
			return fmt.Errorf("%w: entry %d was changed", ErrChainBroken, e.Seq)
		}
		prev = e.Hash
	}
	if int64(len(entries)) != head.Seq || !bytes.Equal(prev, head.Hash) {
		return fmt.Errorf("%w: the log ends at entry %d but %d were written", ErrChainBroken, len(entries), head.Seq)
	}
	return nil
}
