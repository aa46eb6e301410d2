// Command elevid runs ElevID: `elevid serve` (the web service; `--demo`
// seeds a demo school), `elevid migrate` (apply database migrations),
// `elevid sync` (roster sync from a school's LDAP directory) and
// `elevid admin` (scripting of everything the console does).
//
// It owns configuration loading and validation and wires the packages
// together; no other package reads the environment or the config file.
package main
