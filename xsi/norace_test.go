//go:build !race

package xsi

const raceEnabled = false
