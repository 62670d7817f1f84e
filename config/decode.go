package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

var durationType = reflect.TypeFor[time.Duration]()

// assign stores raw (a YAML value, or a string from the environment) into
// target. Environment values are always strings, so numbers, booleans and
// lists are also accepted in their string form; YAML numbers are not accepted
// where a string or duration is meant, because the conversion would be a
// guess (a bare 180 as a duration; 0123 as a password).
func assign(target reflect.Value, raw any) error {
	switch {
	case target.Type() == durationType:
		d, err := toDuration(raw)
		if err != nil {
			return err
		}
		target.SetInt(int64(d))
	case target.Kind() == reflect.String:
		s, ok := raw.(string)
		switch {
		case ok:
		case isScalar(raw):
			return fmt.Errorf("must be a string (quote it), got %s", describe(raw))
		default:
			return fmt.Errorf("must be a string, got %s", describe(raw))
		}
		target.SetString(s)
	case target.Kind() == reflect.Bool:
		b, err := toBool(raw)
		if err != nil {
			return err
		}
		target.SetBool(b)
	case target.Kind() == reflect.Int:
		n, err := toInt(raw)
		if err != nil {
			return err
		}
		target.SetInt(int64(n))
	case target.Kind() == reflect.Float64:
		f, err := toFloat(raw)
		if err != nil {
			return err
		}
		target.SetFloat(f)
	case target.Kind() == reflect.Slice && target.Type().Elem().Kind() == reflect.String:
		list, err := toStrings(raw)
		if err != nil {
			return err
		}
		target.Set(reflect.ValueOf(list).Convert(target.Type()))
	default:
		// A field type this decoder does not know is a programming error.
		return fmt.Errorf("config: no decoder for %s", target.Type())
	}
	return nil
}

func toDuration(raw any) (time.Duration, error) {
	s, ok := raw.(string)
	if !ok {
		return 0, fmt.Errorf(`must be a duration with a unit like "180s" or "1h", got %s`, describe(raw))
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf(`must be a duration with a unit like "180s" or "1h", got %q`, s)
	}
	return d, nil
}

func toBool(raw any) (bool, error) {
	switch v := raw.(type) {
	case bool:
		return v, nil
	case string:
		if b, err := strconv.ParseBool(strings.TrimSpace(v)); err == nil {
			return b, nil
		}
	}
	return false, fmt.Errorf("must be true or false, got %s", describe(raw))
}

func toInt(raw any) (int, error) {
	switch v := raw.(type) {
	case int:
		return v, nil
	case int64:
		return int(v), nil
	case uint64:
		if v <= uint64(^uint(0)>>1) {
			return int(v), nil
		}
	case string:
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("must be an integer, got %s", describe(raw))
}

// toFloat accepts a YAML number (20 or 2.5) or its string form; NaN and
// infinities are not numbers a limit can use.
func toFloat(raw any) (float64, error) {
	var f float64
	switch v := raw.(type) {
	case float64:
		f = v
	case int:
		f = float64(v)
	case int64:
		f = float64(v)
	case uint64:
		f = float64(v)
	case string:
		parsed, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return 0, fmt.Errorf("must be a number, got %s", describe(raw))
		}
		f = parsed
	default:
		return 0, fmt.Errorf("must be a number, got %s", describe(raw))
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("must be a finite number, got %s", describe(raw))
	}
	return f, nil
}

// toStrings accepts a YAML list of strings or, from the environment, one
// comma-separated string ("a, b,c" → [a b c]; empty items are dropped).
func toStrings(raw any) ([]string, error) {
	switch v := raw.(type) {
	case string:
		var list []string
		for item := range strings.SplitSeq(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				list = append(list, item)
			}
		}
		return list, nil
	case []any:
		list := make([]string, 0, len(v))
		for i, item := range v {
			s, ok := item.(string)
			if !ok {
				return nil, fmt.Errorf("item %d must be a string, got %s", i, describe(item))
			}
			list = append(list, s)
		}
		return list, nil
	case []string:
		return v, nil
	}
	return nil, errors.New("must be a list of strings, got " + describe(raw))
}

func isScalar(raw any) bool {
	switch raw.(type) {
	case map[string]any, map[any]any, []any, nil:
		return false
	}
	return true
}

// describe renders a raw value for an error message.
func describe(raw any) string {
	switch v := raw.(type) {
	case string:
		return strconv.Quote(v)
	case map[string]any, map[any]any:
		return "a mapping"
	case []any:
		return "a list"
	case nil:
		return "nothing"
	}
	return fmt.Sprintf("%v", raw)
}
