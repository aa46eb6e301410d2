package rostersync

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/elevid/elevid/school"
)

// dirConn is one bound connection to a school's directory.
type dirConn struct {
	c        *ldap.Conn
	pageSize uint32
	timeout  time.Duration
	stop     func() bool
}

// dial connects to src, upgrades with StartTLS when asked, and binds with
// the unsealed password. Errors say which step failed without secrets.
func dial(ctx context.Context, src school.DirectorySource, password string, timeout time.Duration) (*dirConn, error) {
	if err := checkTransport(src); err != nil {
		return nil, err
	}
	u, err := url.Parse(src.URL)
	if err != nil {
		return nil, fmt.Errorf("directory URL: %w", err)
	}
	tlsCfg := &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	if src.CAPEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(src.CAPEM)) {
			return nil, errors.New("directory CA bundle holds no certificate")
		}
		tlsCfg.RootCAs = pool
	}
	d := &net.Dialer{Timeout: timeout}
	if dl, ok := ctx.Deadline(); ok {
		d.Deadline = dl
	}
	c, err := ldap.DialURL(src.URL, ldap.DialWithDialer(d), ldap.DialWithTLSConfig(tlsCfg))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", u.Host, err)
	}
	c.SetTimeout(timeout)
	if src.StartTLS {
		if err := c.StartTLS(tlsCfg); err != nil {
			c.Close()
			return nil, fmt.Errorf("StartTLS with %s: %w", u.Host, err)
		}
	}
	if src.BindDN != "" {
		if err := c.Bind(src.BindDN, password); err != nil {
			c.Close()
			return nil, fmt.Errorf("bind as %s: %w", src.BindDN, err)
		}
	}
	// Closing on cancellation aborts a search that is waiting on the server.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	return &dirConn{c: c, pageSize: uint32(src.PageSize), timeout: timeout, stop: stop}, nil
}

func (d *dirConn) Close() {
	d.stop()
	d.c.Close()
}

// pageStats is told of every page read.
type pageStats func(entries int)

// search runs a paged subtree search (RFC 2696) by hand, building a new
// request for every page and handing each page's entries to fn before the
// next is read, so memory stays bounded by the page size. Any error —
// including a size or time limit, or a server that ends paging early — is
// returned, and fn's work must then be thrown away by the caller.
func (d *dirConn) search(ctx context.Context, base, filter string, attrs []string, stats pageStats, fn func(*ldap.Entry) error) error {
	var cookie []byte
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		paging := ldap.NewControlPaging(d.pageSize)
		paging.SetCookie(cookie)
		req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, int(d.timeout/time.Second),
			false, filter, attrs, []ldap.Control{paging})
		res, err := d.c.Search(req)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("search %s: %w", base, err)
		}
		for _, e := range res.Entries {
			if err := fn(e); err != nil {
				return err
			}
		}
		if stats != nil {
			stats(len(res.Entries))
		}
		ctrl, _ := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
		if ctrl == nil || len(ctrl.Cookie) == 0 {
			return nil
		}
		cookie = ctrl.Cookie
	}
}

// lookup reads one entry by DN (base scope); ok is false when it does not
// exist.
func (d *dirConn) lookup(dn string, attrs []string) (*ldap.Entry, bool, error) {
	return d.lookupFilter(dn, "(objectClass=*)", attrs)
}

func (d *dirConn) lookupFilter(dn, filter string, attrs []string) (*ldap.Entry, bool, error) {
	req := ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, int(d.timeout/time.Second),
		false, filter, attrs, nil)
	res, err := d.c.Search(req)
	if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", dn, err)
	}
	if len(res.Entries) == 0 {
		return nil, false, nil
	}
	return res.Entries[0], true, nil
}

