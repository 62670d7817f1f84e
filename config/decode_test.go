package config

import (
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/viper"
)

// No list key exists yet (xsi.servers will be the first); this pins the list
// syntax it will get: a YAML list in the file, comma-separated in the
// environment.
func TestListFromFileAndEnvironment(t *testing.T) {
	type listConfig struct {
		Servers []string `mapstructure:"servers"`
	}
	tests := []struct {
		name string
		file string // the YAML file
		env  string // CONNECTOR_SERVERS
		want []string
	}{
		{"yaml list", "servers: [http://127.0.0.1:19090, http://127.0.0.1:19091]", "", []string{"http://127.0.0.1:19090", "http://127.0.0.1:19091"}},
		{"env comma-separated", "", "http://127.0.0.1:19090,http://127.0.0.1:19091", []string{"http://127.0.0.1:19090", "http://127.0.0.1:19091"}},
		{"env over file, blanks trimmed", "servers: [http://127.0.0.1:1]", " a , ,b ", []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv(EnvVar("servers"), tt.env)
			}
			v := viper.New()
			v.SetConfigType("yaml")
			if err := v.ReadConfig(strings.NewReader(tt.file)); err != nil {
				t.Fatal(err)
			}
			var target listConfig
			fields := leaves(&target)
			bindEnv(v, leafKeys(fields))
			var ps problems
			decode(v, fields, &ps)
			if err := ps.err(leafKeys(fields)); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(target.Servers, tt.want) {
				t.Errorf("Servers = %q, want %q", target.Servers, tt.want)
			}
		})
	}
}

func TestListOfWrongItems(t *testing.T) {
	var target []string
	err := assign(reflect.ValueOf(&target).Elem(), []any{"a", 3})
	if err == nil || err.Error() != "item 1 must be a string, got 3" {
		t.Errorf("assign = %v", err)
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[string]string{"0s": "0s", "180s": "180s", "1h": "1h", "90m": "5400s", "1500ms": "1.5s", "2h": "2h"} {
		parsed, err := toDuration(d)
		if err != nil {
			t.Fatal(err)
		}
		if got := formatDuration(parsed); got != want {
			t.Errorf("formatDuration(%s) = %s, want %s", d, got, want)
		}
	}
}
