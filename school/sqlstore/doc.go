// Package sqlstore implements school.Store once, in SQL that both SQLite
// and PostgreSQL accept, over a small Backend interface that the sqlite
// and postgres packages provide. Dialect differences stay in the backends
// (placeholders are $n in both; row locks are added only where the
// dialect has them).
//
// Times are stored as Unix microseconds (0 for the zero time), booleans as
// the dialect's boolean, lists as link tables or JSON text.
package sqlstore
