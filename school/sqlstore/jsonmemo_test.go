package sqlstore

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/elevid/elevid/school"
)

const grantsText = `[{"name":"eduPersonPrincipalName","justification_da":"Så platformen kan kende dig igen","justification_en":"So the platform knows you again"},{"name":"givenName","justification_da":"Så læreren kan se dit navn","justification_en":"So your teacher sees your name","shared":true}]`

// TestJSONMemo: a remembered text decodes as json.Unmarshal does, every
// caller gets a list of its own, bad JSON is an error and not
// remembered, and the memo stays bounded.
func TestJSONMemo(t *testing.T) {
	var m jsonMemo[school.AttributeGrant]
	var want []school.AttributeGrant
	if err := json.Unmarshal([]byte(grantsText), &want); err != nil {
		t.Fatal(err)
	}
	var a, b []school.AttributeGrant
	if err := m.decode(grantsText, &a); err != nil || !reflect.DeepEqual(a, want) {
		t.Fatalf("first decode = %+v, %v", a, err)
	}
	a[0].Name = "changed by one caller"
	if err := m.decode(grantsText, &b); err != nil || !reflect.DeepEqual(b, want) {
		t.Fatalf("second decode = %+v, %v; want %+v", b, err, want)
	}
	for _, text := range []string{"[]", "null"} {
		var got, exp []school.AttributeGrant
		_ = json.Unmarshal([]byte(text), &exp)
		if err := m.decode(text, &got); err != nil || (got == nil) != (exp == nil) || len(got) != 0 {
			t.Errorf("%s: decoded %#v, %v; json.Unmarshal gives %#v", text, got, err, exp)
		}
	}
	var bad []school.AttributeGrant
	if err := m.decode(`[{"name":`, &bad); err == nil {
		t.Fatal("bad JSON decoded")
	}
	if _, ok := m.m[`[{"name":`]; ok {
		t.Fatal("bad JSON remembered")
	}
	for i := range memoLimit + 10 {
		var v []school.AttributeGrant
		if err := m.decode(fmt.Sprintf(`[{"name":"a%d"}]`, i), &v); err != nil || v[0].Name != fmt.Sprint("a", i) {
			t.Fatalf("decode %d = %+v, %v", i, v, err)
		}
	}
	if len(m.m) > memoLimit {
		t.Fatalf("memo holds %d texts, more than %d", len(m.m), memoLimit)
	}
}

func BenchmarkGrantsDecode(b *testing.B) {
	b.Run("json.Unmarshal", func(b *testing.B) {
		for b.Loop() {
			var v []school.AttributeGrant
			if err := json.Unmarshal([]byte(grantsText), &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("memo", func(b *testing.B) {
		var m jsonMemo[school.AttributeGrant]
		for b.Loop() {
			var v []school.AttributeGrant
			if err := m.decode(grantsText, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
