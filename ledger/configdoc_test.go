package ledger_test

// The configuration reference (docs/configuration.md) lists exactly the
// JSON keys of the config types, each with a meaning, and the defaults of
// DefaultConfig, so that it cannot drift from the code.

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/creditd/creditd/ledger"
)

// docRow is one row of a key table: | `key` | default | meaning |.
type docRow struct{ key, def, meaning string }

// docKeyTables reads the tables under each "### " heading of a Markdown
// file whose rows start with a key in backquotes.
func docKeyTables(t *testing.T, path string) map[string][]docRow {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string][]docRow{}
	heading := ""
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "#") {
			heading = strings.TrimSpace(strings.TrimLeft(line, "#"))
			continue
		}
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 3 {
			continue // another table (flags and variables)
		}
		key := strings.TrimSpace(cells[0])
		tables[heading] = append(tables[heading], docRow{
			key: strings.Trim(key, "`"), def: strings.TrimSpace(cells[1]), meaning: strings.TrimSpace(cells[2]),
		})
	}
	return tables
}

// jsonKeys are the JSON names of a struct type's exported fields.
func jsonKeys(typ reflect.Type) []string {
	var keys []string
	for f := range typ.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		keys = append(keys, name)
	}
	slices.Sort(keys)
	return keys
}

func TestConfigurationDocListsEveryKey(t *testing.T) {
	tables := docKeyTables(t, "../docs/configuration.md")
	def := ledger.DefaultConfig()
	for _, c := range []struct {
		heading string
		typ     reflect.Type
		value   reflect.Value // defaults, checked for integer keys
	}{
		{"Top-level keys", reflect.TypeOf(ledger.Config{}), reflect.ValueOf(*def)},
		{"prices", reflect.TypeOf(ledger.Price{}), reflect.Value{}},
		{"sources", reflect.TypeOf(ledger.SourceRule{}), reflect.Value{}},
		{"limits", reflect.TypeOf(ledger.Limits{}), reflect.ValueOf(def.Limits)},
		{"alerts", reflect.TypeOf(ledger.Alerts{}), reflect.ValueOf(def.Alerts)},
		{"webhooks", reflect.TypeOf(ledger.Webhooks{}), reflect.ValueOf(def.Webhooks)},
	} {
		rows := tables[c.heading]
		var got []string
		for _, r := range rows {
			got = append(got, r.key)
			if r.meaning == "" {
				t.Errorf("docs/configuration.md, %s: `%s` has no meaning", c.heading, r.key)
			}
		}
		slices.Sort(got)
		want := jsonKeys(c.typ)
		for _, k := range want {
			if !slices.Contains(got, k) {
				t.Errorf("docs/configuration.md, table %q: add a row for `%s` (a key of %s)", c.heading, k, c.typ)
			}
		}
		for i, k := range got {
			if !slices.Contains(want, k) {
				t.Errorf("docs/configuration.md, table %q: `%s` is no key of %s", c.heading, k, c.typ)
			}
			if i > 0 && got[i-1] == k {
				t.Errorf("docs/configuration.md, table %q: `%s` is listed twice", c.heading, k)
			}
		}
		if len(want) == 0 {
			t.Errorf("%s has no JSON keys", c.typ)
		}
		if !c.value.IsValid() {
			continue
		}
		for _, r := range rows {
			for f := range c.typ.Fields() {
				name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
				if name != r.key || (f.Type.Kind() != reflect.Int && f.Type.Kind() != reflect.Int64) {
					continue
				}
				// The default is the cell's first word: an integer, as in 65536 (64 KiB).
				first, _, _ := strings.Cut(r.def, " ")
				if want := fmt.Sprint(c.value.FieldByIndex(f.Index).Int()); first != want {
					t.Errorf("docs/configuration.md: `%s` defaults to %q, DefaultConfig has %s", r.key, r.def, want)
				}
			}
		}
	}
}
