//go:build !race

package abi

// raceDetector says whether the tests run with -race.
const raceDetector = false
