package oidc

import (
	"sync"
	"time"
)

// clientCacheTTL is how long a node uses a platform's registration before
// reading it again: a change made on another node (a new client secret, a
// removed redirect URI, a removed platform) takes effect everywhere within
// this time. Consent is never cached.
const clientCacheTTL = 2 * time.Second

// clientCache keeps the parsed registrations of OIDC platforms for
// clientCacheTTL, by platform id and by client id: every step of a login
// (authorize, hand-off, token, userinfo) needs the platform, and reading it
// each time was a sixth of the database work of a login.
type clientCache struct {
	now func() time.Time
	mu  sync.Mutex
	// byID and byClient hold the same entries under both keys.
	byID, byClient map[string]clientEntry
}

type clientEntry struct {
	c  *oidcClient
	at time.Time
}

func newClientCache(now func() time.Time) *clientCache {
	return &clientCache{now: now, byID: map[string]clientEntry{}, byClient: map[string]clientEntry{}}
}

// get returns a copy of the fresh entry under key (a platform id when
// byPlatformID, else a client id), or nil.
func (cc *clientCache) get(key string, byPlatformID bool) *oidcClient {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	m := cc.byClient
	if byPlatformID {
		m = cc.byID
	}
	e, ok := m[key]
	if !ok {
		return nil
	}
	if age := cc.now().Sub(e.at); age < 0 || age >= clientCacheTTL {
		delete(cc.byID, e.c.pf.ID)
		delete(cc.byClient, e.c.pf.ClientID)
		return nil
	}
	c := *e.c // requests set per-request fields (direct) on their copy
	return &c
}

// put stores c as read now from the store and returns a copy for the
// request, like get.
func (cc *clientCache) put(c *oidcClient) *oidcClient {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if len(cc.byID) > 10000 { // a bound against ids made up by callers: the store only holds real platforms
		clear(cc.byID)
		clear(cc.byClient)
	}
	e := clientEntry{c: c, at: cc.now()}
	cc.byID[c.pf.ID] = e
	cc.byClient[c.pf.ClientID] = e
	cp := *c
	return &cp
}
