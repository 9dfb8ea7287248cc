//go:build !race

package orchestrix_test

const raceOn = false
