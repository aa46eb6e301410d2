package sqlstore

import (
	"encoding/json"
	"slices"
	"sync"

	"github.com/elevid/elevid/school"
)

// The JSON lists stored beside consents and platforms (attribute grants,
// refusals) are the same few texts on every sign-in: a platform's
// attributes, the grants its consents copied from them. Every consent
// check of a flow (three per OIDC sign-in) decoded them again. A memo
// maps a text to its decoding; callers get their own copy of the list,
// so no caller can change another's. It remembers texts, not decisions:
// the rows are read on every check as before, so a withdrawn consent
// bites at once.

// memoLimit bounds a memo; when full it starts over.
const memoLimit = 4096

// jsonMemo remembers decoded JSON lists of T. T must hold no pointers,
// slices or maps (a copy of the list is then a deep copy).
type jsonMemo[T any] struct {
	mu sync.Mutex
	m  map[string][]T
}

// decode decodes text, a JSON list, into *into.
func (j *jsonMemo[T]) decode(text string, into *[]T) error {
	j.mu.Lock()
	v, ok := j.m[text]
	j.mu.Unlock()
	if !ok {
		if err := json.Unmarshal([]byte(text), &v); err != nil {
			return err
		}
		j.mu.Lock()
		if j.m == nil || len(j.m) >= memoLimit {
			j.m = make(map[string][]T)
		}
		j.m[text] = v
		j.mu.Unlock()
	}
	*into = slices.Clone(v)
	return nil
}

var (
	grantMemo   jsonMemo[school.AttributeGrant]
	refusalMemo jsonMemo[string]
)
