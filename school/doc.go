// Package school holds ElevID's core model — schools (tenants), classes,
// pupils, guardians, staff, learning platforms and the hash-chained audit
// log — together with the Store interface every storage backend implements
// and the sentinel errors they return.
//
// It depends on nothing else in ElevID; every other package depends on it.
package school
