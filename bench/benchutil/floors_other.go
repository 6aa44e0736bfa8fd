//go:build !linux

package main

import "errors"

var errFloors = errors.New("the splice floors need Linux")

func splicerelay([]string) error { return errFloors }
func spoolrelay([]string) error  { return errFloors }
