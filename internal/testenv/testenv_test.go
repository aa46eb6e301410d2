package testenv

import "testing"

func TestRequiredIsLenient(t *testing.T) {
	for _, c := range []struct {
		env, name string
		want      bool
	}{
		{"all", "postgres", true},
		{" all", "postgres", true},
		{"ALL ", "slapd", true},
		{"postgres, slapd", "slapd", true},
		{"Postgres", "postgres", true},
		{"postgres", "slapd", false},
		{"", "postgres", false},
		{" , ", "postgres", false},
	} {
		t.Setenv("ELEVID_TEST_REQUIRE", c.env)
		if got := Required(c.name); got != c.want {
			t.Errorf("ELEVID_TEST_REQUIRE=%q: Required(%q) = %v, want %v", c.env, c.name, got, c.want)
		}
	}
}
