package school

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"time"
)

// InstanceChain is the SchoolID of the audit chain for instance-wide
// (operator) actions that belong to no school.
const InstanceChain = ""

// AuditEntry is one record of the append-only, per-school audit log. Each
// entry carries the hash of its predecessor, so a changed, removed or
// reordered entry breaks the chain. Entries are keyed (KeyID set): the
// hash is an HMAC-SHA256 under an audit key derived from the instance's
// secrets, so that someone with write access to the database but not the
// key cannot rewrite entries and head together. Entries written before
// keys existed (KeyID "") carry a plain SHA-256 and are re-keyed once at
// start-up (RekeyAudit).
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
	// Remote is the client address, where there is one. It is personal
	// data: it is not part of a keyed entry's hash, and it is cleared when
	// the access-log retention ends and when the pupil is erased, with
	// the chain still verifying.
	Remote   string
	KeyID    string // the audit key that keyed Hash; "" for a legacy entry
	PrevHash []byte
	Hash     []byte
}

// AuditKey is one key of the audit chain, named by a short id that each
// entry records.
type AuditKey struct {
	ID  string
	Key []byte
}

// AuditKeys is the ordered key list: the first keys new entries, every
// listed key verifies (rotation: put the new key first and keep the old
// ones while entries keyed by them exist).
type AuditKeys []AuditKey

// key returns the key named id.
func (ks AuditKeys) key(id string) ([]byte, bool) {
	for _, k := range ks {
		if k.ID == id {
			return k.Key, true
		}
	}
	return nil, false
}

// Seal sets e.KeyID and e.Hash: keyed with the first key, or the legacy
// unkeyed hash when ks is empty (stores opened without keys, in tests).
func (ks AuditKeys) Seal(e *AuditEntry) {
	if len(ks) == 0 {
		e.KeyID, e.Hash = "", e.ComputeHash()
		return
	}
	e.KeyID = ks[0].ID
	e.Hash = e.ComputeMAC(ks[0].Key)
}

// ComputeMAC returns the hash of a keyed entry: HMAC-SHA256 under key
// over the previous hash, the key id and every field but Remote, each
// length-prefixed.
func (e AuditEntry) ComputeMAC(key []byte) []byte {
	h := hmac.New(sha256.New, key)
	e.write(h, false)
	return h.Sum(nil)
}

// ComputeHash returns the hash an entry must carry: SHA-256 over the
// previous hash and every field, each length-prefixed so that no two
// different entries encode alike.
func (e AuditEntry) ComputeHash() []byte {
	h := sha256.New()
	e.write(h, true)
	return h.Sum(nil)
}

func (e AuditEntry) write(h hash.Hash, legacy bool) {
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
	if legacy {
		for _, s := range []string{e.ActorID, e.ActorRole, e.Action, e.SubjectID, e.Detail, e.Remote} {
			put([]byte(s))
		}
		return
	}
	for _, s := range []string{e.KeyID, e.ActorID, e.ActorRole, e.Action, e.SubjectID, e.Detail} {
		put([]byte(s))
	}
}

// hashOK reports whether e carries the hash it must: under its key when
// keyed (false for a key not in ks), the legacy hash otherwise.
func (e AuditEntry) hashOK(ks AuditKeys) (bool, error) {
	if e.KeyID == "" {
		return hmac.Equal(e.ComputeHash(), e.Hash), nil
	}
	k, ok := ks.key(e.KeyID)
	if !ok {
		return false, fmt.Errorf("entry %d is keyed by audit key %q, which is not configured", e.Seq, e.KeyID)
	}
	return hmac.Equal(e.ComputeMAC(k), e.Hash), nil
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
// other and against head, keyed entries under ks. It returns nil for an
// intact chain and an error wrapping ErrChainBroken that names the first
// bad sequence number. A keyed entry whose key is not in ks is broken
// too (it cannot be checked).
//
// With keys, every entry must be keyed: a legacy (unkeyed) entry is
// refused, or anyone could rewrite the chain as legacy entries without a
// key. RekeyAudit checks legacy chains with VerifyLegacyChain first.
func VerifyChain(entries []AuditEntry, head ChainHead, ks AuditKeys) error {
	return verifyChain(entries, head, ks, len(ks) == 0)
}

// VerifyLegacyChain is VerifyChain that accepts legacy entries too: for
// checking a chain once before it is re-keyed.
func VerifyLegacyChain(entries []AuditEntry, head ChainHead, ks AuditKeys) error {
	return verifyChain(entries, head, ks, true)
}

func verifyChain(entries []AuditEntry, head ChainHead, ks AuditKeys, legacyOK bool) error {
	var prev []byte
	for i, e := range entries {
		want := int64(i + 1)
		if e.Seq != want {
			return fmt.Errorf("%w: entry %d missing (found %d)", ErrChainBroken, want, e.Seq)
		}
		if !bytes.Equal(e.PrevHash, prev) {
			return fmt.Errorf("%w: entry %d does not follow entry %d", ErrChainBroken, e.Seq, e.Seq-1)
		}
		if e.KeyID == "" && !legacyOK {
			return fmt.Errorf("%w: entry %d is not keyed", ErrChainBroken, e.Seq)
		}
		ok, err := e.hashOK(ks)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrChainBroken, err)
		}
		if !ok {
			return fmt.Errorf("%w: entry %d was changed", ErrChainBroken, e.Seq)
		}
		prev = e.Hash
	}
	if int64(len(entries)) != head.Seq || !bytes.Equal(prev, head.Hash) {
		return fmt.Errorf("%w: the log ends at entry %d but %d were written", ErrChainBroken, len(entries), head.Seq)
	}
	return nil
}

// AuditAnchor is a chain head an operator kept outside the database
// (`elevid admin audit anchor`): the chain must still contain entry Seq
// with exactly that Hash.
type AuditAnchor struct {
	SchoolID string
	Seq      int64
	Hash     []byte
}

// CheckAnchor checks an intact chain (entries in Seq order) against an
// anchor: a chain cut back before the anchor, or rewritten up to it, is
// broken (ErrChainBroken).
func CheckAnchor(entries []AuditEntry, a AuditAnchor) error {
	if a.Seq == 0 {
		return nil
	}
	if int64(len(entries)) < a.Seq {
		return fmt.Errorf("%w: the log ends at entry %d, before the anchor at entry %d (truncated)", ErrChainBroken, len(entries), a.Seq)
	}
	if e := entries[a.Seq-1]; e.Seq != a.Seq || !bytes.Equal(e.Hash, a.Hash) {
		return fmt.Errorf("%w: entry %d differs from the anchor (rewritten)", ErrChainBroken, a.Seq)
	}
	return nil
}
