package config

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/viper"
)

// Load reads the YAML file at path (none when path is ""), applies the
// CONNECTOR_* environment overrides over it and Default() under it, reads the
// password files, and validates the result.
//
// A file that cannot be read or parsed is a plain error. Every problem with a
// key (unknown, wrong type, out of range, inconsistent) is collected into one
// *Errors, each named by its key path.
func Load(path string) (*Config, error) {
	v := viper.New()
	if path != "" {
		v.SetConfigFile(path)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("config: read %s: %w", path, err)
		}
	}

	cfg := Default()
	fields := leaves(cfg)
	keys := leafKeys(fields)
	var ps problems
	checkFileKeys(v, keys, &ps)
	bindEnv(v, keys)
	decode(v, fields, &ps)
	readPasswordFiles(cfg, &ps)
	validate(cfg, &ps)
	if err := ps.err(keys); err != nil {
		return nil, err
	}
	return cfg, nil
}

// checkFileKeys reports keys in the file that the configuration does not
// have. It must run before bindEnv, which adds every known key to AllKeys.
func checkFileKeys(v *viper.Viper, keys []string, ps *problems) {
	sections := sectionsOf(keys)
	fileKeys := v.AllKeys()
	slices.Sort(fileKeys)
	for _, key := range fileKeys {
		switch {
		case slices.Contains(keys, key):
		case v.Get(key) == nil:
			// "csta:" with nothing under it: an empty section.
		case sections[key]:
			ps.add(key, "must be a mapping of keys, got %s", describe(v.Get(key)))
		default:
			if _, ok := underLeaf(key, keys); ok {
				break // the leaf itself fails to decode and is reported then
			}
			ps.add(key, "unknown key%s", suggestion(key, keys))
		}
	}
}

// suggestion proposes a known key with the same last segment, for a key
// written in the wrong section.
func suggestion(unknown string, keys []string) string {
	last := unknown[strings.LastIndexByte(unknown, '.')+1:]
	for _, key := range keys {
		if strings.HasSuffix(key, "."+last) || key == last {
			return fmt.Sprintf(" (did you mean %s?)", key)
		}
	}
	return ""
}

// bindEnv binds every key to its variable explicitly: AutomaticEnv alone only
// answers Get for keys viper already knows from the file, so an override of a
// key absent from the file would be lost.
func bindEnv(v *viper.Viper, keys []string) {
	for _, key := range keys {
		// BindEnv fails only without a key name.
		_ = v.BindEnv(key, EnvVar(key))
	}
}

// decode overwrites each default with the value from the environment or the
// file, if either sets it.
func decode(v *viper.Viper, fields []leaf, ps *problems) {
	for _, f := range fields {
		if !v.IsSet(f.key) {
			continue
		}
		if err := assign(f.value, v.Get(f.key)); err != nil {
			ps.add(f.key, "%v", err)
		}
	}
}

func readPasswordFiles(c *Config, ps *problems) {
	a := &c.CSTAFrontEnd.Auth
	readPasswordFile("csta.auth", &a.Password, a.PasswordFile, ps)
	a = &c.CSTAFrontEnd.WebSocket.Auth
	readPasswordFile("csta.websocket.auth", &a.Password, a.PasswordFile, ps)
	readPasswordFile("xsi", &c.XSILink.Password, c.XSILink.PasswordFile, ps)
	readSecretFile("admin.token_file", "admin.token", &c.Admin.Token, c.Admin.TokenFile, ps)
	readSecretFile("store.postgres.dsn_file", "store.postgres.dsn", &c.Store.Postgres.DSN, c.Store.Postgres.DSNFile, ps)
}

// readPasswordFile moves the secret from <section>.password_file into
// <section>.password, without the trailing newline an editor or echo leaves.
func readPasswordFile(section string, password *string, file string, ps *problems) {
	readSecretFile(section+".password_file", section+".password", password, file, ps)
}

// readSecretFile moves the secret of fileKey's file into secret (secretKey).
func readSecretFile(fileKey, secretKey string, secret *string, file string, ps *problems) {
	if file == "" {
		return
	}
	if *secret != "" {
		ps.add(fileKey, "cannot be set together with %s; set only one of them", secretKey)
		return
	}
	content, err := os.ReadFile(file)
	if err != nil {
		ps.add(fileKey, "cannot read: %v", err)
		return
	}
	value := strings.TrimRight(string(content), "\r\n")
	if value == "" {
		ps.add(fileKey, "%s is empty", file)
		return
	}
	*secret = value
}
