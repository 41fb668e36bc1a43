package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"syncproto/interop/go/syncproto"
)

const v3Key = "/calico/resources/v3/projectcalico.org/networkpolicies/ns/p"

func TestMoveResourceVersion(t *testing.T) {
	for _, c := range []struct {
		name, key, in, out, version string
		moved                       bool
	}{
		{"middle of metadata", v3Key,
			`{"kind":"NetworkPolicy","metadata":{"name":"p","resourceVersion":"42","uid":"u-1"},"spec":{"order":1.50,"x":[1, 2]}}`,
			`{"kind":"NetworkPolicy","metadata":{"name":"p","uid":"u-1"},"spec":{"order":1.50,"x":[1, 2]}}`, "42", true},
		{"whitespace and escapes", v3Key,
			"{ \"a\" : \"<&>\\u00e9\" ,\n \"metadata\" : { \"resourceVersion\" : \"7\" } , \"b\":null}",
			`{"a":"<&>\u00e9","metadata":{},"b":null}`, "7", true},
		{"HTML in a key is not escaped", v3Key,
			`{"<k>":1,"metadata":{"resourceVersion":"1"}}`, `{"<k>":1,"metadata":{}}`, "1", true},
		{"empty version string", v3Key,
			`{"metadata":{"resourceVersion":""}}`, `{"metadata":{}}`, "", true},
		{"not a string", v3Key, `{"metadata":{"resourceVersion":42}}`, "", "", false},
		{"null", v3Key, `{"metadata":{"resourceVersion":null}}`, "", "", false},
		{"no resourceVersion", v3Key, `{"metadata":{"name":"x"}}`, "", "", false},
		{"no metadata", v3Key, `{"spec":{}}`, "", "", false},
		{"metadata not an object", v3Key, `{"metadata":"x"}`, "", "", false},
		{"not an object", v3Key, `["metadata"]`, "", "", false},
		{"not JSON", v3Key, `{"metadata":{"resourceVersion":"1"}`, "", "", false},
		{"trailing data", v3Key, `{"metadata":{"resourceVersion":"1"}} {}`, "", "", false},
		{"other key", "/calico/v1/policy/x", `{"metadata":{"resourceVersion":"1"}}`, "", "", false},
	} {
		got, version, moved := moveResourceVersion(c.key, []byte(c.in))
		want := c.out
		if !c.moved {
			want = c.in // untouched: the very same bytes
		}
		if string(got) != want || version != c.version || moved != c.moved {
			t.Errorf("%s: got %s %q %v, want %s %q %v", c.name, got, version, moved, want, c.version, c.moved)
		}
	}
}

func TestWriteBackResourceVersion(t *testing.T) {
	for _, c := range []struct {
		name, key, in, version, out string
	}{
		{"replace in place", v3Key, `{"a":1,"metadata":{"name":"p","resourceVersion":"1","uid":"u"},"z":[ ]}`, "9",
			`{"a":1,"metadata":{"name":"p","resourceVersion":"9","uid":"u"},"z":[ ]}`},
		{"append to metadata", v3Key, `{"metadata":{"name":"p"},"spec":{}}`, "9",
			`{"metadata":{"name":"p","resourceVersion":"9"},"spec":{}}`},
		{"add metadata", v3Key, `{"spec":{}}`, "9", `{"spec":{},"metadata":{"resourceVersion":"9"}}`},
		{"add metadata to an empty object", v3Key, `{}`, "<9>", `{"metadata":{"resourceVersion":"<9>"}}`},
		{"empty version removes", v3Key, `{"metadata":{"resourceVersion":"1","name":"p"}}`, "",
			`{"metadata":{"name":"p"}}`},
		{"empty version, nothing to remove", v3Key, "{ \"metadata\" : {} }", "", "{ \"metadata\" : {} }"},
		{"empty version, no metadata", v3Key, `{"spec":1}`, "", `{"spec":1}`},
		{"duplicates collapse", v3Key, `{"metadata":{"resourceVersion":"1","n":1,"resourceVersion":"2"}}`, "3",
			`{"metadata":{"n":1,"resourceVersion":"3"}}`},
		{"metadata not an object", v3Key, `{"metadata":null}`, "9", `{"metadata":null}`},
		{"not an object", v3Key, `"text"`, "9", `"text"`},
		{"not JSON", v3Key, `{`, "9", `{`},
		{"other key", "/calico/v1/x", `{"metadata":{}}`, "9", `{"metadata":{}}`},
	} {
		if got := writeBackResourceVersion(c.key, []byte(c.in), c.version); string(got) != c.out {
			t.Errorf("%s: got %s, want %s", c.name, got, c.out)
		}
	}
}

func TestResourceVersionRoundTrip(t *testing.T) {
	// With resourceVersion last in metadata and compact input, moving and
	// writing back reproduces the exact bytes.
	in := `{"apiVersion":"projectcalico.org/v3","kind":"GlobalNetworkSet","metadata":{"name":"n","creationTimestamp":null,"resourceVersion":"123"},"spec":{"nets":["10.0.0.0/8"]}}`
	moved, version, ok := moveResourceVersion(v3Key, []byte(in))
	if !ok || version != "123" {
		t.Fatalf("moved %v %q", ok, version)
	}
	if back := writeBackResourceVersion(v3Key, moved, version); string(back) != in {
		t.Errorf("round trip:\n got %s\nwant %s", back, in)
	}
	// Elsewhere in metadata, the round trip is equal as JSON.
	in = `{"metadata":{"resourceVersion":"5","name":"n"},"spec":{}}`
	moved, version, _ = moveResourceVersion(v3Key, []byte(in))
	var a, b interface{}
	_ = json.Unmarshal([]byte(in), &a)
	_ = json.Unmarshal(writeBackResourceVersion(v3Key, moved, version), &b)
	if !jsonEqual(a, b) {
		t.Errorf("round trip: %v vs %v", a, b)
	}
}

func TestServerMovesResourceVersions(t *testing.T) {
	dir := t.TempDir()
	snap := filepath.Join(dir, "snap.jsonl")
	line := `{"key":"` + v3Key + `","value":"{\"metadata\":{\"name\":\"p\",\"resourceVersion\":\"8\"}}"}` + "\n"
	if err := os.WriteFile(snap, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	data, err := loadServerData(snap, "", true)
	if err != nil {
		t.Fatal(err)
	}
	u := data.final[v3Key]
	wantValue, wantV3 := `{"metadata":{"name":"p"}}`, "8"
	if !syncproto.HasV3ResourceVersion {
		wantValue, wantV3 = `{"metadata":{"name":"p","resourceVersion":"8"}}`, ""
	}
	if string(u.Value) != wantValue || syncproto.V3ResourceVersion(&u) != wantV3 || string(data.snapshot[0].Value) != wantValue {
		t.Errorf("got %s %q", u.Value, syncproto.V3ResourceVersion(&u))
	}
}
