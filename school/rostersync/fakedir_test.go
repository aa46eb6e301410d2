package rostersync_test

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jimlambrt/gldap"

	"github.com/elevid/elevid/school/rostersync"
)

// entry is one directory entry of the fake directory.
type entry struct {
	DN    string
	Attrs map[string][]string // lower-case names
}

func (e *entry) get(name string) []string { return e.Attrs[strings.ToLower(name)] }

func (e *entry) set(name string, vs ...string) { e.Attrs[strings.ToLower(name)] = vs }

// fakeDir is an in-process LDAP server (gldap) that serves a mutable list
// of entries, supports simple bind, subtree/base searches with a small
// filter evaluator, RFC 2696 paging (cookie = offset), AD-style range
// retrieval of member, and injected failures.
type fakeDir struct {
	mu      sync.Mutex
	entries []*entry
	bindDN  string
	bindPW  string
	// rangeSize > 0 makes member lists longer than it come back in ranges,
	// as Active Directory does (1500 there).
	rangeSize int
	// failPage > 0 makes the failPage-th paged search request (counted
	// from the last reset) fail with an operations error.
	failPage  int
	pageCount int
	sizeLimit bool // answer every paged search with sizeLimitExceeded after the entries
	filters   []string
	bases     []string // the base of every search, one per search (not per page)
	pagedReqs int
	maxPage   int // largest page served

	srv  *gldap.Server
	addr string
}

