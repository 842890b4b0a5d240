package cpu

import (
	"bytes"
	"strconv"
	"time"
)

// parseStall reads the "some" line's total= (microseconds) from a PSI file such as /proc/pressure/cpu:
//
//	some avg10=0.00 avg60=0.00 avg300=0.00 total=12345
//	full avg10=0.00 avg60=0.00 avg300=0.00 total=0
func parseStall(b []byte) (time.Duration, bool) {
	for line := range bytes.Lines(b) {
		f := bytes.Fields(line)
		if len(f) == 0 || string(f[0]) != "some" {
			continue
		}
		for _, kv := range f[1:] {
			if v, ok := bytes.CutPrefix(kv, []byte("total=")); ok {
				us, err := strconv.ParseUint(string(v), 10, 63)
				return time.Duration(us) * time.Microsecond, err == nil && us <= uint64(1<<63-1)/1000
			}
		}
	}
	return 0, false
}
