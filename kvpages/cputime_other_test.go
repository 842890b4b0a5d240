//go:build !unix

package kvpages

import "time"

func processCPU() time.Duration { return 0 }