func newFakeDir(t testing.TB) *fakeDir {
	d := &fakeDir{bindDN: "cn=elevid,dc=school,dc=test", bindPW: "s3cret"}
	srv, err := gldap.NewServer(gldap.WithDisablePanicRecovery())
	if err != nil {
		t.Fatal(err)
	}
	mux, err := gldap.NewMux()
	if err != nil {
		t.Fatal(err)
	}
	mux.Bind(d.bind)
	mux.Search(d.search)
	srv.Router(mux)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d.addr = l.Addr().String()
	l.Close()
	go srv.Run(d.addr)
	for i := 0; !srv.Ready(); i++ {
		if i > 200 {
			t.Fatal("gldap did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	d.srv = srv
	t.Cleanup(func() { srv.Stop() })
	d.add(schemaEntries()...)
	return d
}

// schemaEntries are a root DSE and a subschema entry that define the
// attributes of both presets (and a few more), as `sync source set`
// reads them.
func schemaEntries() []*entry {
	var defs []string
	seen := map[string]bool{}
	names := []string{"employeeNumber", "departmentNumber", "objectClass", "uid", "cn"}
	for _, p := range rostersync.Presets {
		for _, a := range p.Attrs {
			names = append(names, a)
		}
	}
	for i, n := range names {
		if !seen[strings.ToLower(n)] {
			seen[strings.ToLower(n)] = true
			defs = append(defs, fmt.Sprintf("( 1.3.6.1.4.1.99999.%d NAME '%s' SYNTAX '1.3.6.1.4.1.1466.115.121.1.15' )", i, n))
		}
	}
	return []*entry{
		{DN: "", Attrs: map[string][]string{"objectclass": {"top"}, "subschemasubentry": {"cn=Subschema"}}},
		{DN: "cn=Subschema", Attrs: map[string][]string{"objectclass": {"top", "subschema"}, "attributetypes": defs}},
	}
}

func (d *fakeDir) URL() string { return "ldap://" + d.addr }

func (d *fakeDir) bind(w *gldap.ResponseWriter, r *gldap.Request) {
	resp := r.NewBindResponse(gldap.WithResponseCode(gldap.ResultInvalidCredentials))
	defer w.Write(resp)
	m, err := r.GetSimpleBindMessage()
	if err != nil {
		return
	}
	if strings.EqualFold(m.UserName, d.bindDN) && string(m.Password) == d.bindPW {
		resp.SetResultCode(gldap.ResultSuccess)
	}
}

// add appends entries.
func (d *fakeDir) add(es ...*entry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.entries = append(d.entries, es...)
}

// find returns the entry with dn (case-insensitive).
func (d *fakeDir) find(dn string) *entry {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, e := range d.entries {
		if strings.EqualFold(e.DN, dn) {
			return e
		}
	}
	return nil
}

// remove deletes the entry with dn.
func (d *fakeDir) remove(dn string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, e := range d.entries {
		if strings.EqualFold(e.DN, dn) {
			d.entries = append(d.entries[:i], d.entries[i+1:]...)
			return
		}
	}
}

// modify runs fn on the entry with dn under the lock, stamping
// modifyTimestamp and whenChanged.
func (d *fakeDir) modify(dn string, now time.Time, fn func(e *entry)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, e := range d.entries {
		if strings.EqualFold(e.DN, dn) {
			fn(e)
			e.set("modifyTimestamp", now.UTC().Format("20060102150405Z"))
			e.set("whenChanged", now.UTC().Format("20060102150405.0Z"))
			return
		}
	}
	panic("no entry " + dn)
}

func (d *fakeDir) lastFilters() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.filters...)
}

func inScope(dn, base string, scope gldap.Scope) bool {
	dn, base = strings.ToLower(dn), strings.ToLower(base)
	switch scope {
	case gldap.BaseObject:
		return dn == base
	case gldap.SingleLevel:
		_, parent, _ := strings.Cut(dn, ",")
		return parent == base
	}
	return dn == base || strings.HasSuffix(dn, ","+base)
}

func (d *fakeDir) search(w *gldap.ResponseWriter, r *gldap.Request) {
	done := r.NewSearchDoneResponse(gldap.WithResponseCode(gldap.ResultSuccess))
	defer func() { w.Write(done) }()
	m, err := r.GetSearchMessage()
	if err != nil {
		done.SetResultCode(gldap.ResultProtocolError)
		return
	}
	f, err := parseFilter(m.Filter)
	if err != nil {
		done.SetResultCode(gldap.ResultFilterError)
		return
	}
	var paging *gldap.ControlPaging
	for _, c := range m.Controls {
		if p, ok := c.(*gldap.ControlPaging); ok {
			paging = p
		}
	}
	d.mu.Lock()
	d.filters = append(d.filters, m.Filter)
	if paging == nil || len(paging.Cookie) == 0 {
		d.bases = append(d.bases, m.BaseDN)
	}
	var match []*entry
	for _, e := range d.entries {
		if inScope(e.DN, m.BaseDN, m.Scope) && f.match(e) {
			match = append(match, e)
		}
	}
	fail := false
	if paging != nil {
		d.pageCount++
		d.pagedReqs++
		fail = d.failPage > 0 && d.pageCount == d.failPage
	}
	sizeLimit := d.sizeLimit && paging != nil
	rangeSize := d.rangeSize
	d.mu.Unlock()
	if fail {
		done.SetResultCode(gldap.ResultOperationsError)
		return
	}
	if m.Scope == gldap.BaseObject && len(match) == 0 {
		done.SetResultCode(gldap.ResultNoSuchObject)
		return
	}
	start, end := 0, len(match)
	if paging != nil {
		if len(paging.Cookie) > 0 {
			start, _ = strconv.Atoi(string(paging.Cookie))
		}
		end = min(len(match), start+int(paging.PagingSize))
		next := ""
		if end < len(match) {
			next = strconv.Itoa(end)
		}
		d.mu.Lock()
		d.maxPage = max(d.maxPage, end-start)
		d.mu.Unlock()
		done.SetControls(&gldap.ControlPaging{PagingSize: 0, Cookie: []byte(next)})
	}
	for _, e := range match[start:end] {
		w.Write(r.NewSearchResponseEntry(e.DN, gldap.WithAttributes(project(e, m.Attributes, rangeSize))))
	}
	if sizeLimit {
		done.SetResultCode(gldap.ResultSizeLimitExceeded)
	}
}

// project returns the requested attributes of e, with range retrieval of
// long member lists when rangeSize > 0.
func project(e *entry, want []string, rangeSize int) map[string][]string {
	out := map[string][]string{}
	if len(want) == 0 {
		for k, v := range e.Attrs {
			out[k] = v
		}
		return out
	}
	for _, a := range want {
		name, rng, isRange := strings.Cut(strings.ToLower(a), ";range=")
		vs, ok := e.Attrs[name]
		if !ok {
			continue
		}
		if rangeSize <= 0 || name != "member" || (!isRange && len(vs) <= rangeSize) {
			out[a] = vs
			continue
		}
		lo := 0
		if isRange {
			lo, _ = strconv.Atoi(strings.TrimSuffix(rng, "-*"))
		}
		hi := min(len(vs), lo+rangeSize)
		label := fmt.Sprintf("member;range=%d-%d", lo, hi-1)
		if hi == len(vs) {
			label = fmt.Sprintf("member;range=%d-*", lo)
		}
		out[label] = vs[lo:hi]
	}
	return out
}

// filter is a parsed LDAP filter: enough of RFC 4515 for the tests.
type filter struct {
	op    byte // '&', '|', '!', '=', '>', '*' (presence)
	attr  string
	value string
	subs  []*filter
}

func parseFilter(s string) (*filter, error) {
	f, rest, err := parseOne(s)
	if err != nil {
		return nil, err
	}
	if rest != "" {
		return nil, fmt.Errorf("trailing %q", rest)
	}
	return f, nil
}

func parseOne(s string) (*filter, string, error) {
	if len(s) < 3 || s[0] != '(' {
		return nil, "", fmt.Errorf("bad filter %q", s)
	}
	s = s[1:]
	switch s[0] {
	case '&', '|', '!':
		f := &filter{op: s[0]}
		s = s[1:]
		for len(s) > 0 && s[0] == '(' {
			sub, rest, err := parseOne(s)
			if err != nil {
				return nil, "", err
			}
			f.subs = append(f.subs, sub)
			s = rest
		}
		if len(s) == 0 || s[0] != ')' {
			return nil, "", fmt.Errorf("unclosed")
		}
		return f, s[1:], nil
	}
	end := strings.IndexByte(s, ')')
	if end < 0 {
		return nil, "", fmt.Errorf("unclosed")
	}
	item, rest := s[:end], s[end+1:]
	if a, v, ok := strings.Cut(item, ">="); ok {
		return &filter{op: '>', attr: strings.ToLower(a), value: unescape(v)}, rest, nil
	}
	a, v, ok := strings.Cut(item, "=")
	if !ok {
		return nil, "", fmt.Errorf("bad item %q", item)
	}
	if v == "*" {
		return &filter{op: '*', attr: strings.ToLower(a)}, rest, nil
	}
	return &filter{op: '=', attr: strings.ToLower(a), value: unescape(v)}, rest, nil
}

func unescape(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+2 < len(v) {
			n, err := strconv.ParseUint(v[i+1:i+3], 16, 8)
			if err == nil {
				b.WriteByte(byte(n))
				i += 2
				continue
			}
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

func (f *filter) match(e *entry) bool {
	switch f.op {
	case '&':
		for _, s := range f.subs {
			if !s.match(e) {
				return false
			}
		}
		return true
	case '|':
		for _, s := range f.subs {
			if s.match(e) {
				return true
			}
		}
		return false
	case '!':
		return !f.subs[0].match(e)
	case '*':
		return f.attr == "objectclass" || len(e.get(f.attr)) > 0
	}
	for _, v := range e.get(f.attr) {
		switch f.op {
		case '=':
			if strings.EqualFold(v, f.value) || v == f.value {
				return true
			}
		case '>':
			// Generalized times of one layout compare as strings.
			if v >= f.value {
				return true
			}
		}
	}
	return false
}

// sortedKeys is a helper for stable output in failures.
func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
