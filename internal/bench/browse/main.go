// Command browse is the headless browser of the .ci OIDC client test: it
// takes an authorization URL made by a relying party, follows it through
// ElevID with a virtual passkey from a bench fixture (bench.Prepare),
// and prints the callback URL the platform would receive.
//
//	go run ./internal/bench/browse -fixture elevid-bench.json -base http://localhost:8080 'AUTH-URL'
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/elevid/elevid/internal/bench"
)

func main() {
	fixture := flag.String("fixture", bench.DefaultFixture, "bench fixture (elevid bench prepare)")
	base := flag.String("base", "http://localhost:8080", "ElevID base URL")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: browse [-fixture F] [-base URL] AUTHORIZATION-URL")
		os.Exit(2)
	}
	f, err := bench.ReadFixture(*fixture)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cb, err := bench.Browse(ctx, *base, f, flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "browse:", err)
		os.Exit(1)
	}
	fmt.Println(cb)
}
