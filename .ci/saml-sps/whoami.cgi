#!/bin/sh
# What mod_auth_mellon handed the application: one NAME=VALUE line per
# MELLON_ variable, without the prefix.
printf 'Content-Type: text/plain\r\n\r\n'
echo "mellon SP: logged in"
env | sed -n 's/^MELLON_//p' | grep -v '^SAML_RESPONSE' | sort
