#!/bin/bash
# Dependency rules from shared/DESIGN.md ("Dependencies point inward…
# Never: …"), checked with go list -deps. Each rule names the packages
# that must not depend on a set of others; a rule whose packages do not
# exist yet is skipped with a message. Exits 1 naming every broken arrow.
set -u
cd "$(dirname "$0")/.."
mod=$(go list -m)
all=$(go list ./...) || exit 1
fail=0

# exists PKG...: prints those of PKG (import paths, a trailing /... matches
# the package and everything below it) that exist in the module.
exists() {
	local p
	for p in "$@"; do
		case $p in
		*/...) printf '%s\n' "$all" | grep -E "^${p%/...}(/|$)" ;;
		*) printf '%s\n' "$all" | grep -x "$p" ;;
		esac
	done
}

# rule NAME "FROM..." "FORBIDDEN...": no package in FROM may have a
# package in FORBIDDEN among its dependencies (test files excluded).
rule() {
	local name=$1 from to hits
	from=$(exists $2)
	to=$(exists $3)
	if [ -z "$from" ] || [ -z "$to" ]; then
		echo "deps: skipped \"$name\": packages do not exist yet"
		return
	fi
	# go list -deps of a package lists the package itself; drop FROM.
	hits=$(go list -deps $from | grep -vxF "$from" | grep -xF "$to")
	if [ -n "$hits" ]; then
		echo "deps: FORBIDDEN $name: depends on $(echo $hits)"
		for f in $from; do
			go list -deps "$f" | grep -qxF "$to" && echo "  via $f" || true
		done
		fail=1
	else
		echo "deps: ok $name"
	fi
}

rule "idp/* -> guardian or enrolment" "$mod/idp/..." "$mod/guardian $mod/enrolment"
rule "school -> backend (school/sqlite, school/postgres, school/sqlstore)" "$mod/school" "$mod/school/sqlite $mod/school/postgres $mod/school/sqlstore"
rule "school -> protocol (idp/...)" "$mod/school" "$mod/idp/..."
rule "school -> web" "$mod/school" "$mod/web"
rule "school/rostersync -> idp" "$mod/school/rostersync" "$mod/idp/..."
rule "session -> handlers (idp, console, guardian)" "$mod/session" "$mod/idp/... $mod/console $mod/guardian"
rule "idp/oidc -> idp/saml" "$mod/idp/oidc/..." "$mod/idp/saml/..."
rule "idp/saml -> idp/oidc" "$mod/idp/saml/..." "$mod/idp/oidc/..."
rule "idp/login -> protocol (idp/oidc, idp/saml)" "$mod/idp/login" "$mod/idp/oidc $mod/idp/saml"

# production code -> testing: the binary's dependencies must not include
# package testing (test helpers belong in _test.go files or in packages
# only tests import, such as internal/webtest).
if go list -deps ./cmd/elevid | grep -qx testing; then
	echo "deps: FORBIDDEN production code -> testing: ./cmd/elevid depends on package testing via:"
	for p in $(go list -deps ./cmd/elevid | grep "^$mod"); do
		go list -f '{{.ImportPath}} {{join .Imports " "}}' "$p" | grep -qw testing && echo "  $p"
	done
	fail=1
else
	echo "deps: ok production code -> testing"
fi

if [ $fail -ne 0 ]; then
	echo "deps: dependency rules broken (see shared/DESIGN.md)"
	exit 1
fi
