// Package webauthntest holds what tests and the load command need to play
// a passkey authenticator with github.com/descope/virtualwebauthn.
package webauthntest

import (
	"crypto/ecdsa"
	"crypto/x509"
	"fmt"

	"github.com/descope/virtualwebauthn"
)

// NewCredential returns a new virtual ES256 passkey whose public key
// go-webauthn accepts. virtualwebauthn encodes the key's coordinates with
// big.Int.Bytes, so about one key in 128 loses a leading zero byte and is
// rejected; those are drawn again.
func NewCredential() virtualwebauthn.Credential {
	for {
		c := virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeEC2)
		k, err := x509.ParsePKCS8PrivateKey(c.Key.Data)
		if err != nil {
			panic(fmt.Sprintf("virtualwebauthn made an unreadable key: %v", err))
		}
		if pk, ok := k.(*ecdsa.PrivateKey); ok && len(pk.X.Bytes()) == 32 && len(pk.Y.Bytes()) == 32 {
			return c
		}
	}
}