// rangedValues returns every value of attr on e, following Active
// Directory's range retrieval ("member;range=0-1499") with further base
// searches until the server marks the last range with "*".
func (d *dirConn) rangedValues(e *ldap.Entry, attr string) ([]string, error) {
	var out []string
	prefix := strings.ToLower(attr) + ";range="
	cur := e
	for range 10000 {
		var next int = -1
		found := false
		for _, a := range cur.Attributes {
			name := strings.ToLower(a.Name)
			if name == strings.ToLower(attr) {
				out = append(out, a.Values...)
				found = true
				continue
			}
			if !strings.HasPrefix(name, prefix) {
				continue
			}
			found = true
			out = append(out, a.Values...)
			lo, hi, ok := strings.Cut(name[len(prefix):], "-")
			if !ok {
				return nil, fmt.Errorf("%s: bad range %q", e.DN, a.Name)
			}
			if hi == "*" {
				return out, nil
			}
			h, err := strconv.Atoi(hi)
			if _, err2 := strconv.Atoi(lo); err != nil || err2 != nil {
				return nil, fmt.Errorf("%s: bad range %q", e.DN, a.Name)
			}
			next = h + 1
		}
		if !found || next < 0 {
			return out, nil
		}
		ne, ok, err := d.lookup(e.DN, []string{fmt.Sprintf("%s;range=%d-*", attr, next)})
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%s vanished during range retrieval", e.DN)
		}
		cur = ne
	}
	return nil, fmt.Errorf("%s: too many ranges", e.DN)
}

// CheckAttributes connects to src as a run would and reports the names
// among attrs that the directory's schema (the attributeTypes of the
// subschema entry named by the root DSE) does not define. Names compare
// case-insensitively.
func CheckAttributes(ctx context.Context, src school.DirectorySource, password string, timeout time.Duration, attrs ...string) ([]string, error) {
	conn, err := dial(ctx, src, password, timeout)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	root, ok, err := conn.lookup("", []string{"subschemaSubentry"})
	if err != nil {
		return nil, err
	}
	sub := ""
	if ok {
		sub = root.GetAttributeValue("subschemaSubentry")
	}
	if sub == "" {
		return nil, errors.New("the directory names no schema entry (subschemaSubentry)")
	}
	e, ok, err := conn.lookupFilter(sub, "(objectClass=subschema)", []string{"attributeTypes"})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("schema entry %s not readable", sub)
	}
	known := map[string]bool{}
	for _, def := range e.GetEqualFoldAttributeValues("attributeTypes") {
		for _, n := range schemaNames(def) {
			known[strings.ToLower(n)] = true
		}
	}
	if len(known) == 0 {
		return nil, fmt.Errorf("schema entry %s lists no attribute types (no right to read it?)", sub)
	}
	var missing []string
	for _, a := range attrs {
		if a != "" && !known[strings.ToLower(a)] {
			missing = append(missing, a)
		}
	}
	return missing, nil
}

// schemaNames returns the NAME values of an RFC 4512 attribute type
// description: NAME 'a' or NAME ( 'a' 'b' ).
func schemaNames(def string) []string {
	i := strings.Index(def, " NAME ")
	if i < 0 {
		return nil
	}
	rest := strings.TrimSpace(def[i+len(" NAME "):])
	end := len(rest)
	if strings.HasPrefix(rest, "(") {
		if j := strings.Index(rest, ")"); j >= 0 {
			end = j
		}
	} else if j := strings.Index(rest[min(1, len(rest)):], "'"); j >= 0 {
		end = j + 2
	}
	var out []string
	for _, part := range strings.Split(rest[:end], "'") {
		if p := strings.TrimSpace(part); p != "" && p != "(" && p != ")" {
			out = append(out, p)
		}
	}
	return out
}

// ErrPlainLDAP refuses a plain ldap:// source without StartTLS that is not
// marked insecure: the bind password and pupil data would cross the network
// in clear.
var ErrPlainLDAP = errors.New("plain ldap:// without StartTLS sends the bind password and pupil data in clear: use ldaps://, --start-tls, or --insecure to allow it anyway")

// checkTransport refuses src when it is plain ldap:// without StartTLS and
// not marked Insecure.
func checkTransport(src school.DirectorySource) error {
	if strings.HasPrefix(strings.ToLower(src.URL), "ldap://") && !src.StartTLS && !src.Insecure {
		return ErrPlainLDAP
	}
	return nil
}
