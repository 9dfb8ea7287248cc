//go:build race

package orchestrix_test

// raceOn: built with -race, where sync.Pool drops items at random, so
// allocation counts that rely on a pool are not meaningful.
const raceOn = true
